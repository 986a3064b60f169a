"""Ranked examples: several completions of one prompt, checked, ordered best first, and binarized into pairs.

Accepted row formats (``prompt`` optional; completions are text, or lists of ``{"role", "content"}`` messages, one
format per row):

* ``{"prompt", "completions": [...], "ranking": [...]}``: ``ranking`` is a permutation of ``range(K)`` listing
  completion indices best first (``ranking[0]`` is the index of the best completion). No ties.
* ``{"prompt", "completions": [...], "scores": [...]}``: one finite number per completion, higher is better
  (UltraFeedback's ratings); equal scores are ties, kept as ties.
* ``{"prompt", "chosen": [...], "rejected": [...]}`` (RewardBench 2's shape): one or more chosen completions, all
  better than each of one or more rejected ones; the chosen are tied among themselves, as are the rejected. A
  ``chosen`` that is one conversation (a list of messages) is a TRL pair row, not this shape, and is refused.

Refused, each with a ``ValueError`` naming the row (its index) and the field: fewer than two completions, an empty
completion, two equal completions, a ``ranking`` that is not a permutation of ``range(K)``, a score that is not a
finite number, ``ranking`` and ``scores`` both given, a prompt in another format than the completions.

:func:`binarize` turns ranked examples into TRL's pair rows (``prompt``, ``chosen``, ``rejected``, and ``margin``
when there are scores), which :class:`~rmreg.data.PairCollator` and TRL's ``RewardTrainer`` take as they are.

Example:
    >>> example = parse_ranked({"prompt": "2+2=", "completions": ["5", "4", "3"], "scores": [1, 9, 1]})
    >>> example.completions, example.ranks
    (('4', '5', '3'), (0, 1, 1))
    >>> [(pair["chosen"], pair["rejected"], pair["margin"]) for pair in binarize([example], strategy="all_pairs")]
    [('4', '5', 8.0), ('4', '3', 8.0)]
"""

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from rmreg.data.encoding import Message, is_messages
from rmreg.data.rows import RowError, _check_prompt, _response_format

__all__ = [
    "STRATEGIES",
    "BinarizeStrategy",
    "Completion",
    "RankedExample",
    "binarize",
    "parse_ranked",
    "parse_rankings",
]

Completion = str | Sequence[Message]
BinarizeStrategy = Literal["best_vs_worst", "best_vs_each", "all_pairs"]
STRATEGIES: tuple[str, ...] = ("best_vs_worst", "best_vs_each", "all_pairs")


@dataclasses.dataclass(frozen=True)
class RankedExample:
    """K ≥ 2 completions of one prompt, best first.

    Attributes:
        prompt: the prompt (text or messages), or ``None`` when the row has none.
        completions: the completions, best first (ties in their order in the row).
        scores: each completion's score (non-increasing), or ``None`` for a ranking without scores.
        ranks: each completion's rank, ``0`` for the best; tied completions share a rank, and the ranks are
            ``0, 1, 2, ...`` without gaps (non-decreasing).
    """

    prompt: str | Sequence[Message] | None
    completions: tuple[Completion, ...]
    scores: tuple[float, ...] | None
    ranks: tuple[int, ...]

    @property
    def has_ties(self) -> bool:
        """Whether two completions share a rank."""
        return len(set(self.ranks)) < len(self.ranks)


def _completions(row: Mapping[str, Any], field: str, *, minimum: int) -> list[Completion]:
    values = row[field]
    if is_messages(values) and values:
        raise RowError(
            field,
            "holds one conversation (a TRL pair row); a ranked row's completions are a list of completions, each "
            "text or a list of messages",
        )
    if not isinstance(values, (list, tuple)):
        raise RowError(field, f"must be a list of completions, got {type(values).__name__}")
    if len(values) < minimum:
        raise RowError(field, f"has {len(values)} completion(s); it needs at least {minimum}")
    return list(values)


