"""MT-Bench human judgments as the GRM paper's code turns them into pairs: a tie counts as a win of model B
(the default), or is dropped (the stricter option); both splits pooled."""

import re
from pathlib import Path

import pytest

from rmreg.evaluation import run_benchmark


def _conversation(answer: str) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": "Write a haiku."},
        {"role": "assistant", "content": f"{answer} (turn 1)"},
        {"role": "user", "content": "Now shorter."},
        {"role": "assistant", "content": answer},
    ]


def _row(qid: int, winner: str, a: str, b: str, judge: str = "expert_0") -> dict[str, object]:
    return {
        "question_id": qid, "model_a": "alpaca-13b", "model_b": "gpt-4", "winner": winner, "judge": judge,
        "conversation_a": _conversation(a), "conversation_b": _conversation(b), "turn": 2,
    }  # fmt: skip


HUMAN = [
    _row(81, "model_a", "a1", "b1"),  # a1 > b1: right
    _row(82, "model_b", "a2", "b2"),  # b2 < a2: wrong
    _row(83, "tie", "a3", "b3"),  # tie, scored as a win of B: b3 > a3, right
    _row(84, "tie", "a4", "b4"),  # tie, scored as a win of B: b4 < a4, wrong
]
GPT4 = [
    _row(85, "model_b", "a5", "b5", judge="gpt4_pair"),  # right
    _row(86, "tie (inconsistent)", "a6", "b6", judge="gpt4_pair"),  # tie as B: b6 == a6 exactly, wrong
]
REWARDS = {"a1": 2, "b1": 1, "a2": 2, "b2": 1, "a3": 0, "b3": 1, "a4": 3, "b4": 1, "a5": 0, "b5": 1, "a6": 1, "b6": 1}


def test_ties_count_as_model_b_and_both_splits_are_pooled(tmp_path: Path, write, table_scorer) -> None:
    write(tmp_path / "data" / "human-00000-of-00001.parquet", HUMAN)
    write(tmp_path / "data" / "gpt4_pair-00000-of-00001.parquet", GPT4)
    scorer = table_scorer(REWARDS)
    result = run_benchmark("mt-bench", tmp_path, scorer)
    # The files in sorted order: gpt4_pair (2 pairs, 4 items), then human.
    assert scorer.items[4] == _conversation("a1") and scorer.items[5] == _conversation("b1")  # whole conversations
    assert scorer.items[8] == _conversation("b3")  # the tie: B is "chosen"
    assert result.subsets == {"gpt4_pair": 1 / 2, "human": 2 / 4}
    assert result.score == 3 / 6
    assert result.details == {"ties": "model_b", "dropped_ties": {}}


def test_drop_leaves_the_ties_out(tmp_path: Path, write, table_scorer) -> None:
    write(tmp_path / "data" / "human-00000-of-00001.parquet", HUMAN)
    write(tmp_path / "data" / "gpt4_pair-00000-of-00001.parquet", GPT4)
    result = run_benchmark("mt-bench", tmp_path, table_scorer(REWARDS), ties="drop")
    assert result.subsets == {"gpt4_pair": 1.0, "human": 1 / 2}
    assert result.counts == {"gpt4_pair": 1, "human": 2}
    assert result.score == 2 / 3
    assert result.details["dropped_ties"] == {"gpt4_pair": 1, "human": 2}


def test_bad_rows_and_options(tmp_path: Path, write) -> None:
    path = write(tmp_path / "human.jsonl", [HUMAN[0], {**HUMAN[1], "winner": "model_c"}])
    with pytest.raises(ValueError, match=re.escape(f"{path}: row 1: column 'winner': must be 'model_a', 'model_b'")):
        run_benchmark("mt-bench", path, lambda items: [0.0] * len(items))
    broken = {**HUMAN[1], "conversation_b": [{"role": "user"}]}
    with pytest.raises(ValueError, match=re.escape("row 1: column 'conversation_b': message 0 is not a")):
        run_benchmark("mt-bench", write(path, [HUMAN[0], broken]), lambda items: [0.0] * len(items))
    with pytest.raises(ValueError, match="ties must be one of model_b, drop"):
        run_benchmark("mt-bench", [HUMAN[0]], lambda items: [0.0] * len(items), ties="half")
    with pytest.raises(ValueError, match="all 2 judgments are ties"):
        run_benchmark("mt-bench", HUMAN[2:], lambda items: [0.0] * len(items), ties="drop")
