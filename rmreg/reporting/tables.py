"""Mean ± std over seeds and accuracy tables in the shape of the paper's Table 1.

Example:
    >>> runs = [{"label": "bt", "final": {"test": {"reward_accuracy": a, "pairs": 8}}} for a in (0.5, 0.75)]
    >>> print(accuracy_table(summarize(runs), "reward_accuracy"))
    objective         test
    bt         62.5 ± 17.7
"""

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["accuracy_table", "summarize"]

Runs = Sequence[Mapping[str, Any]]


def summarize(runs: Runs) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Mean and standard deviation over seeds: objective → split → metric → ``{"mean", "std", "n"}``.

    Each run is a mapping with ``label`` (the objective) and ``final`` (split → metric → value).
    """
    grouped: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in runs:
        for split, metrics in run["final"].items():
            for metric, value in metrics.items():
                if metric != "pairs":
                    grouped.setdefault(run["label"], {}).setdefault(split, {}).setdefault(metric, []).append(value)
    return {
        label: {
            split: {
                metric: {
                    "mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "n": len(values),
                }
                for metric, values in metrics.items()
            }
            for split, metrics in splits.items()
        }
        for label, splits in grouped.items()
    }


def _cell(stats: Mapping[str, float]) -> str:
    mean = f"{100 * stats['mean']:.1f}"
    return f"{mean} ± {100 * stats['std']:.1f}" if stats["n"] > 1 else mean


def accuracy_table(
    summary: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]],
    metric: str,
    *,
    extra_rows: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
    """A plain-text table: one row per objective, one column per evaluation split, accuracy in percent.

    Args:
        summary: from :func:`summarize`.
        metric: ``"reward_accuracy"`` or ``"lm_accuracy"``.
        extra_rows: rows of single values (split → fraction) to put first, e.g. the model before training.
    """
    splits = list(next(iter(summary.values())))
    rows = [(label, {s: f"{100 * v:.1f}" for s, v in values.items()}) for label, values in (extra_rows or {}).items()]
    rows += [(label, {s: _cell(stats[s][metric]) for s in splits}) for label, stats in summary.items()]
    first = max(len("objective"), *(len(label) for label, _ in rows))
    widths = [max(len(split), *(len(cells[split]) for _, cells in rows)) for split in splits]
    lines = ["  ".join(["objective".ljust(first), *(s.rjust(w) for s, w in zip(splits, widths, strict=True))])]
    lines += [
        "  ".join([label.ljust(first), *(cells[s].rjust(w) for s, w in zip(splits, widths, strict=True))])
        for label, cells in rows
    ]
    return "\n".join(lines)