def _check_completions(completions: Sequence[Completion], fields: Sequence[str]) -> str:
    kinds = [_response_format({field: value}, field) for field, value in zip(fields, completions, strict=True)]
    for field, kind in zip(fields, kinds, strict=True):
        if kind != kinds[0]:
            raise RowError(field, f"is {kind} but {fields[0]!r} is {kinds[0]}; use one format for all completions")
    for j, later in enumerate(completions):
        for i in range(j):
            if completions[i] == later:
                raise RowError(fields[j], f"equals {fields[i]!r}; the completions of a row must all differ")
    return kinds[0]


def _check_ranking(ranking: Any, k: int) -> list[int]:
    if not isinstance(ranking, (list, tuple)) or any(isinstance(i, bool) or not isinstance(i, int) for i in ranking):
        raise RowError("ranking", f"must be a list of completion indices (integers), got {ranking!r}")
    if sorted(ranking) != list(range(k)):
        raise RowError("ranking", f"{list(ranking)} is not a permutation of range({k}) (one index per completion)")
    return list(ranking)


def _check_scores(scores: Any, k: int) -> list[float]:
    if not isinstance(scores, (list, tuple)):
        raise RowError("scores", f"must be a list of numbers, got {type(scores).__name__}")
    if len(scores) != k:
        raise RowError("scores", f"has {len(scores)} scores for {k} completions")
    for position, score in enumerate(scores):
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise RowError("scores", f"score {position} is {score!r}; scores must be finite numbers")
    return [float(score) for score in scores]


def _dense_ranks(sorted_scores: Sequence[float]) -> tuple[int, ...]:
    ranks = [0]
    for previous, score in itertools.pairwise(sorted_scores):
        ranks.append(ranks[-1] + (score != previous))
    return tuple(ranks)


def _parse(row: Any) -> RankedExample:
    if not isinstance(row, Mapping):
        raise RowError(None, f"a row must be an object with named fields, got {type(row).__name__}")
    if "completions" in row:
        completions = _completions(row, "completions", minimum=2)
        kind = _check_completions(completions, [f"completions[{i}]" for i in range(len(completions))])
        if ("ranking" in row) == ("scores" in row):
            raise RowError(None, "a row with 'completions' needs 'ranking' or 'scores' (one of them, not both)")
        if "ranking" in row:
            order = _check_ranking(row["ranking"], len(completions))
            scores, ranks = None, tuple(range(len(order)))
        else:
            given = _check_scores(row["scores"], len(completions))
            order = sorted(range(len(given)), key=lambda i: -given[i])  # stable: ties keep the row's order
            scores = tuple(given[i] for i in order)
            ranks = _dense_ranks(scores)
        ordered = tuple(completions[i] for i in order)
    elif "chosen" in row and "rejected" in row:
        chosen = _completions(row, "chosen", minimum=1)
        rejected = _completions(row, "rejected", minimum=1)
        fields = [f"chosen[{i}]" for i in range(len(chosen))] + [f"rejected[{i}]" for i in range(len(rejected))]
        kind = _check_completions(chosen + rejected, fields)
        ordered, scores, ranks = (*chosen, *rejected), None, (0,) * len(chosen) + (1,) * len(rejected)
    else:
        raise RowError(
            None,
            f"a ranked row needs 'completions' with 'ranking' or 'scores', or 'chosen' and 'rejected' lists; got "
            f"fields {sorted(map(str, row))}",
        )
    if "prompt" in row:
        _check_prompt(row["prompt"], kind)
    return RankedExample(row.get("prompt"), ordered, scores, ranks)


def parse_ranked(row: Any, *, index: int = 0) -> RankedExample:
    """Check one ranked row (see the module docstring) and order its completions best first.

    Args:
        row: a mapping in one of the ranked formats.
        index: the row's index, named in errors.

    Raises:
        ValueError: ``row {index}: field '...': ...`` for a row that cannot be used (see the module docstring).

    Example:
        >>> parse_ranked({"completions": ["b", "a"], "ranking": [1, 0]}).completions
        ('a', 'b')
        >>> parse_ranked({"completions": ["a", "b"], "ranking": [1, 1]})
        Traceback (most recent call last):
        ...
        ValueError: row 0: field 'ranking': [1, 1] is not a permutation of range(2) (one index per completion)
    """
    try:
        return _parse(row)
    except RowError as error:
        raise ValueError(f"row {index}: {error}") from error


