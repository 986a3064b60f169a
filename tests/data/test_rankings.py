"""Ranked examples (completions + ranking / scores, RewardBench 2's chosen/rejected lists) and their binarization."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rmreg.data import PairCollator, RankedExample, binarize, parse_ranked, parse_rankings
from rmreg.testing import tiny_tokenizer


def _conversation(text):
    return [{"role": "assistant", "content": text}]


# ---- formats -------------------------------------------------------------------------------------------------


def test_ranking_orders_completions_best_first():
    example = parse_ranked({"prompt": "Q", "completions": ["a", "b", "c", "d"], "ranking": [2, 0, 3, 1]})
    assert example == RankedExample("Q", ("c", "a", "d", "b"), None, (0, 1, 2, 3))
    assert not example.has_ties


def test_scores_order_by_score_and_keep_ties_in_row_order():
    example = parse_ranked({"prompt": "Q", "completions": ["a", "b", "c", "d"], "scores": [2, 7.5, 2, -1]})
    assert example.completions == ("b", "a", "c", "d")
    assert example.scores == (7.5, 2.0, 2.0, -1.0)
    assert example.ranks == (0, 1, 1, 2)
    assert example.has_ties


def test_rewardbench2_shape_chosen_tied_above_rejected():
    example = parse_ranked({"prompt": "Q", "chosen": ["a"], "rejected": ["b", "c", "d"]})
    assert example == RankedExample("Q", ("a", "b", "c", "d"), None, (0, 1, 1, 1))
    several = parse_ranked({"prompt": "Q", "chosen": ["a", "b"], "rejected": ["c"]})
    assert several.ranks == (0, 0, 1)


def test_conversational_completions_and_prompt():
    prompt = [{"role": "user", "content": "2+2?"}]
    row = {"prompt": prompt, "completions": [_conversation("5"), _conversation("4")], "ranking": [1, 0]}
    example = parse_ranked(row)
    assert example.prompt == prompt
    assert example.completions == (_conversation("4"), _conversation("5"))


def test_prompt_is_optional():
    assert parse_ranked({"completions": ["a", "b"], "scores": [0, 1]}).prompt is None
    assert binarize([{"completions": ["a", "b"], "scores": [0, 1]}]) == [{"chosen": "b", "rejected": "a", "margin": 1}]


# ---- validation: each error names the row and the field ------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"completions": ["a", "b", "c"], "ranking": [0, 0, 1]},
            r"field 'ranking': \[0, 0, 1\] is not a permutation of range\(3\)",
        ),
        (
            {"completions": ["a", "b"], "ranking": [0, 1, 2]},
            r"field 'ranking': \[0, 1, 2\] is not a permutation of range\(2\)",
        ),
        ({"completions": ["a", "b"], "ranking": [1, 2]}, r"field 'ranking': \[1, 2\] is not a permutation"),
        ({"completions": ["a", "b"], "ranking": [0.0, 1.0]}, r"field 'ranking': must be a list of completion indices"),
        ({"completions": ["a", "b"], "ranking": [True, False]}, r"field 'ranking': must be a list of completion ind"),
        ({"completions": ["a", "b"], "scores": [1.0, math.nan]}, r"field 'scores': score 1 is nan; scores must be fin"),
        ({"completions": ["a", "b"], "scores": [math.inf, 0]}, r"field 'scores': score 0 is inf"),
        ({"completions": ["a", "b"], "scores": ["1", 0]}, r"field 'scores': score 0 is '1'"),
        ({"completions": ["a", "b"], "scores": [1.0]}, r"field 'scores': has 1 scores for 2 completions"),
        ({"completions": ["a"], "scores": [1.0]}, r"field 'completions': has 1 completion\(s\); it needs at least 2"),
        ({"completions": [], "ranking": []}, r"field 'completions': has 0 completion\(s\); it needs at least 2"),
        (
            {"completions": ["a", "b", "a"], "ranking": [0, 1, 2]},
            r"field 'completions\[2\]': equals 'completions\[0\]'",
        ),
        ({"completions": ["a", ""], "ranking": [0, 1]}, r"field 'completions\[1\]': is empty; a response needs text"),
        ({"completions": ["a", "  "], "ranking": [0, 1]}, r"field 'completions\[1\]': holds only whitespace"),
        ({"completions": ["a", []], "ranking": [0, 1]}, r"field 'completions\[1\]': is an empty list of messages"),
        ({"completions": ["a", _conversation("b")], "ranking": [0, 1]}, r"'completions\[1\]': is conversational but"),
        ({"completions": "ab", "ranking": [0, 1]}, r"field 'completions': must be a list of completions, got str"),
        ({"completions": ["a", "b"], "ranking": [0, 1], "scores": [1, 0]}, r"needs 'ranking' or 'scores' \(one of"),
        ({"completions": ["a", "b"]}, r"needs 'ranking' or 'scores'"),
        ({"prompt": ["Q"], "completions": ["a", "b"], "ranking": [0, 1]}, r"field 'prompt': is list but the resp"),
        ({"prompt": None, "completions": ["a", "b"], "ranking": [0, 1]}, r"field 'prompt': is null"),
        ({"chosen": [], "rejected": ["b"]}, r"field 'chosen': has 0 completion\(s\); it needs at least 1"),
        ({"chosen": ["a"], "rejected": []}, r"field 'rejected': has 0 completion\(s\); it needs at least 1"),
        ({"chosen": ["a"], "rejected": ["b", "a"]}, r"field 'rejected\[1\]': equals 'chosen\[0\]'"),
        ({"chosen": _conversation("a"), "rejected": [_conversation("b")]}, r"field 'chosen': holds one conversation"),
        ({"chosen": "a", "rejected": ["b"]}, r"field 'chosen': must be a list of completions, got str"),
        ({"prompt": "Q", "response": "a"}, r"a ranked row needs 'completions'"),
    ],
)
def test_bad_rows_are_refused_naming_row_and_field(row, message):
    with pytest.raises(ValueError, match=r"^row 0: .*" + message):
        parse_ranked(row)


def test_errors_name_the_index_of_the_row():
    rows = [{"completions": ["a", "b"], "ranking": [0, 1]}] * 3 + [{"completions": ["a", "b"], "ranking": [0, 0]}]
    with pytest.raises(ValueError, match=r"^row 3: field 'ranking'"):
        parse_rankings(rows)
    with pytest.raises(ValueError, match=r"^row 3: field 'ranking'"):
        binarize(rows)
    with pytest.raises(ValueError, match=r"^row 0: a row must be an object"):
        parse_rankings(["not a row"])


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match=r"strategy must be one of 'best_vs_worst', 'best_vs_each', 'all_pairs'"):
        binarize([], strategy="random")  # type: ignore[arg-type]


# ---- binarization, counted by hand ---------------------------------------------------------------------------


def _pairs(rows, **options):
    return [(pair["chosen"], pair["rejected"]) for pair in binarize(rows, **options)]


STRICT = {"prompt": "Q", "completions": ["c", "a", "d", "b"], "ranking": [1, 3, 0, 2]}  # best first: a b c d


def test_strategies_on_a_strict_ranking():
    assert _pairs([STRICT], strategy="best_vs_worst") == [("a", "d")]
    assert _pairs([STRICT], strategy="best_vs_each") == [("a", "b"), ("a", "c"), ("a", "d")]  # K - 1
    assert _pairs([STRICT], strategy="all_pairs") == [  # K(K - 1)/2 = 6
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
        ("a", "d"),
        ("b", "d"),
        ("c", "d"),
    ]
    assert all(
        pair == {"prompt": "Q", "chosen": pair["chosen"], "rejected": pair["rejected"]} for pair in binarize([STRICT])
    )


def test_tied_scores_are_skipped_or_flagged_with_margins():
    row = {"prompt": "Q", "completions": ["a", "b", "c", "d"], "scores": [5, 3, 3, 1]}  # b and c tied
    pairs = binarize([row], strategy="all_pairs")
    assert [(p["chosen"], p["rejected"], p["margin"]) for p in pairs] == [
        ("a", "b", 2.0),
        ("a", "c", 2.0),
        ("a", "d", 4.0),
        ("b", "d", 2.0),
        ("c", "d", 2.0),
    ]  # 6 - 1 tied
    flagged = binarize([row], strategy="all_pairs", keep_ties=True)
    assert [(p["chosen"], p["rejected"], p["margin"], p["tie"]) for p in flagged if p["tie"]] == [("b", "c", 0.0, True)]
    assert len(flagged) == 6 and all(isinstance(p["tie"], bool) for p in flagged)
    assert "tie" not in pairs[0]


def test_ties_at_the_top_and_bottom():
    row = {"completions": ["a", "b", "c", "d"], "scores": [2, 2, 0, 0]}
    assert _pairs([row], strategy="best_vs_worst") == [("a", "c"), ("b", "c"), ("a", "d"), ("b", "d")]
    assert _pairs([row], strategy="best_vs_each") == [("a", "c"), ("b", "c"), ("a", "d"), ("b", "d")]
    assert _pairs([row], strategy="best_vs_each", keep_ties=True)[0] == ("a", "b")
    every_tie = {"completions": ["a", "b", "c"], "scores": [1, 1, 1]}
    for strategy in ("best_vs_worst", "best_vs_each", "all_pairs"):
        assert binarize([every_tie], strategy=strategy) == []
        assert len(binarize([every_tie], strategy=strategy, keep_ties=True)) == 3


def test_rewardbench2_shape_binarized():
    row = {"prompt": "Q", "chosen": ["a"], "rejected": ["b", "c", "d"]}
    expected = [("a", "b"), ("a", "c"), ("a", "d")]
    for strategy in ("best_vs_worst", "best_vs_each", "all_pairs"):
        assert _pairs([row], strategy=strategy) == expected
    assert len(binarize([row], strategy="all_pairs", keep_ties=True)) == 6  # + 3 ties among the rejected


def test_conversational_pairs_keep_messages():
    prompt = [{"role": "user", "content": "Q"}]
    row = {"prompt": prompt, "completions": [_conversation("x"), _conversation("y")], "scores": [0.0, 1.5]}
    assert binarize([row]) == [
        {"prompt": prompt, "chosen": _conversation("y"), "rejected": _conversation("x"), "margin": 1.5}
    ]


# ---- properties ---------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 7).flatmap(lambda k: st.permutations(range(k))),
    st.sampled_from(["best_vs_worst", "best_vs_each", "all_pairs"]),
)
def test_chosen_always_ranks_above_rejected(ranking, strategy):
    k = len(ranking)
    completions = [f"y{i}" for i in range(k)]
    position = {completions[index]: place for place, index in enumerate(ranking)}  # 0 = best
    pairs = binarize([{"completions": completions, "ranking": list(ranking)}], strategy=strategy)
    assert all(position[p["chosen"]] < position[p["rejected"]] for p in pairs)
    assert len(pairs) == {"best_vs_worst": 1, "best_vs_each": k - 1, "all_pairs": k * (k - 1) // 2}[strategy]
    assert len({(p["chosen"], p["rejected"]) for p in pairs}) == len(pairs)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=8))
def test_all_pairs_count_and_margins_with_tied_scores(scores):
    completions = [f"y{i}" for i in range(len(scores))]
    row = {"completions": completions, "scores": scores}
    score = dict(zip(completions, scores, strict=True))
    tied = sum(scores[i] == scores[j] for j in range(len(scores)) for i in range(j))
    pairs = binarize([row], strategy="all_pairs")
    assert len(pairs) == len(scores) * (len(scores) - 1) // 2 - tied
    assert all(p["margin"] == score[p["chosen"]] - score[p["rejected"]] > 0 for p in pairs)
    flagged = binarize([row], strategy="all_pairs", keep_ties=True)
    assert sum(p["tie"] for p in flagged) == tied
    assert all((p["margin"] == 0) == p["tie"] for p in flagged)


# ---- end to end: the collator takes the pairs and their columns ---------------------------------------------------


def test_binarized_pairs_collate_with_margin_and_tie_columns():
    rows = [
        {"prompt": "2+2=", "completions": ["4", "5", "3"], "scores": [9, 1, 1]},
        {"prompt": "1+1=", "completions": ["2", "3"], "scores": [8, 2]},
    ]
    pairs = binarize(rows, strategy="all_pairs", keep_ties=True)
    batch = PairCollator(tiny_tokenizer())(pairs)
    assert batch["input_ids"].shape[0] == 2 * len(pairs) == 8
    assert batch["margin"].dtype == torch.float32 and batch["margin"].tolist() == [8.0, 8.0, 0.0, 6.0]
    assert batch["tie"].dtype == torch.bool and batch["tie"].tolist() == [False, False, True, False]
    plain = PairCollator(tiny_tokenizer())(binarize([{"prompt": "Q", "chosen": ["a"], "rejected": ["b", "c"]}]))
    assert set(plain) == {"input_ids", "attention_mask", "labels"}
