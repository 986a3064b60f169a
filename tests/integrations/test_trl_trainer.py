"""RegularizedRewardTrainer beyond TRL's own scenarios: what rmreg adds (objectives, terms, prompt masks,
checkpoints) and the TRL semantics it maps onto rmreg (margin, centering, compute_metrics, dtype, tokenizer)."""

import doctest
import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

datasets = pytest.importorskip("datasets")
pytest.importorskip("trl")
peft = pytest.importorskip("peft")

from transformers import AutoModelForSequenceClassification  # noqa: E402
from trl import RewardConfig  # noqa: E402
from trl_testing import Hub  # noqa: E402

import rmreg  # noqa: E402
from rmreg import functional  # noqa: E402
from rmreg.data import PairCollator  # noqa: E402
from rmreg.integrations import trl as rmreg_trl  # noqa: E402
from rmreg.integrations.trl import RegularizedRewardTrainer  # noqa: E402
from rmreg.integrations.trl.trainer import TRAINING_ARGS_NAME  # noqa: E402
from rmreg.model import RegularizedRewardModel  # noqa: E402
from rmreg.objectives import BradleyTerry, RewardCentering  # noqa: E402
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs  # noqa: E402

TOK = tiny_tokenizer()
TRAIN, HELD_OUT = toy_pairs(96, seed=0), toy_pairs(32, seed=1)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Hub:
    return Hub(tmp_path_factory.mktemp("hub"))


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


def without_margin(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in pair.items() if k != "margin"} for pair in pairs]


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


def first_batch(run: Any) -> dict[str, torch.Tensor]:
    return next(iter(run.get_train_dataloader()))


# ---- training, logs, evaluation ------------------------------------------------------------------------------


def test_trains_logs_every_term_and_evaluates_with_trls_predictions(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def pair_accuracy(prediction: Any) -> dict[str, float]:  # TRL's format: rewards [2P, 1] per batch, c then r
        seen["predictions"] = prediction.predictions
        seen["labels"] = prediction.label_ids
        batches = prediction.predictions.reshape(-1, 2, 16)  # per_device_eval_batch_size=16 pairs
        return {"pair_accuracy": float((batches[:, 0] > batches[:, 1]).mean()), "pairs": float(batches[:, 0].size)}

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
    # the predictions are the rewards of the rows in TRL's order: each batch's chosen rows, then its rejected rows
    assert seen["predictions"].shape == (2 * len(HELD_OUT), 1) and len(seen["labels"]) == 0
    rewards = scores(run.model).numpy()
    order = [*range(16), *range(32, 48), *range(16, 32), *range(48, 64)]  # PairCollator(HELD_OUT): c0..c31, r0..r31
    torch.testing.assert_close(torch.tensor(seen["predictions"][:, 0]), torch.tensor(rewards[order]))


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
    run = trainer(tmp_path, data=examples, objective="grm-sft", args=config(tmp_path, max_steps=2))
    batch = first_batch(run)  # after TRL's column removal and rmreg's collation
    assert set(batch) == {"input_ids", "attention_mask", "labels"} | ({"margin"} if "margin" in examples[0] else set())
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


# ---- TRL's semantics on rmreg's objectives ---------------------------------------------------------------------


def test_a_margin_column_reaches_bradley_terry_whatever_the_objective(tmp_path: Path) -> None:
    run = trainer(tmp_path, data=TRAIN[:8], objective="grm-sft", args=config(tmp_path, max_steps=1))
    (bt,) = [term for term in run.model.objective.terms if isinstance(term, BradleyTerry)]
    assert bt.use_margin == "auto"
    batch = first_batch(run)
    assert "margin" in batch
    output = run.model(**batch)
    expected = functional.bradley_terry_loss(output.chosen_rewards, output.rejected_rewards, margin=batch["margin"])
    torch.testing.assert_close(output.terms["bradley_terry"], expected.detach())
    without = functional.bradley_terry_loss(output.chosen_rewards, output.rejected_rewards)
    assert not torch.allclose(output.terms["bradley_terry"], without.detach())


def test_a_margin_no_term_can_read_is_refused_loudly(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="'margin' column is ignored"):
        trainer(tmp_path, data=TRAIN[:8], objective=RewardCentering(), args=config(tmp_path, max_steps=1))


def test_center_rewards_coefficient_adds_rmregs_centering_term_as_trl_computes_it(tmp_path: Path) -> None:
    args = config(tmp_path, max_steps=4, logging_steps=1, center_rewards_coefficient=0.05)
    run = trainer(tmp_path, data=without_margin(TRAIN[:32]), objective="bt", args=args)
    weights = dict(zip((t.name for t in run.model.objective.terms), run.model.objective.weights, strict=True))
    assert weights == {"bradley_terry": 1.0, "centering": 0.05}
    batch = first_batch(run)
    output = run.model(**batch)
    c, r = output.chosen_rewards, output.rejected_rewards
    trl_loss = -torch.nn.functional.logsigmoid(c - r).mean() + 0.05 * torch.mean((c + r) ** 2)  # TRL's formula
    torch.testing.assert_close(output.loss, trl_loss)
    run.train()
    assert all("terms/centering" in log for log in run.state.log_history if "loss" in log)


def test_extra_numeric_columns_reach_the_terms_by_name(tmp_path: Path) -> None:
    @rmreg.register_term("test_trl_weighted_bt")
    class WeightedBT(rmreg.Term):
        needs = rmreg.Needs("agreement")
        default_name = "weighted_bt"

        def per_pair(self, inputs: rmreg.PairInputs) -> torch.Tensor:
            bt = functional.bradley_terry_loss(inputs.chosen_rewards, inputs.rejected_rewards, reduction="none")
            return inputs.require("agreement", self) * bt

    data = [{**standard(pair), "agreement": float(i % 3) / 2, "source": "x"} for i, pair in enumerate(TRAIN[:16])]
    run = trainer(tmp_path, data=data, objective=WeightedBT(), args=config(tmp_path, max_steps=2))
    batch = first_batch(run)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "agreement"}  # strings dropped, numbers kept
    assert set(batch["agreement"].tolist()) <= {0.0, 0.5, 1.0}
    first_rows = run.data_collator([run.train_dataset[i] for i in range(4)])["agreement"]
    torch.testing.assert_close(first_rows, torch.tensor([0.0, 0.5, 1.0, 0.0]))
    run.train()
    assert "terms/weighted_bt" in run.state.log_history[-1]


