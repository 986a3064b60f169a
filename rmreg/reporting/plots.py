"""The training-curves figure of ``rmreg train``: the Bradley–Terry loss per run, and the held-out accuracies as
bars (mean ± std over seeds, one dot per seed), one colour per objective and one line style / marker per seed."""

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.typing import LineStyleType

__all__ = ["BRADLEY_TERRY_TERM", "headless_pyplot", "plot_curves"]

Runs = Sequence[Mapping[str, Any]]

BRADLEY_TERRY_TERM = "bradley_terry"
"""The name under which the Bradley–Terry term's unweighted value is logged (every objective's reward term)."""

_LINE_STYLES: tuple["LineStyleType", ...] = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def headless_pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend, or ``None`` when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _smooth(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def _loss_panel(axis: Any, runs: Runs, labels: list[str], seeds: list[Any]) -> None:
    for run in runs:
        history = run["history"]
        key = BRADLEY_TERRY_TERM if history and BRADLEY_TERRY_TERM in history[0] else "loss"
        steps = [record["step"] for record in history]
        values = _smooth([record[key] for record in history], max(1, len(steps) // 10))
        axis.plot(
            steps,
            values,
            color=f"C{labels.index(run['label'])}",
            linestyle=_LINE_STYLES[seeds.index(run["seed"]) % len(_LINE_STYLES)],
            alpha=0.8,
            linewidth=1.2,
        )
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("Bradley–Terry term −log σ(r_c − r_r)\n(training batches, moving average)")
    axis.set_title("training loss: the Bradley–Terry term alone", fontsize=9)
    axis.grid(alpha=0.3)


def _bar_panel(axis: Any, runs: Runs, labels: list[str], seeds: list[Any], metric: str, title: str) -> bool:
    splits = list(runs[0]["final"])
    if not all(metric in run["final"][split] for run in runs for split in splits):
        return False
    width = 0.8 / len(labels)
    for j, label in enumerate(labels):
        mine = [run for run in runs if run["label"] == label]
        for i, split in enumerate(splits):
            values = [100 * run["final"][split][metric] for run in mine]
            x = i + (j - (len(labels) - 1) / 2) * width
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            axis.bar(x, statistics.fmean(values), width * 0.9, yerr=std, color=f"C{j}", alpha=0.55, capsize=3)
            for run, value in zip(mine, values, strict=True):
                k = seeds.index(run["seed"])
                jitter = (k - (len(seeds) - 1) / 2) * width * 0.7 / max(1, len(seeds))  # seeds side by side
                marker = _MARKERS[k % len(_MARKERS)]
                axis.plot(x + jitter, value, marker, color=f"C{j}", markeredgecolor="black", markersize=4, linewidth=0)
    axis.axhline(50, color="grey", linewidth=0.8, linestyle=":")
    axis.set_xticks(range(len(splits)), [s.replace("test_", "") for s in splits], fontsize=8)
    axis.set_ylim(0, 100)
    axis.set_ylabel("pair accuracy (%)")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3, axis="y")
    return True


def plot_curves(runs: Runs, path: Path, *, title: str | None = None) -> bool:
    """The figure of a set of runs (one per objective and seed), written to ``path`` as PNG.

    Left: the Bradley–Terry term alone (not the total loss, whose regularizer part differs between
    objectives) against the optimizer step, one colour per objective, one line style per seed. Middle and right:
    the reward model's and the LM head's pair accuracy on each evaluation split after training, as bars
    (mean ± std over seeds) with one dot (marker per seed) per run.

    Args:
        runs: records with ``label``, ``seed``, ``history`` (per-step dicts with ``step`` and the term values)
            and ``final`` (split → metric → fraction).
        path: the PNG to write.
        title: the figure's title; default names the objectives and the number of seeds.

    Returns:
        ``False`` (and writes nothing) when matplotlib is not installed.
    """
    pyplot = headless_pyplot()
    if pyplot is None:
        return False
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    labels = list(dict.fromkeys(run["label"] for run in runs))
    seeds = list(dict.fromkeys(run["seed"] for run in runs))
    figure, axes = pyplot.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1, 1.2, 1.2]})
    _loss_panel(axes[0], runs, labels, seeds)
    _bar_panel(axes[1], runs, labels, seeds, "reward_accuracy", "reward model: pair accuracy after training")
    if not _bar_panel(axes[2], runs, labels, seeds, "lm_accuracy", "LM head's implicit reward (summed log-prob)"):
        axes[2].set_visible(False)
    handles: list[Artist] = [Patch(color=f"C{j}", alpha=0.7, label=label) for j, label in enumerate(labels)]
    handles += [
        Line2D(
            [0],
            [0],
            color="black",
            linestyle=_LINE_STYLES[k % len(_LINE_STYLES)],
            marker=_MARKERS[k % len(_MARKERS)],
            markersize=4,
            label=f"seed {seed}",
        )
        for k, seed in enumerate(seeds)
    ]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    spread = f"bars: mean ± std over {len(seeds)} seeds, dots: seeds" if len(seeds) > 1 else "one seed"
    figure.suptitle(title or f"{' vs '.join(labels)}: training and held-out accuracy ({spread})", fontsize=11)
    figure.tight_layout(rect=(0, 0.07, 1, 0.95))
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return True
