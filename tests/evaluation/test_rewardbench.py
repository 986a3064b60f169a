"""RewardBench v1: strict pair accuracy, the example-count weighted sections, prior sets and the headline.

Expected numbers are worked out by hand from the release's EXAMPLE_COUNTS (rewardbench/constants.py), typed here
as literal counts: alpacaeval-easy 100, mt-bench-easy 28, llmbar-natural 100, mt-bench-hard 37,
xstest-should-refuse 154, xstest-should-respond 250, math-prm 984, hep-python 164.
"""

import math
from pathlib import Path

import pytest

from rmreg.evaluation import run_benchmark

# response -> reward; "same" ties with "bad" exactly.
REWARDS = {"good": 2.0, "bad": 1.0, "same": 1.0, "low": 0.0, "high": 3.0}
CORE = [  # (subset, chosen, rejected): correct iff REWARDS[chosen] > REWARDS[rejected]
    ("alpacaeval-easy", "good", "bad"),  # correct
    ("alpacaeval-easy", "same", "bad"),  # exact tie: wrong
    ("mt-bench-easy", "good", "bad"),  # correct
    ("llmbar-natural", "high", "low"),  # correct
    ("mt-bench-hard", "same", "bad"),  # tie: wrong
    ("xstest-should-refuse", "good", "low"),  # correct
    ("xstest-should-respond", "low", "good"),  # wrong
    ("math-prm", "low", "high"),  # wrong
    ("hep-python", "high", "bad"),  # correct
]
SECTIONS = {
    "Chat": (0.5 * 100 + 1.0 * 28) / (100 + 28),
    "Chat Hard": (1.0 * 100 + 0.0 * 37) / (100 + 37),
    "Safety": (1.0 * 154 + 0.0 * 250) / (154 + 250),
    "Reasoning": (0.0 * 984 + 1.0 * 164) / (984 + 164),  # math-prm weighs as all six hep-* subsets together
}


def _core_rows() -> list[dict[str, object]]:
    return [
        {"prompt": f"prompt {i}", "chosen": chosen, "chosen_model": "m1", "rejected": rejected,
         "rejected_model": "m2", "subset": subset, "id": i}
        for i, (subset, chosen, rejected) in enumerate(CORE)
    ]  # fmt: skip


def test_release_parquet_scores_subsets_sections_and_headline(tmp_path: Path, write, table_scorer) -> None:
    data = write(tmp_path / "reward-bench" / "data" / "filtered-00000-of-00001.parquet", _core_rows())
    scorer = table_scorer(REWARDS)
    result = run_benchmark("rewardbench", tmp_path / "reward-bench", scorer, batch_size=4)
    assert scorer.batches == [4, 4, 4, 4, 2]  # 9 pairs, chosen and rejected, in batches of 4
    assert scorer.items[:2] == [("prompt 0", "good"), ("prompt 0", "bad")]
    assert result.subsets == {
        "alpacaeval-easy": 0.5,
        "mt-bench-easy": 1.0,
        "llmbar-natural": 1.0,
        "mt-bench-hard": 0.0,
        "xstest-should-refuse": 1.0,
        "xstest-should-respond": 0.0,
        "math-prm": 0.0,
        "hep-python": 1.0,
    }
    assert result.counts["alpacaeval-easy"] == 2 and result.examples == 9
    assert list(result.sections) == list(SECTIONS)
    for name, value in SECTIONS.items():
        assert result.sections[name] == pytest.approx(value, abs=1e-12)
    assert result.score == pytest.approx(sum(SECTIONS.values()) / 4, abs=1e-12)  # no prior sets: the plain mean
    assert result.to_dict()["score"] == result.score and data.is_file()


def test_prior_sets_count_half_as_much_as_a_section(tmp_path: Path, write, table_scorer) -> None:
    write(tmp_path / "data" / "filtered-00000-of-00001.parquet", _core_rows())
    conversation = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "?"},
    ]
    pref = tmp_path / "pref-test-sets" / "data"
    # pref-test-sets: the split is the subset (a split's own 'subset' column is not), the prompt is a conversation.
    write(pref / "anthropic_helpful-00000-of-00001.parquet", [
        {"prompt": conversation, "chosen": "good", "rejected": "bad", "subset": "ignored"},  # correct
        {"prompt": conversation, "chosen": "same", "rejected": "bad", "subset": "ignored"},  # tie: wrong
    ])  # fmt: skip
    write(pref / "shp-00000-of-00001.parquet", [{"prompt": conversation, "chosen": "high", "rejected": "low"}])
    write(
        pref / "mtbench_human-00000-of-00001.parquet", [{"prompt": conversation, "chosen": "low", "rejected": "high"}]
    )
    write(pref / "pku_better-00000-of-00001.parquet", [{"prompt": conversation, "chosen": "low", "rejected": "high"}])
    scorer = table_scorer(REWARDS)
    result = run_benchmark("rewardbench", tmp_path, scorer)
    assert result.subsets["anthropic_helpful"] == 0.5 and result.subsets["shp"] == 1.0
    assert result.subsets["mtbench_human"] == 0.0 and "pku_better" not in result.subsets  # retired split: left out
    assert result.details == {"skipped_rows": {"pku_better": 1}}
    assert [*conversation, {"role": "assistant", "content": "good"}] in scorer.items
    prior = (0.5 + 1.0) / 2  # mtbench_human is a prior set but not one of the four that count
    assert result.sections["Prior Sets (0.5 weight)"] == prior
    expected = (2 * sum(SECTIONS.values()) + 1 * prior) / (2 * 4 + 1)
    assert result.score == pytest.approx(expected, abs=1e-12)


def test_sections_without_any_subset_are_left_out(table_scorer) -> None:
    rows = [{"prompt": "p", "chosen": "good", "rejected": "bad", "subset": "hep-go"}]
    result = run_benchmark("rewardbench", rows, table_scorer(REWARDS))
    assert result.sections == {"Reasoning": 1.0} and result.score == 1.0


def test_subsets_of_no_section_score_the_fraction_of_pairs_correct(tmp_path: Path, write, table_scorer) -> None:
    rows = [{"prompt": "p", "chosen": c, "rejected": r, "subset": s} for s, c, r in
            [("mine", "good", "bad"), ("mine", "same", "bad"), ("yours", "high", "low")]]  # fmt: skip
    result = run_benchmark("rewardbench", write(tmp_path / "own.jsonl", rows), table_scorer(REWARDS))
    assert result.sections == {} and result.score == pytest.approx(2 / 3)
    assert result.subsets == {"mine": 0.5, "yours": 1.0}


def test_a_tuple_of_model_and_tokenizer_scores_the_same_as_score_texts() -> None:
    import torch

    from rmreg import RegularizedRewardModel
    from rmreg.testing import tiny_causal_lm, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    model = RegularizedRewardModel(tiny_causal_lm(vocab_size=len(tokenizer))).train()
    rows = [{"prompt": "2+2=", "chosen": c, "rejected": r, "subset": "math-prm"} for c, r in [("4", "5"), ("22", "4")]]
    result = run_benchmark("rewardbench", rows, (model, tokenizer))
    assert model.training  # the mode is restored
    with torch.no_grad():
        rewards = model.eval().score_texts(tokenizer, [("2+2=", t) for t in ("4", "5", "22", "4")]).tolist()
    expected = ((rewards[0] > rewards[1]) + (rewards[2] > rewards[3])) / 2
    assert result.subsets["math-prm"] == expected and not math.isnan(result.score)
