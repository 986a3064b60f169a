"""TRL's reward-trainer tests (TRL 1.16, ``tests/test_reward_trainer.py``), run against RegularizedRewardTrainer.

The same scenarios and assertions, written for rmreg on local stand-ins of TRL's hub models and datasets
(``trl_testing``): every test below is one of TRL's, under TRL's name. What differs from TRL's file, each marked
``# rmreg:`` where it happens, and why:

* Every ``RewardConfig`` also gets ``bf16=False`` (TRL's default ``bf16=True`` refuses a machine without GPU) and
  ``disable_tqdm=True``; ``test_tag_added`` and ``test_tag_added_peft`` therefore pass a config where TRL's pass
  none.
* Parameter names: the trainer's model is a ``RegularizedRewardModel``, whose backbone is under ``causal_lm.`` and
  whose head is ``reward_head.``; a causal LM id is kept a causal LM (its LM head is GRM's), so the base-model
  names the PEFT tests expect unchanged are the causal LM's, under ``causal_lm.base_model.model.`` (TRL builds a
  sequence classifier and names them ``base_model.model.``). The reward head trains in full under PEFT, as
  rmreg's head always does (TRL's ``score`` layer stays frozen unless ``modules_to_save`` says otherwise); it is
  not a base-model parameter, so the assertion that non-base parameters change covers it.
* ``test_trust_remote_code``: the remote-code causal LM stays one (``RemoteForCausalLM``), where TRL loads its
  sequence-classification class.
* ``test_train_model_dtype``: the backbone is float16 as asked; the reward head is float32 by design (rmreg's
  head keeps its own dtype, so that a half-precision backbone still gives fp32 rewards).
* ``test_train_with_chat_template_kwargs``: a prepared dataset keeps the prompt apart, so TRL's ``chosen_ids`` is
  ``prompt_ids + chosen_ids`` here. The template is the stand-in tokenizer's ChatML with a default system turn,
  where TRL writes a Qwen template inline.
* ``test_train_with_set_chat_template_*``: the GPT-NeoX final layer norm's bias, which TRL skips because
  Bradley–Terry cannot move it, is named ``causal_lm.gpt_neox.final_layer_norm.bias`` here (and GRM's default
  objective does move it).
* ``test_train_with_set_chat_template_from_path`` reads ``checkpoint-<last step>``: the stand-in datasets give
  6 steps where TRL's give 9.
* The collator tests run TRL's examples through rmreg's ``PairCollator`` (``input_ids``, ``attention_mask`` and
  ``margin`` as TRL's collator builds them, plus ``labels``); its one-token rejected row ``[8]`` becomes ``[8, 9]``,
  because rmreg refuses a row without prompt whose only token is never predicted (GRM's regularizers need one).
"""

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

datasets = pytest.importorskip("datasets")
pytest.importorskip("trl")
peft = pytest.importorskip("peft")

from datasets import DatasetDict, IterableDatasetDict  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402
from trl_testing import SYSTEM_PROMPT_TEMPLATE, Hub, config, toolcall, zen  # noqa: E402

from rmreg.data import PairCollator  # noqa: E402
from rmreg.integrations.trl import RegularizedRewardTrainer  # noqa: E402

RewardTrainer = RegularizedRewardTrainer  # the trainer TRL's tests are run against

QWEN2 = "tiny-Qwen2ForCausalLM-2.5"
QWEN2_CLASSIFIER = "tiny-Qwen2ForSequenceClassification-2.5"
IMPLICIT = "standard_implicit_prompt_preference"


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Hub:
    return Hub(tmp_path_factory.mktemp("hub"))


@pytest.fixture
def tmp_dir(tmp_path: Path) -> str:
    return str(tmp_path)


def snapshot(trainer: Any) -> dict[str, torch.Tensor]:
    return {n: param.clone() for n, param in trainer.model.named_parameters()}


def assert_all_changed(trainer: Any, previous: dict[str, torch.Tensor], skip: tuple[str, ...] = ()) -> None:
    for n, param in previous.items():
        if n in skip:
            continue
        assert not torch.equal(param, trainer.model.get_parameter(n)), f"Parameter {n} has not changed."


