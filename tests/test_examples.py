"""Every example runs offline on the tiny model, lowers its loss and ranks held-out pairs above chance."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"rmreg_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_learned(result: dict[str, Any]) -> None:
    losses, quarter = result["losses"], max(1, len(result["losses"]) // 4)
    assert sum(losses[-quarter:]) < 0.8 * sum(losses[:quarter]), losses  # the loss went down (quarter means)
    assert result["held_out_accuracy"] > 0.75


def test_plain_pytorch() -> None:
    assert_learned(load("plain_pytorch").main(epochs=1))


def test_custom_regularizer_is_trained_logged_and_saved() -> None:
    result = load("custom_regularizer").main(steps=20)
    assert_learned(result)
    assert set(result["terms"]) == {"agreement_bt", "sft_per_token", "hidden_norm"}


def test_peft_lora_with_the_adapters_off_reference() -> None:
    pytest.importorskip("peft")
    pytest.importorskip("trl")
    result = load("peft_lora").main(["--objective", "grm-dpo", "--pairs", "128"])
    assert_learned(result)
    assert result["reloaded_identical"]


@pytest.mark.slow
def test_accelerate_loop_with_its_defaults(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    command = [sys.executable, str(EXAMPLES / "accelerate_loop.py"), "--steps", "15", "--metrics", str(metrics)]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(metrics.read_text())
    assert result["num_processes"] == 1
    assert_learned({"losses": result["losses"], "held_out_accuracy": result["held_out_accuracy"]})
