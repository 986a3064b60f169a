"""GroupCollator: rows of ranked groups, their index and mask, truncation that keeps each completion's end."""

import pytest
import torch

from rmreg.data import GroupCollator, RankedExample, collate_groups
from rmreg.data.encoding import encode_text
from rmreg.testing import tiny_tokenizer

TOK = tiny_tokenizer()


def test_rows_are_group_by_group_best_first_with_labels_on_the_completions() -> None:
    examples = [
        {"prompt": "Q", "completions": ["a", "bb", "c"], "scores": [1.0, 3.0, 2.0]},  # best first: bb, c, a
        {"prompt": "R", "chosen": ["x"], "rejected": ["y", "z"]},  # RewardBench 2's shape
    ]
    batch = GroupCollator(TOK)(examples)
    assert batch["group_index"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert batch["group_mask"].all()
    for row, (prompt, completion) in enumerate(
        [("Q", "bb"), ("Q", "c"), ("Q", "a"), ("R", "x"), ("R", "y"), ("R", "z")]
    ):
        prompt_ids, completion_ids = encode_text(TOK, prompt, completion)
        keep = batch["attention_mask"][row].bool()
        assert batch["input_ids"][row][keep].tolist() == prompt_ids + completion_ids
        assert batch["labels"][row][keep].tolist() == [-100] * len(prompt_ids) + completion_ids


def test_groups_of_different_sizes_share_k_without_padding_rows() -> None:
    ranked = RankedExample("P", ("one", "two"), None, (0, 1))
    batch = GroupCollator(TOK)([ranked, {"prompt": "Q", "completions": ["a", "b", "c", "d"], "ranking": [3, 2, 1, 0]}])
    assert batch["input_ids"].shape[0] == 6
    assert batch["group_index"].tolist() == [[0, 1, -1, -1], [2, 3, 4, 5]]
    assert batch["group_mask"].tolist() == [[True, True, False, False], [True, True, True, True]]


def test_truncation_keeps_each_completions_end_and_is_counted() -> None:
    collate = GroupCollator(TOK, max_length=6)
    batch = collate([{"prompt": "a long prompt", "completions": ["short", "x" * 40], "ranking": [0, 1]}])
    assert batch["attention_mask"].sum(-1).max() <= 6
    _, long_ids = encode_text(TOK, "a long prompt", "x" * 40)
    keep = batch["attention_mask"][1].bool()
    assert batch["input_ids"][1][keep].tolist()[-5:] == long_ids[-5:]  # its end, with EOS, where the reward is read
    assert (batch["labels"][1] != -100).sum() >= 1
    assert collate.stats.groups == 1 and collate.stats.rows == 2 and collate.stats.truncated_rows == 2


def test_bad_groups_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 completions"):
        collate_groups([([1], [5, 2])], [1], pad_token_id=0)
    with pytest.raises(ValueError, match="do not add up"):
        collate_groups([([1], [5, 2])], [2], pad_token_id=0)
    with pytest.raises(ValueError, match="empty list"):
        GroupCollator(TOK)([])
    with pytest.raises(ValueError, match="max_length"):
        GroupCollator(TOK, max_length=1)
    torch.testing.assert_close(
        collate_groups([([1], [5]), ([1], [6])], [2], pad_token_id=0)["group_index"], torch.tensor([[0, 1]])
    )
