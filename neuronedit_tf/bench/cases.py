"""Benchmark cases for batch correction from a known pair: data only, no methods.

A case is a spike-in problem: a source set S and a target set T show a shift
(the same kind of cells measured before and after it), X is other cells measured
like S, and ``truth`` is X measured like T. A method sees S, T and X, never
``truth``; it is scored by how close its edited X is to ``truth``.

Three families, all on real cells:

* :func:`cytof_cases` -- the real CyTOF batch effect (12 cases).
* :func:`spillover_cases` -- a simulated instrument change on real flow
  cytometry events (2 cases): a shift that mixes channels, with per-cell truth.
* :func:`processing_cases` -- a real processing change on real flow cytometry
  events (3 cases): raw events -> the same events compensated with the file's
  own spillover matrix, on a logicle scale; it mixes channels strongly, and is
  learned on one cell population and applied to three others, with per-cell truth.

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
#: The comparison scales a :class:`Case` may have.
CASE_TRANSFORMS = ("arcsinh", "none")


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
        cofactor: the arcsinh cofactor of the comparison scale (and the editor's transform);
            ``None`` when ``transform="none"``.
        paired: whether ``truth[i]`` is the same cell as ``sample[i]`` (per-cell truth).
        description: how the case was made, in one paragraph.
        transform: the comparison scale, and the transform every method is given
            (:attr:`settings`): ``"arcsinh"`` (``arcsinh(x / cofactor)``) or ``"none"``
            (the values are already on their comparison scale, e.g. logicle display values).
        events: for cases drawn from one file, the file's row of each event of
            ``"source"``, ``"target"`` and ``"sample"`` (``truth`` is the sample's events);
            ``None`` otherwise.

    Example:
        >>> from neuronedit_tf.data.fcs import FCSData
        >>> frame = FCSData(np.array([[0.0], [150.0]], np.float32), ["FL1-A"], ["CD3"])
        >>> case = Case("toy", frame, frame, frame, frame, 150.0, True, "a toy case")
        >>> case.settings, case.scale(frame).round(3).ravel().tolist()
        ({'transform': 'arcsinh', 'cofactor': 150.0}, [0.0, 0.881])
        >>> scaled = Case("toy", frame, frame, frame, frame, None, True, "scaled", transform="none")
        >>> scaled.settings, scaled.scale(frame).ravel().tolist()
        ({'transform': 'none'}, [0.0, 150.0])
    """

    name: str
    source: FCSData
    target: FCSData
    sample: FCSData
    truth: FCSData
    cofactor: float | None
    paired: bool
    description: str
    transform: str = "arcsinh"
    events: dict | None = None

    def __post_init__(self):
        if self.transform not in CASE_TRANSFORMS:
            raise NeuronEditError(
                f"Case transform must be one of {CASE_TRANSFORMS}; got {self.transform!r}.")
        if self.transform == "arcsinh" and not (self.cofactor or 0) > 0:
            raise NeuronEditError(
                f"An arcsinh case needs a positive cofactor; got {self.cofactor!r}.")

    @property
    def extra(self):
        """X under the name ``fit(..., extra=X)`` and :func:`~neuronedit_tf.bench.report.run_methods` use."""
        return self.sample

    @property
    def settings(self):
        """The scale settings every method is given, as keyword arguments of
        ``NeuronEditor(...)`` and ``registry.get(name, ...)``: ``{"transform", "cofactor"}``
        for an arcsinh case, ``{"transform": "none"}`` for values already on their scale."""
        if self.transform == "arcsinh":
            return {"transform": "arcsinh", "cofactor": self.cofactor}
        return {"transform": "none"}

    def scale(self, values):
        """The values on the comparison scale every score is computed on, float64:
        ``arcsinh(values / cofactor)``, or the values themselves (``transform="none"``)."""
        values = values.values if isinstance(values, FCSData) else values
        values = np.asarray(values, np.float64)
        if self.transform == "none":
            return values
        return np.arcsinh(values / self.cofactor)


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