# ---- models, paths and TRL's defaults --------------------------------------------------------------------------


def test_a_path_loads_float32_with_its_tokenizer_and_model_init_kwargs_choose_otherwise(
    hub: Hub, tmp_path: Path
) -> None:
    path = hub("tiny-Qwen2ForCausalLM-2.5")  # saved in bfloat16
    dataset = datasets.Dataset.from_list([standard(pair) for pair in TRAIN[:8]])
    run = RegularizedRewardTrainer(path, config(tmp_path), train_dataset=dataset)
    assert run.model.causal_lm.dtype == torch.float32 and type(run.model.causal_lm).__name__ == "Qwen2ForCausalLM"
    assert run.processing_class.name_or_path == path
    assert run.model.objective.name == "grm-sft"
    kept = RegularizedRewardTrainer(
        path, config(tmp_path, model_init_kwargs={"dtype": "bfloat16"}), train_dataset=dataset
    )
    assert kept.model.causal_lm.dtype == torch.bfloat16
    assert kept.model.reward_head.output_layer.weight.dtype == torch.float32


def test_a_sequence_classifier_keeps_its_trained_score_layer_as_the_head(hub: Hub, tmp_path: Path) -> None:
    path = hub("tiny-Qwen2ForSequenceClassification-2.5")
    saved = AutoModelForSequenceClassification.from_pretrained(path, dtype="float32").score.weight
    dataset = datasets.Dataset.from_list([standard(pair) for pair in TRAIN[:8]])
    run = RegularizedRewardTrainer(path, config(tmp_path), train_dataset=dataset)
    head = run.model.reward_head
    assert head.kind == "linear" and not head.bias
    assert head.output_layer.weight is run.model.causal_lm.score.weight  # one parameter: the classifier's score
    torch.testing.assert_close(head.output_layer.weight.detach(), saved)
    assert run.model.objective.name == "bt"
    with pytest.raises(ValueError, match="pass the causal LM instead"):
        RegularizedRewardTrainer(path, config(tmp_path), train_dataset=dataset, objective="grm-sft")
    with pytest.raises(ValueError, match="score layer is its reward head"):
        RegularizedRewardTrainer(path, config(tmp_path), train_dataset=dataset, reward_head=rmreg.RewardHead(32))


