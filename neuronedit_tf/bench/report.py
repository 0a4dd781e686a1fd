"""Run methods on benchmark cases and write markdown tables (``benchmarks/RESULTS.md``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


def markdown_table(rows, columns, digits=3):
    """``rows``: list of dicts; ``columns``: keys in order. Floats rounded to ``digits``."""

    def cell(value):
        if isinstance(value, float):
            return "–" if not np.isfinite(value) else f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def mean_sd(values):
    """``"0.123 ± 0.004"`` over seeds/cases (just the mean when there is one value;
    non-finite values, e.g. a metric a case does not have, are left out; "–" if none)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def run_methods(case, methods, fit, score, seeds=(0,), predictions=None):
    """Fit and score every method on one case over seeds.

    Args:
        case: the benchmark case (has ``source``, ``target``, ``extra``).
        methods: ``{name: factory(seed) -> object with fit/transform}``; a factory
            may instead be a function ``(case, seed) -> prediction`` marked with
            ``direct=True`` attribute for closed-form baselines.
            A factory with a ``seeds`` attribute runs over those seeds instead
            (e.g. one seed for deterministic methods).
        fit: ``{name: keyword arguments for fit}`` (e.g. epochs).
        score: ``prediction -> dict`` of metrics.
        predictions: a dict to receive each method's first prediction (for figures).

    Returns:
        list of rows ``{"method", "seed", "seconds", **metrics}``.
    """
    rows = []
    for name, factory in methods.items():
        for seed in getattr(factory, "seeds", seeds):
            started = time.time()
            if getattr(factory, "direct", False):
                prediction = factory(case, seed)
            else:
                method = factory(seed)
                method.fit(case.source, case.target, extra=case.extra, **fit.get(name, {}))
                prediction = method.transform(case.extra)
            if predictions is not None:
                predictions.setdefault(name, np.asarray(prediction))
            rows.append({"method": name, "seed": seed, "seconds": time.time() - started,
                         **score(np.asarray(prediction))})
    return rows


def summarise(rows, metrics, seconds="fit+transform s"):
    """One row per method: each metric as mean ± sd over its rows (cases x seeds), the
    number of seeds (``"seeds"``) and the mean seconds (column ``seconds``)."""
    summary = []
    for name in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == name]
        entry = {"method": name}
        for metric in metrics:
            entry[metric] = mean_sd([r[metric] for r in mine])
        entry["seeds"] = len({r.get("seed") for r in mine})
        entry[seconds] = f"{np.nanmean([r['seconds'] for r in mine]):.1f}"
        summary.append(entry)
    return summary


@dataclass
class Section:
    """One experiment's part of ``benchmarks/RESULTS.md``, as its ``run`` returns it.

    Attributes:
        name: the experiment's key (``"batch"``, ``"drugs"``, ``"images"``).
        title: the section heading.
        markdown: the section body: what the data are, the table(s), figure links
            (relative to the output folder), the seeds, what we learned.
        figures: file names of the figures written into the output folder.
        seconds: wall time of the experiment.
        command: the exact command that regenerates it.
    """

    name: str
    title: str
    markdown: str
    figures: list = field(default_factory=list)
    seconds: float = 0.0
    command: str = ""

    def render(self):
        """The section as markdown, heading, command and wall time included."""
        return (f"## {self.title}\n\nRegenerate with `{self.command}` "
                f"(wall time {self.seconds / 60:.1f} min).\n\n{self.markdown.strip()}\n")


#: The comparison methods that train GANs or regularised autoencoders: the costliest,
#: run with fewer seeds/epochs where a benchmark's time budget says so.
EXPENSIVE_METHODS = ("regae", "gan", "cyclegan", "resnetgan")


def trained(name):
    """Whether registry method ``name`` trains a network (so its result depends on the seed)."""
    from neuronedit_tf import baselines
    from neuronedit_tf.baselines.networks import NetworkBaseline

    return issubclass(baselines.method_class(name), NetworkBaseline)