def assert_only_adapters_changed(trainer: Any, previous: dict[str, torch.Tensor], base_param_names: set[str]) -> None:
    for n, param in previous.items():
        new_param = trainer.model.get_parameter(n)
        if n in base_param_names:  # We expect the base model params to be the same
            torch.testing.assert_close(param, new_param, msg=f"Parameter {n} has changed.")
        elif "base_layer" not in n:  # We expect the peft params (and rmreg's head) to be different
            assert not torch.equal(param, new_param), f"Parameter {n} has not changed."


def base_names(model: torch.nn.Module) -> set[str]:
    # rmreg: the backbone sits under causal_lm., PEFT's wrapper adds base_model.model.
    return {f"causal_lm.base_model.model.{n}" for n, _ in model.named_parameters()}


def train_and_check(trainer: Any, skip: tuple[str, ...] = ()) -> None:
    previous = snapshot(trainer)
    trainer.train()
    assert trainer.state.log_history[-1]["train_loss"] is not None
    assert_all_changed(trainer, previous, skip)


# ---- TestDataCollatorForPreference -----------------------------------------------------------------------------


def collate(examples: list[dict[str, Any]], pad_token_id: int = 0, **options: Any) -> dict[str, torch.Tensor]:
    tokenizer = SimpleNamespace(pad_token_id=pad_token_id, padding_side="right")  # pre-tokenized: ids only
    return PairCollator(tokenizer, **options)(examples)


EXAMPLES = [{"chosen_ids": [1, 2, 3], "rejected_ids": [4, 5]}, {"chosen_ids": [6, 7], "rejected_ids": [8, 9]}]


def test_basic_padding() -> None:
    result = collate(EXAMPLES)
    torch.testing.assert_close(result["input_ids"], torch.tensor([[1, 2, 3], [6, 7, 0], [4, 5, 0], [8, 9, 0]]))
    torch.testing.assert_close(result["attention_mask"], torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 0], [1, 1, 0]]))


def test_pad_to_multiple_of() -> None:
    result = collate(EXAMPLES, pad_to_multiple_of=4)
    torch.testing.assert_close(
        result["input_ids"], torch.tensor([[1, 2, 3, 0], [6, 7, 0, 0], [4, 5, 0, 0], [8, 9, 0, 0]])
    )
    torch.testing.assert_close(
        result["attention_mask"], torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]])
    )


def test_single_example() -> None:
    result = collate(EXAMPLES[:1])
    torch.testing.assert_close(result["input_ids"], torch.tensor([[1, 2, 3], [4, 5, 0]]))
    torch.testing.assert_close(result["attention_mask"], torch.tensor([[1, 1, 1], [1, 1, 0]]))


def test_different_pad_token_id() -> None:
    result = collate(EXAMPLES, pad_token_id=999)
    torch.testing.assert_close(result["input_ids"], torch.tensor([[1, 2, 3], [6, 7, 999], [4, 5, 999], [8, 9, 999]]))
    torch.testing.assert_close(result["attention_mask"], torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 0], [1, 1, 0]]))


def test_collate_with_margin() -> None:
    result = collate([{**EXAMPLES[0], "margin": 0.1}, {**EXAMPLES[1], "margin": 0.2}])
    torch.testing.assert_close(result["input_ids"], torch.tensor([[1, 2, 3], [6, 7, 0], [4, 5, 0], [8, 9, 0]]))
    torch.testing.assert_close(result["attention_mask"], torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 0], [1, 1, 0]]))
    torch.testing.assert_close(result["margin"], torch.tensor([0.1, 0.2]))


# ---- TestRewardTrainer -----------------------------------------------------------------------------------------


def test_raises_error_when_model_num_labels_not_one(hub: Hub, tmp_dir: str) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(hub(QWEN2), dtype="float32")  # num_labels=2
    dataset = zen(IMPLICIT, split="train")
    with pytest.raises(ValueError, match=r"reward models require `num_labels=1`"):
        RewardTrainer(model=model, args=config(tmp_dir), train_dataset=dataset)


@pytest.mark.parametrize("model_id", [QWEN2, "tiny-Qwen3MoeForCausalLM", "tiny-LlamaForCausalLM-3.2"])
def test_train(hub: Hub, tmp_dir: str, model_id: str) -> None:
    trainer = RewardTrainer(model=hub(model_id), args=config(tmp_dir), train_dataset=zen(IMPLICIT, split="train"))
    train_and_check(trainer)


