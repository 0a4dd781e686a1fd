"""``method="auto"``: each fit chooses its edit by cross-validation on the spike-in pair alone.

No edit wins every kind of shift: where the change is per channel (an intensity distortion,
as in the real CyTOF batches) a per-feature quantile map is at the information limit; where
the change mixes channels and the sample's cells differ from the spike-ins, a latent edit
can transfer better. Which kind a dataset has can be measured on its spike-ins, so
``NeuronEditor(method="auto")`` measures it, per dataset, at fit time:

1. The spike-in cells are split into a fitting part and a held-out part, three times:
   ``"random"`` (random halves of S and of T), ``"population"`` (two cell populations,
   :func:`population_split`: a change learned on one population and applied to another, as
   a sample's cells may differ from the spike-ins) and ``"sample"`` (:func:`sample_split`:
   the S cells most like the sample X held out, transfer toward the sample's own cells). A
   split that cannot be made (populations too small, no X) is skipped.
2. For each split one autoencoder is trained on the fitting part of S and T and on X (as in
   use), and every candidate (:data:`CANDIDATES`: the neuron-editing methods and the
   data-space maps ``"quantile_map"`` and ``"mean_shift"``; not ``"gated_shift"``, which the
   cross-validation misjudges) is built from it, fitted on the fitting part and applied to
   the held-out S.
3. Each candidate is scored per split by the mean per-feature EMD of the edited held-out S
   to the held-out T, divided by the held-out S's own EMD to it (no correction = 1), on the
   editor's scale (its transform, each feature divided by its spread in S and T). The lowest
   geometric mean over the splits wins (:data:`RULE`: each split counts by relative
   differences, whatever its level); the sample's truth is never read. How this rule was
   fixed on development cases and confirmed on new ones: ``docs/decisions/0004-auto-rule.md``.

The choice and its table are kept on the fitted editor (``selection_``), printed by the
command line, saved with the editor and shown in its model card.

Example:
    >>> import numpy as np
    >>> from neuronedit_tf.selection import random_split
    >>> (s_fit, t_fit), (s_held, t_held) = random_split(6, 4, seed=0)
    >>> int(s_fit.sum()), int(t_fit.sum()), bool((s_fit ^ s_held).all())
    (3, 2, True)
"""

from __future__ import annotations

import numpy as np

from neuronedit_tf.errors import NeuronEditError

#: The name that asks for the choice.
AUTO = "auto"
#: What ``"auto"`` chooses among, in order of preference on a tie: the neuron-editing
#: methods, then the data-space per-feature maps. ``"gated_shift"`` is not among them (it stays
#: available by name): the population split cannot tell it from ``"latent_shift"`` and the
#: random halves reward its per-feature calibration, so the cross-validation prefers it where
#: it transfers worse (``docs/decisions/0004-auto-rule.md``).
CANDIDATES = ("gated", "latent_shift", "calibrated", "paper", "quantile_map", "mean_shift")
#: What :meth:`~neuronedit_tf.editor.NeuronEditor.candidates` builds unless told: the
#: candidates and ``"gated_shift"``, for comparing every method on one autoencoder.
METHODS = ("gated", "gated_shift", "latent_shift", "calibrated", "paper", "quantile_map",
           "mean_shift")
#: How a candidate's ratios over the splits are combined (lowest wins): ``"geometric_mean"``
#: (0004, confirmed); ``"mean"`` is 0003's arithmetic mean, by which a selection saved without
#: a ``"rule"`` was chosen.
RULE = "geometric_mean"
#: The rules :func:`scores` knows.
RULES = ("geometric_mean", "mean")
#: Each population of a population split needs this many cells of S and of T.
MIN_POPULATION = 150
#: Fewer spike-in cells than this (in S or in T) cannot be halved into parts that hold the
#: maps' knots; ``"auto"`` then takes :data:`FALLBACK` and says why (``selection_["reason"]``).
MIN_ROWS = 200
#: The method ``"auto"`` takes when the spike-ins are too few to cross-validate.
FALLBACK = "gated"
#: The splits ``"auto"`` uses (the default), each when it can be made.
SPLITS = ("random", "population", "sample")
#: Every split :func:`splits` knows.
ALL_SPLITS = ("random", "population", "sample")
#: :func:`sample_split`: the share of X among each S cell's this many nearest cells of S u X.
SAMPLE_NEIGHBOURS = 30
#: :func:`sample_split`: this fraction of S (the cells most like X) is held out.
SAMPLE_HOLD = 1 / 3
#: The cross-validation uses at most this many rows of S, of T and of each X (a seeded
#: subsample), so its cost is bounded however large the data: the choice is made on a sample,
#: the final fit uses every row.
CV_ROWS = 10_000


