"""The lines that end ``rmreg train``: each objective against Bradley–Terry per split (paired over seeds, with a
95% t-interval and a verdict), and best-of-N with every reward model as the proxy.

Example:
    >>> runs = [
    ...     {"label": label, "objective": label, "seed": seed, "final": {"test": {"reward_accuracy": acc}}}
    ...     for label, accs in (("bt", (0.80, 0.78, 0.82)), ("grm-sft", (0.82, 0.79, 0.85)))
    ...     for seed, acc in enumerate(accs)
    ... ]
    >>> print("\\n".join(accuracy_lines(runs)))
    test: GRM (grm-sft) − BT: +2.0 ± 2.5 points (95% CI over 3 seeds): no detectable difference
"""

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from rmreg.reporting.paired import paired_difference, paired_differences

__all__ = ["accuracy_lines", "best_of_n_lines", "comparisons"]

Runs = Sequence[Mapping[str, Any]]
BASELINE = "bt"


def comparisons(runs: Runs, baseline: str = BASELINE) -> list[str]:
    """The labels to set against ``baseline``'s runs: every other label with at least two seeds in common."""
    seeds: dict[str, set[Any]] = {}
    for run in runs:
        seeds.setdefault(run["label"], set()).add(run["seed"])
    if baseline not in seeds:
        return []
    return [label for label in seeds if label != baseline and len(seeds[label] & seeds[baseline]) >= 2]


def _name(label: str) -> str:
    """``grm-sft (α=0.1)`` → ``GRM (grm-sft, α=0.1)``; other labels as they are."""
    if not label.startswith("grm"):
        return label
    objective, _, setting = label.partition(" (")
    return f"GRM ({objective}, {setting.removesuffix(')')})" if setting else f"GRM ({objective})"


def accuracy_lines(
    runs: Runs, *, baseline: str = BASELINE, metric: str = "reward_accuracy", shifted: Sequence[str] = ()
) -> list[str]:
    """One line per compared objective and split: ``split: GRM (…) − BT: +x.x ± y.y points (95% CI over n
    seeds): verdict``; the splits in ``shifted`` are marked as shifted."""
    lines = []
    for label in comparisons(runs, baseline):
        for split, difference in paired_differences(runs, baseline, label, metric).items():
            kind = " (shifted)" if split in shifted else ""
            lines.append(f"{split}{kind}: " + difference.describe(f"{_name(label)} − {baseline.upper()}"))
    return lines


def _gold_curves(runs: Runs, label: str) -> dict[Any, list[float]]:
    return {run["seed"]: run["best_of_n"]["gold"] for run in runs if run["label"] == label and "best_of_n" in run}


def best_of_n_lines(runs: Runs, *, baseline: str = BASELINE) -> list[str]:
    """Best-of-N verdict lines from runs that carry a ``best_of_n`` curve (``n``, ``gold``, ``proxy`` lists).

    Per objective: the mean gold reward of the pick at N = 1, at the N where the mean peaks, and at the largest
    N; over-optimization is called when the gold reward at the largest N is below its value at the peak by more
    than the 95% paired interval over seeds (one seed: not called). Then, for each compared objective, the
    paired difference of the gold reward at the largest N against ``baseline``.
    """
    with_curves = [run for run in runs if "best_of_n" in run]
    if not with_curves:
        return []
    ns = with_curves[0]["best_of_n"]["n"]
    labels = list(dict.fromkeys(run["label"] for run in with_curves))
    lines = []
    for label in labels:
        curves = list(_gold_curves(with_curves, label).values())
        mean = [statistics.fmean(values) for values in zip(*curves, strict=True)]
        peak = max(range(len(ns)), key=mean.__getitem__)
        shape = f"gold {mean[0]:+.3f} at N = 1, {mean[-1]:+.3f} at N = {ns[-1]}"
        if peak == len(ns) - 1:
            verdict = "highest at the largest N: no over-optimization"
        elif len(curves) < 2:
            verdict = f"peaks at N = {ns[peak]} ({mean[peak]:+.3f}); one seed, no interval"
        else:
            fall = paired_difference([c[peak] for c in curves], [c[-1] for c in curves], scale=1.0, unit="gold")
            top = "highest at N = 1" if peak == 0 else f"peaks at N = {ns[peak]} ({mean[peak]:+.3f})"
            verdict = f"{top}, then {fall.mean:+.3f} ± {fall.half_width:.3f} by N = {ns[-1]}" + (
                ": falls, over-optimization" if fall.verdict == "worse" else ": no detectable fall"
            )
        lines.append(f"{_name(label)}: {shape}; {verdict}")
    base = _gold_curves(with_curves, baseline)
    for label in labels:
        other = _gold_curves(with_curves, label)
        seeds = sorted(set(base) & set(other))
        if label == baseline or len(seeds) < 2:
            continue
        difference = paired_difference(
            [base[s][-1] for s in seeds], [other[s][-1] for s in seeds], scale=1.0, unit="gold"
        )
        lines.append(f"N = {ns[-1]}: " + difference.describe(f"{_name(label)} − {baseline.upper()}", digits=3))
    return lines