def eval_datasets(kind: str) -> Any:
    streaming = "iterable" in kind
    split = zen(IMPLICIT, split="test")
    split = split.to_iterable_dataset() if streaming else split
    if kind in ("dataset", "iterable_dataset"):
        return split
    if kind in ("dataset_dict", "iterable_dataset_dict"):
        return (IterableDatasetDict if streaming else DatasetDict)({"data1": split, "data2": split})
    return {"data1": split, "data2": split}


EVAL_KINDS = [
    "dataset",
    "iterable_dataset",
    "dataset_dict",
    "iterable_dataset_dict",
    "dict_of_dataset",
    "dict_of_iterable_dataset",
]


@pytest.mark.parametrize("eval_dataset_type", EVAL_KINDS)
def test_evaluate_with_eval_dataset(hub: Hub, tmp_dir: str, eval_dataset_type: str) -> None:
    trainer = RewardTrainer(model=hub(QWEN2), args=config(tmp_dir), train_dataset=zen(IMPLICIT, split="train"))
    metrics = trainer.evaluate(eval_dataset=eval_datasets(eval_dataset_type))
    if eval_dataset_type in ("dataset", "iterable_dataset"):
        assert metrics["eval_loss"] is not None
    else:
        assert metrics["eval_data1_loss"] is not None
        assert metrics["eval_data2_loss"] is not None


def test_trust_remote_code(hub: Hub, tmp_dir: str) -> None:
    dataset = zen(IMPLICIT, split="train")
    with pytest.raises(ValueError, match="custom code"):
        RewardTrainer(model=hub("tiny-RemoteForCausalLM"), args=config(tmp_dir), train_dataset=dataset)
    trainer = RewardTrainer(
        model=hub("tiny-RemoteForCausalLM"), args=config(tmp_dir, trust_remote_code=True), train_dataset=dataset
    )
    assert type(trainer.model.causal_lm).__name__ == "RemoteForCausalLM"  # rmreg: the causal LM is kept


@pytest.mark.parametrize(
    "config_name",
    [
        "standard_preference",
        "conversational_preference",
        "standard_implicit_prompt_preference",
        "conversational_implicit_prompt_preference",
    ],
)
def test_train_dataset_types(hub: Hub, tmp_dir: str, config_name: str) -> None:
    trainer = RewardTrainer(model=hub(QWEN2), args=config(tmp_dir), train_dataset=zen(config_name, split="train"))
    train_and_check(trainer)


def test_train_model(hub: Hub, tmp_dir: str) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(hub(QWEN2), num_labels=1, dtype="float32")
    trainer = RewardTrainer(model=model, args=config(tmp_dir), train_dataset=zen(IMPLICIT, split="train"))
    train_and_check(trainer)


def test_train_from_sequence_classification_model(hub: Hub, tmp_dir: str) -> None:
    trainer = RewardTrainer(
        model=hub(QWEN2_CLASSIFIER), args=config(tmp_dir), train_dataset=zen(IMPLICIT, split="train")
    )
    train_and_check(trainer)


def test_train_model_dtype(hub: Hub, tmp_dir: str) -> None:
    args = config(tmp_dir, model_init_kwargs={"dtype": torch.float16}, learning_rate=0.1)
    trainer = RewardTrainer(model=hub(QWEN2), args=args, train_dataset=zen(IMPLICIT, split="train"))
    previous = snapshot(trainer)
    trainer.train()
    assert trainer.state.log_history[-1]["train_loss"] is not None
    for n, param in previous.items():
        if "layernorm" in n:  # as TRL: layer norms may not move in half precision
            continue
        new_param = trainer.model.get_parameter(n)
        # rmreg: the reward head keeps float32 (fp32 rewards from a half-precision backbone)
        assert new_param.dtype == (torch.float32 if n.startswith("reward_head.") else torch.float16)
        assert not torch.equal(param, new_param), f"Parameter {n} has not changed."


def test_train_dense_with_peft_config(hub: Hub, tmp_dir: str) -> None:
    base_param_names = base_names(AutoModelForCausalLM.from_pretrained(hub(QWEN2), dtype="float32"))
    trainer = RewardTrainer(
        model=hub(QWEN2), args=config(tmp_dir), train_dataset=zen(IMPLICIT, split="train"), peft_config=LoraConfig()
    )
    previous = snapshot(trainer)
    trainer.train()
    assert trainer.state.log_history[-1]["train_loss"] is not None
    assert_only_adapters_changed(trainer, previous, base_param_names)


