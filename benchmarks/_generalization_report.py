"""Reports of ``generalization.py``: accuracy tables, the best-of-N table, CSV rows and the Markdown report."""

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _generalization_bon as bon
import torch

from rmreg import reporting as report

__all__ = ["bon_table", "bon_verdicts", "run_rows", "text_tables", "write_csv", "write_report"]


def text_tables(runs: list[dict[str, Any]], base_lm: dict[str, float]) -> str:
    """Reward and LM-head accuracy tables (mean ± std over seeds, %), as ``rmreg train`` prints them."""
    summary = report.summarize(runs)
    with_lm = {label: stats for label, stats in summary.items() if "lm_accuracy" in stats["test"]}
    reward = report.accuracy_table(summary, "reward_accuracy")
    lm = report.accuracy_table(with_lm, "lm_accuracy", extra_rows={"base LM (before training)": base_lm})
    return f"reward model:\n{reward}\n\nLM head's implicit reward (summed response log-prob):\n{lm}"


def bon_table(rows: list[dict[str, Any]], ns: Sequence[int]) -> str:
    """Gold reward of the best-of-N pick (mean ± std over seeds) at a few N, per condition and objective."""
    shown = [n for n in ns if n in (1, 4, 16, 64, 256) or n == ns[-1]]
    lines = ["| condition | objective | " + " | ".join(f"N={n} (KL {bon.bon_kl(n):.2f})" for n in shown) + " |"]
    lines.append("|---|---|" + "---|" * len(shown))
    keys = dict.fromkeys((row["condition"], row["objective"]) for row in rows)
    for condition, objective in keys:
        cells = []
        for n in shown:
            values = torch.tensor(
                [r["gold"] for r in rows if (r["condition"], r["objective"], r["n"]) == (condition, objective, n)]
            )
            cells.append(f"{values.mean():.3f} ± {values.std():.3f}" if len(values) > 1 else f"{values.mean():.3f}")
        lines.append(f"| {condition} | {objective} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def run_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One CSV row per run and split (the LM head's accuracy is empty for the ensemble)."""
    return [
        {"table": run["table"], "objective": run["label"], "seed": run["seed"], "split": split,
         "reward_accuracy": metrics["reward_accuracy"], "lm_accuracy": metrics.get("lm_accuracy", "")}
        for run in runs
        for split, metrics in run["final"].items()
    ]  # fmt: skip


def bon_verdicts(curves: dict[str, Any], ns: Sequence[int]) -> str:
    """Per condition, the verdict lines of :func:`rmreg.reporting.best_of_n_lines` (over-optimization per
    objective, then each objective − Bradley–Terry at the largest N, paired over seeds)."""
    blocks = []
    for condition, by_objective in curves.items():
        runs = [
            {"label": objective, "seed": seed, "best_of_n": {"n": list(ns), "gold": gold}}
            for objective, kinds in by_objective.items()
            for seed, gold in enumerate(kinds["gold"])
        ]
        lines = report.best_of_n_lines(runs)
        blocks.append(f"{condition}:\n" + "\n".join(f"- {line}" for line in lines))
    return "\n\n".join(blocks)


PAPER = """Paper (Yang et al., NeurIPS 2024, Table 1; gemma-2b-it with LoRA, pair accuracy %, as reprinted elsewhere;
in-distribution Unified-Feedback / out-of-distribution HHH-Alignment / MT-Bench):

| objective | 40K pairs: UF / HHH / MT | 400K pairs: UF / HHH / MT |
|---|---|---|
| Bradley–Terry | 68.8 / 70.3 / 69.1 | 72.1 / 73.4 / 71.2 |
| + margin | 69.6 / 69.8 / 71.0 | 72.0 / 75.0 / 72.6 |
| + label smoothing | 68.5 / 68.8 / 71.9 | 71.5 / 72.1 / 71.2 |
| + ensemble | 69.9 / 72.2 / 71.1 | 72.8 / 76.8 / 73.7 |
| GRM w/ dpo | 70.2 / 71.6 / 71.3 | 73.8 / 79.2 / 73.4 |
| GRM w/ dpo-noref | 71.4 / 76.6 / 72.1 | 73.9 / 79.7 / 73.0 |
| GRM w/ sft | 71.5 / 78.7 / 73.0 | 73.2 / 79.8 / 73.4 |

Figure 2: best-of-N up to N ≈ 405 (KL ≈ 5) with proxies trained on gold-relabelled pairs (also with 25% of the
labels flipped): Bradley–Terry's gold reward peaks and falls while its proxy reward rises; GRM's gold keeps rising."""


def write_report(
    path: Path, head: str, sections: list[tuple[str, str, Any]], bon_summary: str, plot: str | None
) -> None:
    """The Markdown report: the header, each accuracy table, the best-of-N table and the plot."""
    body = [f"# Generalization: a miniature of the paper's Tables 1–2 and Figure 2\n\n{head}", PAPER]
    body += [
        f"## {title}\n\nPair accuracy (%), mean ± std over seeds\n\n```\n{text}\n```" for title, text, _ in sections
    ]
    body.append(f"## Best-of-N: gold reward of the pick, mean ± std over seeds\n\n{bon_summary}")
    body.append(f"![best-of-N]({plot})" if plot else "(no plot: matplotlib is not installed)")
    path.write_text("\n\n".join(body) + "\n")
