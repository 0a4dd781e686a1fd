"""Studies: many batches (plates), one anchor sample each, one autoencoder, one graph.

:meth:`neuronedit_tf.NeuronEditor.fit_study` trains one autoencoder on every anchor (and
the samples, as ``fit`` trains on S, T and X) and gives each batch the edit from its
anchor to the reference: at the edited layer, the percentile maps from the anchor's codes
to the reference's, plus whatever the method needs (``"calibrated"``/``"gated"``: a
per-feature calibration per batch, from the batch's residual edit of its anchor to the
reference's anchor; ``"gated"``: one support gate for all, on a share of every anchor's
codes with its batch's edit applied, i.e. in the reference frame). The reference is a
batch (its own rows then pass unchanged) or ``"mean"``: every table's target is the mean
over the batches of their anchors' percentiles (per neuron and per feature; CytoNorm's
``goal="batch_mean"``, the 1-D Wasserstein barycentre).

The result is a :class:`Study`: ``transform(x, batch=...)``, ``add_batch`` (the autoencoder
frozen: the new batch's tables only; every other batch's output stays bit for bit the
same), ``save`` (``NeuronEditor.load`` gives it back) and ``export`` (one served graph that
takes the rows and each row's batch name). Its Keras graph, ``model_``, takes
``[features, batch]`` (``batch``: each row's batch index, int32) and holds every batch's
tables stacked along a leading batch axis (:class:`~neuronedit_tf.layers.StudyEdit`), so a
study of 100 batches costs per row what one batch does.
"""

from __future__ import annotations

import collections.abc
import json
import math
import numbers
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf import methods, streaming
from neuronedit_tf.data.atomic import atomic_folder
from neuronedit_tf.data.tables import names_of
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.estimator import is_collection, load
from neuronedit_tf.layers import (DEFAULT_GATE_REFERENCE, KeepBatches, NeuronEdit, StudyEdit,
                                  clean_knots, quantile_knots)
from neuronedit_tf.models import run
from neuronedit_tf.validation import check_output

#: ``reference="mean"``: every batch is corrected into the anchors' mean percentiles.
MEAN = "mean"
#: A saved editor's or study's files (``NeuronEditor.load`` reads both).
CONFIG_FILE = "neuronedit.json"
MODEL_FILE = "model.keras"
#: What ``neuronedit.json`` says a saved study is, and the study format it is written in.
KIND = "study"
FORMAT = 1
#: The latent edit's layer (as in a pair editor) and the reference batch's pass-through.
EDIT = "neuron_edit"
KEEP = "keep_reference"


# ------------------------------------------------------------------ the inputs
def batch_name(name, what="batch name"):
    """A batch's name as the study keeps it: a non-empty string (an integer such as a plate
    number becomes its decimal string: ``1`` and ``"1"`` are the same batch)."""
    if isinstance(name, numbers.Integral) and not isinstance(name, bool):
        return str(int(name))
    if not isinstance(name, str) or not name:
        raise NeuronEditError(f"A {what} must be a non-empty string (or an integer); "
                              f"got {name!r}.")
    return name