def test_model_options_and_bad_inputs_are_refused(tmp_path: Path) -> None:
    built = RegularizedRewardModel(tiny_causal_lm("llama"), objective=rmreg.objective("bt"))
    with pytest.raises(ValueError, match="objective"):
        trainer(tmp_path, model=built, objective="bt")
    with pytest.raises(ValueError, match="peft_config"):
        trainer(tmp_path, model=built, peft_config=lora())
    with pytest.raises(TypeError, match="must be a `Dataset` or `IterableDataset`"):
        RegularizedRewardTrainer(built, config(tmp_path), train_dataset=TRAIN, processing_class=TOK)
    with pytest.raises(TypeError, match=r"must be a `peft\.PeftConfig`"):
        trainer(tmp_path, peft_config={"r": 8})
    with pytest.raises(ValueError, match="`eos_token` \\('<nope>'\\) is not found"):
        trainer(tmp_path, args=config(tmp_path, eos_token="<nope>"))


def test_a_causal_lm_path_and_a_preset_build_the_model(tmp_path: Path) -> None:
    tiny_causal_lm("qwen2").save_pretrained(tmp_path / "lm")
    run = trainer(tmp_path, model=str(tmp_path / "lm"), objective="grm-dpo-noref")
    assert isinstance(run.model, RegularizedRewardModel)
    assert run.model.objective.name == "grm-dpo-noref"
    assert type(run.model.causal_lm).__name__ == "Qwen2ForCausalLM"
    assert set(run.model.model_tags) >= {"trl", "reward-trainer", "rmreg"}


# ---- checkpoints -----------------------------------------------------------------------------------------------


def classifier() -> Any:
    config = tiny_causal_lm("llama").config
    config.num_labels = 1
    torch.manual_seed(1)
    return AutoModelForSequenceClassification.from_config(config)


RUNS = {
    "full": lambda: {"objective": "grm-sft"},
    "lora+grm-dpo": lambda: {"objective": "grm-dpo", "peft_config": lora()},
    "classifier": lambda: {"model": classifier()},
}


@pytest.mark.parametrize("kind", RUNS)
def test_checkpoints_reload_with_identical_rewards_and_resume_the_same_run(tmp_path: Path, kind: str) -> None:
    args = config(tmp_path / "run", max_steps=6, save_strategy="steps", save_steps=3)
    whole = trainer(tmp_path, args=args, **RUNS[kind]())
    assert whole.model.reference_mode == ("adapters" if kind == "lora+grm-dpo" else None)
    whole.train()
    final = parameters(whole.model)
    saved = tmp_path / "run" / "checkpoint-6"
    assert not list(saved.glob("training_args.bin"))  # no pickle of the arguments
    assert json.loads((saved / TRAINING_ARGS_NAME).read_text())["learning_rate"] == 3e-3
    base = {"base_model": tiny_causal_lm("llama")} if kind == "lora+grm-dpo" else {}
    reloaded = RegularizedRewardModel.from_pretrained(saved, **base)
    assert torch.equal(scores(reloaded), scores(whole.model))

    resumed = trainer(tmp_path, args=config(tmp_path / "resumed", max_steps=6), **RUNS[kind]())
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    assert resumed.state.global_step == 6
    assert_same_parameters(parameters(resumed.model), final)


# ---- the example, docs and imports -----------------------------------------------------------------------------


def test_the_trl_example_trains_saves_and_scores_with_transformers(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "rmreg_example_trl_reward_trainer", EXAMPLES / "trl_reward_trainer.py"
    )
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    options = {"output_dir": str(tmp_path / "out"), "bf16": "False", "learning_rate": "3e-3", "max_steps": "20"}
    options |= {"per_device_train_batch_size": "16", "save_strategy": "no", "disable_tqdm": "True", "report_to": "none"}
    result = example.main([word for key, value in options.items() for word in (f"--{key}", value)])
    assert result["eval_accuracy"] > 0.75
    assert result["transformers_scores"] == pytest.approx(result["rmreg_scores"], abs=1e-5)


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
