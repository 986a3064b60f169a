"""What a benchmark run returns: the headline, subset and section scores, example counts and the details."""

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["BenchmarkResult"]


@dataclasses.dataclass(frozen=True)
class BenchmarkResult:
    """Scores of one reward model on one benchmark, as fractions (the official scripts' percentages / 100).

    Attributes:
        benchmark: the benchmark's name (a key of :data:`rmreg.evaluation.BENCHMARKS`).
        score: the headline, computed as the benchmark's official scripts compute it (see each benchmark's
            module for the rule and the file it comes from).
        subsets: subset -> score, in the order the subsets first appear (RM-Bench: domain -> score).
        sections: section -> score (RewardBench's Chat / Chat Hard / Safety / Reasoning, RM-Bench's easy /
            normal / hard); empty where the benchmark has none.
        counts: subset -> number of examples scored.
        details: benchmark-specific extras (RM-Bench's 3x3 matrices, the RewardBench 2 Ties terms, the options
            used, rows left out), JSON-serialisable.
    """

    benchmark: str
    score: float
    subsets: Mapping[str, float]
    sections: Mapping[str, float] = dataclasses.field(default_factory=dict)
    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def examples(self) -> int:
        """The number of examples scored."""
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON types: ``benchmark``, ``score``, ``subsets``, ``sections``, ``counts``,
        ``examples`` and ``details``."""
        return {
            "benchmark": self.benchmark,
            "score": self.score,
            "subsets": dict(self.subsets),
            "sections": dict(self.sections),
            "counts": dict(self.counts),
            "examples": self.examples,
            "details": dict(self.details),
        }

    def table(self) -> str:
        """A plain-text table: one line per subset (examples, score %), then the sections, then the headline.

        Example:
            >>> print(BenchmarkResult("hhh", 0.75, {"harmless": 1.0, "honest": 0.5}, counts={"harmless": 2,
            ...     "honest": 2}).table())
            subset       examples   score
            harmless            2  100.00
            honest              2   50.00
            <BLANKLINE>
            score (hhh)             75.00
        """
        rows = [(name, str(self.counts.get(name, "")), f"{100 * value:.2f}") for name, value in self.subsets.items()]
        sections = [(name, "", f"{100 * value:.2f}") for name, value in self.sections.items()]
        headline = (f"score ({self.benchmark})", "", f"{100 * self.score:.2f}")
        everything = [("subset", "examples", "score"), *rows, *sections, headline]
        widths = [max(len(row[column]) for row in everything) for column in range(3)]

        def line(row: tuple[str, str, str]) -> str:
            return f"{row[0].ljust(widths[0])}  {row[1].rjust(widths[1])}  {row[2].rjust(widths[2])}".rstrip()

        lines = [line(everything[0]), *map(line, rows)]
        if sections:
            lines += ["", line(("section", "", "")), *map(line, sections)]
        return "\n".join([*lines, "", line(headline)])
