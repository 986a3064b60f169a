"""List-valued per-pair columns (per-attribute ratings): None = missing, a mask column beside, [pairs, A] batches."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rmreg.data import EncodedPair, PairCollator, per_pair_columns
from rmreg.data.collation import collate_pairs
from rmreg.data.encoding import mask_column
from rmreg.testing import tiny_tokenizer


def test_a_list_of_numbers_becomes_values_and_a_mask():
    columns = per_pair_columns(
        {"chosen": "a", "rejected": "b", "chosen_ratings": [4, None, 3.5], "scores": (1, 2), "flags": [True, False]}
    )
    assert columns == {
        "chosen_ratings": (4.0, 0.0, 3.5),
        "chosen_rating_mask": (True, False, True),
        "scores": (1.0, 2.0),
        "scores_mask": (True, True),
        "flags": (True, False),
    }
    assert (
        mask_column("rejected_ratings") == "rejected_rating_mask" and mask_column("helpfulness") == "helpfulness_mask"
    )


def test_lists_that_are_not_per_pair_values_are_left_alone():
    example = {"chosen": "a", "rejected": "b", "tags": ["x", "y"], "empty": [], "nested": [[1]], "tools": [{"a": 1}]}
    assert per_pair_columns(example) == {}
    assert per_pair_columns({"chosen": "a", "rejected": "b", "all_missing": [None, None]}) == {
        "all_missing": (0.0, 0.0),
        "all_missing_mask": (False, False),
    }


def test_bad_list_values_are_named():
    with pytest.raises(ValueError, match="column 'chosen_ratings' is nan"):
        per_pair_columns({"chosen": "a", "rejected": "b", "chosen_ratings": [1.0, float("nan")]})
    with pytest.raises(ValueError, match="column 'chosen_rating_mask' must be a list of 2 flags"):
        per_pair_columns({"chosen": "a", "rejected": "b", "chosen_ratings": [1.0, 2.0], "chosen_rating_mask": [True]})


def test_an_examples_own_mask_is_kept_and_merged_with_missing_values():
    """An example encoded once already (rmreg.data.examples) carries its mask; encoding it again keeps it."""
    once = per_pair_columns({"chosen": "a", "rejected": "b", "chosen_ratings": [4, None, 5]})
    again = per_pair_columns({"chosen": "a", "rejected": "b", **once})
    assert again == once == {"chosen_ratings": (4.0, 0.0, 5.0), "chosen_rating_mask": (True, False, True)}
    merged = per_pair_columns({"chosen_ratings": [4, None, 5], "chosen_rating_mask": [False, True, True]})
    assert merged["chosen_rating_mask"] == (False, False, True)


@given(
    ratings=st.lists(st.lists(st.one_of(st.none(), st.integers(0, 4)), min_size=3, max_size=3), min_size=1, max_size=5)
)
def test_collated_ratings_are_pairs_by_attributes(ratings):
    pairs = [
        EncodedPair((1,), (5, 2), (6, 2), per_pair_columns({"chosen_ratings": row, "margin": i}))
        for i, row in enumerate(ratings)
    ]
    batch = collate_pairs(pairs, pad_token_id=0)
    assert batch["chosen_ratings"].dtype == torch.float32 and batch["chosen_ratings"].shape == (len(ratings), 3)
    assert batch["chosen_rating_mask"].dtype == torch.bool
    assert batch["chosen_rating_mask"].tolist() == [[v is not None for v in row] for row in ratings]
    assert batch["chosen_ratings"].tolist() == [[0.0 if v is None else float(v) for v in row] for row in ratings]
    assert batch["margin"].shape == (len(ratings),)


def test_lists_of_different_lengths_in_one_batch_are_named():
    def pair(value):
        return EncodedPair((1,), (5, 2), (6, 2), per_pair_columns({"chosen_ratings": value}))

    with pytest.raises(
        ValueError, match=r"column 'chosen_rating\w*' holds lists of different lengths.*'2 values', '3 values'"
    ):
        collate_pairs([pair([1, 2]), pair([1, 2, 3])], pad_token_id=0)
    with pytest.raises(ValueError, match=r"lists and single values.*'a single value', '2 values'"):
        collate_pairs([EncodedPair((1,), (5, 2), (6, 2), {"x": v}) for v in ((1.0, 2.0), 3.0)], pad_token_id=0)
    with pytest.raises(
        ValueError, match="'chosen_rating_mask' is given for some pairs of the batch but not for others"
    ):
        collate_pairs([pair([1, 2]), pair(3)], pad_token_id=0)
    mixed = [
        EncodedPair((1,), (5, 2), (6, 2), {"x": (True, False)}),
        EncodedPair((1,), (5, 2), (6, 2), {"x": (1.0, 2.0)}),
    ]
    with pytest.raises(ValueError, match="column 'x' mixes flags"):
        collate_pairs(mixed, pad_token_id=0)


def test_pair_collator_passes_rating_columns_on():
    examples = [
        {
            "prompt": "Hi",
            "chosen": "Hello!",
            "rejected": "Go.",
            "chosen_ratings": [4, None],
            "rejected_ratings": [1, 2],
        },
        {"prompt": "2+2=", "chosen": "4", "rejected": "5", "chosen_ratings": [3, 3], "rejected_ratings": [None, None]},
    ]
    batch = PairCollator(tiny_tokenizer())(examples)
    assert batch["chosen_ratings"].tolist() == [[4.0, 0.0], [3.0, 3.0]]
    assert batch["rejected_rating_mask"].tolist() == [[True, True], [False, False]]
    assert batch["input_ids"].shape[0] == 4
