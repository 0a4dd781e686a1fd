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
