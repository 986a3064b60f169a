"""`rmreg eval`: benchmarks (table, JSON, chart) with an rmreg checkpoint, a run directory or a transformers
sequence classifier as MODEL; pair accuracy in both spellings; bad input as one line and exit code 2."""

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from rmreg import RegularizedRewardModel, RewardHead
from rmreg.cli import main
from rmreg.testing import tiny_causal_lm, tiny_tokenizer

# RewardBench rows: two Chat subsets' worth and two Reasoning subsets (counts 100, 984, 164 in the release).
RB_ROWS = [
    {"prompt": "Say hi.", "chosen": "Hi there!", "rejected": "No.", "subset": "alpacaeval-easy"},
    {"prompt": "Say bye.", "chosen": "Goodbye!", "rejected": "Hi.", "subset": "alpacaeval-easy"},
    {"prompt": "2+2=", "chosen": "4", "rejected": "5", "subset": "math-prm"},
    {"prompt": "def f(): return 1", "chosen": "ok", "rejected": "bug", "subset": "hep-go"},
]
ITEMS = [(row["prompt"], row[key]) for row in RB_ROWS for key in ("chosen", "rejected")]


def _expected_rewardbench(rewards: list[float]) -> float:
    """The RewardBench headline for RB_ROWS, by hand: Chat = alpacaeval-easy, Reasoning weighted 984 : 164."""
    right = [rewards[2 * i] > rewards[2 * i + 1] for i in range(len(RB_ROWS))]
    chat = (right[0] + right[1]) / 2
    reasoning = (right[2] * 984 + right[3] * 164) / (984 + 164)
    return (chat + reasoning) / 2


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny rmreg run directory (one checkpoint), a transformers classifier, a causal LM, and data files."""
    import pyarrow
    import pyarrow.parquet
    import transformers

    root = tmp_path_factory.mktemp("eval")
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    lm = tiny_causal_lm(vocab_size=len(tokenizer))
    model = RegularizedRewardModel(lm, reward_head=RewardHead(lm.config.hidden_size, kind="linear"))
    model.save_pretrained(root / "run" / "bt", tokenizer=tokenizer)
    (root / "run" / "metrics.json").write_text("{}")
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, num_labels=1, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    classifier = transformers.AutoModelForSequenceClassification.from_config(config)
    classifier.save_pretrained(root / "classifier")
    tokenizer.save_pretrained(root / "classifier")
    mlp = RegularizedRewardModel(lm, reward_head=RewardHead(lm.config.hidden_size, hidden=8))
    mlp.export_sequence_classifier(root / "exported", tokenizer=tokenizer)  # model code in the directory
    lm.save_pretrained(root / "lm")
    tokenizer.save_pretrained(root / "lm")
    rb = root / "reward-bench" / "filtered-00000-of-00001.parquet"
    rb.parent.mkdir()
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(RB_ROWS), rb)
    pairs = root / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({k: row[k] for k in ("prompt", "chosen", "rejected")}) + "\n" for row in RB_ROWS)
    )
    return {"run": root / "run", "checkpoint": root / "run" / "bt", "classifier": root / "classifier",
            "lm": root / "lm", "rewardbench": rb, "pairs": pairs, "root": root}  # fmt: skip


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rmreg: error: "), lines
    return lines[0]


def test_benchmark_with_a_checkpoint_prints_the_table_and_writes_json_and_chart(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results" / "rewardbench.json"
    argv = [
        "eval",
        str(files["checkpoint"]),
        "--benchmark",
        "rewardbench",
        str(files["rewardbench"]),
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "scoring rewardbench" in captured.err  # the progress bar, on stderr
    model = RegularizedRewardModel.from_pretrained(files["checkpoint"])
    with torch.no_grad():
        rewards = model.score_texts(tiny_tokenizer(), ITEMS, max_length=1024).tolist()
    expected = _expected_rewardbench(rewards)
    record = json.loads(out.read_text())
    assert record["score"] == pytest.approx(expected, abs=1e-12)
    assert record["benchmark"] == "rewardbench" and record["model_kind"] == "rmreg"
    assert list(record["sections"]) == ["Chat", "Reasoning"] and record["examples"] == 4
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    lines = captured.out.splitlines()
    assert lines[1].split() == ["subset", "examples", "score"]
    assert lines[2].split() == ["alpacaeval-easy", "2", f"{100 * record['subsets']['alpacaeval-easy']:.2f}"]
    assert "section" in lines and any(line.split()[:1] == ["Reasoning"] for line in lines)
    assert lines[-3].split() == ["score", "(rewardbench)", f"{100 * expected:.2f}"]


def test_a_run_directory_with_one_checkpoint_is_that_checkpoint(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "--benchmark", "rewardbench", str(files["rewardbench"]), "--no-progress", "--json"]
    assert main([*argv, str(tmp_path / "a.json"), "--model", str(files["run"])]) == 0
    assert main([*argv, str(tmp_path / "b.json"), "--model", str(files["checkpoint"])]) == 0
    capsys.readouterr()
    first, second = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert first["model"] == second["model"] == str(files["checkpoint"]) and first["score"] == second["score"]
    several = tmp_path / "run"
    shutil.copytree(files["run"], several)
    shutil.copytree(files["checkpoint"], several / "grm-sft")
    line = _error_line(capsys, ["eval", str(several), "--benchmark", "rewardbench", str(files["rewardbench"])])
    assert "holds 2 checkpoints (bt, grm-sft); pass one" in line


def test_a_transformers_sequence_classifier_as_model(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import transformers

    out = tmp_path / "clf.json"
    argv = [
        "eval",
        str(files["classifier"]),
        "--benchmark",
        "rewardbench",
        str(files["rewardbench"]),
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    assert "score (rewardbench)" in capsys.readouterr().out
    classifier = transformers.AutoModelForSequenceClassification.from_pretrained(files["classifier"]).eval()
    tokenizer = tiny_tokenizer()
    rewards = []
    for prompt, response in ITEMS:  # naive: one unpadded row per item, <bos> prompt, response, <eos>
        ids = tokenizer(prompt).input_ids + tokenizer(response, add_special_tokens=False).input_ids + [2]
        with torch.no_grad():
            rewards.append(classifier(input_ids=torch.tensor([ids])).logits[0, 0].item())
    record = json.loads(out.read_text())
    assert record["model_kind"] == "classifier"
    assert record["score"] == pytest.approx(_expected_rewardbench(rewards), abs=1e-12)


def test_an_exported_classifier_with_its_own_code_needs_trust_remote_code(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", str(files["root"] / "exported"), "--benchmark", "rewardbench", str(files["rewardbench"])]
    assert "pass --trust-remote-code" in _error_line(capsys, argv)
    assert main([*argv, "--trust-remote-code", "--no-progress", "--json", str(tmp_path / "x.json")]) == 0
    record = json.loads((tmp_path / "x.json").read_text())
    assert record["model_kind"] == "remote-code classifier"
    import transformers

    classifier = transformers.AutoModelForSequenceClassification.from_pretrained(
        files["root"] / "exported", trust_remote_code=True
    ).eval()
    tokenizer = tiny_tokenizer()
    rewards = []
    for prompt, response in ITEMS:
        ids = tokenizer(prompt).input_ids + tokenizer(response, add_special_tokens=False).input_ids + [2]
        with torch.no_grad():
            rewards.append(classifier(input_ids=torch.tensor([ids])).logits[0, 0].item())
    assert record["score"] == pytest.approx(_expected_rewardbench(rewards), abs=1e-12)


def test_pair_accuracy_in_both_spellings(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(files["checkpoint"]), str(files["pairs"])]) == 0
    positional = capsys.readouterr().out
    assert main(["eval", "--model", str(files["checkpoint"]), "--data", str(files["pairs"])]) == 0
    assert capsys.readouterr().out == positional
    header, line = positional.strip().splitlines()
    assert header.split()[:2] == ["data", "pairs"] and line.split()[:2] == [str(files["pairs"]), "4"]
    assert main(["eval", str(files["classifier"]), str(files["pairs"])]) == 0
    assert capsys.readouterr().out.strip().splitlines()[1].endswith("n/a")


def test_bad_input_is_one_line_and_exit_2_before_any_model_loads(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rmreg.cli import evaluate

    def no_loading(*args: object) -> None:
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr(evaluate, "_load", no_loading)
    checkpoint, missing = str(files["checkpoint"]), str(tmp_path / "missing.parquet")
    assert f"{missing}: no such file" in _error_line(
        capsys, ["eval", checkpoint, "--benchmark", "rewardbench", missing]
    )
    assert f"{missing}: no such file" in _error_line(capsys, ["eval", checkpoint, missing])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "Q", "chosen": "a", "subset": "math-prm"}) + "\n")
    line = _error_line(capsys, ["eval", checkpoint, "--benchmark", "rewardbench", str(bad)])
    assert f"{bad}: row 0: column 'rejected': missing" in line
    (tmp_path / "empty.jsonl").write_text("")
    assert "the file is empty" in _error_line(
        capsys, ["eval", checkpoint, "--benchmark", "hhh", str(tmp_path / "empty.jsonl")]
    )
    assert "unknown benchmark 'rewardbench3'" in _error_line(
        capsys, ["eval", checkpoint, "--benchmark", "rewardbench3", missing]
    )
    line = _error_line(capsys, ["eval", checkpoint, "--benchmark", "rewardbench", str(bad), "--ties", "drop"])
    assert "--ties applies to --benchmark mt-bench, not rewardbench" in line
    assert "--json and --chat-template apply with --benchmark" in _error_line(
        capsys, ["eval", checkpoint, str(bad), "--json", "x.json"]
    )
    assert "no data" in _error_line(capsys, ["eval", checkpoint])
    assert "no model" in _error_line(capsys, ["eval"])
    line = _error_line(capsys, ["eval", str(files["lm"]), "--benchmark", "rewardbench", str(files["rewardbench"])])
    assert "LlamaForCausalLM" in line and "rmreg_config.json" in line
    assert "no such directory" in _error_line(capsys, ["eval", str(tmp_path / "nowhere"), str(files["pairs"])])