def test_train_moe_with_peft_config(hub: Hub, tmp_dir: str) -> None:
    model_id = hub("tiny-Qwen3MoeForCausalLM")
    base_param_names = base_names(AutoModelForCausalLM.from_pretrained(model_id, dtype="float32"))
    trainer = RewardTrainer(
        model=model_id,
        args=config(tmp_dir),
        train_dataset=zen(IMPLICIT, split="train"),
        peft_config=LoraConfig(target_modules=["gate_proj", "up_proj", "down_proj", "score"]),
    )
    previous = snapshot(trainer)
    trainer.train()
    assert trainer.state.log_history[-1]["train_loss"] is not None
    assert_only_adapters_changed(trainer, previous, base_param_names)


def test_train_peft_model(hub: Hub, tmp_dir: str) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(hub(QWEN2), num_labels=1, dtype="float32")
    base_param_names = base_names(model)
    model = get_peft_model(model, LoraConfig())
    trainer = RewardTrainer(model=model, args=config(tmp_dir), train_dataset=zen(IMPLICIT, split="train"))
    previous = snapshot(trainer)
    trainer.train()
    assert trainer.state.log_history[-1]["train_loss"] is not None
    assert_only_adapters_changed(trainer, previous, base_param_names)


def test_train_with_peft_config_and_gradient_checkpointing(hub: Hub, tmp_dir: str) -> None:
    base_param_names = base_names(AutoModelForCausalLM.from_pretrained(hub(QWEN2), dtype="float32"))
    trainer = RewardTrainer(
        model=hub(QWEN2),
        args=config(tmp_dir, gradient_checkpointing=True),
        train_dataset=zen(IMPLICIT, split="train"),
        peft_config=LoraConfig(),
    )
    previous = snapshot(trainer)
    trainer.train()
    assert trainer.state.log_history[-1]["train_loss"] is not None
    assert_only_adapters_changed(trainer, previous, base_param_names)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_train_with_peft_config_and_gradient_checkpointing_reentrant(
    hub: Hub, tmp_dir: str, use_reentrant: bool
) -> None:
    model_id = hub(QWEN2_CLASSIFIER)
    base_param_names = base_names(AutoModelForSequenceClassification.from_pretrained(model_id, dtype="float32"))
    args = config(tmp_dir, gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
    trainer = RewardTrainer(
        model=model_id, args=args, train_dataset=zen(IMPLICIT, split="train"), peft_config=LoraConfig()
    )
    previous = snapshot(trainer)
    trainer.train()
    assert trainer.state.log_history[-1]["train_loss"] is not None
    assert_only_adapters_changed(trainer, previous, base_param_names)


@pytest.mark.parametrize(
    ("chosen_column", "rejected_column", "expect_deprecation_warning"),
    [("chosen_ids", "rejected_ids", False), ("chosen_input_ids", "rejected_input_ids", True)],
)
def test_train_with_pretokenized_data(
    hub: Hub, tmp_dir: str, chosen_column: str, rejected_column: str, expect_deprecation_warning: bool
) -> None:
    model_id = hub(QWEN2)
    tokenizer = AutoTokenizer.from_pretrained(model_id)
    dataset = zen(IMPLICIT, split="train")

    def tokenize_example(example: dict[str, Any]) -> dict[str, list[int]]:
        return {
            chosen_column: tokenizer(example["chosen"]).input_ids,
            rejected_column: tokenizer(example["rejected"]).input_ids,
        }

    tokenized_dataset = dataset.map(tokenize_example, remove_columns=["chosen", "rejected"])
    if expect_deprecation_warning:
        with pytest.warns(FutureWarning, match=r"will not be supported in v1"):
            trainer = RewardTrainer(model=model_id, args=config(tmp_dir), train_dataset=tokenized_dataset)
    else:
        trainer = RewardTrainer(model=model_id, args=config(tmp_dir), train_dataset=tokenized_dataset)
    assert "chosen_ids" in trainer.train_dataset.column_names
    assert "rejected_ids" in trainer.train_dataset.column_names
    assert "chosen_input_ids" not in trainer.train_dataset.column_names
    assert "rejected_input_ids" not in trainer.train_dataset.column_names
    train_and_check(trainer)


def test_train_with_iterable_dataset(hub: Hub, tmp_dir: str) -> None:
    dataset = zen(IMPLICIT, split="train").to_iterable_dataset()
    trainer = RewardTrainer(model=hub(QWEN2), args=config(tmp_dir, max_steps=3), train_dataset=dataset)
    train_and_check(trainer)


def test_train_with_chat_template_kwargs(hub: Hub, tmp_dir: str) -> None:
    dataset = zen("conversational_implicit_prompt_preference", split="train")
    tokenizer = AutoTokenizer.from_pretrained(hub(QWEN2))
    tokenizer.chat_template = SYSTEM_PROMPT_TEMPLATE  # rmreg: the stand-in's template, with `role_capital`
    dataset = dataset.add_column("chat_template_kwargs", [{"role_capital": bool(i % 2)} for i in range(len(dataset))])
    assert "chat_template_kwargs" in dataset.features
    trainer = RewardTrainer(model=hub(QWEN2), args=config(tmp_dir), train_dataset=dataset, processing_class=tokenizer)
    assert trainer.processing_class.chat_template == tokenizer.chat_template
    for i in range(2):
        role = "SYSTEM" if i else "system"
        system_prompt = f"<|im_start|>{role}\nYou are a helpful assistant.<|im_end|>"
        system_prompt_ids = trainer.processing_class(system_prompt)["input_ids"]
        row = trainer.train_dataset[i]
        # rmreg: TRL's chosen_ids are prompt_ids + chosen_ids
        assert (row["prompt_ids"] + row["chosen_ids"])[: len(system_prompt_ids)] == system_prompt_ids
        assert (row["prompt_ids"] + row["rejected_ids"])[: len(system_prompt_ids)] == system_prompt_ids
    train_and_check(trainer)


NEOX_LN_BIAS = "causal_lm.gpt_neox.final_layer_norm.bias"  # rmreg: TRL's skipped name, under causal_lm.


def test_train_with_set_chat_template_from_model(hub: Hub, tmp_dir: str) -> None:
    args = config(tmp_dir, chat_template_path=hub("chat-template-source"))  # stands in for Qwen/Qwen3-4B
    trainer = RewardTrainer(
        model=hub("tiny-GPTNeoXForCausalLM"), args=args, train_dataset=zen("conversational_preference", split="train")
    )
    train_and_check(trainer, skip=(NEOX_LN_BIAS,))


def test_train_with_set_chat_template_from_path(hub: Hub, tmp_dir: str) -> None:
    template = Path(tmp_dir) / "template.jinja"
    template.write_text(SYSTEM_PROMPT_TEMPLATE)
    args = config(tmp_dir, chat_template_path=str(template))
    trainer = RewardTrainer(
        model=hub("tiny-GPTNeoXForCausalLM"), args=args, train_dataset=zen("conversational_preference", split="train")
    )
    train_and_check(trainer, skip=(NEOX_LN_BIAS,))
    # Check that the template saved in the output directory is the same as the one used for training
    template_path = Path(tmp_dir) / f"checkpoint-{trainer.state.global_step}" / "chat_template.jinja"
    assert template_path.exists(), f"Chat template not found at {template_path}"
    assert template_path.read_text() == template.read_text(), "Chat template content does not match the original"


def test_train_toolcall_data(hub: Hub, tmp_dir: str) -> None:
    args = config(tmp_dir, per_device_train_batch_size=2, max_length=512)
    trainer = RewardTrainer(model=hub(QWEN2), args=args, train_dataset=toolcall())
    train_and_check(trainer)


def test_train_toolcall_data_as_json(hub: Hub, tmp_dir: str) -> None:
    dataset = toolcall().map(lambda example: {"tools": json.loads(example["tools"])})
    args = config(tmp_dir, per_device_train_batch_size=2, max_length=512)
    trainer = RewardTrainer(model=hub(QWEN2), args=args, train_dataset=dataset)
    train_and_check(trainer)


def test_train_with_eval(hub: Hub, tmp_dir: str) -> None:
    dataset = zen(IMPLICIT)
    args = config(tmp_dir, eval_strategy="steps", eval_steps=3)
    trainer = RewardTrainer(model=hub(QWEN2), args=args, train_dataset=dataset["train"], eval_dataset=dataset["test"])
    trainer.train()
    assert trainer.state.log_history[0]["eval_loss"] is not None


def test_train_with_multiple_eval_dataset(hub: Hub, tmp_dir: str) -> None:
    dataset = zen(IMPLICIT)
    args = config(tmp_dir, eval_strategy="steps", eval_steps=3)
    trainer = RewardTrainer(
        model=hub(QWEN2),
        args=args,
        train_dataset=dataset["train"],
        eval_dataset={"data1": dataset["test"], "data2": dataset["test"]},
    )
    trainer.train()
    assert trainer.state.log_history[-3]["eval_data1_loss"] is not None
    assert trainer.state.log_history[-2]["eval_data2_loss"] is not None


def test_train_dataset_required(hub: Hub, tmp_dir: str) -> None:
    with pytest.raises(ValueError, match="`train_dataset` is required"):
        RewardTrainer(model=hub(QWEN2), args=config(tmp_dir))


@pytest.mark.parametrize("eval_dataset_type", [*EVAL_KINDS, "none"])
def test_init_with_eval_dataset(hub: Hub, tmp_dir: str, eval_dataset_type: str) -> None:
    eval_dataset = None if eval_dataset_type == "none" else eval_datasets(eval_dataset_type)
    trainer = RewardTrainer(
        model=hub(QWEN2), args=config(tmp_dir), train_dataset=zen(IMPLICIT, split="train"), eval_dataset=eval_dataset
    )
    if eval_dataset_type == "none":
        assert trainer.eval_dataset is None
    elif isinstance(trainer.eval_dataset, dict):
        assert set(trainer.eval_dataset.keys()) == {"data1", "data2"}
        # Each split was tokenized independently.
        assert "chosen_ids" in next(iter(trainer.eval_dataset["data1"]))
        assert "chosen_ids" in next(iter(trainer.eval_dataset["data2"]))
    else:
        assert "chosen_ids" in next(iter(trainer.eval_dataset))


def test_train_with_compute_metrics(hub: Hub, tmp_dir: str) -> None:
    dataset = zen(IMPLICIT)

    def dummy_compute_metrics(eval_pred: Any) -> dict[str, float]:
        return {"my_metric": 0.123}

    args = config(tmp_dir, eval_strategy="steps", eval_steps=3)
    trainer = RewardTrainer(
        model=hub(QWEN2),
        args=args,
        train_dataset=dataset["train"],
        eval_dataset=dataset["test"],
        compute_metrics=dummy_compute_metrics,
    )
    trainer.train()
    assert trainer.state.log_history[-2]["eval_my_metric"] == 0.123


def test_train_with_gradient_checkpointing(hub: Hub, tmp_dir: str) -> None:
    trainer = RewardTrainer(
        model=hub(QWEN2), args=config(tmp_dir, gradient_checkpointing=True), train_dataset=zen(IMPLICIT, split="train")
    )
    train_and_check(trainer)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_train_with_gradient_checkpointing_reentrant(hub: Hub, tmp_dir: str, use_reentrant: bool) -> None:
    args = config(tmp_dir, gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
    trainer = RewardTrainer(model=hub(QWEN2_CLASSIFIER), args=args, train_dataset=zen(IMPLICIT, split="train"))
    train_and_check(trainer)


def test_tag_added(hub: Hub, tmp_dir: str) -> None:
    # rmreg: args given (TRL passes none, and its default RewardConfig asks for bf16, which a CPU refuses)
    trainer = RewardTrainer(model=hub(QWEN2), args=config(tmp_dir), train_dataset=zen(IMPLICIT, split="train"))
    for tag in ["reward-trainer", "trl"]:
        assert tag in trainer.model.model_tags


def test_tag_added_peft(hub: Hub, tmp_dir: str) -> None:
    trainer = RewardTrainer(
        model=hub(QWEN2), args=config(tmp_dir), train_dataset=zen(IMPLICIT, split="train"), peft_config=LoraConfig()
    )
    for tag in ["reward-trainer", "trl"]:
        assert tag in trainer.model.model_tags


def test_train_with_margin(hub: Hub, tmp_dir: str) -> None:
    dataset = zen(IMPLICIT, split="train").map(lambda example: {"margin": len(example["chosen"])})
    trainer = RewardTrainer(model=hub(QWEN2), args=config(tmp_dir), train_dataset=dataset)
    train_and_check(trainer)


def test_train_with_center_rewards_coefficient(hub: Hub, tmp_dir: str) -> None:
    args = config(tmp_dir, center_rewards_coefficient=0.01)
    trainer = RewardTrainer(model=hub(QWEN2), args=args, train_dataset=zen(IMPLICIT, split="train"))
    train_and_check(trainer)