def spillover_cases(n_cells=1000, seed=0, factor=SPILL_FACTOR):
    """Two cross-channel cases on the real FACSDiva file: an instrument change.

    Data: the 83,411 x 12 BD FACSDiva file shipped in fcsparser 0.2.8
    (:func:`~neuronedit_tf.data.datasets.facs_diva_bytes`; human marrow,
    B-lineage panel), its 8 fluorescence channels in the order of its ``$SPILL``
    keyword (FITC CD20, PE CD10, PerCP CD45, PE-Cy7 CD34, PacificBlue Syto 41,
    APC CD19, Alexa700 CD38, APC-Cy7), raw (uncompensated, as recorded) values.
    These are instrument A's events.

    Instrument B: the same cells through :func:`instrument_change` (spillover
    off-diagonals x ``factor``, by default ``SPILL_FACTOR`` = 1.5, then detector gains
    ``SPILL_GAINS``). Another ``factor`` is another strength of the same change: the same
    events are drawn (S and X do not depend on it), T and truth change, and the cases are
    named ``spillover_x{factor}_...`` (e.g. ``spillover_x2_Bcells_to_other``).

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
        factor: off-diagonal scale of instrument B's spillover (default :data:`SPILL_FACTOR`:
            the cases as benchmarked; other values make a variant, e.g. a confirmation case).

    Yields:
        two :class:`Case`\\ s (cofactor 150).

    Example:
        >>> [case.name for case in spillover_cases(n_cells=200, factor=2.0)]
        ['spillover_x2_Bcells_to_other', 'spillover_x2_other_to_Bcells']
    """
    try:
        valid = bool(np.isfinite(float(factor)) and float(factor) > 0)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise NeuronEditError(
            f"spillover_cases factor scales the spillover off-diagonals and must be a positive "
            f"number; got {factor!r} (the benchmarked cases use {SPILL_FACTOR}).")
    prefix = "spillover_" if factor == SPILL_FACTOR else f"spillover_x{factor:g}_"
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
            name=f"{prefix}{learn}_to_{apply}",
            source=frame(raw[source_rows]),
            target=frame(instrument_change(raw[target_rows], spill_a, factor)),
            sample=frame(raw[sample_rows]),
            truth=frame(instrument_change(raw[sample_rows], spill_a, factor)),
            cofactor=FLOW_COFACTOR, paired=True,
            description=(
                f"Instrument change (spillover off-diagonals x{factor}, gains "
                f"{SPILL_GAINS}) on the real FACSDiva events; learned on {learn} "
                f"(CD19 gate {CD19_GATE}), applied to {apply}; per-cell truth."
            ),
        )


# ---------------------------------------------------------------- processing
#: Gates of the processing family's populations, applied in this order, each to the cells no
#: earlier gate took: CD19 (APC-A) on the logicle scale of the compensated events (the valley
#: between CD19-dim and CD19-bright cells), raw SSC-A (granulocytes: high side scatter, most at
#: the detector's top), CD45 (PerCP-A) on the logicle scale of the compensated events.
PROCESSING_GATES = {"CD19": 0.52, "SSC-A": 1e5, "CD45": 0.52}
#: The populations, in gating order: every event of the file is in exactly one.
PROCESSING_POPULATIONS = ("Bcells", "granulocytes", "CD45bright", "CD45dim")
#: (learn population, apply population) of each processing case: learned on the CD45-dim cells,
#: applied to each of the three others. The CD45-dim cells' signals are weak, so compensation
#: changes them least (per-cell RMSE 0.05 on the logicle scale, the others 0.10-0.19): as an
#: apply population, the score relative to no correction would be ill-conditioned (a method
#: that moves those cells at all scores several times no correction), so they are the learn
#: population and every apply population carries a substantial change.
PROCESSING_PAIRS = (("CD45dim", "Bcells"), ("CD45dim", "granulocytes"),
                    ("CD45dim", "CD45bright"))


