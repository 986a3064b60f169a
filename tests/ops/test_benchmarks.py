"""Smoke tests of the LM-head benchmarks (benchmarks/bench_loss.py and bench_step.py --quick); no timing assertion."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_quick(script: str, out: Path) -> None:
    path = BENCHMARKS / script
    if not path.exists():
        pytest.skip("benchmarks/ is not shipped with the installed package")
    subprocess.run([sys.executable, str(path), "--quick", "--out", str(out)], check=True, timeout=600)


@pytest.mark.slow
def test_loss_benchmark_quick_mode_runs(tmp_path):
    """Smoke test of benchmarks/bench_loss.py --quick (no timing assertion)."""
    run_quick("bench_loss.py", tmp_path)
    table = (tmp_path / "bench_loss.md").read_text()
    assert "fused" in table and "naive" in table
    assert (tmp_path / "bench_loss.csv").read_text().count("\n") == 4  # header + naive, chunked, fused


@pytest.mark.slow
def test_step_benchmark_quick_mode_runs(tmp_path):
    """Smoke test of benchmarks/bench_step.py --quick: every provider gives the same first-step loss."""
    run_quick("bench_step.py", tmp_path)
    with open(tmp_path / "bench_step.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["provider"] for r in rows} == {"-", "rmreg", "naive", "sequence", "official"}
    for objective, count in (("sft", 3), ("dpo-copy", 2)):  # the fused and the generic paths give the same loss
        losses = [float(r["loss"]) for r in rows if r["objective"] == objective]
        assert len(losses) == count and losses == pytest.approx([losses[0]] * count, rel=1e-5)
    assert (tmp_path / "bench_step.md").exists()
