"""MT-Bench human judgments (Zheng et al., 2023) as the GRM paper's official code scores them.

Layout: ``lmsys/mt_bench_human_judgments``, splits ``human`` (3355 rows) and ``gpt4_pair`` (2400 rows), files
``data/human-*.parquet`` and ``data/gpt4_pair-*.parquet``, one judgment per row with ``question_id``,
``model_a``, ``model_b``, ``winner`` (``model_a``, ``model_b``, or a tie: ``tie``, ``tie (inconsistent)``),
``judge``, ``conversation_a``, ``conversation_b`` (lists of ``{"role", "content"}`` messages) and ``turn``.
Read: ``winner``, ``conversation_a``, ``conversation_b``. The subset of a row is its split, read from the file's
name (``human-00000-of-00001.parquet`` -> ``human``), else from a ``subset`` column, else the file's name
(``"all"`` for rows passed in memory).

Pairs (``build_ood_eval_dataset`` in ``rm_eval/load_eval_datasets.py`` of YangRui2015/Generalizable-Reward-Model,
commit 3c31be2): the official code loads both splits, ``human`` and ``gpt4_pair``, and concatenates them; the
chosen conversation is ``conversation_a`` if ``winner == "model_a"`` and ``conversation_b`` otherwise, so **a tie
counts as a win of model B** (``ties="model_b"``, the default). Each conversation is scored whole (both turns,
whatever ``turn`` says), as the official code applies the chat template to all of it. ``ties="drop"`` is the
stricter choice: it leaves tied judgments out, so only pairs with a human (or GPT-4) preference are scored.

Scoring (``rm_eval/eval.py``): a pair is correct iff ``reward(chosen) > reward(rejected)`` strictly; the headline
is the fraction correct over all pairs given (both splits when both files are passed, as the official code does),
each split's fraction reported beside it. The official loader's ``drop_last=True`` (8 pairs per device) leaves out
the last ``len % 8`` pairs (per process); rmreg scores every pair.
"""

from collections import Counter
from typing import Literal

from rmreg.evaluation.loading import Row, subset_of
from rmreg.evaluation.plan import BenchmarkPlan, chosen_wins, subset_accuracy
from rmreg.evaluation.result import BenchmarkResult
from rmreg.evaluation.scorers import Item

__all__ = ["SPLITS", "TIES", "is_tie", "prepare"]

SPLITS = ("human", "gpt4_pair")
TIES = ("model_b", "drop")


def is_tie(winner: str) -> bool:
    """Whether a ``winner`` value is a tie (``tie``, ``tie (inconsistent)``)."""
    return winner.startswith("tie")


def _winner(row: Row) -> str:
    winner = row.text("winner")
    if winner not in ("model_a", "model_b") and not is_tie(winner):
        raise row.error("winner", f"must be 'model_a', 'model_b' or a tie ('tie', ...), got {winner!r}")
    return winner


def prepare(rows: list[Row], *, ties: Literal["model_b", "drop"] = "model_b") -> BenchmarkPlan:
    """Read MT-Bench human-judgment rows (see the module doc) into a plan: chosen conversation, then rejected.

    Args:
        rows: the judgments.
        ties: ``"model_b"`` (the official code: a tie is scored as a win of model B) or ``"drop"`` (leave ties
            out).

    Raises:
        ValueError: an unknown ``ties``, a bad row, or (with ``"drop"``) nothing but ties.
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}; got {ties!r}")
    items: list[Item] = []
    subsets = []
    dropped: Counter[str] = Counter()
    for row in rows:
        winner, conversation_a, conversation_b = (
            _winner(row),
            row.messages("conversation_a"),
            row.messages("conversation_b"),
        )
        if ties == "drop" and is_tie(winner):
            dropped[subset_of(row, SPLITS)] += 1
            continue
        items += [conversation_a, conversation_b] if winner == "model_a" else [conversation_b, conversation_a]
        subsets.append(subset_of(row, SPLITS))
    if not subsets:
        raise ValueError(f"mt-bench: all {len(rows)} judgments are ties, and ties='drop' leaves nothing to score")

    def finish(rewards: list[float]) -> BenchmarkResult:
        correct = chosen_wins(rewards)
        accuracy, counts = subset_accuracy(subsets, correct)
        details = {"ties": ties, "dropped_ties": dict(dropped)}
        return BenchmarkResult("mt-bench", sum(correct) / len(correct), accuracy, {}, counts, details)

    return BenchmarkPlan("mt-bench", items, finish)