def study_inputs(anchors, reference, samples=None):
    """Check a study's batches and return ``(batches, reference, inputs)``.

    Args:
        anchors: ``{batch: anchor}`` or ``[(batch, anchor), ...]``.
        reference: a batch name or ``"mean"``.
        samples: ``{batch: data or [data, ...]}`` (optional).

    Returns:
        ``batches`` (names in order), ``reference`` (checked) and ``inputs``
        ``[(label, data), ...]``: every anchor (batch order), then every sample.

    Raises:
        NeuronEditError: no anchors, duplicate names, a reference that is not a batch, a
            sample whose batch has no anchor.

    Example:
        >>> batches, reference, inputs = study_inputs({"1": "a.fcs", 2: "b.fcs"}, 1)
        >>> batches, reference, [label for label, _ in inputs]
        (['1', '2'], '1', ["anchors['1']", "anchors['2']"])
    """
    if isinstance(anchors, collections.abc.Mapping):
        pairs = list(anchors.items())
    elif isinstance(anchors, (list, tuple)) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in anchors):
        pairs = list(anchors)
    else:
        raise NeuronEditError("anchors must be {batch: anchor sample}, e.g. {'1': plate1_control, "
                              f"'2': plate2_control}}; got {type(anchors).__name__}.")
    if not pairs:
        raise NeuronEditError("anchors is empty; give one anchor sample per batch.")
    batches = [batch_name(name) for name, _ in pairs]
    repeated = sorted({b for b in batches if batches.count(b) > 1})
    if repeated:
        raise NeuronEditError(
            f"Duplicate batch names {repeated}: each batch has one anchor (names are compared "
            "as strings, so 1 and '1' are the same batch). Rename or merge them.")
    if isinstance(reference, str) and reference == MEAN:
        if MEAN in batches:
            raise NeuronEditError(f"A batch is named {MEAN!r}, which is also the reference "
                                  f"keyword for the anchors' mean; rename that batch.")
    else:
        reference = batch_name(reference, "reference")
        if reference not in batches:
            raise NeuronEditError(
                f"reference={reference!r} is not a batch of this study; the batches are "
                f"{batches}. Give one of them, or {MEAN!r} for the anchors' mean.")
    inputs = [(f"anchors[{b!r}]", data) for b, (_, data) in zip(batches, pairs)]
    if samples is not None:
        if not isinstance(samples, collections.abc.Mapping):
            raise NeuronEditError("samples must be {batch: [sample, ...]}, e.g. {'1': [x1]}; "
                                  f"got {type(samples).__name__}.")
        named = [(batch_name(b), data) for b, data in samples.items()]
        orphans = sorted({b for b, _ in named if b not in batches})
        if orphans:
            raise NeuronEditError(
                f"samples of batch(es) {orphans} have no anchor: every batch needs its anchor "
                f"sample (the batches with anchors are {batches}). Add "
                f"anchors={{{orphans[0]!r}: ...}} or drop those samples.")
        for b, data in named:
            for i, x in enumerate(data if is_collection(data) else [data]):
                inputs.append((f"samples[{b!r}][{i}]", x))
    return batches, reference, inputs


def check_channels(inputs):
    """Refuse named inputs whose channels differ, listing what each one lacks (reordered
    names are fine), and unnamed ones of different widths.

    Example:
        >>> import pandas as pd
        >>> check_channels([("a", pd.DataFrame(columns=["CD3", "CD4"])),
        ...                 ("b", pd.DataFrame(columns=["CD4", "CD8"]))])
        Traceback (most recent call last):
        ...
        neuronedit_tf.errors.NeuronEditError: The study's anchors and samples differ in their channels: a lacks ['CD8']; b lacks ['CD3']. Every file needs the same channels (their order may differ); rename or drop channels so that they agree.
    """
    named = [(label, names_of(data)) for label, data in inputs]
    known = [(label, names) for label, names in named if names is not None]
    union = list(dict.fromkeys(c for _, names in known for c in names))
    lacking = [(label, [c for c in union if c not in names]) for label, names in known]
    lacking = [(label, missing) for label, missing in lacking if missing]
    if lacking:
        listed = "; ".join(f"{label} lacks {missing}" for label, missing in lacking)
        raise NeuronEditError(
            f"The study's anchors and samples differ in their channels: {listed}. Every file "
            "needs the same channels (their order may differ); rename or drop channels so "
            "that they agree.")
    widths = {label: getattr(data, "shape", (None, None))[-1] for label, data in inputs
              if names_of(data) is None and len(getattr(data, "shape", ())) == 2}
    if len(set(widths.values())) > 1:
        raise NeuronEditError(f"The study's unnamed anchors and samples differ in width: "
                              f"{widths}; give them the same columns.")


def rows_needed(quantiles, maps):
    """``(rows, why)``: the fewest cells an anchor may have: one per knot of its largest
    percentile map."""
    sizes = {f"the edit's {len(quantiles)} quantiles": len(quantiles)}
    sizes.update({f"the {part}'s {len(knots)} quantiles": len(knots)
                  for part, knots in maps.items()})
    why = max(sizes, key=sizes.get)
    return sizes[why], why


