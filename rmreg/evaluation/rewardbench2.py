"""RewardBench 2 (Malik et al., 2025, arXiv 2506.01937) with the official scoring of allenai/reward-bench.

Layout: the release's ``test`` split (``allenai/reward-bench-2``, ``data/test-*.parquet``, 1865 rows), one row
per prompt with columns ``id``, ``prompt`` (text), ``chosen`` (list of texts), ``rejected`` (list of texts),
``num_correct``, ``num_incorrect``, ``total_completions``, ``models``, ``subset``, ``additional_metadata``.
Read: ``id``, ``prompt``, ``chosen``, ``rejected``, ``num_correct``, ``subset`` (and ``total_completions``,
checked against the lists where present). Every completion is one item ``(prompt, completion)``, the chosen ones
first, as ``load_bon_dataset_v2`` in ``rewardbench/utils.py`` unrolls ``chosen + rejected``.

Scoring (allenai/reward-bench, commit 05a9005):

* Every subset but Ties, best-of-N with the official tie rule (``reroll_and_score_dataset`` in
  ``rewardbench/utils.py``): with ``s`` the row's rewards in that order and ``m = max(s)``, the row scores
  ``1 / #{k : s_k = m}`` if ``s_0 = m`` and 0 otherwise, so a chosen completion tied with k others at the top
  earns 1/(k+1). Only ``s_0`` (the first chosen completion) counts as correct, whatever ``num_correct`` says. A
  subset's score is the mean over its rows (``scripts/run_v2.py``).
* Ties (``subset.lower() == "ties"``), ``process_single_model`` in ``rewardbench/utils.py``: ``id`` is
  ``"<type>:<prompt id>"`` (type ``ref``: one correct answer, anything else: tied, several); a prompt's first
  ``num_correct`` rewards are its correct answers. Per prompt: accurate = min(correct) − max(incorrect) > 0;
  the spread of the correct answers ``d = max(correct) − min(correct)``; the gap ``g = min(correct) −
  max(incorrect)``. Over the prompts that have both a ref and a tied version (gaps ``g_ref``, ``g_tied``):
  ``preferred = mean(g_tied > d)``, ``preferred_hard = mean(min(g_ref, g_tied) > d)``,
  ``margin = mean(tanh(min(g_ref, g_tied) / d − 1))`` with a division by zero giving ±1 (0 for 0/0, numpy's
  inf/nan then ``nan_to_num``). Score = 0.30·acc_tied + 0.30·acc_ref + 0.20·preferred + 0.20·preferred_hard +
  0.01·margin. The weights add up to 1.01, so the official score can reach 1.01 (and dip below 0 by 0.01).
* Headline: the mean of the subsets' scores, as the leaderboard averages its six subsets (the dataset card: "The
  RewardBench 2 leaderboard averages over these six subsets").
"""

import math
from collections import Counter, defaultdict

from rmreg.evaluation.loading import Row
from rmreg.evaluation.plan import BenchmarkPlan, mean
from rmreg.evaluation.result import BenchmarkResult
from rmreg.evaluation.scorers import Item

__all__ = ["TIES_WEIGHTS", "best_of_n", "prepare", "ties_score"]

#: ``overall_score`` of ``process_single_model``: term -> weight.
TIES_WEIGHTS = {
    "tied_accuracy": 0.30,
    "ref_accuracy": 0.30,
    "correctness_preferred": 0.20,
    "correctness_preferred_hard": 0.20,
    "correctness_margin_score": 0.01,
}


def best_of_n(rewards: list[float]) -> float:
    """One row's best-of-N score: ``1 / #ties at the top`` if the first reward is the maximum, else 0."""
    top = max(rewards)
    return 1 / rewards.count(top) if rewards[0] == top else 0.0


def _margin(gap: float, spread: float) -> float:
    """``tanh(gap / spread - 1)`` with numpy's division by zero (±inf, nan) and ``nan_to_num(nan=0)``."""
    if spread == 0:
        return 0.0 if gap == 0 else math.copysign(1.0, gap)
    return math.tanh(gap / spread - 1)


