"""NeuronEditor: the one pipeline. fit(S, T, extra=X) -> transform(X) -> save/load/export;
fit_study(anchors, reference) -> a Study of many batches (:mod:`neuronedit_tf.study`)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf import distribute, methods, models, selection, streaming
from neuronedit_tf import study as studies
from neuronedit_tf import validation as checks
from neuronedit_tf.data.atomic import atomic_folder
from neuronedit_tf.estimator import TRAINING, Estimator, Renamed, load, named_inputs
from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.layers import DEFAULT_QUANTILES, NeuronEdit, custom_objects
from neuronedit_tf.study import CONFIG_FILE, MODEL_FILE

#: The most rows of S and of T that ``fit`` holds for the edit's tables, its calibration and
#: its gate: larger sets are sampled to it (seeded, uniform). Each percentile is then within
#: a rank of sqrt(ln(2/0.05) / (2 * 2^18)) = 0.0027 of the full set's with 95% probability
#: (the DKW inequality), and memory stops growing with S and T (held whole, with their codes
#: and decoded edits, they took a fit on 10^7 memory-mapped rows of S + T + X to a peak of
#: 4.2 GiB, against 1.8 GiB at 10^6 rows: benchmarks/SPEED.md, End to end).
EDIT_ROWS = 2**18


def _check_rows(name, rows, quantiles, minimum=None, why=None):
    """Refuse S or T (a study's anchor) with fewer rows than the tables' knots (``minimum``,
    default ``len(quantiles)``; ``why`` names what needs them)."""
    minimum = len(quantiles) if minimum is None else minimum
    if rows is not None and rows < minimum:
        if why is None:
            raise NeuronEditError(
                f"{name} has {rows} rows, fewer than the {len(quantiles)} quantiles of the map; "
                "give it more rows or fewer quantiles (e.g. quantiles=range(0, 101, 10))."
            )
        raise NeuronEditError(f"{name} has {rows} cells; the tables need at least {minimum} "
                              f"({why}). Give it more cells{_fewer_knots(why)}.")


def _fewer_knots(why):
    return " or fewer quantiles (e.g. quantiles=range(0, 101, 10))" if "quantiles" in why else ""


class NeuronEditor(Estimator):
    """Transform data the way a source set became a target set (neuron editing).

    Trains an autoencoder on S, T and X together, maps the percentiles of S's
    activations at ``layer`` onto T's (``NeuronEdit``), and decodes edited
    activations. The whole path, raw values in and raw values out, is one Keras
    model (``model_`` once fitted), saved, loaded and exported as one graph.

    As in scikit-learn, each argument is stored under its own name, untouched
    (``get_params``/``set_params``, so ``sklearn.base.clone`` works); defaults such as
    ``method=None`` are resolved in ``fit``. Fitted state ends in ``_``: ``model_``,
    ``method_``, ``quantiles_``, ``columns_``, ``passthrough_``, ``history_``, and
    ``timings_``: the seconds of each phase of the last fit (``inputs``: reading and checking;
    ``statistics``: the standardisation's pass; ``pipeline``: the training rows, standardised;
    ``training``: the autoencoder's, tracing and validation included; ``edit``: the edit's
    tables and the method's own layers; with ``method="auto"``, ``selection``: its
    cross-validation).

    Args:
        method: ``"paper"``, ``"calibrated"``, ``"gated"`` or another registered method's
            name; see :mod:`neuronedit_tf.methods`.
            ``"paper"`` is exactly the paper's ``D(NeuronEdit(E(X)))``;
            ``"calibrated"`` adds the decoded edit to X and calibrates each
            feature on the spike-in pair (tabular data only); ``"gated"``
            applies that calibration only to cells within the spike-ins' support.
            ``"latent_shift"`` adds the decoded mean code shift of the spike-ins to X (it
            transfers best to other populations where the change mixes channels);
            ``"knn_shift"`` is the authors' k-nearest-spike-ins variant.
            Default (None): ``methods.DEFAULT_METHOD`` (``"gated"``, chosen by
            cross-validation on spike-ins) for tables, ``"paper"`` for images.
        model: ``"dense"`` (the paper's 500-250-50 autoencoder), ``"conv"``
            (stride-2 4x4 convolutions, for images), or a chain ``keras.Model``
            mapping standardised inputs to their reconstruction.
        layer: the inner layer whose activations are edited (default: the
            ``"bottleneck"``). Spike-in cross-validation scores the dense model's
            ``"encoder_act_0"`` (its first hidden layer) a little better, within one seed's
            noise. Its edit costs 2.2x the default's per row, so it is not the default
            (``docs/decisions/0001-default-edit-for-tables.md``, decision 2).
        quantiles: the percentiles that define the neuron edit's maps. Default (None):
            the paper's 0..100 for ``"paper"``, fewer knots for the residual methods
            (:data:`~neuronedit_tf.methods.RESIDUAL_QUANTILES`, chosen by spike-in
            cross-validation), whose per-feature calibration keeps 0..100.
        extrapolation: ``"shift"`` (default), ``"clip"`` or ``"linear"``;
            see :class:`~neuronedit_tf.layers.NeuronEdit`.
        transform: ``"none"``, ``"arcsinh"`` or ``"logicle"`` (cytometry),
            applied in the graph before standardisation and inverted exactly
            after decoding, so outputs stay in the input's units.
        cofactor: the arcsinh cofactor (5 for CyTOF, 150 for flow cytometry).
        logicle: logicle parameters ``{"t", "w", "m", "a"}`` for
            ``transform="logicle"`` (default t=262144, w=0.5, m=4.5, a=0; see
            :mod:`neuronedit_tf.transforms`).
        channels: names of the features to edit (e.g. the markers of a
            cytometry panel); the other features (Time, scatter, text columns)
            must be present too and pass through unchanged. Default: all.
        hidden: encoder widths of the dense model.
        epochs: the most epochs; early stopping usually ends sooner.
        batch_size: minibatch size (paper: 100).
        validation_split: share of rows held out for early stopping (every
            ``1/validation_split``-th row of S, T and X in order).
        patience: epochs without validation improvement before stopping.
        verbose: 0: silent; ``"auto"`` or 1: one progress bar over the epochs with
            the loss and validation loss (tqdm, on stderr; it says where early
            stopping ended); 2: one line per epoch (Keras's).
        deterministic: make TensorFlow's ops deterministic (slower).
            These training settings (:data:`~neuronedit_tf.estimator.TRAINING`, shared
            with the baselines) can also be given to ``fit``, for that fit only.
        members: how many dense autoencoders to train (initial weights seeded
            ``seed``, ``seed + 1``, ...) and edit together. They train side by side in
            one model (:func:`~neuronedit_tf.models.side_by_side`: the same batches, each
            member from its own reconstruction loss, early stopping on their mean), then
            their codes are edited side by side and their decoded edits averaged
            (:func:`~neuronedit_tf.models.ensemble`), so the method's graph runs on
            the ensemble (fit time grows with ``members``). Default 1; ``members=3``
            with ``"gated"`` won the spike-in cross-validation with the 101-knot edit
            (``docs/decisions/0001-default-edit-for-tables.md``, decision 3; see
            :data:`~neuronedit_tf.methods.ENSEMBLE_MEMBERS`).
        seed: seeds weights and shuffling.
        learning_rate: Adam's learning rate (paper: 1e-3).
        strategy: a ``tf.distribute.Strategy`` to train under (default: the
            current one). ``MirroredStrategy`` and ``TPUStrategy`` train with
            Keras's ``fit``; ``MultiWorkerMirroredStrategy`` with an equivalent
            custom loop (see :mod:`neuronedit_tf.distribute` for several hosts and
            Colab TPUs).

    Data larger than memory: ``fit`` and ``transform`` also take
    ``tf.data.Dataset`` s (of batches or single rows) and memory-mapped arrays
    (``np.load("cells.npy", mmap_mode="r")``); they are read in chunks (see
    :mod:`neuronedit_tf.streaming`), so memory is bounded by the chunk, the
    shuffle buffer and the percentile reservoir, not by the rows.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> source = rng.normal(size=(600, 4)).astype("float32")
        >>> target = source + [1.0, 0.0, 0.0, 0.0]
        >>> extra = rng.normal(size=(600, 4)).astype("float32") + [0.0, 2.0, 0.0, 0.0]
        >>> editor = NeuronEditor(hidden=(32, 16, 8)).fit(source, target, extra=extra,
        ...                                               epochs=5, verbose=0)
        >>> editor.transform(extra).shape
        (600, 4)
    """

    def __init__(
        self,
        model="dense",
        method=None,
        layer=models.BOTTLENECK,
        quantiles=None,
        extrapolation="shift",
        transform="none",
        cofactor=5.0,
        hidden=(500, 250, 50),
        seed=0,
        learning_rate=TRAINING["learning_rate"],
        logicle=None,
        channels=None,
        strategy=None,
        members=1,
        epochs=TRAINING["epochs"],
        batch_size=TRAINING["batch_size"],
        validation_split=TRAINING["validation_split"],
        patience=TRAINING["patience"],
        verbose="auto",
        deterministic=TRAINING["deterministic"],
    ):
        self.model = model
        self.method = method
        self.layer = layer
        self.quantiles = quantiles
        self.extrapolation = extrapolation
        self.transform_name = transform  # transform() is the method; see _attribute_names
        self.cofactor = cofactor
        self.hidden = hidden
        self.seed = seed
        self.learning_rate = learning_rate
        self.logicle = logicle
        self.channels = channels
        self.strategy = strategy
        self.members = members
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_split = validation_split
        self.patience = patience
        self.verbose = verbose
        self.deterministic = deterministic
        self._settings()  # bad arguments fail here, early; fit() resolves them again

    architecture = Renamed("model")
    _attribute_names = {"transform": "transform_name"}
    history = Renamed("history_")

    def _settings(self):
        """The constructor arguments checked, with their defaults resolved (``method=None``:
        the default method; ``quantiles=None``: that method's knots), as a namespace.

        Raises:
            NeuronEditError: naming the bad argument and how to fix it.
        """
        model, transform = self.model, self.transform_name
        if not (isinstance(model, keras.Model) or model in ("dense", "conv")):
            raise NeuronEditError(
                f"model must be 'dense', 'conv' or a keras.Model; got {model!r}."
            )
        if transform not in models.TRANSFORMS:
            raise NeuronEditError(
                f"transform must be one of {models.TRANSFORMS}; got {transform!r}."
            )
        method = methods.default_name(self.images) if self.method is None else self.method
        quantiles = self.quantiles
        if method == selection.AUTO:
            if quantiles is not None:
                raise NeuronEditError(
                    "quantiles= sets one method's knots; with method='auto' each candidate "
                    "keeps its own. Name the method (e.g. method='paper') to set them.")
            quantiles = DEFAULT_QUANTILES  # placeholder until fit chooses the method
        else:
            methods.check_method(method)
        if quantiles is None:
            quantiles = methods.get(method).default_quantiles
        NeuronEdit(quantiles=quantiles, extrapolation=self.extrapolation)  # validates both
        members = checks.positive_int(self.members, "members")
        if members > 1 and (self.images or isinstance(model, keras.Model)):
            raise NeuronEditError(
                f"members={self.members} trains several dense autoencoders; it needs "
                "model='dense' (tables). Use members=1 with a conv or custom model.")
        settings = SimpleNamespace(
            method=method, quantiles=tuple(float(q) for q in quantiles),
            cofactor=float(self.cofactor), hidden=checks.widths(self.hidden),
            seed=checks.integer(self.seed, "seed"), members=members,
            learning_rate=checks.positive_finite(self.learning_rate, "learning_rate"),
        )
        if transform == "arcsinh":
            checks.positive_finite(self.cofactor, "The arcsinh cofactor")
        if self.logicle is not None and transform != "logicle":
            raise NeuronEditError("logicle= parameters need transform='logicle'.")
        settings.logicle = self.logicle
        if transform == "logicle":
            from neuronedit_tf.transforms import logicle_options

            settings.logicle = logicle_options(self.logicle)
        channels = self.channels
        if isinstance(channels, str) or (channels is not None and not all(
                isinstance(c, str) for c in channels)):
            raise NeuronEditError(
                f"channels must be a list of names, e.g. ['CD3', 'CD19']; got {channels!r}."
            )
        settings.channels = None if channels is None else list(channels)
        if settings.channels is not None and not settings.channels:
            raise NeuronEditError("channels is empty; name at least one channel to edit.")
        if self.strategy is not None:
            distribute.resolve(self.strategy)  # checks its type
        return settings

    # ------------------------------------------------------------------ inputs
    @property
    def images(self):
        if isinstance(self.model, keras.Model):
            return len(self.model.input.shape) == 4
        return self.model == "conv"

    def _stream(self, data, name, columns=None):
        """A streamed input (dataset, memory map) -> :class:`~neuronedit_tf.streaming.Rows`,
        read lazily and checked chunk by chunk."""
        stream = streaming.Rows(data, name, images=self.images)
        if columns is not None and not self.images:
            stream.check_width((len(columns),))
        return stream

    @property
    def is_chief(self):
        """False on the workers of a multi-worker strategy that should not write files."""
        return distribute.is_chief(distribute.resolve(self.strategy))

    # ---------------------------------------------------------------- training
    def fit(
        self,
        source,
        target,
        extra=None,
        epochs=None,
        batch_size=None,
        validation_split=None,
        patience=None,
        verbose=None,
        checkpoint_dir=None,
        deterministic=None,
        shuffle_rows=streaming.SHUFFLE_ROWS,
        jit_compile=False,
        steps_per_execution="auto",
    ):
        """Train the autoencoder on S ∪ T ∪ X and adapt the edit from S to T.

        Args:
            source: S, the set before the transformation: ``(n_S, d)`` numpy
                array, DataFrame, FCSData or file path (images: ``(n, H, W[, C])``),
                or, read in chunks, a memory-mapped array or a ``tf.data.Dataset``
                of batches ``(rows, d)`` or rows ``(d,)``.
            target: T, the same cells/kind of samples after it (same columns;
                reordered named columns are matched by name). S and T train the autoencoder
                whole; the edit's tables are fitted on at most :data:`EDIT_ROWS` rows of
                each (a seeded uniform sample beyond it), so memory stays flat.
            extra: X, data to be edited later; seen in training (the paper).
                A list of data sets (e.g. several files) is used together.
            epochs, batch_size, validation_split, patience, verbose, deterministic:
                the constructor's training settings, overridden for this fit when given
                (None: the constructor's).
            checkpoint_dir: if given, training resumes from here after a crash
                (``keras.callbacks.BackupAndRestore`` with the early stopping's state
                and the data position): call ``fit`` again with the same arguments and
                it ends with the uninterrupted run's result. Removed when training ends.
            shuffle_rows: the training shuffle buffer, in rows; data up to this
                size is shuffled exactly, larger data through the buffer.
            jit_compile, steps_per_execution: Keras's ``compile`` options. By default
                several training steps run per compiled call
                (``steps_per_execution="auto"``, :func:`~neuronedit_tf.distribute.steps_per_call`):
                the same computation, bit for bit, as one step per call, with less per-step
                overhead (``benchmarks/SPEED.md``). ``jit_compile="auto"`` adds XLA for dense
                models; its float rounding differs, so seeded results differ slightly, and
                its compile time (seconds) is paid by every fit (``benchmarks/SPEED.md`` gives
                both, per training loop and per whole fit).

        Returns:
            self.
        """
        settings = self._settings()
        options = dict(epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                       patience=patience, verbose=verbose, deterministic=deterministic,
                       checkpoint_dir=checkpoint_dir, shuffle_rows=shuffle_rows,
                       jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        started = time.perf_counter()
        inputs = named_inputs(source, target, extra)
        streams, pieces = self._train(inputs, settings, options, edited=2,
                                      minimum=(len(settings.quantiles), None), choose=True,
                                      started=started)
        edit_started = time.perf_counter()
        sample_shape = streams[0].sample_shape
        # The spike-in pair (S, T) is held standardised in memory: the edit's tables and the
        # calibrated method's per-feature maps are fitted on it; beyond EDIT_ROWS rows, on a
        # seeded uniform sample of that many (memory flat in the rows; see EDIT_ROWS).
        source_standardised = streams[0].standardised(pieces.pre, EDIT_ROWS, settings.seed)
        target_standardised = streams[1].standardised(pieces.pre, EDIT_ROWS, settings.seed + 1)
        edit = codes = None
        if pieces.encoder is not None:  # None: a data-space method, no autoencoder
            edit = NeuronEdit(settings.quantiles, self.extrapolation, name="neuron_edit")
            codes = models.run(pieces.encoder, source_standardised)  # E(S), used once
            edit.adapt(codes, models.run(pieces.encoder, target_standardised),
                       seed=settings.seed)
        self.model_ = methods.get(settings.method).fit_graph(
            sample_shape, pieces, edit, source_standardised, target_standardised,
            self.extrapolation, settings.seed, codes,
        )
        self.timings_["edit"] = time.perf_counter() - edit_started
        return self

    def fit_study(
        self,
        anchors,
        reference,
        samples=None,
        epochs=None,
        batch_size=None,
        validation_split=None,
        patience=None,
        verbose=None,
        checkpoint_dir=None,
        deterministic=None,
        shuffle_rows=streaming.SHUFFLE_ROWS,
        jit_compile=False,
        steps_per_execution="auto",
    ):
        """Fit a study: one autoencoder for many batches, each corrected into the reference.

        One autoencoder is trained on every anchor and sample (as ``fit`` trains on S, T and
        X: the same training, checkpoints, progress bar and seeds), then each batch gets the
        edit from its anchor to the reference at ``layer``, with whatever the method needs
        (see :mod:`neuronedit_tf.study`). This editor is left as it was: the study holds a
        copy of its settings.

        A study is fitted with the editor's ``method`` if it is ``"paper"``, ``"calibrated"``
        or ``"gated"``; ``method="auto"`` does not cross-validate here and fits ``"gated"``
        (the default; ``study.editor.selection_["reason"]`` says so).

        Args:
            anchors: ``{batch: anchor}``, one anchor sample (the same control aliquot) per
                batch, each anything ``fit`` takes (array, DataFrame, FCSData, AnnData, path,
                memory map, dataset). Batch names are strings (integers become strings).
            reference: the batch whose frame every batch is corrected into (its own cells
                pass unchanged), or ``"mean"``: the anchors' mean percentiles (CytoNorm's
                ``goal="batch_mean"``).
            samples: ``{batch: [data, ...]}``, unlabeled cells that join the training (the
                paper's X); every sample's batch needs an anchor.

            epochs, batch_size, validation_split, patience, verbose, deterministic,
                checkpoint_dir, shuffle_rows, jit_compile, steps_per_execution: as ``fit``.

        Returns:
            A :class:`~neuronedit_tf.study.Study`: ``.batches``, ``.transform(x, batch=...)``,
            ``.add_batch(name, anchor=...)``, ``.save(path)`` (``NeuronEditor.load`` gives it
            back), ``.export(path)``.

        Raises:
            NeuronEditError: no anchors, duplicate batch names, a reference that is not a
                batch, a sample without its batch's anchor, an anchor with fewer cells than
                the tables need, inputs whose channels differ (what each lacks is listed).

        Example:
            >>> rng = np.random.default_rng(0)
            >>> cells = {b: rng.normal(size=(400, 4)).astype("float32") for b in "123"}
            >>> anchors = {b: x * [1.0, 1.0 + 0.1 * i, 1.0, 1.0] + [0.2 * i, 0.0, 0.0, 0.0]
            ...            for i, (b, x) in enumerate(cells.items())}
            >>> study = NeuronEditor(method="paper", hidden=(32, 16, 8)).fit_study(
            ...     anchors, reference="1", epochs=3, verbose=0)
            >>> study.batches
            ('1', '2', '3')
            >>> study.transform(anchors["2"], batch="2").shape
            (400, 4)
            >>> bool(np.array_equal(study.transform(anchors["1"], batch="1"), anchors["1"]))
            True
        """
        settings = self._settings()
        if self.images:
            raise NeuronEditError("fit_study works on tables (cells x features); for images "
                                  "fit one NeuronEditor per pair.")
        chose = None
        if settings.method == selection.AUTO:  # a study does not cross-validate (yet)
            settings.method = selection.FALLBACK
            settings.quantiles = tuple(float(q) for q in
                                       methods.get(settings.method).default_quantiles)
            chose = {"choice": selection.FALLBACK, "rows": [],
                     "reason": "a study does not cross-validate its methods; method='auto' "
                               f"fits the default, {selection.FALLBACK!r}"}
        maps = methods.get(settings.method).study_maps()
        if maps is None:
            raise NeuronEditError(
                f"method={settings.method!r} cannot be fitted as a study (it defines no "
                "study_maps); use 'paper', 'calibrated' or 'gated'.")
        batches, reference, inputs = studies.study_inputs(anchors, reference, samples)
        inputs = [(label, data if streaming.is_stream(data) else load(data))
                  for label, data in inputs]
        studies.check_channels(inputs)
        options = dict(epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                       patience=patience, verbose=verbose, deterministic=deterministic,
                       checkpoint_dir=checkpoint_dir, shuffle_rows=shuffle_rows,
                       jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        editor = type(self)(**self.get_params(deep=False))
        streams, pieces = editor._train(inputs, settings, options, edited=len(batches),
                                        minimum=studies.rows_needed(settings.quantiles, maps))
        editor.selection_ = chose
        return studies.Study.fit(editor, pieces, list(zip(batches, streams[:len(batches)])),
                                 reference, settings.seed)

    def _train(self, inputs, settings, options, edited, minimum, choose=False, started=None):
        """Train the autoencoder on every input (the training path ``fit`` and ``fit_study``
        share): validate the inputs, standardise, train (checkpoints, progress, seeds), split
        at ``layer``.

        Args:
            inputs: ``[(name, data), ...]``; the first ``edited`` are the sets whose
                percentiles become tables (S and T; a study's anchors).
            settings: :meth:`_settings`.
            options: ``fit``'s training keyword arguments (None: the constructor's).
            minimum: ``(rows, why)``: the fewest rows each of the ``edited`` sets may have
                (``why``: what needs them, for the error; None: the map's quantiles).
            choose: resolve ``method="auto"`` here (``fit``: inputs are S, T, then X), by
                cross-validation on S and T before training (sets ``selection_`` and
                ``settings.method``); a method without an autoencoder trains none (the
                returned pieces' ``encoder`` and ``decoder`` are None).
            started: ``time.perf_counter()`` when the caller began (``timings_["inputs"]``
                counts from there; None: from here).

        Returns:
            ``(streams, pieces)``: each input as :class:`~neuronedit_tf.streaming.Rows`, and
            the fitted :class:`~neuronedit_tf.methods.Pieces` (``pre``, ``encoder``,
            ``decoder``, ``post``). Sets ``columns_``, ``passthrough_``, ``method_``,
            ``quantiles_``, ``history_`` and ``timings_`` (its phases so far).
        """
        started = time.perf_counter() if started is None else started
        options = dict(options)
        for name in ("epochs", "batch_size", "validation_split", "patience", "verbose",
                     "deterministic"):
            if options[name] is None:
                options[name] = getattr(self, name)
        validation_split = options["validation_split"]
        if any(streaming.is_stream(data) for _, data in inputs):
            if self.channels is not None:
                raise NeuronEditError(
                    "channels= needs named tables; select the channels before streaming them."
                )
            streams = [self._stream(data, name) for name, data in inputs]
            columns, passthrough = None, []
        else:
            # In memory: validated whole, named features matched by name (any order).
            tables, columns = self._fit_named(inputs)
            passthrough = self.passthrough_
            streams = [streaming.Rows(t.values, n, columns=columns, images=self.images)
                       for t, (n, _) in zip(tables, inputs)]
        sample_shape = streams[0].sample_shape
        for stream in streams[1:]:
            if self.images and stream.sample_shape != sample_shape:
                raise NeuronEditError(
                    f"source, target and extra differ in image shape: {stream.name} has "
                    f"{stream.sample_shape[:2]}, source {sample_shape[:2]}."
                )
            stream.check_width(sample_shape)
        for stream in streams[:edited]:
            _check_rows(stream.name, stream.n_rows, settings.quantiles, *minimum)
        if not isinstance(validation_split, (int, float)) or not 0 < validation_split < 1:
            raise NeuronEditError(f"validation_split must be in (0, 1); got {validation_split}.")
        epochs = checks.positive_int(options["epochs"], "epochs")
        batch_size = checks.positive_int(options["batch_size"], "batch_size")
        patience = checks.integer(options["patience"], "patience")
        self.selection_ = None
        chosen_in = None
        if choose and settings.method == selection.AUTO:
            clock = time.perf_counter()
            training = {name: options[name] for name in (
                "epochs", "batch_size", "validation_split", "patience", "deterministic",
                "shuffle_rows", "jit_compile", "steps_per_execution")}
            self.selection_ = self._select(streams, [stream.data for stream in streams[2:]],
                                           training, options["verbose"])
            settings.method = self.selection_["choice"]
            settings.quantiles = tuple(float(q) for q in
                                       methods.get(settings.method).default_quantiles)
            chosen_in = time.perf_counter() - clock

        keras.utils.set_random_seed(settings.seed)
        if options["deterministic"]:
            tf.config.experimental.enable_op_determinism()
        self.columns_ = columns
        self.passthrough_ = passthrough
        self.method_, self.quantiles_ = settings.method, settings.quantiles
        clock = time.perf_counter()
        self.timings_ = {"inputs": clock - started - (chosen_in or 0.0)}
        if chosen_in is not None:
            self.timings_["selection"] = chosen_in
        mean, variance, counts = streaming.moments(
            streams, lambda chunk: models.transform_values(chunk, self.transform_name,
                                                           settings.cofactor, settings.logicle)
        )
        for stream, rows in zip(streams[:edited], counts):
            _check_rows(stream.name, rows, settings.quantiles, *minimum)
        if int(sum(counts) * validation_split) < 1:
            raise NeuronEditError(
                f"validation_split={validation_split} of {sum(counts)} rows holds out no row; "
                "raise it or give more rows."
            )
        self.timings_["statistics"] = time.perf_counter() - clock
        pre = models.preprocessing(sample_shape, mean, variance, self.transform_name,
                                   settings.cofactor, settings.logicle)
        post = models.postprocessing(sample_shape, mean, variance, self.transform_name,
                                     settings.cofactor, settings.logicle)
        if not methods.get(settings.method).uses_autoencoder:  # a data-space map: no training
            self.history_ = {}
            return streams, methods.Pieces(pre, None, None, post)

        strategy = distribute.resolve(self.strategy)
        default = strategy is tf.distribute.get_strategy()
        # members > 1: the autoencoders (seeds seed, seed + 1, ...) side by side in one model,
        # trained together: same batches, each member from its own loss (models.side_by_side).
        clock = time.perf_counter()
        training, steps, validation = streaming.training_data(
            streams, pre, sum(counts), validation_split, int(batch_size), settings.seed,
            options["shuffle_rows"], counts=counts)
        self.timings_["pipeline"] = time.perf_counter() - clock
        clock = time.perf_counter()
        autoencoder, self.history_ = distribute.train(
            lambda: self._build_autoencoders(sample_shape, settings, fresh=not default),
            strategy, training, steps, validation, epochs=epochs, patience=patience,
            learning_rate=settings.learning_rate, verbose=options["verbose"],
            checkpoint_dir=options["checkpoint_dir"], jit_compile=options["jit_compile"],
            steps_per_execution=options["steps_per_execution"], copies=settings.members,
        )
        self.timings_["training"] = time.perf_counter() - clock
        members = ([autoencoder] if settings.members == 1 else
                   [autoencoder.get_layer(f"autoencoder_{k}") for k in range(settings.members)])
        encoders, decoders = zip(*(models.split_at(member, self.layer) for member in members))
        encoder, decoder = models.ensemble(encoders, decoders)
        return streams, methods.Pieces(pre, encoder, decoder, post)

    def _select(self, streams, extra, training, verbose):
        """``method="auto"``: cross-validate :data:`~neuronedit_tf.selection.CANDIDATES` on the
        spike-in pair (see :mod:`neuronedit_tf.selection`); returns ``selection_``."""
        if self.images:
            return {"choice": methods.DEFAULT_IMAGE_METHOD, "rows": [],
                    "reason": "images: only 'paper' edits images"}
        source, target = (np.concatenate(list(stream.chunks())) for stream in streams[:2])

        def log(line):
            if verbose:
                print(line, file=sys.stderr, flush=True)

        return selection.select(self, source, target, extra, training, log=log)

    def candidates(self, source, target, names=selection.METHODS):
        """``{name: raw -> raw function}``: each method in ``names`` built on this editor's
        trained autoencoder and adapted on raw ``source`` -> ``target`` (as it would be
        fitted), for comparing methods without training again."""
        self._require_fitted()
        pre, post = self.part("preprocessing"), self.part("postprocessing")
        encoder, decoder = self.part("encoder"), self.part("decoder")
        s, t = models.run(pre, source), models.run(pre, target)
        codes = models.run(encoder, s), models.run(encoder, t)
        shape = tuple(self.model_.input.shape[1:])
        built = {}
        for name in names:
            method = methods.get(name)
            edit = None
            if method.uses_autoencoder:
                edit = NeuronEdit(method.default_quantiles, self.extrapolation, name="neuron_edit")
                edit.adapt(*codes, seed=self.seed)
            graph = method.fit_graph(shape, methods.Pieces(pre, encoder, decoder, post), edit,
                                     s, t, self.extrapolation, self.seed, codes[0])
            built[name] = lambda values, graph=graph: models.run(graph, values)
        return built

    def _build_autoencoders(self, sample_shape, settings, fresh=False):
        if settings.members == 1:
            return self._build_autoencoder(sample_shape, settings, fresh)
        return models.side_by_side([
            self._build_autoencoder(sample_shape, settings, fresh, settings.seed + k)
            for k in range(settings.members)])

    def _build_autoencoder(self, sample_shape, settings, fresh=False, seed=None):
        if isinstance(self.model, keras.Model):
            # Under a strategy the variables must be created in its scope: a fresh copy.
            return keras.models.clone_model(self.model) if fresh else self.model
        if self.model == "conv":
            return models.conv_autoencoder(sample_shape, seed=settings.seed)
        return models.dense_autoencoder(sample_shape[0], settings.hidden,
                                        seed=settings.seed if seed is None else seed)

    # --------------------------------------------------------------- inference
    def _require_fitted(self):
        if getattr(self, "model_", None) is None:
            raise NeuronEditError("This NeuronEditor is not fitted; call fit() or load() first.")

    def part(self, name):
        """A piece of the fitted graph: ``"preprocessing"``, ``"encoder"``,
        ``"neuron_edit"``, ``"decoder"`` or ``"postprocessing"``."""
        self._require_fitted()
        try:
            return self.model_.get_layer(name)
        except ValueError:
            raise NeuronEditError(
                f"The fitted graph ({self.method_!r}) has no part {name!r}; it has "
                f"{[layer.name for layer in self.model_.layers[1:]]}.") from None

    def _predict(self, data, name, graph, out=None, expected=None):
        """``graph`` on ``data`` (in memory, memory-mapped or a dataset; ``out``: see
        ``transform``); ``expected``: one row's shape (default: the fitted graph's)."""
        if expected is None:
            self._require_fitted()
            expected = tuple(self.model_.input.shape[1:])
        if streaming.is_stream(data):
            stream = streaming.Rows(data, name, images=self.images)
            stream.check_width(expected)
            if isinstance(data, tf.data.Dataset) and out is None:
                return stream.dataset().map(
                    lambda x: graph(tf.debugging.assert_all_finite(
                        x, f"{name} contains NaN/inf values; remove or impute them first."),
                        training=False),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
                ).prefetch(tf.data.AUTOTUNE)
            if out is None:
                out = np.empty((stream.n_rows,) + expected, np.float32)
            chunks = (checks.check_output(models.run(graph, chunk), f"The edited {name}")
                      for chunk in stream.checked_chunks())
            return streaming.write_chunks(chunks, out)
        if out is not None:
            table = self._input_table(data, name, expected)
            chunks = (checks.check_output(
                          models.run(graph, table.values[i : i + streaming.CHUNK_ROWS]),
                          f"The edited {name}")
                      for i in range(0, len(table), streaming.CHUNK_ROWS))
            return streaming.write_chunks(chunks, out)
        return self._apply(data, name, lambda values: models.run(graph, values), expected)

    def transform(self, data, out=None):
        """Edit ``data`` (X, or any later data) without retraining.

        Args:
            data: ``(n, d)`` array, DataFrame, FCSData, AnnData (its ``X``) or a
                file path; named features are matched by name (any order), and
                with ``channels`` the other features pass through unchanged.

        Returns:
            The same kind as given, rows, columns and index in the input's
            order: a DataFrame, an FCSData keeping every channel and keyword,
            a new AnnData (obs/var/layers kept, ``X`` edited), or an ndarray.
            A file path gives what :func:`neuronedit_tf.data.read` gives.

        Args (streaming):
            out: optional array (e.g. ``np.lib.format.open_memmap(path, "w+",
                np.float32, shape)``) that receives the edited rows chunk by
                chunk; it is returned. With a memory map, no more than a chunk
                of input or output is resident at a time. A ``tf.data.Dataset``
                gives back a lazy dataset of edited batches.

        Example (data larger than memory):
            >>> cells = np.load("cells.npy", mmap_mode="r")  # doctest: +SKIP
            >>> out = np.lib.format.open_memmap("edited.npy", "w+", np.float32,
            ...                                 cells.shape)  # doctest: +SKIP
            >>> editor.transform(cells, out=out)  # doctest: +SKIP
        """
        self._require_fitted()
        return self._predict(data, "data", self.model_, out)

    def reconstruct(self, data):
        """The autoencoder's reconstruction of ``data`` with no edit (for diagnostics)."""
        self._require_fitted()
        features = self.model_.input
        plain = keras.Model(
            features,
            self.part("postprocessing")(self.part("decoder")(
                self.part("encoder")(self.part("preprocessing")(features)))),
        )
        return self._predict(data, "data", plain)

    # ------------------------------------------------------------ persistence
    def get_config(self):
        """The constructor arguments with defaults resolved (JSON-serialisable); a fitted
        editor gives the method and quantiles it was fitted with."""
        settings = self._settings()
        fitted = getattr(self, "model_", None) is not None
        return {
            "method": self.method_ if fitted else settings.method,
            "model": self.model if isinstance(self.model, str) else "custom",
            "layer": self.layer,
            "quantiles": list(self.quantiles_ if fitted else settings.quantiles),
            "extrapolation": self.extrapolation,
            "transform": self.transform_name,
            "cofactor": settings.cofactor,
            "hidden": list(settings.hidden),
            "seed": settings.seed,
            "learning_rate": settings.learning_rate,
            "logicle": settings.logicle,
            "channels": settings.channels,
            "members": settings.members,
        }

    def save(self, path, overwrite=False):
        """Save to a folder: ``model.keras`` (the whole graph) and ``neuronedit.json``.

        The folder is written under a temporary name and renamed, so a failure
        leaves nothing behind. An existing folder is refused unless ``overwrite``.
        """
        self._require_fitted()
        path = Path(path)
        with atomic_folder(path, overwrite) as scratch:
            self.model_.save(scratch / MODEL_FILE)
            state = {
                "format": 1,
                "config": self.get_config(),
                "columns": self.columns_,
                "passthrough": self.passthrough_,
                "history": self.history_,
                "selection": getattr(self, "selection_", None),
                "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
            }
            (scratch / CONFIG_FILE).write_text(json.dumps(state, indent=2))
        return path

    @classmethod
    def load(cls, path):
        """Load a saved editor, or a saved study (a :class:`~neuronedit_tf.study.Study`).
        Uses Keras ``safe_mode`` (no code is executed)."""
        path = Path(path)
        config_file, model_file = path / CONFIG_FILE, path / MODEL_FILE
        if not (config_file.exists() and model_file.exists()):
            raise NeuronEditError(
                f"{path} is not a saved NeuronEditor (needs {CONFIG_FILE} and {MODEL_FILE})."
            )
        checks.check_saved_folder(path)
        try:
            state = json.loads(config_file.read_text())
            config = dict(state["config"])
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise NeuronEditError(f"{config_file} is not valid JSON: {error}.") from None
        except (KeyError, TypeError, ValueError):
            raise NeuronEditError(
                f"{config_file} is not a NeuronEditor configuration (no 'config' object)."
            ) from None
        kind = state.get("kind", "editor") if isinstance(state, dict) else None
        if kind not in ("editor", studies.KIND):
            raise NeuronEditError(f"{config_file} holds a {kind!r}; this version reads saved "
                                  f"editors and studies. Upgrade neuronedit_tf.")
        config.setdefault("method", "paper")  # saved before methods existed
        if config.get("model") == "custom":
            config["model"] = "dense"  # the trained graph is loaded below; the name is moot
        try:
            editor = cls(**config)
        except TypeError as error:  # unknown or missing settings: another version or a damaged file
            raise NeuronEditError(f"{config_file} holds settings this version cannot use: "
                                  f"{error}.") from None
        model = checks.load_keras_model(model_file, custom_objects())
        if kind == studies.KIND:  # a study: the editor holds its settings, not a graph
            settings = editor._settings()
            editor.method_, editor.quantiles_ = settings.method, settings.quantiles
            return studies.Study.restore(editor, model, state, where=str(path))
        editor.model_ = model
        if config.get("model") == "dense" and state["config"].get("model") == "custom":
            editor.model = editor.model_  # a custom (e.g. conv) graph: images or tables
        settings = editor._settings()
        editor.method_, editor.quantiles_ = settings.method, settings.quantiles
        editor.columns_ = state.get("columns")
        editor.passthrough_ = state.get("passthrough") or []
        editor.history_ = state.get("history")
        editor.selection_ = state.get("selection")
        return editor

    def export(self, path, format="saved_model", name=None, version=None, overwrite=False,
               verify=True, quantize=False, sample=None):
        """Write the fitted graph raw -> edited raw for serving (SavedModel for TF
        Serving and/or TFLite) and verify it (on ``sample``, raw rows such as your own
        cells, if given); see :func:`neuronedit_tf.export.export_editor`."""
        from neuronedit_tf.export import export_editor

        self._require_fitted()
        if sample is not None:
            sample = self._input_table(sample, "sample", tuple(self.model_.input.shape[1:])).values
        return export_editor(self, path, format=format, name=name, version=version,
                             overwrite=overwrite, verify=verify, quantize=quantize, sample=sample)
