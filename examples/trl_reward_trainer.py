"""TRL's reward-modeling script (``trl/scripts/reward.py``) training GRM: one import changed, one argument added.

The difference from TRL's script::

    -from trl import RewardTrainer
    +from rmreg.integrations.trl import RegularizedRewardTrainer as RewardTrainer
     ...
     trainer = RewardTrainer(
         model=model_args.model_name_or_path,
         ...
         peft_config=get_peft_config(model_args),
    +    objective=rmreg.objective(rmreg_args.objective, alpha=rmreg_args.alpha),
     )

Everything else (``RewardConfig`` and its defaults, ``ModelConfig``, the dataset, ``train``, ``save_model``) is
TRL's. The saved directory is then loaded back with transformers alone (``trust_remote_code=True`` for the paper's
MLP head) and scores held-out pairs as rmreg does. Offline, without ``--model_name_or_path`` and
``--dataset_name``, a tiny model and toy pairs are built in code (TRL's default ``bf16=True`` needs a GPU: on a CPU
add ``--bf16 False``)::

    python examples/trl_reward_trainer.py --output_dir rm-grm --bf16 False --learning_rate 3e-3 --max_steps 40
    python examples/trl_reward_trainer.py --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \\
        --dataset_name trl-lib/ultrafeedback_binarized --output_dir Qwen2.5-0.5B-GRM --objective grm-sft
"""

import dataclasses
import tempfile
from collections.abc import Sequence
from typing import Any

import torch
from datasets import Dataset, DatasetDict, load_dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import ModelConfig, RewardConfig, ScriptArguments, TrlParser, get_peft_config, get_quantization_config

import rmreg
from rmreg.integrations.trl import RegularizedRewardTrainer as RewardTrainer
from rmreg.model import RegularizedRewardModel
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs


@dataclasses.dataclass
class RmregArguments:
    objective: str = dataclasses.field(default="grm-sft", metadata={"help": f"one of {', '.join(rmreg.PRESETS)}"})
    alpha: float = dataclasses.field(default=0.01, metadata={"help": "the regularizer's weight α"})


def offline_model(directory: str) -> str:
    """A tiny causal LM and its tokenizer saved in ``directory`` (stands in for a hub id)."""
    tiny_causal_lm("llama").save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


def transformers_scores(directory: str, pairs: Sequence[dict[str, Any]]) -> list[float]:
    """Rewards of ``prompt + response`` rows from the saved directory, with transformers alone."""
    model = AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    texts = [pair["prompt"] + pair[side] + tokenizer.eos_token for pair in pairs for side in ("chosen", "rejected")]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits[:, 0].tolist()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = TrlParser((ScriptArguments, RewardConfig, ModelConfig, RmregArguments))
    script_args, training_args, model_args, rmreg_args = parser.parse_args_and_config(args=argv)
    with tempfile.TemporaryDirectory() as scratch:
        model_args.model_name_or_path = model_args.model_name_or_path or offline_model(scratch)
        training_args.model_init_kwargs = {
            "revision": model_args.model_revision,
            "trust_remote_code": training_args.trust_remote_code,
            "attn_implementation": model_args.attn_implementation,
            "dtype": model_args.dtype,
            **(training_args.model_init_kwargs or {}),
        }
        if script_args.dataset_name:
            dataset = load_dataset(script_args.dataset_name, name=script_args.dataset_config)
        else:
            dataset = DatasetDict(
                {"train": Dataset.from_list(toy_pairs(256)), "test": Dataset.from_list(toy_pairs(64, seed=1))}
            )

        trainer = RewardTrainer(
            model=model_args.model_name_or_path,
            args=training_args,
            train_dataset=dataset[script_args.dataset_train_split],
            eval_dataset=dataset[script_args.dataset_test_split],
            quantization_config=get_quantization_config(model_args),
            peft_config=get_peft_config(model_args),
            objective=rmreg.objective(rmreg_args.objective, alpha=rmreg_args.alpha),
        )
        trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        metrics = trainer.evaluate()
        trainer.save_model(training_args.output_dir)

    held_out = dataset[script_args.dataset_test_split].select(range(4))
    ours = RegularizedRewardModel.from_pretrained(training_args.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(training_args.output_dir)
    rows = [(pair["prompt"], pair[side]) for pair in held_out for side in ("chosen", "rejected")]
    result = {
        "eval_accuracy": metrics["eval_accuracy"],
        "transformers_scores": transformers_scores(training_args.output_dir, held_out),
        "rmreg_scores": ours.score_texts(tokenizer, rows).tolist(),
    }
    print(f"held-out pair accuracy {result['eval_accuracy']:.2f}; saved in {training_args.output_dir}")
    print("rewards from transformers alone:", [f"{r:.4f}" for r in result["transformers_scores"]])
    print("rewards from rmreg:             ", [f"{r:.4f}" for r in result["rmreg_scores"]])
    return result


if __name__ == "__main__":
    main()