def comparison_methods(names=None, exclude=("neuron_edit",), network=None, seeds=(0,),
                       one_seed=(), **common):
    """Factories of the registry's comparison methods for :func:`run_methods`.

    Args:
        names: registry names (default: all of :func:`neuronedit_tf.baselines.names`).
        exclude: names left out (neuron editing is run as ``NeuronEditor`` itself).
        network: extra constructor arguments of the trained methods (e.g. ``epochs``).
        seeds: the seeds of the trained methods; the others are deterministic and run once.
        one_seed: trained methods run with the first seed only (a time budget).
        common: constructor arguments of every method (e.g. ``transform``, ``cofactor``).

    Returns:
        ``{name: factory(seed) -> unfitted method}``, each factory with a ``seeds`` attribute.
    """
    from neuronedit_tf import baselines

    factories = {}
    for name in names or baselines.names():
        if name in exclude:
            continue
        seeded = trained(name)
        options = dict(common, **(network or {})) if seeded else dict(common)

        def factory(seed, name=name, options=options):
            return baselines.get(name, seed=seed, **options)

        factory.seeds = tuple(seeds) if seeded and name not in one_seed else tuple(seeds)[:1]
        factories[name] = factory
    return factories


def editor_factory(seeds=(0,), **options):
    """A :func:`run_methods` factory of ``NeuronEditor(seed=seed, **options)``."""
    from neuronedit_tf.editor import NeuronEditor

    def factory(seed):
        return NeuronEditor(seed=seed, **options)

    factory.seeds = tuple(seeds)
    return factory


def direct(function, seeds=(0,)):
    """Mark ``function(case, seed) -> prediction`` as a closed-form method for :func:`run_methods`."""
    function.direct = True
    function.seeds = tuple(seeds)
    return function


def write_results(out_dir, sections, preamble=""):
    """Store each section under ``out_dir/sections/NAME.md`` and rebuild ``out_dir/RESULTS.md``.

    RESULTS.md is every stored section in the order batch, drugs, images (then any
    other), so running one experiment updates its part and keeps the others.
    """
    from pathlib import Path

    from neuronedit_tf.data.atomic import atomic_path

    out = Path(out_dir)
    (out / "sections").mkdir(parents=True, exist_ok=True)
    for section in sections:
        with atomic_path(out / "sections" / f"{section.name}.md") as path:
            Path(path).write_text(section.render())
    order = {"batch": 0, "drugs": 1, "images": 2}
    stored = sorted((out / "sections").glob("*.md"), key=lambda p: (order.get(p.stem, 9), p.stem))
    text = preamble.strip() + "\n\n" + "\n".join(p.read_text() for p in stored)
    with atomic_path(out / "RESULTS.md") as path:
        Path(path).write_text(text)
    return out / "RESULTS.md"


def leaders(rows, metrics):
    """One markdown line per metric naming the best method by its mean over seeds (and cases).

    Args:
        rows: :func:`run_methods` rows.
        metrics: ``{metric: "lower"|"higher"}`` (which way is better).

    Example:
        >>> rows = [{"method": "a", "emd": 0.2}, {"method": "b", "emd": 0.1}]
        >>> leaders(rows, {"emd": "lower"})
        '- emd (lower is better): **b** 0.100, then a 0.200'
    """
    lines = []
    for metric, better in metrics.items():
        means = {}
        for name in dict.fromkeys(r["method"] for r in rows):
            values = [r[metric] for r in rows if r["method"] == name and np.isfinite(r[metric])]
            if values:
                means[name] = float(np.mean(values))
        ranked = sorted(means, key=means.get, reverse=better == "higher")
        if ranked:
            rest = ", ".join(f"{n} {means[n]:.3f}" for n in ranked[1:3])
            lines.append(f"- {metric} ({better} is better): **{ranked[0]}** "
                         f"{means[ranked[0]]:.3f}" + (f", then {rest}" if rest else ""))
    return "\n".join(lines)
