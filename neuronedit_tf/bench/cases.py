"""Benchmark cases for batch correction from a known pair: data only, no methods.

A case is a spike-in problem: a source set S and a target set T show a shift
(the same kind of cells measured before and after it), X is other cells measured
like S, and ``truth`` is X measured like T. A method sees S, T and X, never
``truth``; it is scored by how close its edited X is to ``truth``.

Two families, both on real cells:

* :func:`cytof_cases` -- the real CyTOF batch effect (12 cases).
* :func:`spillover_cases` -- a simulated instrument change on real flow
  cytometry events (2 cases): a shift that mixes channels, with per-cell truth.

Example:
    >>> from neuronedit_tf.bench.cases import cytof_cases   # doctest: +SKIP
    >>> case = next(iter(cytof_cases()))                      # doctest: +SKIP
    >>> case.name, case.source.values.shape                   # doctest: +SKIP
    ('cytof_021to028_spike1', (1000, 37))
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from neuronedit_tf.data.datasets import CYTOF_BATCHES, CYTOF_DONORS, facs_diva_bytes, load_cytof
from neuronedit_tf.data.fcs import FCSData, read_fcs
from neuronedit_tf.errors import NeuronEditError

#: CyTOF data are compared on arcsinh(x / 5).
CYTOF_COFACTOR = 5.0
#: Flow cytometry data are compared on arcsinh(x / 150).
FLOW_COFACTOR = 150.0


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    Attributes:
        name: a short identifier, e.g. ``"cytof_021to028_spike1"``.
        source: S, ``(n_S, d)`` events before the shift.
        target: T, ``(n_T, d)`` events of the same kind after the shift.
        sample: X, ``(n_X, d)`` other events measured like S (to be corrected).
        truth: X measured like T; ``(n_X, d)`` row-for-row when ``paired``, otherwise
            another file of the same cells' population (distribution-level truth).
        cofactor: the arcsinh cofactor of the comparison scale (and the editor's transform).
        paired: whether ``truth[i]`` is the same cell as ``sample[i]`` (per-cell truth).
        description: how the case was made, in one paragraph.
    """

    name: str
    source: FCSData
    target: FCSData
    sample: FCSData
    truth: FCSData
    cofactor: float
    paired: bool
    description: str

    @property
    def extra(self):
        """X under the name ``fit(..., extra=X)`` and :func:`~neuronedit_tf.bench.report.run_methods` use."""
        return self.sample

    def scale(self, values):
        """``arcsinh(values / cofactor)`` in float64: the scale every score is computed on."""
        values = values.values if isinstance(values, FCSData) else values
        return np.arcsinh(np.asarray(values, np.float64) / self.cofactor)


def cytof_cases(batches=CYTOF_BATCHES, donors=CYTOF_DONORS):
    """The 12 real CyTOF spike-in cases: every ordered batch pair x both donor roles.

    For batches A != B and spike-in donor d (the other donor is o):
    S = (A, d), T = (B, d), X = (A, o), truth = (B, o); 1000 cells x 37 marker
    channels each (the cytonormpy 1.0.2 example files, see
    :func:`~neuronedit_tf.data.datasets.load_cytof`). The truth is another
    measurement of donor o's cells, so it is compared as a distribution
    (``paired=False``); its own sampling noise is the floor of any score.

    Args:
        batches: the batches to pair (default 021, 028, 034: 6 ordered pairs).
        donors: the two donors (default 1, 2).

    Yields:
        :class:`Case`, named ``cytof_{A}to{B}_spike{d}``, in a fixed order.
    """
    if len(donors) != 2:
        raise NeuronEditError(f"cytof_cases needs exactly two donors; got {donors!r}.")
    files = {(b, d): load_cytof(b, d) for b in batches for d in donors}
    for a, b in itertools.permutations(batches, 2):
        for spike in donors:
            other = donors[1] if spike == donors[0] else donors[0]
            yield Case(
                name=f"cytof_{a}to{b}_spike{spike}",
                source=files[(a, spike)], target=files[(b, spike)],
                sample=files[(a, other)], truth=files[(b, other)],
                cofactor=CYTOF_COFACTOR, paired=False,
                description=(
                    f"Real CyTOF batch effect PTLG{a} -> PTLG{b}: spike-in donor {spike} "
                    f"measured in both batches; sample donor {other} in {a}; truth donor {other} "
                    f"in {b} (another measurement of the same donor's blood)."
                ),
            )


# ---------------------------------------------------------------- spillover
#: Off-diagonal spillover of instrument B = this factor x instrument A's.
SPILL_FACTOR = 1.5
#: Detector gains of instrument B relative to A, in the order of the file's $SPILL channels.
SPILL_GAINS = (1.3, 0.8, 1.2, 0.7, 1.0, 1.4, 0.9, 1.1)
#: CD19 (APC-A) gate on arcsinh(compensated / 150): B cells lie above, other cells below.
CD19_GATE = 1.75


