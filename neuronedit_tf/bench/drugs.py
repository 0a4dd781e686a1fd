"""Table 3 analogue: predicting a drug combination from single-drug data, on real cells.

Basal cells are the real 83,411-event human marrow B-lineage panel that ships in
the ``fcsparser`` 0.2.8 wheel (``FACS_Diva/facs_diva_test.fcs``); we use its 8
fluorescence channels (CD20, CD10, CD45, CD34, Syto 41, CD19, CD38, APC-Cy7-A)
on the flow-cytometry scale ``z = arcsinh(x / 150)``. Two drug effects act on
that scale and depend on each cell's state (so no constant shift can model them):

- drug A: CD20 falls in proportion to the cell's CD19 (``z_CD20 -= 0.35 z_CD19``),
  and CD38 rises by 1.0 in CD34+ progenitors (``z_CD34 > 4``), a subpopulation shift;
- drug B: CD10 rises by ``0.6 * sigmoid(2 (z_CD45 - 4.5))`` (mostly in CD45-bright
  cells), and CD19's spread around its median grows by 30%.

The basal cells are split at random (seeded) into three disjoint parts:
source = part 1 (basal), target = drug A(part 2), X = drug B(part 3), and the
truth = drug A(drug B(part 3)): the combination, known exactly for every cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuronedit_tf.data.datasets import facs_diva_bytes
from neuronedit_tf.data.fcs import read_fcs

COFACTOR = 150.0
CHANNELS = ("FITC-A", "PE-A", "PerCP-A", "PE-Cy7-A", "PacificBlue-A", "APC-A", "Alexa700-A",
            "APC-Cy7-A")
CD20, CD10, CD45, CD34, CD19, CD38 = 0, 1, 2, 3, 5, 6


@dataclass
class DrugCase:
    """Raw-unit arrays ``(cells, 8)``; ``names`` are the marker names."""

    source: np.ndarray
    target: np.ndarray
    extra: np.ndarray
    truth: np.ndarray
    names: list


def to_scale(raw):
    return np.arcsinh(np.asarray(raw, np.float64) / COFACTOR)


def from_scale(z):
    return (COFACTOR * np.sinh(z)).astype(np.float32)


def drug_a(z):
    """Drug A on the arcsinh scale (see the module docstring)."""
    z = np.array(z, np.float64, copy=True)
    z[:, CD20] -= 0.35 * z[:, CD19]
    z[:, CD38] += np.where(z[:, CD34] > 4.0, 1.0, 0.0)
    return z


def drug_b(z):
    """Drug B on the arcsinh scale (see the module docstring)."""
    z = np.array(z, np.float64, copy=True)
    z[:, CD10] += 0.6 / (1.0 + np.exp(-2.0 * (z[:, CD45] - 4.5)))
    median = np.median(z[:, CD19])
    z[:, CD19] = median + 1.3 * (z[:, CD19] - median)
    return z


def drug_case(n_per_part=10_000, seed=0) -> DrugCase:
    """Build the case from the real cells (``n_per_part`` cells in each of the three parts)."""
    data = read_fcs(facs_diva_bytes()).select(list(CHANNELS))
    if 3 * n_per_part > len(data.values):
        raise ValueError(f"n_per_part is at most {len(data.values) // 3} for this file.")
    order = np.random.default_rng(seed).permutation(len(data.values))
    parts = [data.values[order[i * n_per_part:(i + 1) * n_per_part]] for i in range(3)]
    z1, z2, z3 = (to_scale(p) for p in parts)
    names = [m or c for m, c in zip(data.markers, data.channels)]
    return DrugCase(
        source=from_scale(z1), target=from_scale(drug_a(z2)), extra=from_scale(drug_b(z3)),
        truth=from_scale(drug_a(drug_b(z3))), names=names,
    )


def as_case(n_per_part=1_000, seed=0):
    """The drug case as a benchmark :class:`~neuronedit_tf.bench.cases.Case` named
    ``"drugs_A_on_B"`` (family ``drugs``; S = basal, T = drug A, X = drug B, per-cell truth =
    both), e.g. for :func:`neuronedit_tf.bench.batch.select_method`, whose cross-validation
    reads only its S and T.

    Example:
        >>> case = as_case(n_per_part=200)
        >>> case.name, case.source.values.shape, case.paired
        ('drugs_A_on_B', (200, 8), True)
    """
    from neuronedit_tf.bench.cases import Case
    from neuronedit_tf.data.fcs import FCSData

    drugs = drug_case(n_per_part, seed)

    def frame(values):
        return FCSData(np.asarray(values, np.float32), list(CHANNELS), list(drugs.names))

    return Case(name="drugs_A_on_B", source=frame(drugs.source), target=frame(drugs.target),
                sample=frame(drugs.extra), truth=frame(drugs.truth), cofactor=COFACTOR,
                paired=True,
                description=(f"Drug A learned on basal cells, applied to drug-B cells; "
                             f"{n_per_part} real FACSDiva cells per part (seed {seed}); "
                             "per-cell truth = drug A after drug B."))


def score(case: DrugCase, predicted):
    """The paper's Table 3 metrics plus distribution distances, on the arcsinh scale."""
    from neuronedit_tf import metrics

    truth, predicted = to_scale(case.truth), to_scale(predicted)
    r_mean, r_var = metrics.moment_r(predicted, truth)
    return {
        "r_mean": r_mean,
        "r_var": r_var,
        "energy": metrics.energy_distance(predicted, truth),
        "mmd": metrics.rbf_mmd(predicted, truth),
        "rmse_per_cell": metrics.rmse(predicted, truth),
    }


