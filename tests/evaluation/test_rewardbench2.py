"""RewardBench 2: best-of-N with the official tie rule, the Ties subset's own score, and the leaderboard mean."""

import math
import re
from pathlib import Path

import pytest

from rmreg.evaluation import run_benchmark


def _row(id_: str, subset: str, chosen: list[str], rejected: list[str], num_correct: int = 1) -> dict[str, object]:
    return {
        "id": id_, "prompt": f"prompt {id_}", "chosen": chosen, "rejected": rejected, "num_correct": num_correct,
        "num_incorrect": len(rejected), "total_completions": len(chosen) + len(rejected), "models": ["m"] * 4,
        "subset": subset, "additional_metadata": {"category": "x"},
    }  # fmt: skip


# Best-of-4: the row scores 1/k when the chosen completion is among k tied at the top, else 0.
BEST_OF_4 = [
    (_row("f0", "Factuality", ["c"], ["r1", "r2", "r3"]), {"c": 5, "r1": 1, "r2": 2, "r3": 3}, 1.0),
    (_row("f1", "Factuality", ["c"], ["r1", "r2", "r3"]), {"c": 5, "r1": 5, "r2": 2, "r3": 3}, 1 / 2),
    (_row("f2", "Factuality", ["c"], ["r1", "r2", "r3"]), {"c": 5, "r1": 5, "r2": 5, "r3": 5}, 1 / 4),
    (_row("m0", "Math", ["c"], ["r1", "r2", "r3"]), {"c": 4, "r1": 5, "r2": 2, "r3": 3}, 0.0),
    (_row("m1", "Math", ["c"], ["r1", "r2", "r3"]), {"c": 5, "r1": 5, "r2": 5, "r3": 1}, 1 / 3),
]
# Ties: prompt 0 and 1 each with a ref version (one correct answer) and a tied version (several).
TIES = [
    (_row("ref:0", "Ties", ["a"], ["x", "y"]), {"a": 5, "x": 1, "y": 2}),  # gap 5 - 2 = 3, accurate
    (_row("tied:0", "Ties", ["a", "b"], ["x"], 2), {"a": 4, "b": 6, "x": 3}),  # spread 2, gap 1, accurate
    (_row("ref:1", "Ties", ["a"], ["x"]), {"a": 2, "x": 3}),  # gap -1, wrong
    (_row("tied:1", "Ties", ["a", "b"], ["x"], 2), {"a": 5, "b": 5, "x": 1}),  # spread 0, gap 4, accurate
]
TIES_TERMS = {
    "tied_accuracy": 1.0,
    "ref_accuracy": 0.5,
    "correctness_preferred": 0.5,  # gap_tied > spread: prompt 0: 1 > 2 no; prompt 1: 4 > 0 yes
    "correctness_preferred_hard": 0.0,  # min(gap_ref, gap_tied) > spread: 1 > 2 no; -1 > 0 no
    # tanh(min gap / spread - 1): prompt 0 tanh(1/2 - 1); prompt 1: -1 / 0 = -inf, tanh -> -1
    "correctness_margin_score": (math.tanh(-0.5) - 1) / 2,
}
TIES_SCORE = 0.30 * 1.0 + 0.30 * 0.5 + 0.20 * 0.5 + 0.20 * 0.0 + 0.01 * (math.tanh(-0.5) - 1) / 2


class _PerRowScorer:
    """Rewards looked up by (prompt, completion), so every row has its own table."""

    def __init__(self, tables: dict[str, dict[str, float]]) -> None:
        self.tables = tables

    def __call__(self, items: list[tuple[str, str]]) -> list[float]:
        return [self.tables[prompt][completion] for prompt, completion in items]


def _dataset() -> tuple[list[dict[str, object]], _PerRowScorer]:
    cases = [(row, table) for row, table, _ in BEST_OF_4] + TIES
    return [row for row, _ in cases], _PerRowScorer({str(row["prompt"]): table for row, table in cases})


def test_best_of_4_ties_subset_and_leaderboard_mean(tmp_path: Path, write) -> None:
    rows, scorer = _dataset()
    write(tmp_path / "reward-bench-2" / "data" / "test-00000-of-00001.parquet", rows)
    result = run_benchmark("rewardbench2", tmp_path / "reward-bench-2", scorer)
    factuality = (1.0 + 1 / 2 + 1 / 4) / 3
    math_ = (0.0 + 1 / 3) / 2
    assert result.subsets["Factuality"] == pytest.approx(factuality, abs=1e-12)
    assert result.subsets["Math"] == pytest.approx(math_, abs=1e-12)
    assert result.subsets["Ties"] == pytest.approx(TIES_SCORE, abs=1e-12)
    assert result.details["Ties"] == pytest.approx(TIES_TERMS, abs=1e-12)
    assert result.score == pytest.approx((factuality + math_ + TIES_SCORE) / 3, abs=1e-12)
    assert result.counts == {"Factuality": 3, "Math": 2, "Ties": 4} and result.sections == {}


def test_only_the_first_completion_counts_as_correct_outside_ties() -> None:
    row = _row("p0", "Focus", ["c1", "c2"], ["r"], num_correct=2)
    scorer = _PerRowScorer({"prompt p0": {"c1": 1, "c2": 2, "r": 0}})
    assert run_benchmark("rewardbench2", [row], scorer).score == 0.0  # c2 beats c1, and only c1 is "the chosen"


def test_a_tied_prompt_without_its_ref_version_counts_only_in_the_accuracies() -> None:
    rows = [row for row, _ in TIES] + [_row("tied:7", "Ties", ["a", "b"], ["x"], 2)]
    tables = {str(row["prompt"]): table for row, table in TIES} | {"prompt tied:7": {"a": 0, "b": 1, "x": 2}}
    result = run_benchmark("rewardbench2", rows, _PerRowScorer(tables))
    terms = dict(TIES_TERMS, tied_accuracy=2 / 3)  # tied:7 is wrong; the margins use prompts 0 and 1 only
    assert result.details["Ties"] == pytest.approx(terms, abs=1e-12)


def test_bad_rows_name_the_file_the_row_and_the_column(tmp_path: Path, write) -> None:
    rows, scorer = _dataset()
    rows[6] = {**rows[6], "id": "tied-0"}
    path = write(tmp_path / "test.jsonl", rows)
    with pytest.raises(ValueError, match=re.escape(f"{path}: row 6: column 'id': a Ties row's id must be")):
        run_benchmark("rewardbench2", path, scorer)
    rows[6] = {**rows[6], "id": "tied:0", "num_correct": 4}
    with pytest.raises(ValueError, match=re.escape("row 6: column 'num_correct': must be between 1 and the 3")):
        run_benchmark("rewardbench2", write(path, rows), scorer)
    rows[6] = {**rows[6], "num_correct": 2, "total_completions": 4}
    with pytest.raises(ValueError, match=re.escape("row 6: column 'total_completions': says 4, the row has 3")):
        run_benchmark("rewardbench2", write(path, rows), scorer)
    rows[6] = {**rows[6], "total_completions": 3, "chosen": []}
    with pytest.raises(ValueError, match=re.escape("row 6: column 'chosen': expected at least one text")):
        run_benchmark("rewardbench2", write(path, rows), scorer)
    with pytest.raises(ValueError, match="needs correct and incorrect answers"):
        run_benchmark("rewardbench2", [_row("ref:0", "Ties", ["a"], ["b"], num_correct=2)], lambda items: [0, 0])