def random_split(n_source, n_target, seed=0):
    """Random halves of S and of T: ``((s_fit, t_fit), (s_held, t_held))`` boolean masks."""
    rng = np.random.default_rng(seed)
    halves = []
    for n in (n_source, n_target):
        order = rng.permutation(n)
        mask = np.zeros(n, bool)
        mask[order[: n // 2]] = True
        halves.append(mask)
    return (halves[0], halves[1]), (~halves[0], ~halves[1])


def population_split(source, target, seed=0, min_cells=MIN_POPULATION):
    """Two populations of the spike-in pair, on the comparison scale ``(n, d)`` arrays.

    2-means on S; each T cell joins the cluster nearest to it after a per-feature
    percentile map T -> S (undoing the shift marker by marker, so the shift itself does not
    decide the cluster). The larger population is the fitting part, the other is held out.

    Returns:
        ``((s_fit, t_fit), (s_held, t_held))`` boolean masks, or None when a population has
        fewer than ``min_cells`` cells of S or of T.
    """
    from sklearn.cluster import KMeans

    from neuronedit_tf.layers import NeuronEdit

    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    kmeans = KMeans(2, n_init=4, random_state=seed).fit(source)
    back = NeuronEdit()
    back.adapt(target, source)
    s_label = kmeans.labels_
    t_label = kmeans.predict(np.asarray(back(target.astype(np.float32)), np.float64))
    sizes = [min((s_label == c).sum(), (t_label == c).sum()) for c in (0, 1)]
    if min(sizes) < min_cells:
        return None
    fit = int(np.argmax(sizes))  # fit on the larger population, score the other
    return ((s_label == fit, t_label == fit), (s_label != fit, t_label != fit))


def sample_split(source, target, sample, seed=0, min_cells=MIN_POPULATION,
                 neighbours=SAMPLE_NEIGHBOURS, hold=SAMPLE_HOLD):
    """Hold out the S cells most like the sample X: transfer toward the sample's own cells.

    On the comparison scale (``(n, d)`` arrays; X is in S's batch, it is what gets edited):
    each S cell's score is the share of X cells among its ``neighbours`` nearest cells of
    S u X, itself excluded (a k-nearest-neighbour classifier S vs X, i.e. a density ratio).
    The ``hold`` fraction of S with the highest score is held out (ties broken by a random
    order seeded by ``seed``); the fit is on the rest. Each T cell, after the per-feature
    percentile map T -> S (as in :func:`population_split`), joins the part of its nearest
    S cell. Where X is like S the scores are noise and the split is close to a random one;
    where X's cells lie in one corner of S, that corner is held out.

    Returns:
        ``((s_fit, t_fit), (s_held, t_held))`` boolean masks, or None when there is no X,
        X has fewer than ``min_cells`` rows, or a part has fewer than ``min_cells`` cells of
        S or of T.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> s, t = rng.normal(size=(600, 2)), rng.normal(size=(600, 2)) + 1
        >>> x = rng.normal(size=(400, 2)) + [3, 0]   # the sample lies toward +x
        >>> (s_fit, t_fit), (s_held, t_held) = sample_split(s, t, x)
        >>> int(s_held.sum()), bool(s[s_held, 0].mean() > s[s_fit, 0].mean())
        (200, True)
        >>> sample_split(s, t, None) is None
        True
    """
    if sample is None or len(sample) < min_cells:
        return None
    from sklearn.neighbors import NearestNeighbors

    from neuronedit_tf.layers import NeuronEdit

    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    sample = np.asarray(sample, np.float64)
    n = len(source)
    pool = NearestNeighbors().fit(np.concatenate([source, sample]))
    _, index = pool.kneighbors(source, neighbours + 1)
    own = index == np.arange(n)[:, None]
    keep = ~own
    keep[~own.any(axis=1), -1] = False  # itself not among them (duplicates): drop the last
    score = ((index >= n) & keep).sum(axis=1)
    tie = np.random.default_rng(seed).random(n)
    order = np.lexsort((tie, -score))  # highest score first, ties in a seeded order
    s_held = np.zeros(n, bool)
    s_held[order[: int(round(hold * n))]] = True
    back = NeuronEdit()
    back.adapt(target, source)
    mapped = np.asarray(back(target.astype(np.float32)), np.float64)
    nearest = NearestNeighbors(n_neighbors=1).fit(source).kneighbors(mapped)[1][:, 0]
    t_held = s_held[nearest]
    if min(s_held.sum(), (~s_held).sum(), t_held.sum(), (~t_held).sum()) < min_cells:
        return None
    return ((~s_held, ~t_held), (s_held, t_held))


def splits(source, target, seed=0, sample=None, names=SPLITS):
    """``[(name, ((s_fit, t_fit), (s_held, t_held)))]``: the splits ``names`` of S and T
    (comparison-scale arrays), each only when it exists: ``"random"``, ``"population"``
    and, given the sample X (``sample``, on the same scale), ``"sample"``."""
    unknown = [name for name in names if name not in ALL_SPLITS]
    if unknown:
        raise NeuronEditError(f"unknown cross-validation split(s) {unknown}; "
                              f"choose among {list(ALL_SPLITS)}.")
    found = []
    for name in names:
        if name == "random":
            split = random_split(len(source), len(target), seed)
        elif name == "population":
            split = population_split(source, target, seed)
        else:
            split = sample_split(source, target, sample, seed)
        if split is not None:
            found.append((name, split))
    return found


def scores(rows, rule=RULE):
    """``{candidate: score}`` from :func:`cross_validate`'s rows, in the candidates' order:
    the geometric mean of its ratios over the splits (``rule="geometric_mean"``, the
    default) or their arithmetic mean (``rule="mean"``, 0003's rule).

    Example:
        >>> rows = [{"split": "random", "candidate": "a", "ratio": 0.25},
        ...         {"split": "population", "candidate": "a", "ratio": 1.0}]
        >>> scores(rows), scores(rows, rule="mean")
        ({'a': 0.5}, {'a': 0.625})
    """
    if rule not in RULES:
        raise NeuronEditError(f"Unknown selection rule {rule!r}; use one of {list(RULES)}.")
    result = {}
    for name in dict.fromkeys(r["candidate"] for r in rows):
        ratios = np.array([r["ratio"] for r in rows if r["candidate"] == name], np.float64)
        if rule == "mean":
            result[name] = float(np.mean(ratios))
        else:
            with np.errstate(divide="ignore"):  # a ratio of 0 scores 0, inf scores inf
                result[name] = float(np.exp(np.mean(np.log(ratios))))
    return result


def choose(rows, candidates=CANDIDATES, rule=RULE):
    """The candidate with the lowest score (:func:`scores` by ``rule``; the first listed on a
    tie)."""
    found = scores(rows, rule)
    order = [c for c in candidates if c in found] + [c for c in found if c not in candidates]
    return min(order, key=lambda c: (found[c], order.index(c)))


def comparison_scale(transform, spread):
    """``values -> transform(values) / spread``: the scale candidates are scored on."""
    def scale(values):
        return np.asarray(transform(values), np.float64) / spread
    return scale


def cross_validate(fit_split, source, target, scale, candidates=CANDIDATES, seed=0, log=None,
                   sample=None, split_names=SPLITS):
    """Score every candidate on the splits of the spike-in pair.

    Args:
        fit_split: ``(source_rows, target_rows) -> {candidate: raw -> raw function}``:
            trains what a split needs on those rows (and X) and builds every candidate.
        source, target: raw S and T, ``(n, d)`` arrays.
        scale: raw values -> the comparison scale (see :func:`comparison_scale`).
        candidates: the candidate names, in order of preference on a tie.
        seed: seeds the splits.
        log: called with one line per split (optional).
        sample: raw X, ``(n, d)`` (only the ``"sample"`` split reads it).
        split_names: the splits to use (:data:`SPLITS` unless told).

    Returns:
        ``(choice, rows)``: the winner (by :data:`RULE`) and one row per (split, candidate)
        with ``split``,
        ``candidate``, ``emd`` (edited held-out S to held-out T), ``before`` (the held-out S
        unedited) and ``ratio`` (their ratio).
    """
    source, target = np.asarray(source), np.asarray(target)
    if min(len(source), len(target)) < MIN_ROWS:
        raise NeuronEditError(
            f"method='auto' cross-validates on halves of the spike-ins and needs at least "
            f"{MIN_ROWS} rows of source and of target; got {len(source)} and {len(target)}. "
            "Give more cells or name a method (e.g. method='gated').")
    from neuronedit_tf import metrics

    scaled_source, scaled_target = scale(source), scale(target)
    scaled_sample = None
    if "sample" in split_names and sample is not None and len(sample):
        scaled_sample = scale(np.asarray(sample))
    rows = []
    for name, ((s_fit, t_fit), (s_held, t_held)) in splits(
            scaled_source, scaled_target, seed, scaled_sample, split_names):
        built = fit_split(source[s_fit], target[t_fit])
        held_target = scaled_target[t_held]
        before = metrics.mean_emd(scaled_source[s_held], held_target)
        for candidate in candidates:
            emd = metrics.mean_emd(scale(built[candidate](source[s_held])), held_target)
            rows.append({"split": name, "candidate": candidate, "emd": emd, "before": before,
                         "ratio": emd / before if before > 0 else float("inf")})
        if log is not None:
            best = min((r for r in rows if r["split"] == name), key=lambda r: r["ratio"])
            log(f"auto: {name} split scored; best {best['candidate']} ({best['ratio']:.3f})")
    return choose(rows, candidates), rows


def select(editor, source, target, extra=None, training=None, log=None, split_names=SPLITS):
    """What ``editor.fit(source, target, extra=extra)`` chooses with ``method="auto"``.

    Args:
        editor: an (unfitted) ``NeuronEditor``; each split trains a copy of it (its
            settings, ``method="paper"``, quiet) on the split's rows and ``extra``.
        source, target: raw S and T, ``(n, d)`` arrays of the edited features.
        extra: X, a list of data sets (arrays, memory maps or datasets) or None.
        training: ``fit``'s training arguments for every split (epochs, batch size, ...).
        log: called with one line per split (optional).
        split_names: the splits to use (:data:`SPLITS` unless told; ``"sample"`` reads X,
            all of ``extra``'s sampled rows together).

    Returns:
        ``{"choice", "rows", "candidates", "rule"}`` (see :func:`cross_validate`; ``rule``
        is :data:`RULE`), or, when the
        spike-ins are too few (:data:`MIN_ROWS`), ``{"choice": FALLBACK, "rows": [],
        "reason"}``.
    """
    import keras

    from neuronedit_tf import models

    settings = editor._settings()
    rng = np.random.default_rng(settings.seed)
    source, target = (_subsample(values, rng) for values in (source, target))
    extra = None if not extra else [_subsample(values, rng) for values in extra]
    if min(len(source), len(target)) < MIN_ROWS:
        return {"choice": FALLBACK, "rows": [],
                "reason": f"fewer than {MIN_ROWS} spike-in rows to cross-validate "
                          f"(source {len(source)}, target {len(target)})"}

    def transform(values):
        return models.transform_values(values, editor.transform_name, settings.cofactor,
                                       settings.logicle)

    spread = np.asarray(transform(np.concatenate([source, target])), np.float64).std(axis=0)
    scale = comparison_scale(transform, np.where(spread > 0, spread, 1.0))
    params = {**editor.get_params(deep=False), "method": "paper", "quantiles": None,
              "channels": None, "verbose": 0}

    def fit_split(s, t):
        if isinstance(editor.model, keras.Model):  # each split trains its own copy
            params["model"] = keras.models.clone_model(editor.model)
        split = type(editor)(**params).fit(s, t, extra=extra or None, **(training or {}))
        return split.candidates(s, t, CANDIDATES)

    sample = None
    if extra and "sample" in split_names:
        sample = np.concatenate([np.asarray(values) for values in extra])
    choice, rows = cross_validate(fit_split, source, target, scale, seed=settings.seed, log=log,
                                  sample=sample, split_names=split_names)
    if log is not None:
        log(f"auto: chose {choice!r}")
    return {"choice": choice, "rows": rows, "candidates": list(CANDIDATES), "rule": RULE}


def _subsample(data, rng, rows=None):
    """At most ``rows`` rows of an array or memory map (seeded, in order), or the first
    ``rows`` of a dataset of batches; ``rows`` defaults to :data:`CV_ROWS`."""
    rows = CV_ROWS if rows is None else rows
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):  # batches of rows (as fit streams them): the first
        return np.concatenate(list(data.unbatch().take(rows).batch(4096).as_numpy_iterator()))
    if len(data) <= rows:
        return data
    return np.asarray(data[np.sort(rng.choice(len(data), rows, replace=False))])


def table(selection):
    """The saved selection as a Markdown table: one row per candidate, its ratio per split
    and its score by the selection's rule (``"rule"``; a selection saved without one was
    chosen by the arithmetic mean, 0003); the choice in bold.

    Example:
        >>> rows = [{"split": "random", "candidate": "paper", "ratio": 0.5},
        ...         {"split": "random", "candidate": "quantile_map", "ratio": 0.4}]
        >>> print(table({"choice": "quantile_map", "rows": rows, "rule": "geometric_mean"}))
        | candidate | random | geometric mean |
        |---|---|---|
        | paper | 0.500 | 0.500 |
        | **quantile_map** | 0.400 | **0.400** |
    """
    rows = selection.get("rows") or []
    if not rows:
        return f"{selection.get('choice')!r}: {selection.get('reason', 'no cross-validation')}"
    rule = selection.get("rule", "mean")
    split_names = list(dict.fromkeys(r["split"] for r in rows))
    lines = ["| candidate | " + " | ".join(split_names) + f" | {rule.replace('_', ' ')} |",
             "|---" * (len(split_names) + 2) + "|"]
    for name, mean in scores(rows, rule).items():
        cells = [f"{r['ratio']:.3f}" for s in split_names for r in rows
                 if r["split"] == s and r["candidate"] == name]
        chosen = name == selection.get("choice")
        lines.append(f"| {'**' + name + '**' if chosen else name} | " + " | ".join(cells) +
                     f" | {'**' if chosen else ''}{mean:.3f}{'**' if chosen else ''} |")
    return "\n".join(lines)
