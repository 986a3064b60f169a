"""The built-in task's graded variant: K completions per prompt with their gold scores."""

import pytest
import torch

import rmreg
from rmreg.data import GroupCollator, binarize, parse_rankings
from rmreg.task import PreferenceTask, graded_split, task_tokenizer
from rmreg.testing import tiny_causal_lm

TASK = PreferenceTask()


def test_rows_carry_gold_scores_without_ties_and_are_deterministic() -> None:
    rows = graded_split(TASK, 6, completions=5, seed=3)
    assert rows == graded_split(TASK, 6, completions=5, seed=3)
    assert rows != graded_split(TASK, 6, completions=5, seed=4)
    for row in rows:
        assert len(row["completions"]) == 5
        assert row["scores"] == [TASK.gold_reward(row["prompt"], c) for c in row["completions"]]
        gaps = [abs(a - b) for i, a in enumerate(row["scores"]) for b in row["scores"][i + 1 :]]
        assert min(gaps) >= TASK.min_gap


def test_graded_rows_parse_binarize_and_train_plackett_luce() -> None:
    rows = graded_split(TASK, 4, completions=3)
    ranked = parse_rankings(rows)
    assert all(example.scores == tuple(sorted(example.scores, reverse=True)) for example in ranked)
    assert len(binarize(ranked, strategy="all_pairs")) == 4 * 3
    tokenizer = task_tokenizer()
    model = rmreg.RegularizedRewardModel(
        tiny_causal_lm("llama", vocab_size=len(tokenizer)), objective=rmreg.objective("plackett-luce+grm-sft")
    )
    out = model(**GroupCollator(tokenizer)(rows))
    assert set(out.terms) == {"plackett_luce", "sft"} and torch.isfinite(out.loss)


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="completions >= 2"):
        graded_split(TASK, 2, completions=1)
