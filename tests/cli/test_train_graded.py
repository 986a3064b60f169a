"""``rmreg train --graded``: ranking objectives on the built-in task's rankings, pairwise ones on them binarized."""

import json
from pathlib import Path

import pytest


def test_plackett_luce_on_rankings_against_bradley_terry_on_the_binarized_pairs(tmp_path: Path, cli) -> None:
    out = tmp_path / "graded"
    argv = ["train", "--graded", *cli.TINY_BUILTIN, "--train-pairs", "30", "--seeds", "2", "--output-dir", str(out)]
    code, printed, err = cli.run([*argv, "--no-progress"])
    assert code == 0, err[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [run["objective"] for run in metrics["runs"]][::2] == ["bt", "plackett-luce", "plackett-luce+grm-sft"]
    assert "10 ranked groups" in printed and "30 pairs" in printed  # 10 prompts × 4 completions → 30 pairs
    assert "plackett-luce − BT" in printed  # the paired differences compare with Bradley–Terry
    for run in metrics["runs"]:
        assert set(run["final"]) == {"test", "test_long", "test_marker_flip", "test_length_flip"}
        assert (out / Path(run["checkpoint"]).name / "rmreg_config.json").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--objective", "plackett-luce"], "add --graded"),
        (["--graded", "--data", "x.jsonl"], "leave out --data"),
        (["--objective", "plackett"], "unknown objective 'plackett'"),
    ],
)
def test_ranking_options_are_checked_first(argv: list[str], message: str, no_model_work, cli) -> None:
    assert message in cli.error_line(["train", *argv])
