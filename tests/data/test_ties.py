"""Tie flags on pair rows: ``label`` 0 / 0.5 / 1 and a ``tie`` column as one bool ``tie`` column."""

import math

import pytest
import torch

from rmreg.data import PairCollator, tie_flags, with_tie_flags
from rmreg.testing import tiny_tokenizer

PAIR = {"prompt": "Q", "chosen": "a", "rejected": "b"}


@pytest.mark.parametrize(
    ("extra", "chosen", "tie"),
    [
        ({}, "a", False),
        ({"label": 1}, "a", False),
        ({"label": True}, "a", False),
        ({"label": 1.0}, "a", False),
        ({"label": 0.5}, "a", True),
        ({"label": 0}, "b", False),
        ({"label": False}, "b", False),
        ({"tie": True}, "a", True),
        ({"tie": 0}, "a", False),
        ({"tie": 1.0}, "a", True),
        ({"label": 0.5, "tie": True}, "a", True),
        ({"label": 0, "tie": False}, "b", False),
        ({"label": None, "tie": None}, "a", False),
    ],
)
def test_label_and_tie_map_to_one_bool_column(extra, chosen, tie):
    row = tie_flags({**PAIR, **extra})
    assert row == {"prompt": "Q", "chosen": chosen, "rejected": "b" if chosen == "a" else "a", "tie": tie}
    assert type(row["tie"]) is bool


def test_label_zero_swaps_every_chosen_field_with_its_rejected_twin_and_keeps_margin():
    row = {
        "prompt_ids": [1],
        "chosen_ids": [5],
        "rejected_ids": [6],
        "ref_chosen_logps": -1.0,
        "ref_rejected_logps": -2.0,
        "margin": 3.0,
        "label": 0,
    }
    assert tie_flags(row) == {
        "prompt_ids": [1],
        "chosen_ids": [6],
        "rejected_ids": [5],
        "ref_chosen_logps": -2.0,
        "ref_rejected_logps": -1.0,
        "margin": 3.0,
        "tie": False,
    }
    assert row["chosen_ids"] == [5]  # the input is not changed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"label": 0.3}, r"field 'label': is 0.3; a pair's label is 1 \(chosen preferred\), 0 .* or 0.5 \(tie\)"),
        ({"label": 2}, r"field 'label': is 2;"),
        ({"label": -1}, r"field 'label': is -1;"),
        ({"label": math.nan}, r"field 'label': is nan;"),
        ({"label": "tie"}, r"field 'label': is 'tie';"),
        ({"tie": 0.5}, r"field 'tie': is 0.5; a tie flag is a bool \(or 0 or 1\)"),
        ({"tie": "yes"}, r"field 'tie': is 'yes';"),
        ({"label": 1, "tie": True}, r"field 'tie': is True but 'label' is 1.0; a tie is labelled 0.5"),
        ({"label": 0, "tie": True}, r"field 'tie': is True but 'label' is 0.0"),
        ({"label": 0.5, "tie": False}, r"field 'tie': is False but 'label' is 0.5"),
    ],
)
def test_bad_labels_and_flags_are_refused_naming_row_and_field(extra, message):
    with pytest.raises(ValueError, match=r"^row 4: " + message):
        tie_flags({**PAIR, **extra}, index=4)


def test_rows_that_are_not_pairs_are_refused():
    with pytest.raises(ValueError, match=r"^row 0: not a pair row \(TRL's unpaired KTO/BCO format"):
        tie_flags({"prompt": "Q", "completion": "a", "label": True})
    with pytest.raises(ValueError, match=r"^row 0: not a pair row: tie flags need 'chosen' and 'rejected'"):
        tie_flags({"chosen": "a"})
    with pytest.raises(ValueError, match=r"^row 0: a row must be an object"):
        tie_flags(["a", "b"])  # type: ignore[arg-type]


def test_with_tie_flags_names_the_row_and_feeds_the_collator():
    rows = [{**PAIR, "label": 1}, {**PAIR, "label": 0.5}, {**PAIR, "label": 0}]
    with pytest.raises(ValueError, match=r"^row 3: field 'label'"):
        with_tie_flags([*rows, {**PAIR, "label": 0.7}])
    batch = PairCollator(tiny_tokenizer())(with_tie_flags(rows))
    assert batch["tie"].dtype == torch.bool and batch["tie"].tolist() == [False, True, False]
    assert "label" not in batch
    flipped = PairCollator(tiny_tokenizer())([{"prompt": "Q", "chosen": "b", "rejected": "a", "tie": False}])
    assert torch.equal(batch["input_ids"][[2, 5]], flipped["input_ids"])  # the third pair, swapped
