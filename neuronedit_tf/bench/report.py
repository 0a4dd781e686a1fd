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
    """``"0.123 ± 0.004"`` over seeds/cases (just the mean when there is one value)."""
    values = np.asarray(values, np.float64)
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def run_methods(case, methods, fit, score, seeds=(0,)):
    """Fit and score every method on one case over seeds.

    Args:
        case: the benchmark case (has ``source``, ``target``, ``extra``).
        methods: ``{name: factory(seed) -> object with fit/transform}``; a factory
            may instead be a function ``(case, seed) -> prediction`` marked with
            ``direct=True`` attribute for closed-form baselines.
        fit: keyword arguments for ``fit`` (e.g. epochs).
        score: ``prediction -> dict`` of metrics.

    Returns:
        list of rows ``{"method", "seed", "seconds", **metrics}``.
    """
    rows = []
    for name, factory in methods.items():
        for seed in seeds:
            started = time.time()
            if getattr(factory, "direct", False):
                prediction = factory(case, seed)
            else:
                method = factory(seed)
                method.fit(case.source, case.target, extra=case.extra, **fit.get(name, {}))
                prediction = method.transform(case.extra)
            rows.append({"method": name, "seed": seed, "seconds": time.time() - started,
                         **score(np.asarray(prediction))})
    return rows


def summarise(rows, metrics):
    """One row per method: each metric as mean ± sd over its rows, plus mean seconds."""
    summary = []
    for name in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == name]
        entry = {"method": name}
        for metric in metrics:
            entry[metric] = mean_sd([r[metric] for r in mine])
        entry["fit+transform s"] = f"{np.mean([r['seconds'] for r in mine]):.1f}"
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