def spillover_matrix(data: FCSData):
    """The ``$SPILL``/``SPILLOVER`` keyword of ``data`` as ``(channels, matrix)``.

    ``matrix[i, j]`` is the share of fluorochrome i's signal seen by detector j
    (FCS convention), so raw events are ``compensated @ matrix``.
    """
    text = {k.lower().lstrip("$"): v for k, v in data.text.items()}
    value = text.get("spill") or text.get("spillover")
    if not value:
        raise NeuronEditError("The file has no $SPILL/SPILLOVER keyword (no spillover matrix).")
    fields = [f.strip() for f in str(value).split(",")]
    n = int(fields[0])
    channels = fields[1 : 1 + n]
    matrix = np.array(fields[1 + n : 1 + n + n * n], np.float64).reshape(n, n)
    return channels, matrix


def instrument_change(raw, spill_a, factor=SPILL_FACTOR, gains=SPILL_GAINS):
    """Raw events of instrument A -> the same cells' raw events on instrument B.

    ``B = I + factor * (A - I)`` (every off-diagonal spillover scaled by
    ``factor``), then per-detector ``gains``:
    ``raw_B = raw_A @ inv(A) @ B * gains``. Exactly linear in raw space, and it
    mixes channels: detector j's change depends on every fluorochrome's signal.

    Args:
        raw: ``(n, k)`` raw (uncompensated) events of the k spillover channels.
        spill_a: ``(k, k)`` instrument A's spillover matrix.
        factor: off-diagonal scale of instrument B's spillover.
        gains: ``(k,)`` detector gains of B relative to A.

    Returns:
        ``(n, k)`` float64.
    """
    spill_a = np.asarray(spill_a, np.float64)
    spill_b = np.eye(len(spill_a)) + factor * (spill_a - np.eye(len(spill_a)))
    return np.asarray(raw, np.float64) @ np.linalg.solve(spill_a, spill_b) * np.asarray(gains)


def spillover_cases(n_cells=1000, seed=0):
    """Two cross-channel cases on the real FACSDiva file: an instrument change.

    Data: the 83,411 x 12 BD FACSDiva file shipped in fcsparser 0.2.8
    (:func:`~neuronedit_tf.data.datasets.facs_diva_bytes`; human marrow,
    B-lineage panel), its 8 fluorescence channels in the order of its ``$SPILL``
    keyword (FITC CD20, PE CD10, PerCP CD45, PE-Cy7 CD34, PacificBlue Syto 41,
    APC CD19, Alexa700 CD38, APC-Cy7), raw (uncompensated, as recorded) values.
    These are instrument A's events.

    Instrument B: the same cells through :func:`instrument_change` (spillover
    off-diagonals x ``SPILL_FACTOR`` = 1.5, then detector gains ``SPILL_GAINS``).

    Populations by CD19 on arcsinh(compensated / 150) (compensated = raw @ inv(A)):
    B cells (CD19 > ``CD19_GATE`` = 1.75) and the other cells (below). Case
    ``spillover_Bcells_to_other`` learns the change on B cells and applies it to
    the other cells; ``spillover_other_to_Bcells`` the reverse. For a case with
    learn population P and apply population Q, ``3 * n_cells`` distinct events are
    drawn without replacement (seeded): S = n_cells of P on A, T = another n_cells
    of P on B (different cells, as with real spike-ins), X = n_cells of Q on A,
    truth = those same X cells on B (``paired=True``: per-cell truth).

    Args:
        n_cells: events per set.
        seed: seeds the draw of events.

    Yields:
        two :class:`Case`\\ s (cofactor 150).
    """
    data = read_fcs(facs_diva_bytes())
    channels, spill_a = spillover_matrix(data)
    picked = data.select(channels)
    raw = picked.values.astype(np.float64)
    compensated = raw @ np.linalg.inv(spill_a)
    cd19 = np.arcsinh(compensated[:, channels.index("APC-A")] / FLOW_COFACTOR)
    populations = {"Bcells": np.flatnonzero(cd19 > CD19_GATE),
                   "other": np.flatnonzero(cd19 <= CD19_GATE)}
    text = {"com": "neuronedit spillover benchmark case"}

    def frame(values):
        return FCSData(np.asarray(values, np.float32), list(channels), list(picked.markers),
                       dict(text))

    rng = np.random.default_rng(seed)
    for learn, apply in (("Bcells", "other"), ("other", "Bcells")):
        pool = rng.permutation(populations[learn])
        if len(pool) < 2 * n_cells or len(populations[apply]) < n_cells:
            raise NeuronEditError(f"Too few events for n_cells={n_cells}; use fewer.")
        source_rows, target_rows = pool[:n_cells], pool[n_cells : 2 * n_cells]
        sample_rows = rng.choice(populations[apply], n_cells, replace=False)
        yield Case(
            name=f"spillover_{learn}_to_{apply}",
            source=frame(raw[source_rows]),
            target=frame(instrument_change(raw[target_rows], spill_a)),
            sample=frame(raw[sample_rows]),
            truth=frame(instrument_change(raw[sample_rows], spill_a)),
            cofactor=FLOW_COFACTOR, paired=True,
            description=(
                f"Instrument change (spillover off-diagonals x{SPILL_FACTOR}, gains "
                f"{SPILL_GAINS}) on the real FACSDiva events; learned on {learn} "
                f"(CD19 gate {CD19_GATE}), applied to {apply}; per-cell truth."
            ),
        )


def all_cases(n_cells=1000, seed=0):
    """The 12 CyTOF cases, then the 2 spillover cases."""
    yield from cytof_cases()
    yield from spillover_cases(n_cells=n_cells, seed=seed)
