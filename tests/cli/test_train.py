"""``rmreg train`` end to end on tiny settings: the built-in default, local data, spellings, truncation, output dirs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rmreg import RegularizedRewardModel, reporting
from rmreg.data import encode_pair
from rmreg.testing import tiny_tokenizer, toy_pairs

SHIFTED = ("test_long", "test_marker_flip", "test_length_flip")
# A run on the local tiny LM: one objective, one epoch, small batches.
QUICK = ["--objective", "bt", "--epochs", "1", "--batch-size", "4", "--no-progress"]


def test_default_run_writes_checkpoints_metrics_plot_and_the_table(builtin_run: tuple[Path, str]) -> None:
    out, printed = builtin_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert [run["objective"] for run in metrics["runs"]] == ["bt", "grm-sft"]
    assert metrics["alpha"] == 0.1 and "α = 0.1" in printed
    assert list(metrics["summary"]["bt"]) == ["test", *SHIFTED]
    for run in metrics["runs"]:
        assert run["history"] and run["final"]["test"]["pairs"] == 8
        assert Path(run["checkpoint"]).parent == out.absolute()
        model = RegularizedRewardModel.from_pretrained(run["checkpoint"])
        assert model.objective.name == run["objective"]
    assert (out / "training_curves.png").read_bytes().startswith(b"\x89PNG")
    table = printed.split("Pair accuracy (%) of the reward model")[1].splitlines()
    assert table[1].split() == ["objective", "test", *SHIFTED]
    assert table[2].startswith("bt ") and table[3].startswith("grm-sft (α=0.1) ")
    assert "base LM (before training)" in printed
    # The built-in LM has 256 positions: the default --max-length (1024) comes down to them, and nothing is cut.
    assert metrics["max_length"] == 256
    assert set(metrics["truncation"]) == {"train", "test", *SHIFTED}
    assert metrics["truncation"]["train"] == {
        "pairs": 32,
        "truncated": 0,
        "responses_cut": 0,
        "dropped": 0,
        "max_length": 256,
        "policy": "keep_end",
    }
    assert not [path for path in out.parent.iterdir() if ".partial-" in path.name]  # the staging folder is gone


def test_default_run_ends_with_paired_differences_and_the_best_of_n_verdict(tmp_path: Path, monkeypatch, cli) -> None:
    monkeypatch.setenv("RMREG_CACHE", str(tmp_path / "cache"))
    argv = ["train", *cli.TINY_BUILTIN, "--seeds", "3", "--bon-prompts", "2", "--bon-samples", "4"]
    code, printed, err = cli.run([*argv, "--output-dir", str(tmp_path / "out"), "--no-progress"])
    assert code == 0, err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    # One line per split, the shifted ones marked; each is the paired t-interval of GRM − BT over the 3 seeds.
    paired = printed.split("Paired differences in reward-model pair accuracy")[1].split("\n\n")[0].splitlines()[1:]
    assert [line.split(":")[0] for line in paired] == ["test", *(f"{name} (shifted)" for name in SHIFTED)]
    differences = metrics["paired_differences"]["grm-sft (α=0.1) − bt"]
    for line, split in zip(paired, ["test", *SHIFTED], strict=True):
        by_seed = {
            name: [run["final"][split]["reward_accuracy"] for run in metrics["runs"] if run["objective"] == name]
            for name in ("bt", "grm-sft")
        }
        expected = reporting.paired_difference(by_seed["bt"], by_seed["grm-sft"])
        assert differences[split]["mean"] == pytest.approx(expected.mean)
        marked = f"{split} (shifted)" if split != "test" else split
        assert line == f"{marked}: " + expected.describe("GRM (grm-sft, α=0.1) − BT")
        assert line.endswith(("better", "no detectable difference", "worse")) and "over 3 seeds" in line
    # Best-of-N: one curve per run (N = 1, 2, 4) and a verdict line per objective, then GRM − BT at the largest N.
    assert all(run["best_of_n"]["n"] == [1, 2, 4] for run in metrics["runs"])
    verdict = printed.split("Best-of-N, N = 1 … 4")[1].splitlines()[1:4]
    assert verdict[0].startswith("bt: gold ") and verdict[1].startswith("GRM (grm-sft, α=0.1): gold ")
    assert verdict[2].startswith("N = 4: GRM (grm-sft, α=0.1) − BT: ") and "gold (95% CI over 3 seeds)" in verdict[2]
    assert metrics["verdicts"]["best_of_n"] == verdict


def test_a_second_run_loads_the_pretrained_lm_from_the_cache(
    builtin_run: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    out, _ = builtin_run
    cached_lm = Path(json.loads((out / "metrics.json").read_text())["pretrained_lm"]["path"])
    monkeypatch.setenv("RMREG_CACHE", str(cached_lm.parent))
    argv = ["train", *cli.TINY_BUILTIN, "--objective", "bt", "--head", "linear", "--output-dir", str(tmp_path)]
    code, printed, _ = cli.run([*argv, "--no-progress"])
    assert code == 0 and "built-in LM: " in printed
    assert json.loads((tmp_path / "metrics.json").read_text())["pretrained_lm"]["from_cache"]
    assert RegularizedRewardModel.from_pretrained(tmp_path / "bt").reward_head.kind == "linear"


def test_train_on_local_model_and_conversational_data_with_lora_and_dpo(model_dir: Path, tmp_path: Path, cli) -> None:
    pairs = [
        {
            "prompt": [{"role": "user", "content": p["prompt"]}],
            "chosen": [{"role": "assistant", "content": p["chosen"]}],
            "rejected": [{"role": "assistant", "content": p["rejected"]}],
        }
        for p in toy_pairs(8)
    ]
    data = cli.write_rows(tmp_path / "chat.jsonl", pairs)
    held_out = cli.write_rows(tmp_path / "held_out.jsonl", toy_pairs(4, seed=1))
    argv = ["train", "--model", str(model_dir), "--data", str(data), "--eval-data", str(held_out), "--lora"]
    argv += ["--objective", "bt", "--objective", "grm-dpo", "--batch-size", "4", "--output-dir", str(tmp_path / "o")]
    code, printed, err = cli.run([*argv, "--no-progress"])
    assert code == 0, err
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["alpha"] == 0.01 and metrics["training"]["learning_rate"] == 1e-5
    assert list(metrics["summary"]) == ["bt", "grm-dpo (α=0.01)"] and metrics["eval_data"] == ["held_out"]
    assert metrics["max_length"] == cli.POSITIONS  # the default (1024) comes down to the model's positions
    model = RegularizedRewardModel.from_pretrained(tmp_path / "o" / "grm-dpo")
    assert model.reference_mode == "adapters"
    assert "held_out" in printed


def test_model_and_data_as_positionals_or_options_train_the_same(model_dir: Path, tmp_path: Path, cli) -> None:
    data = cli.write_rows(tmp_path / "pairs.jsonl", toy_pairs(8))
    records = []
    spellings = {"positional": [str(model_dir), str(data)], "options": ["--model", str(model_dir), "--data", str(data)]}
    for name, spelling in spellings.items():
        assert cli.run(["train", *spelling, *QUICK, "--output-dir", str(tmp_path / name)])[0] == 0
        records.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert records[0]["model"] == records[1]["model"] == str(model_dir)
    assert records[0]["runs"][0]["history"] == records[1]["runs"][0]["history"]
    # A mix of both also works, as long as it names each once.
    assert (
        cli.run(["train", str(model_dir), "--data", str(data), *QUICK, "--output-dir", str(tmp_path / "mix")])[0] == 0
    )


def test_truncated_pairs_are_counted_printed_and_recorded(model_dir: Path, tmp_path: Path, cli) -> None:
    tokenizer = tiny_tokenizer()
    rows = toy_pairs(8)
    rows[2]["prompt"] = rows[5]["prompt"] = "a long prompt that does not fit " * 3
    rows[5]["chosen"] = "a response longer than the row " * 2
    max_length = 40
    lengths = [encode_pair(tokenizer, row).length for row in rows]
    cut_responses = [
        i
        for i, row in enumerate(rows)
        if max(len(encode_pair(tokenizer, row).chosen_ids), len(encode_pair(tokenizer, row).rejected_ids)) >= max_length
    ]
    data = cli.write_rows(tmp_path / "pairs.jsonl", rows)
    argv = ["train", str(model_dir), str(data), *QUICK, "--max-length", str(max_length)]
    code, printed, err = cli.run([*argv, "--output-dir", str(tmp_path / "o")])
    assert code == 0, err
    truncated = sum(length > max_length for length in lengths)
    assert truncated == 2 and cut_responses == [5]
    assert f"train: {truncated} of 8 pairs are longer than {max_length} tokens" in printed
    assert "and of 1 of them the responses' starts too" in printed
    record = json.loads((tmp_path / "o" / "metrics.json").read_text())["truncation"]["train"]
    assert record == {
        "pairs": 8,
        "truncated": 2,
        "responses_cut": 1,
        "dropped": 0,
        "max_length": 40,
        "policy": "keep_end",
    }

    code, printed, _ = cli.run([*argv, "--truncation", "drop", "--output-dir", str(tmp_path / "dropped")])
    assert code == 0 and "train: 2 of 8 pairs are longer than 40 tokens and were left out" in printed
    metrics = json.loads((tmp_path / "dropped" / "metrics.json").read_text())
    assert metrics["truncation"]["train"]["dropped"] == 2 and metrics["runs"][0]["final"]["train"]["pairs"] == 6
    line = cli.error_line([*argv, "--truncation", "error", "--output-dir", str(tmp_path / "refused")])
    assert line.startswith(f"{data}: line 3: a pair needs") and "max_length=40" in line
    assert not (tmp_path / "refused").exists()


def _tree(path: Path) -> dict[str, bytes]:
    return {str(file.relative_to(path)): file.read_bytes() for file in sorted(path.rglob("*")) if file.is_file()}


def test_an_earlier_run_is_refused_then_replaced_whole_with_overwrite(
    model_dir: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = cli.write_rows(tmp_path / "pairs.jsonl", toy_pairs(8))
    out = tmp_path / "out"
    base = ["train", str(model_dir), str(data), "--epochs", "1", "--batch-size", "4", "--no-progress"]
    assert cli.run([*base, "--objective", "bt,grm-sft", "--output-dir", str(out)])[0] == 0
    before = _tree(out)
    line = cli.error_line([*base, "--objective", "bt", "--output-dir", str(out)])
    assert line == (
        f"--output-dir {out} holds an earlier run (metrics.json, bt/, grm-sft/); pass --overwrite to replace it "
        "whole, or another --output-dir"
    )
    assert _tree(out) == before

    # Interrupted after the first model: the earlier run stays as it was, and no partial run is left beside it.
    import rmreg.cli.train_runs as steps

    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train(*args, **kwargs)

    train = steps.train
    monkeypatch.setattr(steps, "train", interrupted)
    code, _, err = cli.run([*base, "--objective", "bt,grm-sft-nll", "--output-dir", str(out), "--overwrite"])
    assert code == 130 and err.strip() == "rmreg: interrupted"
    assert _tree(out) == before and sorted(path.name for path in tmp_path.iterdir()) == ["out", "pairs.jsonl"]
    monkeypatch.setattr(steps, "train", train)

    assert cli.run([*base, "--objective", "grm-sft-nll", "--output-dir", str(out), "--overwrite"])[0] == 0
    assert sorted(path.name for path in out.iterdir()) == ["grm-sft-nll", "metrics.json", "training_curves.png"]
    assert [run["objective"] for run in json.loads((out / "metrics.json").read_text())["runs"]] == ["grm-sft-nll"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out", "pairs.jsonl"]


def test_an_empty_output_dir_is_used_as_it_is(model_dir: Path, tmp_path: Path, cli) -> None:
    data = cli.write_rows(tmp_path / "pairs.jsonl", toy_pairs(4))
    out = tmp_path / "empty"
    out.mkdir()
    assert cli.run(["train", str(model_dir), str(data), *QUICK, "--output-dir", str(out)])[0] == 0
    assert (out / "bt").is_dir() and (out / "metrics.json").is_file()


@pytest.mark.slow
def test_train_under_torchrun_uses_two_cpu_processes(model_dir: Path, tmp_path: Path, cli) -> None:
    data = cli.write_rows(tmp_path / "pairs.jsonl", toy_pairs(24))
    held_out = cli.write_rows(tmp_path / "held_out.jsonl", toy_pairs(7, seed=1))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "rmreg", "train"]
    argv = ["--model", str(model_dir), "--data", str(data), "--eval-data", str(held_out), "--objective", "bt"]
    argv += ["--epochs", "1", "--batch-size", "4", "--output-dir", str(tmp_path / "o"), "--no-progress"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, *argv], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("Pair accuracy (%) of the reward model") == 1  # only the main process reports
    run = json.loads((tmp_path / "o" / "metrics.json").read_text())["runs"][0]
    assert len(run["history"]) == 3  # 24 pairs / (4 per batch x 2 processes)
    assert run["final"]["held_out"]["pairs"] == 7  # every pair counted once, none twice
