"""Smoke test of benchmarks/generalization.py --quick: every output exists and is well-formed (no accuracy checks)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "generalization.py"
OBJECTIVES = {"bt", "margin", "label-smoothing", "ensemble", "grm-dpo", "grm-dpo-noref", "grm-sft"}
SPLITS = {"test", "test_long", "test_marker_flip", "test_length_flip", "shifted_mean"}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_generalization_quick_mode_writes_tables_and_best_of_n(tmp_path: Path) -> None:
    if not SCRIPT.exists():
        pytest.skip("benchmarks/ is not shipped with the installed package")
    env = {**os.environ, "RMREG_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], check=True, timeout=900, env=env)

    runs = _rows(out / "generalization_runs.csv")
    main_tables = [row for row in runs if not row["table"].startswith("ablation")]
    assert len({row["table"] for row in main_tables}) == 3  # small, large, large with flipped labels
    assert {row["objective"] for row in main_tables} == OBJECTIVES
    assert {row["split"] for row in runs} == SPLITS
    for row in runs:
        assert 0.0 <= float(row["reward_accuracy"]) <= 1.0
        assert row["lm_accuracy"] == "" if row["objective"] == "ensemble" else 0.0 <= float(row["lm_accuracy"]) <= 1
    assert any(row["table"].startswith("ablation") for row in runs)

    bon = _rows(out / "generalization_bon.csv")
    assert {row["objective"] for row in bon} == OBJECTIVES
    assert len({row["condition"] for row in bon}) == 2  # clean and flipped labels
    assert sorted({int(row["n"]) for row in bon}) == [1, 2, 4, 8]
    assert all(float(row["kl"]) >= 0 and -1.5 <= float(row["gold"]) <= 1.0 for row in bon)

    report = (out / "generalization.md").read_text()
    assert "grm-sft" in report and "Best-of-N" in report and "command:" in report
    if (out / "generalization_bon.png").exists():
        assert (out / "generalization_bon.png").read_bytes()[:4] == b"\x89PNG"
    else:
        pytest.importorskip("matplotlib")
        pytest.fail("matplotlib is installed but no plot was written")
