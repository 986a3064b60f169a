"""JudgeBench (Tan et al., ICLR 2025, arXiv 2410.12784) with the official scoring of ScalerLab/JudgeBench.

Layout: the release's JSON Lines files (``data/dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl``, 350
pairs, and the ``claude-3-5-sonnet`` one; also on the hub as ``ScalerLab/JudgeBench``), one row per pair with
``pair_id``, ``original_id``, ``source``, ``question``, ``response_model``, ``response_A``, ``response_B`` and
``label`` (``"A>B"`` or ``"B>A"``). Read: ``source``, ``question``, ``response_A``, ``response_B``, ``label``.
Items: ``(question, response_A)`` and ``(question, response_B)``.

Scoring (ScalerLab/JudgeBench, commit e2c52c2):

* a reward model's verdict is ``"A>B" if reward(A) > reward(B) else "B>A"`` (the ``reward_model`` judges of
  ``utils/judges.py``), so an exact tie reads as ``"B>A"``;
* ``run_judge.py`` by default judges each pair twice, the second time with the responses swapped, and
  ``compute_final_metrics(reverse_order=True)`` in ``utils/metrics.py`` flips the second verdict back and counts
  a pair correct when the verdicts matching the label outnumber those matching the opposite label. For a reward
  model both games see the same two rewards (it scores each response on its own), so a pair is correct iff the
  label's response has the strictly higher reward, and an exact tie is wrong (the two games disagree). The
  published reward-model outputs in ``outputs/`` carry both games. ``single_game=True`` is ``--single_game``
  (``reverse_order=False``): the first verdict alone, so a tie counts as correct when the label is ``"B>A"``.
* Scores per category by the prefix of ``source`` (``mmlu-pro``, ``livebench-reasoning``, ``livebench-math``,
  ``livecodebench``, as ``run_judge.py`` prints them; the paper's Knowledge, Reasoning, Math and Coding), and
  the headline over every pair ("Overall").
"""

from collections import Counter

from rmreg.evaluation.loading import Row
from rmreg.evaluation.plan import BenchmarkPlan
from rmreg.evaluation.result import BenchmarkResult
from rmreg.evaluation.scorers import Item

__all__ = ["CATEGORIES", "LABELS", "prepare", "verdict"]

CATEGORIES = ("mmlu-pro", "livebench-reasoning", "livebench-math", "livecodebench")
LABELS = ("A>B", "B>A")


def verdict(reward_a: float, reward_b: float) -> str:
    """A reward model's verdict on the ordered pair (A, B), as ``utils/judges.py`` computes it."""
    return "A>B" if reward_a > reward_b else "B>A"


def _flip(decision: str) -> str:
    return {"A>B": "B>A", "B>A": "A>B"}[decision]


def _correct(reward_a: float, reward_b: float, label: str, single_game: bool) -> bool:
    decisions = [verdict(reward_a, reward_b)]
    if single_game:
        return decisions[0] == label
    decisions.append(_flip(verdict(reward_b, reward_a)))  # the swapped game, flipped back
    return sum((decision == label) - (decision == _flip(label)) for decision in decisions) > 0


def prepare(rows: list[Row], *, single_game: bool = False) -> BenchmarkPlan:
    """Read JudgeBench rows (see the module doc) into a plan: two items per pair, A first.

    Args:
        rows: the pairs.
        single_game: score the original order only, as ``run_judge.py --single_game`` (see the module doc).
    """
    items: list[Item] = []
    for row in rows:
        question = row.text("question")
        items += [(question, row.text("response_A")), (question, row.text("response_B"))]
        if row.text("label") not in LABELS:
            raise row.error("label", f"must be 'A>B' or 'B>A', got {row.text('label')!r}")
        row.text("source")

    def finish(rewards: list[float]) -> BenchmarkResult:
        correct = [
            _correct(rewards[2 * i], rewards[2 * i + 1], row.text("label"), single_game) for i, row in enumerate(rows)
        ]
        subsets, counts = {}, {}
        for category in CATEGORIES:
            hits = [hit for hit, row in zip(correct, rows, strict=True) if row.text("source").startswith(category)]
            if hits:
                subsets[category], counts[category] = sum(hits) / len(hits), len(hits)
        other = len(rows) - sum(counts.values())
        if other:
            counts["other sources"] = other
        details = {"single_game": single_game, "sources": dict(Counter(row.text("source") for row in rows))}
        return BenchmarkResult("judgebench", sum(correct) / len(correct), subsets, {}, counts, details)

    return BenchmarkPlan("judgebench", items, finish)
