"""A benchmark made ready to score: its items, and the official rule that turns their rewards into a result.

Each benchmark module reads and checks its rows into a :class:`BenchmarkPlan` before any model runs, so bad data
fails in seconds; :meth:`BenchmarkPlan.run` then scores the items in batches and applies the rule.
"""

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from rmreg.evaluation.result import BenchmarkResult
from rmreg.evaluation.scorers import Item, as_scorer, check_rewards

__all__ = ["BenchmarkPlan", "chosen_wins", "mean", "subset_accuracy"]


def mean(values: Iterable[float]) -> float:
    """The arithmetic mean, summed exactly (``math.fsum``); booleans count as 0 and 1."""
    values = [float(value) for value in values]
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def chosen_wins(rewards: list[float]) -> list[bool]:
    """For rewards laid out chosen, rejected, chosen, rejected, ...: whether each chosen one is strictly higher."""
    return [rewards[2 * i] > rewards[2 * i + 1] for i in range(len(rewards) // 2)]


def subset_accuracy(subsets: list[str], correct: list[bool]) -> tuple[dict[str, float], dict[str, int]]:
    """Fraction correct and number of examples per subset, in the order the subsets first appear."""
    counts = Counter(subsets)
    hits = Counter(subset for subset, hit in zip(subsets, correct, strict=True) if hit)
    return {subset: hits[subset] / count for subset, count in counts.items()}, dict(counts)


@dataclasses.dataclass(frozen=True)
class BenchmarkPlan:
    """The items of a benchmark, in order, and ``finish``: rewards of those items -> :class:`BenchmarkResult`.

    Attributes:
        benchmark: the benchmark's name.
        items: ``(prompt, response)`` tuples or conversations, one per response to score.
        finish: the benchmark's official scoring, given one reward per item.
    """

    benchmark: str
    items: list[Item]
    finish: Callable[[list[float]], BenchmarkResult]

    def score(self, scorer: Any, *, batch_size: int = 32, progress: Callable[[int], None] | None = None) -> list[float]:
        """One reward per item, from ``scorer`` called on batches of ``batch_size`` items.

        Args:
            scorer: a ``(RegularizedRewardModel, tokenizer)`` tuple or a callable (see
                :mod:`rmreg.evaluation.scorers`).
            batch_size: items per call of the scorer.
            progress: called with the number of items of each batch once it is scored.

        Raises:
            ValueError: ``batch_size`` < 1, or the scorer returned the wrong number of rewards or a non-finite one.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        score = as_scorer(scorer)
        rewards: list[float] = []
        for start in range(0, len(self.items), batch_size):
            batch = self.items[start : start + batch_size]
            try:
                rewards += check_rewards(score(batch), batch)
            except ValueError as error:
                raise ValueError(f"{self.benchmark}, items {start}..{start + len(batch) - 1}: {error}") from None
            if progress is not None:
                progress(len(batch))
        return rewards

    def run(
        self, scorer: Any, *, batch_size: int = 32, progress: Callable[[int], None] | None = None
    ) -> BenchmarkResult:
        """Score every item (see :meth:`score`) and apply the benchmark's official rule."""
        return self.finish(self.score(scorer, batch_size=batch_size, progress=progress))
