"""bench.batch: the quick configuration writes its figures and a Section with sane numbers."""

import numpy as np
import pytest

from neuronedit_tf import metrics, models
from neuronedit_tf.bench import batch
from neuronedit_tf.bench.cases import cytof_cases, spillover_cases


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    return out, batch.run(out, quick=True, log=lambda message: None)


def test_section_and_figures(quick):
    out, section = quick
    assert section.name == "batch"
    assert section.figures == ["batch_emd.png", "batch_histogram.png"]
    for name in section.figures:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = section.render()
    assert "### CyTOF spike-in cases" in text and "### Cross-channel cases" in text
    assert "neuronedit bench batch" in section.command
    assert not list(out.glob(".*.part"))  # atomic writes left nothing behind


def test_no_correction_emd_equals_an_independent_computation(quick):
    _, section = quick
    case = next(iter(cytof_cases()))
    [row] = [r for r in section.rows if r["case"] == case.name and r["method"] == "none"]
    # Computed here without the package's metrics: scipy's 1-D Wasserstein per marker.
    from scipy.stats import wasserstein_distance

    x = np.arcsinh(case.sample.values.astype(np.float64) / 5)
    y = np.arcsinh(case.truth.values.astype(np.float64) / 5)
    expected = np.mean([wasserstein_distance(x[:, k], y[:, k]) for k in range(x.shape[1])])
    assert row["emd"] == pytest.approx(expected, rel=1e-9)
    assert f"{expected:.3f}" in section.markdown


def test_numbers_are_finite_and_sane(quick):
    _, section = quick
    methods = {r["method"] for r in section.rows}
    assert {"none", "mean_shift", "quantile_map", "neuron editing (paper)",
            "neuron editing (calibrated)", "neuron editing (gated)"} <= methods
    for row in section.rows:
        assert np.isfinite(row["emd"]) and row["emd"] >= 0
        if row["method"] != "none":
            assert -1 <= row["r"] <= 1
        assert np.isfinite(row["rmse"]) == row["case"].startswith("spillover")
    cytof = {r["method"]: r for r in section.rows if r["case"].startswith("cytof")}
    # The per-feature quantile map fitted on the spike-ins moves the sample toward the truth.
    assert cytof["quantile_map"]["emd"] < cytof["none"]["emd"]
    spill = {r["method"]: r for r in section.rows if r["case"].startswith("spillover")}
    case = next(iter(spillover_cases()))
    none = metrics.rmse(case.scale(case.sample), case.scale(case.truth))
    assert spill["none"]["rmse"] == pytest.approx(none)


def test_cv_scores_average_families_then_families():
    rows = [{"candidate": "a", "family": "cytof", "ratio": 0.5},
            {"candidate": "a", "family": "cytof", "ratio": 0.7},
            {"candidate": "a", "family": "spillover", "ratio": 1.0},
            {"candidate": "b", "family": "cytof", "ratio": 0.9},
            {"candidate": "b", "family": "spillover", "ratio": 0.5}]
    assert batch.cv_scores(rows) == pytest.approx({"a": 0.8, "b": 0.7})


def test_select_method_scores_held_out_spike_ins_only():
    case = next(iter(spillover_cases(n_cells=400)))
    messages = []
    # The truth is never read: selection runs the same with the truth replaced by garbage.
    blind = type(case)(**{**case.__dict__, "truth": None})
    choice, rows = batch.select_method([blind], epochs=2, log=messages.append,
                                       candidates=(("paper", None), ("calibrated", None)))
    assert choice in {"paper", "calibrated"}
    assert {r["split"] for r in rows} <= {"random", "population"} and rows
    assert all(np.isfinite(r["ratio"]) and r["ratio"] > 0 for r in rows)
    scores = batch.cv_scores(rows)
    assert scores[choice] == min(scores.values())


def test_select_method_scores_what_build_returns():
    case = next(iter(spillover_cases(n_cells=400)))
    seen = []

    def build(editor, source, target):
        seen.append(len(source))
        graphs = batch.graphs(editor, source, target, [("paper", None)])
        return {"mine": graphs["paper"]}

    choice, rows = batch.select_method([case], epochs=1, log=lambda message: None, build=build)
    assert choice == "mine" and {r["candidate"] for r in rows} == {"mine"}
    # One editor per split, built from the fitting part only (fewer rows than all of S).
    assert len(seen) == len(rows) and all(n < len(case.source.values) for n in seen)


def test_select_method_editors_can_be_ensembles():
    case = next(iter(spillover_cases(n_cells=400)))
    editor = batch._editor(case, 0, 1, members=2)
    assert editor.members == 2
    assert editor.part("encoder").get_layer("encoder_1").output.shape[-1] == 50
    # One edit over both members' codes (2 x 50 neurons), the paper's 101 knots (the bench's
    # editors are method="paper"; every method is read off their autoencoders).
    assert editor.part("neuron_edit").source_q.shape == (101, 100)


def test_candidates_may_carry_their_own_knots():
    case = next(iter(spillover_cases(n_cells=400)))
    editor = batch._editor(case, 0, 1)
    gate = {"k": 5, "low": 1.2, "high": 1.8}
    built = batch.graphs(editor, case.source.values, case.target.values,
                         [("gated", gate), ("gated", gate, (49, 51)), ("paper", None, range(101))])
    assert list(built) == ["gated(k=5, 1.2-1.8)", "gated(k=5, 1.2-1.8) knots 49,51", "paper"]
    knots = {name: graph.get_layer("neuron_edit").source_q.shape[0]
             for name, graph in built.items()}
    assert knots == {"gated(k=5, 1.2-1.8)": 2, "gated(k=5, 1.2-1.8) knots 49,51": 2,
                     "paper": 101}
    # Same number of knots (the default 25, 75 and 49, 51), other percentiles: they differ.
    default, median = (np.asarray(built[n].get_layer("neuron_edit").source_q)
                       for n in list(built)[:2])
    assert not np.allclose(default, median)
    sample = case.sample.values[:50]
    assert not np.allclose(models.run(built["gated(k=5, 1.2-1.8)"], sample),
                           models.run(built["gated(k=5, 1.2-1.8) knots 49,51"], sample))
