"""JudgeBench: a reward model's verdicts, both response orders (run_judge.py's default) or one, and exact ties."""

import re
from pathlib import Path

import pytest

from rmreg.evaluation import run_benchmark

# (source, reward of A, reward of B, label)
PAIRS = [
    ("mmlu-pro-law", 2.0, 1.0, "A>B"),  # right
    ("mmlu-pro-math", 1.0, 2.0, "A>B"),  # wrong
    ("livebench-reasoning", 1.0, 2.0, "B>A"),  # right
    ("livebench-math", 1.0, 1.0, "B>A"),  # exact tie: verdict B>A in game 1, A>B in game 2 (flipped back)
    ("livebench-math", 1.0, 1.0, "A>B"),  # exact tie: wrong in both modes
    ("livecodebench", 0.0, 3.0, "B>A"),  # right
]


def _rows() -> tuple[list[dict[str, object]], dict[str, float]]:
    rows, rewards = [], {}
    for i, (source, a, b, label) in enumerate(PAIRS):
        rows.append({
            "pair_id": f"id-{i}", "original_id": i, "source": source, "question": f"question {i}",
            "response_model": "gpt-4o-2024-05-13", "response_A": f"A{i}", "response_B": f"B{i}", "label": label,
        })  # fmt: skip
        rewards |= {f"A{i}": a, f"B{i}": b}
    return rows, rewards


def test_both_orders_count_a_tie_as_wrong(tmp_path: Path, write, table_scorer) -> None:
    rows, rewards = _rows()
    path = write(tmp_path / "dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl", rows)
    scorer = table_scorer(rewards)
    result = run_benchmark("judgebench", path, scorer)
    assert scorer.items[:2] == [("question 0", "A0"), ("question 0", "B0")]
    assert result.subsets == {
        "mmlu-pro": 1 / 2,
        "livebench-reasoning": 1.0,
        "livebench-math": 0.0,
        "livecodebench": 1.0,
    }
    assert result.counts == {"mmlu-pro": 2, "livebench-reasoning": 1, "livebench-math": 2, "livecodebench": 1}
    assert result.score == pytest.approx(3 / 6)
    assert result.details["single_game"] is False


def test_single_game_reads_a_tie_as_b_better(table_scorer) -> None:
    rows, rewards = _rows()
    result = run_benchmark("judgebench", rows, table_scorer(rewards), single_game=True)
    assert result.subsets["livebench-math"] == 1 / 2  # the B>A tie is right, the A>B tie wrong
    assert result.score == pytest.approx(4 / 6)


def test_a_source_outside_the_categories_counts_only_overall(table_scorer) -> None:
    rows, rewards = _rows()
    rows[0] = {**rows[0], "source": "custom"}
    result = run_benchmark("judgebench", rows, table_scorer(rewards))
    assert result.subsets["mmlu-pro"] == 0.0 and result.counts["other sources"] == 1
    assert result.score == pytest.approx(3 / 6)


def test_a_label_other_than_a_b_is_an_error(tmp_path: Path, write) -> None:
    rows, _ = _rows()
    rows[2] = {**rows[2], "label": "A=B"}
    path = write(tmp_path / "pairs.jsonl", rows)
    with pytest.raises(ValueError, match=re.escape(f"{path}: row 2: column 'label': must be 'A>B' or 'B>A'")):
        run_benchmark("judgebench", path, lambda items: [0.0] * len(items))
    with pytest.raises(ValueError, match="judgebench has no option 'ties'"):
        run_benchmark("judgebench", path, lambda items: [0.0] * len(items), ties="drop")
