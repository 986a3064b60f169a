"""What ``rmreg train`` prints and records about its runs: truncation counts, the accuracy tables, the paired
differences against Bradley–Terry (95% t-intervals over seeds) and the best-of-N verdict."""

from collections.abc import Mapping
from typing import Any

from rmreg import reporting
from rmreg.data import TruncationStats
from rmreg.task import runs as builtin

__all__ = ["paired_records", "print_tables", "print_verdicts", "truncation_line"]


def truncation_line(split: str, stats: TruncationStats, max_length: int) -> str | None:
    """What a split lost to ``--max-length`` (cut or dropped pairs), or ``None`` when nothing was."""
    if not stats.truncated and not stats.dropped:
        return None
    if stats.dropped:
        return (
            f"{split}: {stats.dropped} of {stats.pairs} pairs are longer than {max_length} tokens and were left out "
            "(--truncation drop)"
        )
    responses = f", and of {stats.responses_cut} of them the responses' starts too" if stats.responses_cut else ""
    return (
        f"{split}: {stats.truncated} of {stats.pairs} pairs are longer than {max_length} tokens (--max-length) and "
        f"were cut at the start: the prompt's first tokens{responses}; each response keeps its end, where the "
        "reward is read"
    )


def print_tables(summary: Mapping[str, Any], base_lm: Mapping[str, float], builtin_data: bool) -> None:
    """The reward model's and the LM head's pair accuracy (mean ± std over seeds) per objective and split."""
    seeds = max(stats["reward_accuracy"]["n"] for splits in summary.values() for stats in splits.values())
    spread = f", mean ± std over {seeds} seeds" if seeds > 1 else ""
    print(f"\nPair accuracy (%) of the reward model{spread}")
    print(reporting.accuracy_table(summary, "reward_accuracy"))
    print(f"\nPair accuracy (%) of the LM head's implicit reward (summed response log-prob){spread}")
    print(reporting.accuracy_table(summary, "lm_accuracy", extra_rows={"base LM (before training)": base_lm}))
    if builtin_data:
        print(builtin.DESCRIPTION)


def print_verdicts(runs: list[dict[str, Any]], builtin_data: bool) -> dict[str, Any]:
    """Each objective against Bradley–Terry (paired over seeds) and the best-of-N verdict; what was printed."""
    shifted = [name for name in builtin.SPLITS if name not in ("train", "test")] if builtin_data else []
    lines = {"accuracy": reporting.accuracy_lines(runs, shifted=shifted), "best_of_n": reporting.best_of_n_lines(runs)}
    if lines["accuracy"]:
        print("\nPaired differences in reward-model pair accuracy (same seeds, same data order; t-interval):")
        print("\n".join(lines["accuracy"]))
    elif "bt" in {run["objective"] for run in runs}:
        print("\n(no paired differences: comparing with bt needs another objective and at least 2 seeds)")
    if lines["best_of_n"]:
        n, kl = runs[0]["best_of_n"]["n"][-1], runs[0]["best_of_n"]["kl"][-1]
        print(
            f"\nBest-of-N, N = 1 … {n} (KL up to {kl:.2f}): each reward model picks the best of N samples of the "
            "built-in LM; the task's gold reward scores the pick (mean over prompts and seeds):"
        )
        print("\n".join(lines["best_of_n"]))
    return lines


def paired_records(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """For metrics.json: label − bt → split → the paired difference (points) with its interval and verdict."""
    return {
        f"{label} − bt": {split: d.to_dict() for split, d in reporting.paired_differences(runs, "bt", label).items()}
        for label in reporting.comparisons(runs)
    }