def logicle_scale(values):
    """Events -> the logicle display scale (float32; flowutils' default parameters
    t=262144, w=0.5, m=4.5, a=0, as :class:`~neuronedit_tf.layers.Logicle`).

    Example:
        >>> logicle_scale(np.array([[0.0, 262144.0]])).astype(float).round(4).tolist()
        [[0.1111, 1.0]]
    """
    from neuronedit_tf import models

    return models.transform_values(np.asarray(values, np.float32), "logicle")


def processing_change(raw, spill):
    """Raw (uncompensated) events -> the same events as processed for display: compensated
    with the spillover matrix ``spill`` (``raw @ inv(spill)``, float64) and put on the
    logicle scale (:func:`logicle_scale`). Every detector's compensated value depends on the
    other detectors' signals, so the change mixes channels.

    Args:
        raw: ``(n, k)`` raw events of the k spillover channels.
        spill: ``(k, k)`` spillover matrix (FCS convention, see :func:`spillover_matrix`).

    Returns:
        ``(n, k)`` float32.

    Example:
        >>> spill = np.array([[1.0, 0.5], [0.0, 1.0]])
        >>> processing_change(np.array([[1000.0, 500.0]]), spill).astype(float).round(4).tolist()
        [[0.4543, 0.1111]]
    """
    compensated = np.asarray(raw, np.float64) @ np.linalg.inv(np.asarray(spill, np.float64))
    return logicle_scale(compensated)


def processing_events():
    """The processing family's events: ``(data, raw, spill, populations)``.

    ``data``: the FACSDiva file's 8 spillover channels (:class:`FCSData`); ``raw``: its
    events as recorded, ``(83411, 8)`` float64; ``spill``: the file's ``$SPILL`` matrix;
    ``populations``: ``{name: sorted event rows}`` for :data:`PROCESSING_POPULATIONS`,
    gated in order by :data:`PROCESSING_GATES` (so disjoint, and together every event):

    * ``Bcells``: compensated CD19 above 0.52 (logicle);
    * ``granulocytes``: the other events with raw SSC-A above 1e5;
    * ``CD45bright``: the remaining events with compensated CD45 above 0.52 (logicle;
      lymphocytes and monocytes);
    * ``CD45dim``: the rest (CD45 dim or negative: nucleated red cells, debris).
    """
    data = read_fcs(facs_diva_bytes())
    channels, spill = spillover_matrix(data)
    raw = data.select(channels).values.astype(np.float64)
    shown = processing_change(raw, spill)
    ssc = data.values[:, data.channels.index("SSC-A")]
    cd19 = shown[:, channels.index("APC-A")] > PROCESSING_GATES["CD19"]
    granulocytes = ~cd19 & (ssc > PROCESSING_GATES["SSC-A"])
    rest = ~cd19 & ~granulocytes
    cd45 = shown[:, channels.index("PerCP-A")] > PROCESSING_GATES["CD45"]
    masks = {"Bcells": cd19, "granulocytes": granulocytes,
             "CD45bright": rest & cd45, "CD45dim": rest & ~cd45}
    populations = {name: np.flatnonzero(masks[name]) for name in PROCESSING_POPULATIONS}
    return data.select(channels), raw, spill, populations


