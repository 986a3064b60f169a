"""RegularizedRewardTrainer: TRL's RewardTrainer training, logging, evaluating and checkpointing rmreg models."""

import doctest
import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import rmreg
from rmreg.data import PairCollator
from rmreg.model import RegularizedRewardModel
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

datasets = pytest.importorskip("datasets")
pytest.importorskip("trl")
peft = pytest.importorskip("peft")
from trl import RewardConfig  # noqa: E402

from rmreg.integrations import trl as rmreg_trl  # noqa: E402
from rmreg.integrations.trl import RegularizedRewardTrainer  # noqa: E402

TOK = tiny_tokenizer()
TRAIN, HELD_OUT = toy_pairs(96, seed=0), toy_pairs(32, seed=1)


def config(output_dir: Path, **overrides: Any) -> RewardConfig:
    """A small, deterministic CPU run: fp32, no gradient checkpointing, no saving unless asked."""
    settings: dict[str, Any] = {
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 16,
        "learning_rate": 3e-3,
        "max_steps": 12,
        "logging_steps": 4,
        "save_strategy": "no",
        "report_to": "none",
        "gradient_checkpointing": False,
        "bf16": False,
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 0,
        **overrides,
    }
    return RewardConfig(str(output_dir), **settings)


def trainer(output_dir: Path, model: Any = None, data: list[dict[str, Any]] = TRAIN, **kwargs: Any):
    args = kwargs.pop("args", None) or config(output_dir)
    model = tiny_causal_lm("llama") if model is None else model
    dataset = datasets.Dataset.from_list(data)
    return RegularizedRewardTrainer(model, args, train_dataset=dataset, processing_class=TOK, **kwargs)


def lora() -> Any:
    return peft.LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]
    )


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_same_parameters(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


def scores(model: RegularizedRewardModel) -> torch.Tensor:
    batch = PairCollator(TOK)(HELD_OUT)
    return model.eval().score(batch["input_ids"], batch["attention_mask"])


# ---- training, logs, evaluation ------------------------------------------------------------------------------


def test_trains_logs_every_term_and_evaluates_held_out_pairs(tmp_path: Path) -> None:
    def pair_accuracy(prediction: Any) -> dict[str, float]:
        chosen, rejected = prediction.predictions
        return {"pair_accuracy": float((chosen > rejected).mean()), "pairs": float(len(chosen))}

    run = trainer(tmp_path, objective="grm-sft", compute_metrics=pair_accuracy)
    held_out = datasets.Dataset.from_list(HELD_OUT)
    before = run.evaluate(held_out)
    run.train()
    after = run.evaluate(held_out)
    train_logs = [log for log in run.state.log_history if "loss" in log]
    assert len(train_logs) == 3
    assert train_logs[-1]["loss"] < train_logs[0]["loss"]
    for key in ("accuracy", "margin", "mean_reward", "num_tokens", "terms/bradley_terry", "terms/sft"):
        assert key in train_logs[0] and f"eval_{key}" in after, key
    assert after["eval_loss"] < before["eval_loss"] - 0.1
    assert after["eval_accuracy"] > 0.8
    assert after["eval_pairs"] == len(HELD_OUT)
    assert after["eval_pair_accuracy"] == pytest.approx(after["eval_accuracy"])
    assert after["eval_terms/sft"] > 0  # the regularizer ran on the response tokens


def standard(pair: dict[str, Any]) -> dict[str, Any]:
    return {"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"]}


def implicit(pair: dict[str, Any]) -> dict[str, Any]:
    return {"chosen": pair["prompt"] + pair["chosen"], "rejected": pair["prompt"] + pair["rejected"]}


def conversational(pair: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": pair["prompt"]}],
        "chosen": [{"role": "assistant", "content": pair["chosen"]}],
        "rejected": [{"role": "assistant", "content": pair["rejected"]}],
    }


def conversational_implicit(pair: dict[str, Any]) -> dict[str, Any]:
    example = conversational(pair)
    return {"chosen": example["prompt"] + example["chosen"], "rejected": example["prompt"] + example["rejected"]}


def tokenized(pair: dict[str, Any]) -> dict[str, Any]:
    return {
        "chosen_ids": TOK(implicit(pair)["chosen"]).input_ids,
        "rejected_ids": TOK(implicit(pair)["rejected"]).input_ids,
    }


def with_margin(pair: dict[str, Any]) -> dict[str, Any]:
    return {**standard(pair), "margin": pair["margin"]}


FORMATS = [standard, implicit, conversational, conversational_implicit, tokenized, with_margin]


