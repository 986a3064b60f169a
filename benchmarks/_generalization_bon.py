"""Best-of-N over-optimization for ``generalization.py``: the plot (the sampling and the unbiased estimator live in
:mod:`rmreg.task.best_of_n`, which ``rmreg train`` uses too)."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from rmreg.reporting import headless_pyplot
from rmreg.task.best_of_n import best_of_n, bon_kl, sample_responses, standardize

__all__ = ["best_of_n", "bon_kl", "plot_best_of_n", "sample_responses", "standardize"]


def plot_best_of_n(
    curves: Mapping[str, Mapping[str, Mapping[str, list[list[float]]]]], ns: Sequence[int], path: Path
) -> bool:
    """Gold and standardized proxy reward against KL, one row of panels per condition, one colour per objective.

    Args:
        curves: condition → objective → ``"gold"`` / ``"proxy"`` → one curve (a value per N) per seed.
        ns: the values of N.
        path: the PNG to write.

    Returns:
        ``False`` (and writes nothing) when matplotlib is not installed.
    """
    pyplot = headless_pyplot()
    if pyplot is None:
        return False
    kls = [bon_kl(n) for n in ns]
    figure, axes = pyplot.subplots(len(curves), 2, figsize=(11, 4 * len(curves)), squeeze=False, sharex=True)
    for row, (condition, by_objective) in zip(axes, curves.items(), strict=True):
        for colour, (objective, kinds) in enumerate(by_objective.items()):
            for axis, kind in zip(row, ("gold", "proxy"), strict=True):
                values = torch.tensor(kinds[kind])
                mean, std = values.mean(0), values.std(0) if len(values) > 1 else torch.zeros(len(ns))
                style = "--" if objective.startswith("grm") else "-"
                axis.plot(kls, mean, style, color=f"C{colour}", label=objective, marker=".")
                axis.fill_between(kls, mean - std, mean + std, color=f"C{colour}", alpha=0.12)
        row[0].set_ylabel(f"{condition}\ngold reward of the pick")
        row[1].set_ylabel("proxy reward of the pick (standardized)")
    for axis in axes.flat:
        axis.grid(alpha=0.3)
    for axis in axes[-1]:
        axis.set_xlabel(f"KL = log N − (N − 1)/N, N = {ns[0]} … {ns[-1]}")
    axes[0][1].legend(fontsize=8)
    figure.suptitle(
        "Best-of-N: gold and proxy reward of the proxy's pick against KL (mean ± std over seeds)", fontsize=11
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return True