def correction_note(batch, reference, columns, where, method, transform):
    """What a corrected file records (FCS ``$COM``, h5ad ``uns["history"]``): its batch, the
    reference it was corrected into, the channels, and the model.

    Example:
        >>> correction_note("2", "1", ["CD3", "CD4"], "the study model study/", "gated",
        ...                 "arcsinh")  # doctest: +ELLIPSIS
        'neuronedit ...: corrected batch 2 into the reference batch 1 (CD3,CD4) with the study model study/ (method gated, transform arcsinh)'
    """
    from neuronedit_tf import __version__

    into = "the anchors' mean" if reference == MEAN else f"the reference batch {reference}"
    edited = ",".join(columns) if columns else "all features"
    return (f"neuronedit {__version__}: corrected batch {batch} into {into} ({edited}) with "
            f"{where} (method {method}, transform {transform})")


# ------------------------------------------------------------------ the study
class Study:
    """A fitted study: one autoencoder, every batch's edit into the reference frame.

    Made by :meth:`neuronedit_tf.NeuronEditor.fit_study` (or ``NeuronEditor.load`` of a
    saved study); see :mod:`neuronedit_tf.study`.

    Attributes:
        batches: the batch names, in index order (the graph's ``batch`` input).
        reference: the reference batch's name, or ``"mean"``.
        editor: the :class:`~neuronedit_tf.NeuronEditor` holding the settings (method,
            transform, channels, ...) and the fitted input names (``columns_``,
            ``passthrough_``) and ``history_``.
        model_: the Keras graph ``[features, batch index] -> edited``.
    """

    def __init__(self, editor, pieces, batches, reference, maps, shared, keep=None):
        self.editor = editor
        self.pieces = pieces
        self._batches = list(batches)
        self.reference = reference
        self._maps = dict(maps)  # {EDIT: StudyEdit, part: StudyEdit}
        self._shared = dict(shared)  # {part: layer}, e.g. the support gate
        self._keep = keep
        self.model_ = self._assemble()

    # -------------------------------------------------------------- fitting
    @classmethod
    def fit(cls, editor, pieces, anchors, reference, seed=0):
        """Adapt every batch's tables on the trained ``pieces`` (what ``fit_study`` does after
        training): ``anchors`` ``[(batch, Rows), ...]``."""
        method = methods.get(editor.method_)
        maps = method.study_maps()
        quantiles = editor.quantiles_
        batches = [b for b, _ in anchors]

        def standardised(i):
            # One anchor at a time in memory: it is read (a memory map chunk by chunk) and
            # standardised again in the second pass, which costs far less than the encoder
            # and decoder passes over it, and keeps memory flat in the number of batches.
            return anchors[i][1].standardised(pieces.pre)

        # Pass 1: each anchor's own percentiles (codes and standardised features).
        own = []
        for i, (batch, _) in enumerate(anchors):
            values = standardised(i)
            own.append(_own_knots(pieces, values, quantiles, maps, f"anchors[{batch!r}]"))
        if reference == MEAN:
            target = {part: clean_knots(np.mean(np.stack([o[part] for o in own]).astype(
                np.float64), axis=0).astype(np.float32)) for part in own[0]}
        else:
            target = own[batches.index(reference)]
        # Pass 2: each batch's tables, from its anchor to the reference.
        rows, pooled = [], []
        gated = type(method).study_shared is not methods.EditMethod.study_shared
        share = math.ceil(DEFAULT_GATE_REFERENCE / len(anchors))
        for i, (batch, _) in enumerate(anchors):
            values = standardised(i)
            tables, edit = _batch_tables(method, pieces, values, own[i][EDIT], target,
                                         editor, f"anchors[{batch!r}]")
            rows.append(tables)
            if gated:  # a share of this anchor's edited codes (the reference frame)
                pick = np.sort(np.random.default_rng(seed + i).permutation(len(values))[:share])
                pooled.append(run(edit, run(pieces.encoder, values[pick])))
        # One gate for every batch, on every anchor's edited codes: for a reference batch too
        # (docs/decisions/0005-study-gate.md: on its anchor alone the study was 0.0011 EMD
        # worse than on the pool, on 18 of 18 cases).
        shared = method.study_shared(pieces, np.concatenate(pooled), seed) if gated else {}
        layers = {part: StudyEdit.from_knots(
                      np.stack([r[part][0] for r in rows]), np.stack([r[part][1] for r in rows]),
                      quantiles if part == EDIT else maps[part], editor.extrapolation, name=part)
                  for part in rows[0]}
        keep = None if reference == MEAN else KeepBatches([b == reference for b in batches],
                                                          name=KEEP)
        return cls(editor, pieces, batches, reference, layers, shared, keep)

    # -------------------------------------------------------------- the graph
    @property
    def batches(self):
        """The batch names, in the order of their index in the graph."""
        return tuple(self._batches)

    @property
    def method_(self):
        return self.editor.method_

    @property
    def columns_(self):
        return self.editor.columns_

    @property
    def passthrough_(self):
        return self.editor.passthrough_

    @property
    def history_(self):
        return self.editor.history_

    @property
    def sample_shape(self):
        return tuple(self.pieces.pre.input.shape[1:])

    def _assemble(self, frozen=None, name="study"):
        """The graph ``[features, batch] -> edited``; ``frozen`` maps each ``StudyEdit`` to
        the layer used instead (the export's lookup tables)."""
        frozen = frozen or (lambda layer: layer)
        features = keras.Input(self.sample_shape, name="features")
        batch = keras.Input((), dtype="int32", name="batch")
        maps = {part: frozen(layer) for part, layer in self._maps.items()}
        parts = {part: (lambda x, layer=layer: layer([x, batch]))
                 for part, layer in maps.items() if part != EDIT}
        parts.update(self._shared)
        method = methods.get(self.method_)
        edited = method.study_graph(features, self.pieces, lambda x: maps[EDIT]([x, batch]),
                                    parts)
        if self._keep is not None:
            edited = self._keep([features, edited, batch])
        return keras.Model([features, batch], edited, name=name)

    def part(self, name):
        """A piece of the graph: ``"preprocessing"``, ``"encoder"``, ``"neuron_edit"`` (the
        stacked :class:`~neuronedit_tf.layers.StudyEdit`), ``"decoder"``, ...)."""
        return self.model_.get_layer(name)

    def index(self, batch, rows=None):
        """Batch names -> their indices: one name (``rows`` given: repeated for every row)
        or one name per row.

        Raises:
            NeuronEditError: a name the study does not know (the known ones are listed), or
                a per-row list of the wrong length.
        """
        known = {b: i for i, b in enumerate(self._batches)}
        if isinstance(batch, (str, numbers.Integral)) and not isinstance(batch, bool):
            name = batch_name(batch)
            if name not in known:
                raise NeuronEditError(
                    f"batch={name!r} is not a batch of this study; the known batches are "
                    f"{list(self._batches)}. Add it first: study.add_batch({name!r}, "
                    "anchor=...).")
            return known[name] if rows is None else np.full(rows, known[name], np.int32)
        names = [batch_name(b) for b in np.asarray(batch, object).ravel()]
        if rows is not None and len(names) != rows:
            raise NeuronEditError(f"batch has {len(names)} names for {rows} rows; give one "
                                  "name for all rows or one per row.")
        unknown = sorted({b for b in names if b not in known})
        if unknown:
            raise NeuronEditError(f"batch {unknown} {'is' if len(unknown) == 1 else 'are'} not "
                                  f"in this study; the known batches are {list(self._batches)}.")
        return np.array([known[b] for b in names], np.int32)

    def _run(self, values, index):
        """The graph on ``values`` with per-row ``index``, chunk by chunk, as float32."""
        out = np.empty(values.shape, np.float32)
        for i in range(0, len(values), streaming.CHUNK_ROWS):
            j = i + streaming.CHUNK_ROWS
            out[i:j] = np.asarray(self.model_([values[i:j], index[i:j]], training=False))
        return out

    def transform(self, data, batch, out=None):
        """Correct ``data`` of batch ``batch`` into the reference frame (raw in, raw out).

        Args:
            data: as :meth:`NeuronEditor.transform <neuronedit_tf.NeuronEditor.transform>`
                takes it: an array, DataFrame, FCSData, AnnData (its ``X``) or a file path;
                named features are matched by name and, with ``channels``, the others pass
                through. Memory maps and ``tf.data`` datasets are read in chunks (``out``).
            batch: the batch's name, or one name per row (in-memory data).
            out: optional array (e.g. a memory map) that receives the corrected rows.

        Returns:
            The same kind as given, rows in input order. The reference batch's rows come
            back unchanged.

        Raises:
            NeuronEditError: a batch the study does not know (the known ones are listed).
        """
        if streaming.is_stream(data):
            index = self.index(batch)
            if not isinstance(index, int):
                raise NeuronEditError("Streamed data takes one batch name (batch='1'); split "
                                      "it by batch, or read it into memory.")

            def graph(values, training=False):
                values = tf.convert_to_tensor(values, tf.float32)
                rows = tf.fill(tf.shape(values)[:1], tf.constant(index, tf.int32))
                return self.model_([values, rows], training=training)

            return self.editor._predict(data, "data", graph, out, self.sample_shape)
        data = load(data)
        table = self.editor._input_table(data, "data", self.sample_shape)
        index = self.index(batch, len(table))
        values = check_output(self._run(table.values, index), "The corrected data")
        if out is not None:
            return streaming.write_chunks([values], out)
        return self.editor._like(data, table, values)

    # -------------------------------------------------------------- add a batch
    def add_batch(self, name, anchor, overwrite=False):
        """Add batch ``name`` from its ``anchor`` (anything ``transform`` takes), the
        autoencoder, the reference and every other batch's tables unchanged (so their
        outputs stay bit for bit the same). Returns self.

        The new batch's tables are its anchor's percentiles (codes; for the residual
        methods also its calibration) against the reference's stored ones: seconds, not a
        training. The support gate of ``"gated"`` is shared and stays as fitted, so the new
        anchor's codes are not among its reference codes (a batch fitted from the start is);
        ``neuronedit bench study`` measures what that costs (at most 0.003 EMD on its plates).

        Raises:
            NeuronEditError: ``name`` exists (unless ``overwrite``; the reference batch is
                never replaced), or the anchor is unusable (wrong channels, too few cells).
        """
        name = batch_name(name)
        if name in self._batches and not overwrite:
            raise NeuronEditError(f"Batch {name!r} exists in this study; pass overwrite=True to "
                                  "replace its anchor, or choose another name.")
        if name == self.reference:
            raise NeuronEditError(f"Batch {name!r} is the reference: every batch's target was "
                                  "fitted on its anchor. Fit the study again to change it.")
        label = f"anchor of batch {name!r}"
        table = self.editor._input_table(load(anchor), label, self.sample_shape)
        maps = {part: tuple(layer.quantiles) for part, layer in self._maps.items()
                if part != EDIT}
        minimum, why = rows_needed(self._maps[EDIT].quantiles, maps)
        if len(table) < minimum:
            raise NeuronEditError(f"The {label} has {len(table)} cells; the tables need at least "
                                  f"{minimum} ({why}). Give it more cells.")
        values = run(self.pieces.pre, table.values)
        method = methods.get(self.method_)
        own = _own_knots(self.pieces, values, self._maps[EDIT].quantiles, maps, label)
        target = {part: layer.target_q.numpy()[0] for part, layer in self._maps.items()}
        tables, _ = _batch_tables(method, self.pieces, values, own[EDIT], target, self.editor,
                                  label)
        replace = self._batches.index(name) if name in self._batches else None
        self._maps = {part: layer.with_batch(*tables[part], replace=replace)
                      for part, layer in self._maps.items()}
        if replace is None:
            self._batches.append(name)
            if self._keep is not None:
                self._keep = KeepBatches(self._keep.kept + [False], name=KEEP)
        self.model_ = self._assemble()
        return self

    # -------------------------------------------------------------- persistence
    def state(self):
        """What ``neuronedit.json`` holds for a study (JSON-serialisable)."""
        return {
            "format": FORMAT,
            "kind": KIND,
            # The method and knots fitted (``method="auto"`` fits the default, see fit_study).
            "config": {**self.editor.get_config(), "method": self.editor.method_,
                       "quantiles": list(self.editor.quantiles_)},
            "columns": self.editor.columns_,
            "passthrough": list(self.editor.passthrough_ or []),
            "history": self.editor.history_,
            "selection": getattr(self.editor, "selection_", None),
            "study": {"batches": list(self._batches), "reference": self.reference,
                      "shared": sorted(self._shared)},
            "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
        }

    def save(self, path, overwrite=False):
        """Save to a folder (``model.keras`` and ``neuronedit.json``), written under a
        temporary name and renamed: a failure leaves nothing. ``NeuronEditor.load(path)``
        gives the study back, its outputs bit for bit the same."""
        path = Path(path)
        with atomic_folder(path, overwrite) as scratch:
            self.model_.save(scratch / MODEL_FILE)
            (scratch / CONFIG_FILE).write_text(json.dumps(self.state(), indent=2))
        return path

    @classmethod
    def restore(cls, editor, model, state, where="the saved study"):
        """The study saved as ``state`` (its JSON) with graph ``model`` (loaded safely)."""
        try:
            study = state["study"]
            batches, reference = [batch_name(b) for b in study["batches"]], study["reference"]
            shared_names = list(study.get("shared", []))
        except (KeyError, TypeError, NeuronEditError):
            raise NeuronEditError(f"{where} has no valid 'study' entry (batches, reference); "
                                  "the file is damaged or not a study.") from None
        if int(state.get("format", 0)) > FORMAT:
            raise NeuronEditError(f"{where} is in study format {state['format']}; this version "
                                  f"reads format {FORMAT} and older. Upgrade neuronedit_tf.")
        editor.columns_ = state.get("columns")
        editor.passthrough_ = state.get("passthrough") or []
        editor.history_ = state.get("history")
        editor.selection_ = state.get("selection")
        try:
            pieces = methods.Pieces(*(model.get_layer(n) for n in
                                      ("preprocessing", "encoder", "decoder", "postprocessing")))
            method = methods.get(editor.method_)
            maps = {part: model.get_layer(part) for part in [EDIT, *method.study_maps()]}
            shared = {part: model.get_layer(part) for part in shared_names}
            keep = None if reference == MEAN else model.get_layer(KEEP)
        except ValueError as error:
            raise NeuronEditError(f"{where}'s graph lacks a layer: {error}") from None
        if any(layer.n_batches != len(batches) for layer in maps.values()):
            raise NeuronEditError(f"{where} names {len(batches)} batches but its tables hold "
                                  f"{maps[EDIT].n_batches}; the files do not belong together.")
        restored = cls.__new__(cls)
        restored.editor, restored.pieces = editor, pieces
        restored._batches, restored.reference = batches, reference
        restored._maps, restored._shared, restored._keep = maps, shared, keep
        restored.model_ = model
        return restored

    def export(self, path, format="both", name=None, version=None, overwrite=False, verify=True,
               quantize=False, sample=None):
        """One served graph for every batch: ``serving_default`` takes ``features`` (raw
        rows) and ``batch`` (each row's batch name, a string tensor) and returns ``edited``;
        a request naming a batch the study does not know fails. SavedModel and TFLite
        (builtin ops only), verified in a fresh process; see
        :func:`neuronedit_tf.export.export_study`."""
        from neuronedit_tf.export import export_study

        if sample is not None:
            sample = self.editor._input_table(load(sample), "sample", self.sample_shape).values
        return export_study(self, path, format=format, name=name, version=version,
                            overwrite=overwrite, verify=verify, quantize=quantize, sample=sample)

    def __repr__(self):
        return (f"Study(batches={self.batches}, reference={self.reference!r}, "
                f"method={self.method_!r})")


def _own_knots(pieces, standardised, quantiles, maps, name):
    """One anchor's own knots: ``{EDIT: its codes' percentiles, part: its standardised
    features' percentiles at that map's knots}`` (what it gives as a reference)."""
    knots = {EDIT: quantile_knots(run(pieces.encoder, standardised), quantiles,
                                  f"{name}'s codes")}
    knots.update({part: quantile_knots(standardised, q, name) for part, q in maps.items()})
    return knots


def _batch_tables(method, pieces, standardised, codes_knots, target, editor, name):
    """One batch's tables ``{part: (source_q, target_q)}`` and its latent ``NeuronEdit``:
    its codes' knots to the reference's, then each of the method's maps from the values it
    names (e.g. the residual edit of the anchor) to the reference's."""
    edit = NeuronEdit(editor.quantiles_, editor.extrapolation, name=EDIT)
    edit.set_knots(codes_knots, target[EDIT])
    tables = {EDIT: (codes_knots, target[EDIT])}
    maps = method.study_maps()
    sources = method.study_sources(pieces, edit, standardised)
    for part, knots in maps.items():
        tables[part] = (quantile_knots(sources[part], knots, name), target[part])
    return tables, edit