@pytest.mark.parametrize("to_format", FORMATS, ids=lambda f: f.__name__)
def test_every_trl_format_reaches_the_model_as_rmregs_collator_builds_it(tmp_path: Path, to_format) -> None:
    examples = [to_format(pair) for pair in TRAIN[:16]]
    name = "margin" if "margin" in examples[0] else "grm-sft"
    run = trainer(tmp_path, data=examples, objective=name, args=config(tmp_path, max_steps=2))
    batch = next(iter(run.get_train_dataloader()))  # after TRL's column removal and rmreg's collation
    assert set(batch) == {"input_ids", "attention_mask", "labels"} | ({"margin"} if name == "margin" else set())
    expected = PairCollator(TOK)(examples[:4])  # prompt tokens masked in labels, as rmreg collates the raw examples
    got = run.data_collator([run.train_dataset[i] for i in range(4)])
    assert set(got) == set(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    run.train()
    assert torch.isfinite(torch.tensor(run.state.log_history[-1]["train_loss"]))


def test_gradient_accumulation_gives_the_full_batch_step(tmp_path: Path) -> None:
    # SGD: its step is linear in the gradient, so a loss scaled twice (or not at all) would show.
    runs = []
    for batch_size, accumulation in ((8, 1), (4, 2)):
        args = config(
            tmp_path,
            max_steps=1,
            optim="sgd",
            learning_rate=0.5,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
        )
        run = trainer(tmp_path, data=TRAIN[:8], objective="grm-sft", args=args)
        initial = parameters(run.model)
        run.train()
        runs.append(parameters(run.model))
    assert all(
        not torch.equal(initial[name], runs[0][name])
        for name in ("reward_head.layers.1.weight", "causal_lm.lm_head.weight")
    )
    assert_same_parameters(runs[1], runs[0])


# ---- checkpoints -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_peft", [False, True], ids=["full", "lora+grm-dpo"])
def test_checkpoints_reload_with_identical_rewards_and_resume_the_same_run(tmp_path: Path, use_peft: bool) -> None:
    options: dict[str, Any] = {"objective": "grm-dpo", "peft_config": lora()} if use_peft else {"objective": "grm-sft"}
    args = config(tmp_path / "run", max_steps=6, save_strategy="steps", save_steps=3)
    whole = trainer(tmp_path, args=args, **options)
    assert whole.model.reference_mode == ("adapters" if use_peft else None)
    whole.train()
    final = parameters(whole.model)
    base = {"base_model": tiny_causal_lm("llama")} if use_peft else {}
    reloaded = RegularizedRewardModel.from_pretrained(tmp_path / "run" / "checkpoint-6", **base)
    assert torch.equal(scores(reloaded), scores(whole.model))

    resumed = trainer(tmp_path, args=config(tmp_path / "resumed", max_steps=6), **options)
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    assert resumed.state.global_step == 6
    assert_same_parameters(parameters(resumed.model), final)


# ---- configuration errors and imports --------------------------------------------------------------------------


def test_model_options_and_unsupported_settings_are_refused(tmp_path: Path) -> None:
    built = RegularizedRewardModel(tiny_causal_lm("llama"))
    with pytest.raises(ValueError, match="objective"):
        trainer(tmp_path, model=built, objective="bt")
    with pytest.raises(ValueError, match="RewardCentering"):
        trainer(tmp_path, args=config(tmp_path, center_rewards_coefficient=0.01))
    with pytest.raises(ValueError, match="processing_class"):
        RegularizedRewardTrainer(built, config(tmp_path), train_dataset=datasets.Dataset.from_list(TRAIN))


def test_a_causal_lm_path_and_a_preset_build_the_model(tmp_path: Path) -> None:
    tiny_causal_lm("qwen2").save_pretrained(tmp_path / "lm")
    run = trainer(tmp_path, model=str(tmp_path / "lm"), objective="grm-dpo-noref")
    assert isinstance(run.model, RegularizedRewardModel)
    assert run.model.objective.name == "grm-dpo-noref"
    assert type(run.model.causal_lm).__name__ == "Qwen2ForCausalLM"


def test_module_docstring_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert doctest.testmod(rmreg_trl, optionflags=doctest.ELLIPSIS).failed == 0


def test_without_trl_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trl", None)  # what an environment without TRL looks like to `import trl`
    monkeypatch.delitem(sys.modules, "rmreg.integrations.trl")
    with pytest.raises(ImportError, match=r'pip install "rmreg\[trl\]"'):
        importlib.import_module("rmreg.integrations.trl")


def test_importing_rmreg_and_its_integrations_package_loads_no_framework() -> None:
    code = (
        "import sys, rmreg, rmreg.integrations; "
        "print(sorted({'trl', 'accelerate', 'peft', 'datasets', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert rmreg.__version__
