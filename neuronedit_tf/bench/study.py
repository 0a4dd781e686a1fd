"""Studies (issue #18): the cytonormpy 1.0.2 CyTOF files as the study they are.

Three plates (021, 028, 034) x two donors; donor 1 is the anchor on every plate, donor 2 the
sample. Each plate in turn is the reference: donor 2 on every other plate is corrected into
it, and the truth is donor 2's real file on the reference plate (a distribution; scored by
the mean per-marker EMD on arcsinh(x/5), as the batch benchmark does).

Rows of the first table:

* the study editor, ``NeuronEditor().fit_study`` (the default method, and ``method="paper"``):
  one autoencoder on every plate's anchor and sample, each plate's edit into the reference;
* one pairwise ``NeuronEditor`` per plate (today's way): S = the plate's anchor, T = the
  reference plate's anchor, X = the plate's sample;
* cytonormpy 1.0.2 itself, trained as a study (its own metadata table, no clustering, arcsinh
  cofactor 5, its goal the reference batch), run in its own virtual environment (it pulls
  scanpy, flowsom and an older flowio): ``$NEURONEDIT_CYTONORMPY_PYTHON``, else one built
  once from pinned packages of the package index in the data cache;
* the per-marker quantile map per plate (CytoNorm's map without clustering, ours:
  ``baselines.get("quantile_map")``), and no correction.

The second table leaves one plate out of ``fit_study``, adds it with ``add_batch`` (the
autoencoder frozen) and compares it with the study that saw it from the start; it reports
the fit and add times, and checks that every other plate's output stayed bit for bit the
same. A last line times ``add_batch`` on 10^5 anchor cells (the real anchor resampled).

Example (the test's tiny configuration):
    >>> from neuronedit_tf.bench import study                       # doctest: +SKIP
    >>> section = study.run("benchmarks", quick=True)               # doctest: +SKIP
    >>> section.name                                                # doctest: +SKIP
    'study'
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neuronedit_tf import metrics
from neuronedit_tf.bench.report import Section, markdown_table, mean_sd
from neuronedit_tf.data.datasets import CYTOF_BATCHES, cache_dir, load_cytof, write_cytof_study

COMMAND = "neuronedit bench study"
PLATES = CYTOF_BATCHES
ANCHOR, SAMPLE = 1, 2
COFACTOR = 5.0
#: cytonormpy's metadata names the plates 1, 2, 3 (its batch column).
CYTONORM_BATCH = {"021": 1, "028": 2, "034": 3}
#: cytonormpy 1.0.2 and what it was installed with here (2026-11, Python 3.11).
CYTONORM_PINS = ("cytonormpy==1.0.2", "numpy==2.4.6", "pandas==2.3.3", "scipy==1.17.1",
                 "scikit-learn==1.9.1", "anndata==0.12.19", "scanpy==1.11.5", "flowsom==0.2.2",
                 "FlowIO==1.3.0", "readfcs==2.1.1", "pytometry==0.1.6")
#: Its run: no clustering, arcsinh with cofactor 5 on the 37 markers, goal = the reference.
CYTONORM_SCRIPT = r"""
import json, sys, warnings
from pathlib import Path
import cytonormpy as cnp
folder, goal, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
markers = [l.strip() for l in (folder / "markers.txt").read_text().splitlines() if l.strip()]
warnings.simplefilter("ignore")
cn = cnp.CytoNorm()
cn.add_transformer(cnp.AsinhTransformer(cofactors=5))
cn.run_fcs_data_setup(metadata=folder / "metadata.csv", input_directory=folder,
                      channels=markers, output_directory=out)
