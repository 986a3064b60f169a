"""``rmreg score`` (and ``rmreg eval``'s pair accuracy) on a checkpoint that ``rmreg train`` wrote."""

import json
from pathlib import Path

from rmreg.task import PreferenceTask


def test_eval_and_score_a_trained_checkpoint(builtin_run: tuple[Path, str], tmp_path: Path, cli) -> None:
    out, _ = builtin_run
    checkpoint = json.loads((out / "metrics.json").read_text())["runs"][1]["checkpoint"]
    pairs = PreferenceTask().split("test", 6, seed=5)
    data = cli.write_rows(tmp_path / "pairs.jsonl", pairs)
    code, printed, err = cli.run(["eval", checkpoint, str(data)])
    assert code == 0, err
    lines = printed.strip().splitlines()
    assert lines[0].split()[:2] == ["data", "pairs"] and lines[1].split()[:2] == [str(data), "6"]

    prompt, chosen, rejected = pairs[0]["prompt"], pairs[0]["chosen"], pairs[0]["rejected"]
    code, printed, _ = cli.run(["score", checkpoint, "--prompt", prompt, "--response", chosen, "--response", rejected])
    scored = printed.strip().splitlines()
    assert code == 0 and [line.split("\t")[1] for line in scored] == [chosen, rejected]
    texts = cli.write_rows(tmp_path / "texts.csv", [{"prompt": prompt, "response": chosen}])
    code, from_file, _ = cli.run(["score", checkpoint, "--file", str(texts)])
    assert code == 0 and from_file.strip().splitlines() == scored[:1]
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": chosen}]
    conversation = cli.write_rows(tmp_path / "chat.jsonl", [{"messages": messages}])
    line = cli.error_line(["score", checkpoint, "--file", str(conversation)])  # the task's tokenizer has no template
    assert line.startswith("cannot score the texts: conversational examples need a tokenizer with a chat template")