def processing_cases(n_cells=1000, seed=0, pairs=PROCESSING_PAIRS):
    """Three cross-channel cases on the real FACSDiva file: a real processing change.

    Data: the 83,411 x 12 BD FACSDiva file shipped in fcsparser 0.2.8 (human marrow,
    B-lineage panel), its 8 fluorescence channels in the order of its ``$SPILL`` keyword
    (FITC CD20, PE CD10, PerCP CD45, PE-Cy7 CD34, PacificBlue Syto 41, APC CD19,
    Alexa700 CD38, APC-Cy7).

    The change (:func:`processing_change`): an event as recorded (raw, uncompensated)
    -> the same event compensated with the file's own spillover matrix. Both sides are
    on the same logicle display scale (:func:`logicle_scale`), so the whole change is
    the compensation: S and X are ``logicle(raw)``, T and truth are
    ``logicle(raw @ inv(spill))``. The values are given on that scale
    (``transform="none"``: every method works on them as they are, and every score is
    computed on them). The largest spillovers are APC -> Alexa700 (0.78),
    APC-Cy7 -> Alexa700 (0.40), PE -> PerCP (0.20) and FITC -> PE (0.18).

    Populations (:func:`processing_events`): B cells, granulocytes, CD45-bright and
    CD45-dim cells, gated on compensated markers; by default (:data:`PROCESSING_PAIRS`)
    learned on the CD45-dim cells and applied to each of the three others, so the
    change must transfer from cells with weak signals (little spillover to undo) to
    cells whose bright markers spill into other detectors. For each (learn P, apply Q) of
    ``pairs``, ``3 * n_cells`` distinct events are drawn without replacement (seeded):
    S = n_cells events of P, raw; T = another n_cells of P, processed (different cells,
    as with real spike-ins); X = n_cells events of Q, raw; truth = those same X events,
    processed (``paired=True``: per-cell truth). The event rows are in ``case.events``.

    Args:
        n_cells: events per set.
        seed: seeds the draw of events.
        pairs: ``(learn, apply)`` population names (default :data:`PROCESSING_PAIRS`:
            learned on CD45-dim cells, applied to each other population).

    Yields:
        :class:`Case`\\ s named ``processing_{learn}_to_{apply}`` (transform ``"none"``).

    Example:
        >>> case = next(processing_cases(n_cells=200))                # doctest: +SKIP
        >>> case.name, case.source.values.shape, case.settings        # doctest: +SKIP
        ('processing_CD45dim_to_Bcells', (200, 8), {'transform': 'none'})
    """
    data, raw, spill, populations = processing_events()
    text = {"com": "neuronedit processing benchmark case"}

    def frame(values):
        return FCSData(np.asarray(values, np.float32), list(data.channels), list(data.markers),
                       dict(text))

    rng = np.random.default_rng(seed)
    for learn, apply in pairs:
        unknown = {learn, apply} - set(populations)
        if unknown or learn == apply:
            raise NeuronEditError(
                f"processing_cases pairs two different populations of "
                f"{list(PROCESSING_POPULATIONS)}; got ({learn!r}, {apply!r}).")
        if len(populations[learn]) < 2 * n_cells or len(populations[apply]) < n_cells:
            raise NeuronEditError(
                f"Too few events for n_cells={n_cells} ({learn}: {len(populations[learn])}, "
                f"{apply}: {len(populations[apply])}); use fewer.")
        pool = rng.permutation(populations[learn])
        source_rows, target_rows = pool[:n_cells], pool[n_cells : 2 * n_cells]
        sample_rows = rng.choice(populations[apply], n_cells, replace=False)
        yield Case(
            name=f"processing_{learn}_to_{apply}",
            source=frame(logicle_scale(raw[source_rows])),
            target=frame(processing_change(raw[target_rows], spill)),
            sample=frame(logicle_scale(raw[sample_rows])),
            truth=frame(processing_change(raw[sample_rows], spill)),
            cofactor=None, paired=True, transform="none",
            events={"source": source_rows, "target": target_rows, "sample": sample_rows},
            description=(
                f"Processing change on the real FACSDiva events: raw -> compensated with the "
                f"file's own spillover matrix, both on the logicle scale; learned on {learn}, "
                f"applied to {apply}; per-cell truth."
            ),
        )


def all_cases(n_cells=1000, seed=0):
    """The 12 CyTOF cases, then the 2 spillover cases, then the 3 processing cases."""
    yield from cytof_cases()
    yield from spillover_cases(n_cells=n_cells, seed=seed)
    yield from processing_cases(n_cells=n_cells, seed=seed)
