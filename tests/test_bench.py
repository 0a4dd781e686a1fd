"""The benchmark harness end to end, in its quick configuration (`neuronedit bench ... --quick`)."""

import json
import re

import numpy as np
import pytest

from neuronedit_tf import cli, metrics
from neuronedit_tf.bench import drugs, report


def _table(markdown, first_column):
    """Rows of the markdown table whose header starts with ``first_column``: {name: [cells]}."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_drugs_and_images_write_results(tmp_path, capsys):
    assert cli.main(["bench", "drugs", "--quick", "--out", str(tmp_path)]) == 0
    assert cli.main(["bench", "images", "--quick", "--out", str(tmp_path)]) == 0
    results = (tmp_path / "RESULTS.md").read_text()
    # Both sections are kept, in order, each with its own command.
    assert results.index("## Drug combinations") < results.index("## Images")
    assert "`neuronedit bench drugs --out" in results and "--quick`" in results
    for figure in ("drugs_moments.png", "images_grid.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({figure})" in results
    # The no-correction row equals the metric computed independently on X vs the truth.
    case = drugs.drug_case(n_per_part=500, seed=0)
    rows = _table(results[results.index("## Drug"):], "method")
    truth, extra = drugs.to_scale(case.truth), drugs.to_scale(case.extra)
    assert float(rows["none"][4]) == pytest.approx(metrics.rmse(extra, truth), abs=1e-3)
    assert float(rows["linear additive"][0]) == pytest.approx(
        metrics.moment_r(drugs.to_scale(drugs.linear_additive(case)), truth)[0], abs=1e-3)
    image_rows = _table(results[results.index("## Images"):], "method")
    assert set(image_rows) == {"neuron editing (paper, conv)", "none", "mean_shift"}
    for cells in list(rows.values()) + list(image_rows.values()):
        assert all(np.isfinite(float(c.split(" ")[0])) for c in cells)


def test_rerunning_one_experiment_keeps_the_others(tmp_path):
    first = report.Section("drugs", "Drugs", "| a |", command="x")
    second = report.Section("batch", "Batch", "| b |", command="y")
    report.write_results(tmp_path, [first], "# R")
    text = report.write_results(tmp_path, [second], "# R").read_text()
    assert text.index("## Batch") < text.index("## Drugs")
    replaced = report.write_results(tmp_path, [report.Section("drugs", "Drugs", "new", command="x")],
                                    "# R").read_text()
    assert "new" in replaced and "| a |" not in replaced


def test_speed_quick_writes_speed_md(tmp_path):
    assert cli.main(["bench", "speed", "--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "SPEED.md").read_text()
    for heading in ("## Training throughput", "## The whole fit", "## Percentile fitting",
                    "## End to end", "## Exported graph inference", "## Studies"):
        assert heading in text
    assert "neuronedit bench speed --out" in text
    # Every rate in the tables is a positive number that was measured, not a placeholder.
    rates = re.findall(r"\| ([\d,]+) \|", text)
    assert rates and all(int(r.replace(",", "")) > 0 for r in rates)


def test_speed_sections_rewrite_only_their_section_in_place(tmp_path, capsys):
    (tmp_path / "SPEED.md").write_text("# Speed and memory\n\n## Training\n\nkept 1\n\n"
                                       "## Studies: old\n\nstale\n\n## Later\n\nkept 2\n")
    assert cli.main(["bench", "speed", "--quick", "--sections", "study",
                     "--out", str(tmp_path)]) == 0
    text = (tmp_path / "SPEED.md").read_text()
    assert "kept 1" in text and "kept 2" in text and "stale" not in text
    assert text.index("## Training") < text.index("## Studies") < text.index("## Later")
    assert f"neuronedit bench speed --out {tmp_path} --quick --sections study" in text
    section = text[text.index("## Studies"):text.index("## Later")]
    for figure in ("fit_study s", "peak RSS MiB", "SavedModel rows/s", "TFLite rows/s"):
        assert figure in section
    rates = re.findall(r"\| ([\d,]+) \| ([\d,]+) \| [\d.]+ / [\d.]+ \|", section)
    assert len(rates) == 4 and all(int(r.replace(",", "")) > 0 for pair in rates for r in pair)
    assert "one batch per request" in section
    assert "studies" in json.loads((tmp_path / "speed.json").read_text())
    assert cli.main(["bench", "speed", "--quick", "--sections", "nope", "--out",
                     str(tmp_path)]) == 1
    assert "unknown section(s) ['nope']" in capsys.readouterr().err


def test_the_whole_fit_section_is_rewritten_alone(tmp_path, monkeypatch):
    # The measurement itself runs in test_speed_quick_writes_speed_md (run_speed calls
    # whole_fit); here only its section's rewrite, with the figures it returns.
    from neuronedit_tf.bench import speed

    phases = {"inputs": 0.1, "statistics": 0.4, "pipeline": 0.4, "training": 5.0, "edit": 1.0}
    measured = [{"batch": b, "rows": 3000, "epochs": 2, "fit": f, "torch": t,
                 "torch_threads": 1, "rounds": 3, "load": 0.5, "phases": phases}
                for b, f, t in ((100, 15.8, 14.7), (1024, 9.7, 6.1))]
    monkeypatch.setattr(speed, "whole_fit", lambda **kwargs: measured)
    (tmp_path / "SPEED.md").write_text("# Speed and memory\n\n## Training\n\nkept 1\n\n"
                                       "## The whole fit, against old\n\nstale\n\n"
                                       "## Percentile fitting\n\nkept 2\n")
    speed.run_sections(["whole_fit"], tmp_path, command="neuronedit bench speed")
    text = (tmp_path / "SPEED.md").read_text()
    assert "kept 1" in text and "kept 2" in text and "stale" not in text
    section = text[text.index("## The whole fit"):text.index("## Percentile fitting")]
    assert "`neuronedit bench speed --sections whole_fit`" in section
    assert "fastest of 3 fresh processes" in section
    assert "| 100 | 15.8 | 14.7 (1 thread) | 0.93× |" in section
    assert "| 1024 | 9.7 | 6.1 (1 thread) | 0.63× |" in section
    assert "| batch | inputs | statistics | pipeline | training | edit | all but training |" in section
    assert "| 1024 | 0.10 | 0.40 | 0.40 | 5.00 | 1.00 | 1.90 | 6.1 |" in section


def test_bench_rejects_bad_seeds(capsys):
    assert cli.main(["bench", "drugs", "--seeds", "a,b", "--out", "unused"]) == 1
    assert "--seeds takes comma-separated integers" in capsys.readouterr().err


def test_sections_run_the_whole_fit_before_the_studies(tmp_path, monkeypatch):
    # The Studies section writes ~1.5 GB of memory-mapped files, which slowed a fit measured
    # right after it: whatever order --sections gives, the whole fit is measured first.
    from neuronedit_tf.bench import speed, study_speed

    ran = []
    monkeypatch.setattr(speed, "whole_fit", lambda **kwargs: ran.append("whole_fit") or [])
    monkeypatch.setattr(study_speed, "run_studies", lambda **kwargs: ran.append("study") or {})
    monkeypatch.setattr(speed, "_render_studies", lambda figures, command: ["studies"])
    speed.run_sections(["study", "whole_fit"], tmp_path, command="neuronedit bench speed")
    assert ran == ["whole_fit", "study"]


def test_the_end_to_end_section_is_rewritten_alone(tmp_path, monkeypatch):
    # As the whole fit's: the measurement runs in test_speed_quick_writes_speed_md; here the
    # section's own rewrite, with its growth exponents, from the figures end_to_end returns.
    from neuronedit_tf.bench import speed

    measured = [{"label": f"synthetic {n:.0e} rows (1 epoch, batch 1024)", "rows": n,
                 "epochs": 1, "fit": 6e-5 * n, "transform": 1e-5 * n, "wall": 8e-5 * n + 5,
                 "peak_rss": rss * 2**20, "load": 1.0}
                for n, rss in ((10**5, 1000), (10**6, 1500), (10**7, 1650))]
    monkeypatch.setattr(speed, "end_to_end", lambda **kwargs: measured)
    monkeypatch.setattr(speed, "matmul_flops", lambda: 150e9)
    (tmp_path / "SPEED.md").write_text("# Speed and memory\n\n## End to end: old\n\nstale\n\n"
                                       "## Exported graph inference\n\nkept\n")
    speed.run_sections(["end_to_end"], tmp_path, command="neuronedit bench speed")
    text = (tmp_path / "SPEED.md").read_text()
    assert "kept" in text and "stale" not in text
    section = text[text.index("## End to end"):text.index("## Exported graph")]
    assert "`neuronedit bench speed --sections end_to_end`" in section
    assert "| synthetic 1e+07 rows (1 epoch, batch 1024) | 10,000,000 | 600.0 | 100.0 |" in section
    assert "last two sizes **0.04** (1.10× for 10× the rows; goal: flat)" in section


def test_the_sections_help_names_every_section():
    # cli.py names the sections by hand (it must not import TensorFlow to print help); this
    # keeps that list equal to speed.SECTIONS.
    from neuronedit_tf import cli
    from neuronedit_tf.bench import speed

    bench = " ".join(cli._parser()._subparsers._group_actions[0].choices["bench"]
                     .format_help().split())
    assert f"comma-separated: {', '.join(speed.SECTIONS)})" in bench, bench