def parse_rankings(rows: Iterable[Any]) -> list[RankedExample]:
    """:func:`parse_ranked` on each row, errors naming the row's index (counted from 0)."""
    return [parse_ranked(row, index=index) for index, row in enumerate(rows)]


def _index_pairs(ranks: Sequence[int], strategy: str) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j`` (so ``ranks[i] <= ranks[j]``), that ``strategy`` compares."""
    pairs = [(i, j) for j in range(len(ranks)) for i in range(j)]
    best, worst = ranks[0], ranks[-1]
    if strategy == "best_vs_each":
        return [(i, j) for i, j in pairs if ranks[i] == best]
    if strategy == "best_vs_worst":
        return [(i, j) for i, j in pairs if ranks[i] == best and ranks[j] == worst]
    return pairs


def binarize(
    examples: Iterable[RankedExample | Mapping[str, Any]],
    *,
    strategy: BinarizeStrategy = "best_vs_worst",
    keep_ties: bool = False,
) -> list[dict[str, Any]]:
    """Preference pairs (TRL's ``prompt``/``chosen``/``rejected`` rows) from ranked examples.

    With completions ``y_0, ..., y_{K-1}`` best first and ranks ``r_0 ≤ ... ≤ r_{K-1}`` (ties share a rank), the
    strategies compare, for each ``i < j``:

    * ``"best_vs_worst"``: ``y_i`` of the best rank against ``y_j`` of the worst rank — one pair for a ranking
      without ties; with RewardBench 2's one chosen and three rejected, three pairs;
    * ``"best_vs_each"``: ``y_i`` of the best rank against every later ``y_j`` — ``K − 1`` pairs without ties;
    * ``"all_pairs"``: every ``y_i`` against every later ``y_j`` — ``K(K − 1)/2`` pairs, less the tied ones.

    Tied completions are never a pair with a preference. A compared pair of equal rank is skipped, or, with
    ``keep_ties=True``, emitted with ``tie=True`` (its order then means nothing), and every other pair gets
    ``tie=False``, so the ``tie`` column is on every row (as the collator needs) for a tie-aware objective such as
    ``rmreg.objective("rao-kupper")``. With scores, each pair has ``margin = score(chosen) − score(rejected)``
    (``≥ 0``, ``0`` for ties). Pairs come example by example, by ``i`` then ``j``.

    Args:
        examples: :class:`RankedExample` objects, or ranked rows (checked with :func:`parse_ranked`, errors
            naming the row's index).
        strategy: which pairs of each example to emit.
        keep_ties: emit the compared pairs of equal rank, flagged ``tie=True``.

    Returns:
        One dict per pair; ``prompt`` only when the example has one.

    Raises:
        ValueError: an unknown strategy, or a ranked row that cannot be used.

    Example:
        >>> row = {"prompt": "Q", "chosen": ["a"], "rejected": ["b", "c"]}
        >>> [(pair["chosen"], pair["rejected"]) for pair in binarize([row], strategy="all_pairs")]
        [('a', 'b'), ('a', 'c')]
        >>> [pair["tie"] for pair in binarize([row], strategy="all_pairs", keep_ties=True)]
        [False, False, True]
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}")
    pairs: list[dict[str, Any]] = []
    for index, example in enumerate(examples):
        if not isinstance(example, RankedExample):
            example = parse_ranked(example, index=index)
        for i, j in _index_pairs(example.ranks, strategy):
            tie = example.ranks[i] == example.ranks[j]
            if tie and not keep_ties:
                continue
            pair: dict[str, Any] = {} if example.prompt is None else {"prompt": example.prompt}
            pair.update(chosen=example.completions[i], rejected=example.completions[j])
            if example.scores is not None:
                pair["margin"] = example.scores[i] - example.scores[j]
            if keep_ties:
                pair["tie"] = tie
            pairs.append(pair)
    return pairs