def linear_additive(case: DrugCase):
    """The additive baseline on the arcsinh scale: X + mean(T) - mean(S)."""
    shift = to_scale(case.target).mean(0) - to_scale(case.source).mean(0)
    return from_scale(to_scale(case.extra) + shift)


#: The paper's Table 3 (r of means / r of variances) for reference.
PAPER_TABLE_3 = {
    "neuron editing": (0.997, 0.972), "GAN": (0.870, 0.581), "CycleGAN": (0.927, 0.854),
    "ResnetGAN": (0.945, 0.930), "RegAE": (0.920, 0.961), "constant shift": (0.967, 0.969),
}
METRICS = ("r_mean", "r_var", "energy", "mmd", "rmse_per_cell")
BETTER = {"r_mean": "higher", "r_var": "higher", "energy": "lower", "mmd": "lower",
          "rmse_per_cell": "lower"}


def run(out_dir, *, quick=False, seeds=(0, 1, 2), n_per_part=5_000, epochs=200,
        network_epochs=50, log=print, command="neuronedit bench drugs"):
    """The Table 3 analogue: every method on the drug case; returns a report ``Section``.

    Args:
        out_dir: folder for the figure.
        quick: a tiny configuration (500 cells per part, 3 epochs, four methods)
            that proves the harness works in seconds (the test suite's).
        seeds: seeds of the trained methods (deterministic ones run once).
        n_per_part: cells in each of source, target and X (the case's seed is 0).
        epochs: the most epochs of neuron editing (early stopping ends sooner).
        network_epochs: epochs of the trained comparison methods (GANs, RegAE, ...).
        log: progress messages.
        command: the command written into the section.
    """
    import time

    from neuronedit_tf.bench import report
    from neuronedit_tf.methods import DEFAULT_METHOD, METHODS

    started = time.time()
    if quick:
        n_per_part, epochs, network_epochs, seeds = 500, 3, 3, tuple(seeds)[:1]
    case = drug_case(n_per_part=n_per_part, seed=0)
    common = {"transform": "arcsinh", "cofactor": COFACTOR}
    methods = {
        f"neuron editing (default: {DEFAULT_METHOD})": report.editor_factory(seeds, **common),
        **{f"neuron editing ({m})": report.editor_factory(seeds, method=m, **common)
           for m in METHODS if m != DEFAULT_METHOD},
        "linear additive": report.direct(lambda case, seed: linear_additive(case)),
    }
    names = ("none", "train_mean") if quick else None
    methods.update(report.comparison_methods(
        names, seeds=seeds, network={"epochs": network_epochs}, one_seed=report.EXPENSIVE_METHODS, **common))
    fit = {name: {"epochs": epochs, "verbose": 0} for name in methods if name.startswith("neuron")}

    rows, predictions = [], {}
    for name, factory in methods.items():
        log(f"drugs: {name} ...")
        rows += report.run_methods(case, {name: factory}, fit, lambda p: score(case, p), seeds,
                                   predictions)
    summary = report.summarise(rows, METRICS)
    figure = "drugs_moments.png"
    _moment_figure(Path(out_dir) / figure, case, predictions)
    paper = "\n".join(f"| {name} | {m:.3f} | {v:.3f} |" for name, (m, v) in PAPER_TABLE_3.items())
    markdown = f"""
Real cells as basal: the {len(case.source):,} × 3 cells of the FACSDiva file in the
`fcsparser` 0.2.8 wheel (8 fluorescence channels, arcsinh(x / 150)), split at random
(seed 0) into source = basal, target = drug A, X = drug B; truth = drug A applied after
drug B, known for every cell. Drug A lowers CD20 in proportion to CD19 and raises CD38 in
CD34+ cells; drug B raises CD10 mostly in CD45-bright cells and widens CD19 (see
`neuronedit_tf/bench/drugs.py`). Seeds of the trained methods: {", ".join(map(str, seeds))}
(mean ± sd over seeds), except {", ".join(report.EXPENSIVE_METHODS)}: first seed only (time budget);
deterministic methods run once. Neuron editing trains up to
{epochs} epochs with early stopping; the trained comparison methods {network_epochs} epochs.
All comparison methods work on arcsinh(x / 150).

Metrics on arcsinh(x / 150), predicted vs truth: the paper's Pearson r of per-marker means
(`r_mean`) and variances (`r_var`) ↑; energy distance and RBF-MMD ↓; per-cell RMSE ↓
(the truth is per cell).

{report.markdown_table(summary, ["method", *METRICS, "fit+transform s"])}

Best by each metric (mean over seeds):

{report.leaders(rows, BETTER)}

![per-marker means and variances]({figure})

The paper's Table 3 (its own drug data, not ours), r of means / variances:

| method | r_mean | r_var |
|---|---|---|
{paper}
"""
    return report.Section(name="drugs", title="Drug combinations (Table 3 analogue)",
                          markdown=markdown, figures=[figure], seconds=time.time() - started,
                          command=command + (" --quick" if quick else ""))


def _moment_figure(path, case, predictions):
    """Predicted vs true per-marker means and variances for the first seed of a few methods."""
    from neuronedit_tf.methods import DEFAULT_METHOD

    from neuronedit_tf.data.atomic import atomic_path
    from neuronedit_tf.plotting import pyplot

    plt = pyplot()
    truth = to_scale(case.truth)
    shown = [m for m in ("none", "linear additive", f"neuron editing (default: {DEFAULT_METHOD})",
                         "neuron editing (paper)") if m in predictions]
    figure, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for name in shown:
        prediction = to_scale(predictions[name])
        axes[0].scatter(truth.mean(0), prediction.mean(0), label=name, s=18)
        axes[1].scatter(truth.var(0), prediction.var(0), label=name, s=18)
    for axis, title in zip(axes, ("per-marker mean", "per-marker variance")):
        low, high = axis.get_xlim()
        axis.plot([low, high], [low, high], color="grey", lw=0.8)
        axis.set_xlabel("truth (drug A after B)")
        axis.set_ylabel("predicted")
        axis.set_title(title)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    plt.close(figure)
