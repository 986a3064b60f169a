"""rmreg.training: the Accelerate-based loop lowers the loss, accumulates gradients, and evaluates pair accuracy."""

import doctest
import subprocess
import sys

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import rmreg
from rmreg import training
from rmreg.data import PairCollator
from rmreg.functional import sequence_logprobs
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs
from rmreg.training import TrainingConfig, evaluate, train

TOKENIZER = tiny_tokenizer()


def _model(objective: str = "grm-sft") -> rmreg.RegularizedRewardModel:
    return rmreg.RegularizedRewardModel(
        tiny_causal_lm(vocab_size=len(TOKENIZER)), objective=rmreg.objective(objective, alpha=0.1)
    )


@pytest.mark.parametrize("objective", ["bt", "grm-sft"])
def test_training_lowers_the_loss_and_learns_the_pairs(objective: str) -> None:
    pairs = toy_pairs(64)
    config = TrainingConfig(epochs=4, learning_rate=3e-3, batch_size=16, progress=False)
    result = train(_model(objective), pairs, PairCollator(TOKENIZER), config, eval_sets={"train": pairs})
    losses = [record["loss"] for record in result.history]
    assert len(losses) == 16
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4
    assert result.final["train"]["reward_accuracy"] > 0.9
    assert not result.model.training
    assert [evaluation["epoch"] for evaluation in result.evaluations] == [1, 2, 3, 4]
    expected_terms = {"bradley_terry"} | ({"sft"} if objective == "grm-sft" else set())
    assert expected_terms | {"step", "epoch", "lr", "loss", "accuracy"} == set(result.history[0])


def test_gradient_accumulation_counts_optimizer_steps_and_schedules_the_rate() -> None:
    config = TrainingConfig(epochs=2, batch_size=4, gradient_accumulation_steps=2, warmup_ratio=0.25, progress=False)
    result = train(_model("bt"), toy_pairs(16), PairCollator(TOKENIZER), config)
    assert [record["step"] for record in result.history] == list(range(1, 5))
    assert [record["epoch"] for record in result.history] == [0.5, 1.0, 1.5, 2.0]
    rates = [record["lr"] for record in result.history]
    assert rates[0] == pytest.approx(config.learning_rate)  # one warm-up step, then cosine decay
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0]
    assert result.evaluations == [] and result.final == {}


def test_evaluate_matches_rewards_and_log_probs_computed_directly() -> None:
    model = _model().eval()
    pairs = toy_pairs(12, seed=3)
    scores = evaluate(model, pairs, PairCollator(TOKENIZER), batch_size=5)
    chosen = model.score_texts(TOKENIZER, [(p["prompt"], p["chosen"]) for p in pairs])
    rejected = model.score_texts(TOKENIZER, [(p["prompt"], p["rejected"]) for p in pairs])
    batch = PairCollator(TOKENIZER)(pairs)
    with torch.no_grad():
        logits = model.causal_lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logps = sequence_logprobs(logits, batch["labels"])
    assert scores["pairs"] == 12
    assert scores["reward_accuracy"] == pytest.approx((chosen > rejected).float().mean().item())
    assert scores["lm_accuracy"] == pytest.approx((logps[:12] > logps[12:]).float().mean().item())


def test_evaluate_restores_train_mode_and_rejects_empty_data() -> None:
    model = _model().train()
    evaluate(model, toy_pairs(2), PairCollator(TOKENIZER))
    assert model.training
    with pytest.raises(ValueError, match="at least one example"):
        evaluate(model, [], PairCollator(TOKENIZER))


@pytest.mark.parametrize(
    ("field", "value"), [("epochs", 0), ("batch_size", 0), ("learning_rate", 0.0), ("warmup_ratio", 1.0)]
)
def test_config_rejects_bad_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TrainingConfig(**{field: value})


def test_importing_rmreg_and_its_cli_loads_neither_accelerate_nor_trl() -> None:
    code = "import sys, rmreg, rmreg.cli; assert not {'accelerate', 'trl'} & set(sys.modules), sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(training, optionflags=doctest.ELLIPSIS).failed == 0
