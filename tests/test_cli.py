"""The `rmreg` command end to end on tiny settings: train (built-in and local data), eval, score, bench, errors."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from rmreg import RegularizedRewardModel
from rmreg.cli import main
from rmreg.cli.datafiles import read_pairs
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

# The built-in task at toy scale: a few pre-training steps, a handful of pairs, one seed, one epoch.
TINY_BUILTIN = ["--pretrain-steps", "20", "--train-pairs", "32", "--test-pairs", "8", "--seeds", "1", "--epochs", "1"]
SHIFTED = ("test_long", "test_marker_flip", "test_length_flip")


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One tiny run of the offline default (bt and grm-sft), its output directory and printed text."""
    root = tmp_path_factory.mktemp("builtin")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RMREG_CACHE", str(root / "cache"))
        capture = _Capture()
        with capture:
            code = main(["train", *TINY_BUILTIN, "--output-dir", str(root / "out"), "--no-progress"])
    assert code == 0, capture.err
    return root / "out", capture.out


class _Capture:
    """Capture stdout and stderr of in-process calls (pytest's capsys is function-scoped)."""

    def __enter__(self) -> "_Capture":
        import contextlib
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self._out))
        self._stack.enter_context(contextlib.redirect_stderr(self._err))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.out, self.err = self._out.getvalue(), self._err.getvalue()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local causal LM directory with its tokenizer (the kind of directory --model takes)."""
    path = tmp_path_factory.mktemp("lm")
    tokenizer = tiny_tokenizer()
    tiny_causal_lm(vocab_size=len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".parquet":
        pyarrow = pytest.importorskip("pyarrow")
        pytest.importorskip("pyarrow.parquet").write_table(pyarrow.Table.from_pylist(rows), path)
    else:
        pytest.importorskip("datasets").Dataset.from_list(rows).save_to_disk(str(path))
    return path


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rmreg: error: "), captured.err
    assert "Traceback" not in captured.out + captured.err
    return lines[0]


def test_default_run_writes_checkpoints_metrics_plot_and_the_table(builtin_run: tuple[Path, str]) -> None:
    out, printed = builtin_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert [run["objective"] for run in metrics["runs"]] == ["bt", "grm-sft"]
    assert metrics["alpha"] == 0.1 and "α = 0.1" in printed
    assert list(metrics["summary"]["bt"]) == ["test", *SHIFTED]
    for run in metrics["runs"]:
        assert run["history"] and run["final"]["test"]["pairs"] == 8
        model = RegularizedRewardModel.from_pretrained(run["checkpoint"])
        assert model.objective.name == run["objective"]
    assert (out / "training_curves.png").read_bytes().startswith(b"\x89PNG")
    table = printed.split("Pair accuracy (%) of the reward model")[1].splitlines()
    assert table[1].split() == ["objective", "test", *SHIFTED]
    assert table[2].startswith("bt ") and table[3].startswith("grm-sft (α=0.1) ")
    assert "base LM (before training)" in printed


def test_a_second_run_loads_the_pretrained_lm_from_the_cache(
    builtin_run: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = builtin_run
    cached_lm = Path(json.loads((out / "metrics.json").read_text())["pretrained_lm"]["path"])
    monkeypatch.setenv("RMREG_CACHE", str(cached_lm.parent))
    argv = ["train", *TINY_BUILTIN, "--objective", "bt", "--head", "linear", "--output-dir", str(tmp_path)]
    assert main([*argv, "--no-progress"]) == 0
    assert "built-in LM: " in capsys.readouterr().out
    assert json.loads((tmp_path / "metrics.json").read_text())["pretrained_lm"]["from_cache"]
    assert RegularizedRewardModel.from_pretrained(tmp_path / "bt").reward_head.kind == "linear"


def test_eval_and_score_a_trained_checkpoint(
    builtin_run: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = builtin_run
    checkpoint = json.loads((out / "metrics.json").read_text())["runs"][1]["checkpoint"]
    from rmreg.task import PreferenceTask

    pairs = PreferenceTask().split("test", 6, seed=5)
    data = _write(tmp_path / "pairs.jsonl", pairs)
    assert main(["eval", checkpoint, str(data)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["data", "pairs"] and lines[1].split()[:2] == [str(data), "6"]
    assert lines[1].endswith("%")

    prompt, chosen, rejected = pairs[0]["prompt"], pairs[0]["chosen"], pairs[0]["rejected"]
    assert main(["score", checkpoint, "--prompt", prompt, "--response", chosen, "--response", rejected]) == 0
    scored = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[1] for line in scored] == [chosen, rejected]
    texts = _write(tmp_path / "texts.csv", [{"prompt": prompt, "response": chosen}])
    assert main(["score", checkpoint, "--file", str(texts)]) == 0
    from_file = capsys.readouterr().out.strip().splitlines()
    assert from_file == scored[:1]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet", ""])
def test_data_files_of_every_format_read_the_same_rows(tmp_path: Path, suffix: str) -> None:
    rows = [{"prompt": "Q", "chosen": "aei", "rejected": "xyz", "margin": 1.5}, {"chosen": "ou", "rejected": "pq"}]
    if suffix in (".csv", ".parquet", ""):  # tables: every row has every column
        rows[1] = {"prompt": "R", **rows[1], "margin": 2.0}
    loaded = read_pairs(_write(tmp_path / f"pairs{suffix or '_dataset'}", rows))
    if suffix == ".csv":  # CSV cells are text; the collator converts margins
        loaded = [{**row, "margin": float(row["margin"])} for row in loaded]
    assert loaded == rows


def test_train_on_local_model_and_conversational_data_with_lora_and_dpo(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = [
        {
            "prompt": [{"role": "user", "content": p["prompt"]}],
            "chosen": [{"role": "assistant", "content": p["chosen"]}],
            "rejected": [{"role": "assistant", "content": p["rejected"]}],
        }
        for p in toy_pairs(8)
    ]
    data = _write(tmp_path / "chat.jsonl", pairs)
    held_out = _write(tmp_path / "held_out.jsonl", toy_pairs(4, seed=1))
    argv = ["train", "--model", str(model_dir), "--data", str(data), "--eval-data", str(held_out), "--lora"]
    argv += ["--objective", "bt", "--objective", "grm-dpo", "--batch-size", "4", "--output-dir", str(tmp_path / "o")]
    assert main([*argv, "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["alpha"] == 0.01 and metrics["training"]["learning_rate"] == 1e-5
    assert list(metrics["summary"]) == ["bt", "grm-dpo (α=0.01)"] and metrics["eval_data"] == ["held_out"]
    model = RegularizedRewardModel.from_pretrained(tmp_path / "o" / "grm-dpo")
    assert model.reference_mode == "adapters"
    assert "held_out" in capsys.readouterr().out


def test_python_dash_m_rmreg_help() -> None:
    result = subprocess.run([sys.executable, "-m", "rmreg", "--help"], capture_output=True, text=True, check=True)
    assert all(command in result.stdout for command in ("train", "eval", "score", "bench"))


def test_bench_runs_the_quick_benchmark_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "bench_loss.py"
    script.write_text("import json, sys\nopen(sys.argv[0] + '.args', 'w').write(json.dumps(sys.argv[1:]))\n")
    assert main(["bench", "--script", str(script), "--output-dir", str(tmp_path / "r")]) == 0
    assert json.loads(Path(f"{script}.args").read_text()) == ["--out", str(tmp_path / "r"), "--quick"]


def test_bad_input_prints_one_line_and_exits_2(
    model_dir: Path,
    builtin_run: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = str(tmp_path / "missing.jsonl")
    monkeypatch.setenv("RMREG_CACHE", str(tmp_path / "cache"))
    assert "no such file" in _error_line(capsys, ["train", "--data", missing])
    assert not (tmp_path / "cache").exists()  # checked before pre-training the built-in LM
    assert "no such directory" in _error_line(capsys, ["train", "--model", str(tmp_path / "nowhere")])
    wrong = _write(tmp_path / "wrong.jsonl", [{"question": "Q", "good": "a", "bad": "b"}])
    line = _error_line(capsys, ["train", "--data", str(wrong), "--model", str(model_dir)])
    assert "'chosen' and 'rejected'" in line and "question" in line
    no_tokenizer = tmp_path / "lm"
    tiny_causal_lm().save_pretrained(no_tokenizer)
    good = _write(tmp_path / "good.jsonl", [{k: v for k, v in p.items() if k != "margin"} for p in toy_pairs(2)])
    assert "no tokenizer" in _error_line(capsys, ["train", "--model", str(no_tokenizer), "--data", str(good)])
    assert "unknown objective 'dpo'" in _error_line(capsys, ["train", "--objective", "bt,dpo"])
    assert "alpha" in _error_line(capsys, ["train", "--alpha", "2"])
    line = _error_line(capsys, ["train", "--model", str(model_dir), "--data", str(good), "--objective", "margin"])
    assert "'margin' column" in line
    checkpoint = str(builtin_run[0] / "bt")
    (tmp_path / "x.txt").write_text("")
    assert "unknown file type '.txt'" in _error_line(capsys, ["eval", checkpoint, str(tmp_path / "x.txt")])
    assert "rmreg_config.json" in _error_line(capsys, ["eval", str(model_dir), str(good)])
    assert "nothing to score" in _error_line(capsys, ["score", checkpoint])
    assert "--script" in _error_line(capsys, ["bench", "--script", missing])


@pytest.mark.slow
def test_train_under_torchrun_uses_two_cpu_processes(model_dir: Path, tmp_path: Path) -> None:
    data = _write(tmp_path / "pairs.jsonl", toy_pairs(24))
    held_out = _write(tmp_path / "held_out.jsonl", toy_pairs(7, seed=1))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "rmreg", "train"]
    argv = ["--model", str(model_dir), "--data", str(data), "--eval-data", str(held_out), "--objective", "bt"]
    argv += ["--epochs", "1", "--batch-size", "4", "--output-dir", str(tmp_path / "o"), "--no-progress"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, *argv], capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("Pair accuracy (%) of the reward model") == 1  # only the main process reports
    run = json.loads((tmp_path / "o" / "metrics.json").read_text())["runs"][0]
    assert len(run["history"]) == 3  # 24 pairs / (4 per batch x 2 processes)
    assert run["final"]["held_out"]["pairs"] == 7  # every pair counted once, none twice