cn.calculate_quantiles()
cn.calculate_splines(goal=goal)
cn.normalize_data(n_jobs=1)
print(json.dumps(sorted(p.name for p in out.iterdir())))
"""
#: The study methods: the library's default, and the paper's setting.
STUDY_METHODS = {"study editor (default)": None, "study editor (paper)": "paper"}
#: add_batch's timing row: anchor cells.
ADD_ROWS = 10**5


def scale(values):
    """The comparison scale: arcsinh(x / 5) in float64."""
    values = getattr(values, "values", values)
    return np.arcsinh(np.asarray(values, np.float64) / COFACTOR)


def emd(values, truth):
    return metrics.mean_emd(scale(values), scale(truth))


def study_data():
    """``(anchors, samples)``: ``{plate: FCSData}`` of donor 1 and donor 2 (37 markers)."""
    return ({p: load_cytof(p, ANCHOR) for p in PLATES}, {p: load_cytof(p, SAMPLE) for p in PLATES})


def _editor(seed, method, quick):
    from neuronedit_tf.editor import NeuronEditor

    options = dict(hidden=(16, 8, 4)) if quick else {}
    return NeuronEditor(transform="arcsinh", cofactor=COFACTOR, seed=seed, method=method,
                        **options)


# ------------------------------------------------------------------ cytonormpy
def cytonormpy_python(build=True, log=print):
    """A Python with cytonormpy 1.0.2: ``$NEURONEDIT_CYTONORMPY_PYTHON``, or a virtual
    environment built once from :data:`CYTONORM_PINS` in the data cache (``build``).
    Returns None (and logs why) when there is none."""
    given = os.environ.get("NEURONEDIT_CYTONORMPY_PYTHON")
    if given:
        return given
    home = cache_dir() / ("cytonormpy-venv-" + CYTONORM_PINS[0].split("==")[1])
    python, ready = home / "bin" / "python", home / "ready"
    if ready.exists():
        return str(python)
    if not build:
        log("cytonormpy: no environment (set NEURONEDIT_CYTONORMPY_PYTHON or run the full bench)")
        return None
    log(f"cytonormpy: building its environment in {home} (once)")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True,
                       capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *CYTONORM_PINS], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as error:
        log(f"cytonormpy: could not build its environment: "
            f"{getattr(error, 'stderr', '') or error}"[-600:])
        return None
    ready.write_text("ok")
    return str(python)


def cytonormpy_rows(python, references=PLATES, log=print):
    """cytonormpy trained as the study, once per reference plate (it is deterministic):
    rows ``{method, reference, plate, seed, seconds, emd}`` for donor 2 on every other plate."""
    from neuronedit_tf.data.fcs import read_fcs

    rows = []
    truth = {p: load_cytof(p, SAMPLE) for p in PLATES}
    markers = truth[PLATES[0]].channels
    with tempfile.TemporaryDirectory() as scratch:
        folder = write_cytof_study(Path(scratch) / "data").parent
        for reference in references:
            out = Path(scratch) / f"out_{reference}"
            out.mkdir()
            started = time.time()
            result = subprocess.run([python, "-c", CYTONORM_SCRIPT, str(folder),
                                     str(CYTONORM_BATCH[reference]), str(out)],
                                    capture_output=True, text=True)
            seconds = time.time() - started
            if result.returncode != 0:
                raise RuntimeError(f"cytonormpy failed: {result.stderr[-800:]}")
            for plate in PLATES:
                if plate == reference:
                    continue
                name = f"Norm_Gates_PTLG{plate}_Unstim_Control_{SAMPLE}.fcs"
                corrected = read_fcs(out / name).select(markers)
                rows.append({"method": "cytonormpy 1.0.2 (study)", "reference": reference,
                             "plate": plate, "seed": 0, "seconds": seconds,
                             "emd": emd(corrected, truth[reference])})
            log(f"cytonormpy reference {reference}: " + ", ".join(
                f"{r['plate']} {r['emd']:.3f}" for r in rows if r["reference"] == reference))
    return rows


# ------------------------------------------------------------------ table 1
def correction_rows(anchors, samples, references, seeds, epochs, quick, log=print):
    """Every method but cytonormpy: rows ``{method, reference, plate, seed, seconds, emd}``
    and the fitted default studies ``{(reference, seed): Study}`` (for the second table)."""
    from neuronedit_tf import baselines

    rows, studies = [], {}
    for reference in references:
        others = [p for p in PLATES if p != reference]
        truth = samples[reference]
        for p in others:
            rows.append({"method": "no correction", "reference": reference, "plate": p,
                         "seed": 0, "seconds": 0.0, "emd": emd(samples[p], truth)})
            started = time.time()
            mapped = baselines.get("quantile_map", transform="arcsinh", cofactor=COFACTOR).fit(
                anchors[p].values, anchors[reference].values).transform(samples[p].values)
            rows.append({"method": "quantile map per plate", "reference": reference, "plate": p,
                         "seed": 0, "seconds": time.time() - started, "emd": emd(mapped, truth)})
        for seed in seeds:
            for label, method in STUDY_METHODS.items():
                started = time.time()
                study = _editor(seed, method, quick).fit_study(
                    anchors, reference=reference, samples={p: [samples[p]] for p in PLATES},
                    epochs=epochs, verbose=0)
                fitted = time.time() - started
                if method is None:
                    studies[reference, seed] = study
                for p in others:
                    corrected = study.transform(samples[p], batch=p)
                    rows.append({"method": label, "reference": reference, "plate": p,
                                 "seed": seed, "seconds": fitted, "emd": emd(corrected, truth)})
            for p in others:
                started = time.time()
                editor = _editor(seed, None, quick).fit(
                    anchors[p], anchors[reference], extra=samples[p], epochs=epochs, verbose=0)
                corrected = editor.transform(samples[p])
                rows.append({"method": "pairwise NeuronEditor per plate (default)",
                             "reference": reference, "plate": p, "seed": seed,
                             "seconds": time.time() - started, "emd": emd(corrected, truth)})
            log(f"reference {reference} seed {seed}: " + ", ".join(
                f"{r['method']} {r['plate']} {r['emd']:.3f}" for r in rows
                if r["reference"] == reference and r["seed"] == seed))
    return rows, studies


def correction_table(rows, references):
    """One row per method: mean ± sd over (reference, plate, seed), the mean per reference
    plate, seeds, and the mean seconds per fit."""
    table = []
    for name in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == name]
        entry = {"method": name, "EMD to truth ↓": mean_sd([r["emd"] for r in mine])}
        for reference in references:
            values = [r["emd"] for r in mine if r["reference"] == reference]
            entry[f"into {reference}"] = float(np.mean(values)) if values else float("nan")
        entry["seeds"] = len({r["seed"] for r in mine})
        entry["s / fit"] = f"{np.mean([r['seconds'] for r in mine]):.1f}"
        entry["_emd"] = float(np.mean([r["emd"] for r in mine]))
        table.append(entry)
    table.sort(key=lambda e: e["_emd"])
    return table


# ------------------------------------------------------------------ table 2
def added_rows(anchors, samples, studies, seeds, epochs, quick, pairs=None, log=print):
    """Leave plate H out of ``fit_study`` (reference R), add it with ``add_batch``, compare
    with the study fitted on every plate (``studies[R, seed]``): rows per (R, H, seed)."""
    rows = []
    pairs = pairs or [(r, h) for r in PLATES for h in PLATES if h != r]
    for reference, held in pairs:
        for seed in seeds:
            if (reference, seed) not in studies:
                continue
            kept = [p for p in PLATES if p != held]
            started = time.time()
            study = _editor(seed, None, quick).fit_study(
                {p: anchors[p] for p in kept}, reference=reference,
                samples={p: [samples[p]] for p in kept}, epochs=epochs, verbose=0)
            fitted = time.time() - started
            other = next(p for p in kept if p != reference)
            before = study.transform(samples[other], batch=other).values
            started = time.time()
            study.add_batch(held, anchor=anchors[held])
            added = time.time() - started
            unchanged = np.array_equal(study.transform(samples[other], batch=other).values,
                                       before)
            truth = samples[reference]
            late = emd(study.transform(samples[held], batch=held), truth)
            full = emd(studies[reference, seed].transform(samples[held], batch=held), truth)
            rows.append({"reference": reference, "added plate": held, "seed": seed,
                         "EMD added later": late, "EMD from the start": full,
                         "abs. difference": abs(late - full), "fit s (2 plates)": fitted,
                         "add_batch s": added, "others unchanged": unchanged})
            log(f"add_batch {held} into {reference} seed {seed}: {late:.3f} vs {full:.3f} "
                f"(fit {fitted:.1f} s, add {added:.2f} s)")
    return rows


def add_timing(study, anchor, rows=ADD_ROWS, seed=0):
    """Seconds of ``study.add_batch`` with ``rows`` anchor cells (``anchor`` resampled with
    replacement) on a copy of the study."""
    from neuronedit_tf.editor import NeuronEditor

    big = anchor.values[np.random.default_rng(seed).integers(0, len(anchor.values), rows)]
    with tempfile.TemporaryDirectory() as scratch:
        grown = NeuronEditor.load(study.save(Path(scratch) / "study"))
        started = time.time()
        grown.add_batch("timing", anchor=big)
        return time.time() - started


# ------------------------------------------------------------------ run
def run(out_dir, *, quick=False, seeds=(0, 1, 2), log=print, command=COMMAND):
    """Run the study benchmark; return its :class:`~neuronedit_tf.bench.report.Section`
    (``rows``: table 1's rows, ``added``: table 2's).

    Args:
        out_dir: the benchmark folder (nothing but the section is written).
        quick: a tiny configuration for tests (one reference plate, one seed, a small
            network, 2 epochs, one plate added later; cytonormpy only if its environment
            already exists).
        seeds: the trained methods' seeds.
        log: progress messages.
        command: the command written into the section.
    """
    started = time.time()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    seeds = tuple(int(s) for s in seeds)
    anchors, samples = study_data()
    if quick:
        references, seeds, epochs, pairs = PLATES[:1], seeds[:1], 2, [(PLATES[0], PLATES[2])]
    else:
        references, epochs, pairs = PLATES, 200, None
    rows, studies = correction_rows(anchors, samples, references, seeds, epochs, quick, log)
    python = cytonormpy_python(build=not quick, log=log)
    cytonorm_note = ""
    if python is None:
        cytonorm_note = ("cytonormpy was not run (no environment with it; set "
                         "`NEURONEDIT_CYTONORMPY_PYTHON` or let the full bench build one).")
    else:
        try:
            rows += cytonormpy_rows(python, references, log)
        except (OSError, RuntimeError) as error:
            cytonorm_note = f"cytonormpy failed here: {error}"
            log(cytonorm_note)
    table = correction_table(rows, references)
    paired = paired_differences(rows)
    floor = {r: metrics.emd_noise_floor(scale(samples[r])) for r in references}
    added = added_rows(anchors, samples, studies, seeds, epochs, quick, pairs, log)
    timing = add_timing(studies[references[0], seeds[0]], anchors[PLATES[1]],
                        rows=10**4 if quick else ADD_ROWS)
    section = Section("study", "Studies: many plates, one model (issue #18)",
                      _markdown(table, references, floor, added, timing, seeds, epochs, quick,
                                cytonorm_note, paired),
                      seconds=time.time() - started, command=command + (" --quick" if quick
                                                                        else ""))
    section.rows, section.added, section.add_seconds = rows, added, timing
    return section


def paired_differences(rows, method="study editor (default)"):
    """``{other method: (mean, sd, wins, n)}``: ``method``'s EMD minus the other's on the same
    (reference, plate) and seed (a deterministic row's one value, seed 0, for every seed), and
    how often ``method`` is the lower."""
    mine = {(r["reference"], r["plate"], r["seed"]): r["emd"] for r in rows
            if r["method"] == method}
    result = {}
    for other in dict.fromkeys(r["method"] for r in rows):
        if other == method:
            continue
        theirs = {(r["reference"], r["plate"], r["seed"]): r["emd"] for r in rows
                  if r["method"] == other}
        gaps = [value - theirs.get(key, theirs.get((*key[:2], 0))) for key, value in mine.items()
                if key in theirs or (*key[:2], 0) in theirs]
        if gaps:
            gaps = np.asarray(gaps)
            result[other] = (float(gaps.mean()), float(gaps.std(ddof=1)) if len(gaps) > 1
                             else 0.0, int((gaps < 0).sum()), len(gaps))
    return result


def _markdown(table, references, floor, added, timing, seeds, epochs, quick, cytonorm_note,
              paired=None):
    columns = ["method", "EMD to truth ↓", *[f"into {r}" for r in references], "seeds",
               "s / fit"]
    by = {e["method"]: e["_emd"] for e in table}
    study, pair = by.get("study editor (default)"), by.get("pairwise NeuronEditor per plate (default)")
    quantile = by.get("quantile map per plate")
    goal = ("met" if study is not None and pair is not None and quantile is not None
            and study <= min(pair, quantile) else "NOT met")
    lines = [
        "### Data",
        "",
        "The cytonormpy 1.0.2 example files as the study they are: plates 021, 028, 034 "
        "(cytonormpy's batches 1, 2, 3) x donors 1 and 2, 1,000 cells x 37 markers each. "
        "Donor 1 is the anchor on every plate, donor 2 the sample. Each plate in turn is the "
        "reference; donor 2 on each other plate is corrected into it and scored by the mean "
        "per-marker EMD (arcsinh(x/5)) to donor 2's real file on the reference plate "
        "(a distribution-level truth). The study editors train one autoencoder on all six "
        "files; the pairwise editor one per (plate, reference) on the plate's and the "
        "reference's anchors and the plate's sample; cytonormpy 1.0.2 is trained as a study "
        "on its own metadata table (no clustering, arcsinh cofactor 5, goal = the reference "
        "batch) in its own environment; the quantile map is per plate, anchor to anchor, on "
        "the arcsinh scale. "
        f"Seeds {list(seeds)} (trained methods; the others are deterministic); "
        f"{epochs} epochs at most, early stopping on a 10% split"
        + (" (quick: a tiny network)." if quick else "."),
        "",
        "### One study model against one model per plate",
        "",
        markdown_table([{k: v for k, v in e.items() if not k.startswith("_")} for e in table],
                       columns),
        "",
        "Noise floor (the truth split in halves): " + ", ".join(
            f"{r} {v:.3f}" for r, v in floor.items()) + ".",
    ]
    if cytonorm_note:
        lines += ["", cytonorm_note]
    if paired:
        lines += ["", "The study editor (default) against each row on the same reference, plate "
                      "(and seed, for the seeded rows): its EMD minus the row's, mean ± sd, and "
                      "how often it is the lower:", ""]
        lines += [f"- {other}: {mean:+.4f} ± {sd:.4f} (lower in {wins} of {n})"
                  for other, (mean, sd, wins, n) in paired.items()]
    if study is not None and pair is not None and quantile is not None:
        lines += ["", f"Goal (the study's mean EMD no worse than the pairwise NeuronEditor's "
                      f"and the per-plate quantile map's): {study:.4f} vs {pair:.4f} and "
                      f"{quantile:.4f}: **{goal}**."]
    if added:
        columns2 = ["reference", "added plate", "seed", "EMD added later", "EMD from the start",
                    "abs. difference", "fit s (2 plates)", "add_batch s", "others unchanged"]
        worst = max(r["abs. difference"] for r in added)
        summary = {"reference": "mean", "added plate": "", "seed": "",
                   **{c: float(np.mean([r[c] for r in added])) for c in columns2[3:8]},
                   "others unchanged": all(r["others unchanged"] for r in added)}
        shown = [dict(r, **{c: f"{r[c]:.2f}" for c in columns2[6:8]}) for r in added]
        summary.update({c: f"{summary[c]:.2f}" for c in columns2[6:8]})
        lines += [
            "", "### A plate added later with `add_batch`", "",
            "The study is fitted on two plates (reference R and one other; anchors and "
            "samples), then the third plate H is added from its anchor alone with "
            "`add_batch` (the autoencoder frozen; its cells never seen in training). "
            "Donor 2 on H, corrected into R, is compared with the study that saw all three "
            "plates from the start (the first table's default study, same seed). "
            "'others unchanged': the other plate's output is bit for bit what it was before "
            "the addition.", "",
            markdown_table(shown + [summary], columns2), "",
            f"Largest abs. difference {worst:.3f} (goal: within 0.005: "
            f"**{'met' if worst <= 0.005 else 'NOT met'}**). add_batch with "
            f"{10**4 if quick else ADD_ROWS:,} anchor cells (the real anchor resampled): "
            f"{timing:.2f} s (goal: under 5 s on 2 cores; the machine was shared). No peer "
            "can correct a plate it was not trained on (cytonormpy's splines are keyed by "
            "batch).",
        ]
    return "\n".join(lines)