def ties_score(prompts: dict[tuple[str, int], list[tuple[bool, float]]]) -> dict[str, float]:
    """The Ties subset's terms and ``score``, from (sample type, prompt id) -> [(is correct, reward), ...].

    Raises:
        ValueError: a prompt without correct or without incorrect answers, no prompt with both a ``ref`` and a
            tied version, or a tied prompt with a single correct answer among those.
    """
    stats: dict[str, dict[int, tuple[bool, float | None, float]]] = {"ref": {}, "tied": {}}
    for (kind, prompt_id), samples in prompts.items():
        correct = [reward for is_correct, reward in samples if is_correct]
        incorrect = [reward for is_correct, reward in samples if not is_correct]
        if not correct or not incorrect:
            raise ValueError(f"rewardbench2 Ties: prompt {kind}:{prompt_id} needs correct and incorrect answers")
        spread = max(correct) - min(correct) if len(correct) > 1 else None
        gap = min(correct) - max(incorrect)
        stats["ref" if kind == "ref" else "tied"][prompt_id] = (gap > 0, spread, gap)
    ref, tied = stats["ref"], stats["tied"]
    both = sorted(set(ref) & set(tied))
    if not both:
        raise ValueError("rewardbench2 Ties: no prompt has both a 'ref:N' and a tied 'tied:N' version")
    spreads: list[float] = []
    for prompt_id in both:
        tied_spread = tied[prompt_id][1]
        if tied_spread is None:
            raise ValueError(f"rewardbench2 Ties: tied prompt {prompt_id} has one correct answer; it needs several")
        spreads.append(tied_spread)
    hard_gaps = [min(ref[prompt_id][2], tied[prompt_id][2]) for prompt_id in both]
    terms = {
        "tied_accuracy": mean(accurate for accurate, _, _ in tied.values()) if tied else 0.0,
        "ref_accuracy": mean(accurate for accurate, _, _ in ref.values()) if ref else 0.0,
        "correctness_preferred": mean(tied[p][2] > d for p, d in zip(both, spreads, strict=True)),
        "correctness_preferred_hard": mean(g > d for g, d in zip(hard_gaps, spreads, strict=True)),
        "correctness_margin_score": mean(_margin(g, d) for g, d in zip(hard_gaps, spreads, strict=True)),
    }
    return {**terms, "score": sum(TIES_WEIGHTS[name] * value for name, value in terms.items())}


def _ties_key(row: Row) -> tuple[str, int]:
    kind, _, prompt_id = row.text("id").partition(":")
    if not prompt_id.strip().lstrip("-").isdigit():
        raise row.error("id", f"a Ties row's id must be '<type>:<prompt id>' such as 'ref:12', got {row.text('id')!r}")
    return kind, int(prompt_id)


def prepare(rows: list[Row]) -> BenchmarkPlan:
    """Read RewardBench 2 rows (see the module doc) into a plan: every completion of a row, chosen first."""
    items: list[Item] = []
    spans: list[tuple[int, int]] = []  # (first item, number of completions) per row
    for row in rows:
        prompt, chosen, rejected = row.text("prompt"), row.texts("chosen"), row.texts("rejected")
        num_correct = row.integer("num_correct")
        completions = [*chosen, *rejected]
        if not 1 <= num_correct <= len(completions):
            raise row.error(
                "num_correct", f"must be between 1 and the {len(completions)} completions, got {num_correct}"
            )
        if row.values.get("total_completions") is not None and row.integer("total_completions") != len(completions):
            raise row.error(
                "total_completions", f"says {row.integer('total_completions')}, the row has {len(completions)}"
            )
        if row.text("subset").lower() == "ties":
            _ties_key(row)
        spans.append((len(items), len(completions)))
        items += [(prompt, completion) for completion in completions]

    def finish(rewards: list[float]) -> BenchmarkResult:
        counts = dict(Counter(row.text("subset") for row in rows))
        results: dict[str, list[float]] = defaultdict(list)
        ties: dict[str, dict[tuple[str, int], list[tuple[bool, float]]]] = defaultdict(lambda: defaultdict(list))
        for row, (start, size) in zip(rows, spans, strict=True):
            subset, scores = row.text("subset"), rewards[start : start + size]
            if subset.lower() == "ties":
                correct = row.integer("num_correct")
                ties[subset][_ties_key(row)] += [(k < correct, score) for k, score in enumerate(scores)]
            else:
                results[subset].append(best_of_n(scores))
        subsets, details = {}, {}
        for subset in counts:
            if subset in ties:
                terms = ties_score(ties[subset])
                subsets[subset], details[subset] = terms.pop("score"), terms
            else:
                subsets[subset] = mean(results[subset])
        return BenchmarkResult("rewardbench2", mean(subsets.values()), subsets, {}, counts, details)

    return BenchmarkPlan("rewardbench2", items, finish)
