"""``rmreg train`` beyond pairs: --graded rankings, ensembles, ties, batch-sum regularization and ratings."""

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


def test_ensembles_ties_and_batch_sum_regularization_train_from_the_command_line(tmp_path: Path, cli) -> None:
    from rmreg.heads import RewardEnsemble
    from rmreg.model import RegularizedRewardModel

    out = tmp_path / "beyond"
    objectives = "ensemble+grm-sft,bsr"
    argv = ["train", *cli.TINY_BUILTIN, "--objective", objectives, "--ensemble-heads", "3", "--output-dir", str(out)]
    code, _, err = cli.run([*argv, "--no-progress"])
    assert code == 0, err[-2000:]
    ensemble = RegularizedRewardModel.from_pretrained(out / "ensemble+grm-sft")
    assert isinstance(ensemble.reward_head, RewardEnsemble) and ensemble.reward_head.num_outputs == 3
    data = cli.write_rows(
        tmp_path / "ties.jsonl",
        [{"prompt": "p", "chosen": f"good {i}", "rejected": f"bad {i}", "tie": i % 3 == 0} for i in range(12)],
    )
    tied = ["train", "--model", str(cli.save_lm(tmp_path / "lm")), "--data", str(data), "--objective", "rao-kupper"]
    code, _, err = cli.run([*tied, "--epochs", "1", "--output-dir", str(tmp_path / "ties"), "--no-progress"])
    assert code == 0, err[-2000:]
    metrics = json.loads((tmp_path / "ties" / "metrics.json").read_text())
    assert "rao_kupper" in metrics["runs"][0]["history"][-1]


def test_ratings_train_a_multi_output_head_from_the_command_line(tmp_path: Path, cli) -> None:
    from rmreg.model import RegularizedRewardModel

    rows = [
        {
            "prompt": "p",
            "chosen": f"good {i}",
            "rejected": f"bad {i}",
            "chosen_ratings": [4, None, 5],
            "rejected_ratings": [1, 2, None],
        }
        for i in range(12)
    ]  # null: a missing rating, masked
    data = cli.write_rows(tmp_path / "rated.jsonl", rows)
    argv = [
        "train",
        "--model",
        str(cli.save_lm(tmp_path / "lm")),
        "--data",
        str(data),
        "--objective",
        "ratings+grm-sft",
    ]
    code, _, err = cli.run([*argv, "--epochs", "1", "--output-dir", str(tmp_path / "out"), "--no-progress"])
    assert code == 0, err[-2000:]
    model = RegularizedRewardModel.from_pretrained(tmp_path / "out" / "ratings+grm-sft")
    assert model.reward_head.num_outputs == 3
    history = json.loads((tmp_path / "out" / "metrics.json").read_text())["runs"][0]["history"][-1]
    assert {"rating_mse", "bradley_terry", "sft"} <= set(history)
    unrated = cli.write_rows(
        tmp_path / "plain.jsonl", [{k: v for k, v in r.items() if "rating" not in k} for r in rows]
    )
    assert "needs 'chosen_ratings'" in cli.error_line(["train", "--data", str(unrated), "--objective", "ratings"])
