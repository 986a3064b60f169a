"""TRL's ``RewardTrainer`` with rmreg's model, collation and objectives (GRM, arXiv 2406.10216).

:class:`RegularizedRewardTrainer` is a drop-in for ``trl.RewardTrainer`` (TRL ≥ 1.0): the same ``RewardConfig``,
datasets, callbacks, logging, evaluation, checkpointing and resuming, but the model is a
:class:`~rmreg.model.RegularizedRewardModel` (a causal LM that keeps its LM head) and the loss is an rmreg
objective, e.g. GRM's ``(1 − α)·Bradley–Terry + α·SFT regularizer``.

What differs from ``RewardTrainer``:

* Data: every TRL preference format (standard or conversational, explicit or implicit prompt, pre-tokenized
  ``chosen_ids``/``rejected_ids``, optional ``margin``, plus optional ``ref_chosen_logps``/``ref_rejected_logps``)
  is tokenized by :func:`rmreg.data.encode_pair`, which keeps the prompt apart so that the regularizers score
  response tokens only. Pairs longer than ``args.max_length`` are left out, as TRL does. ``tools`` and
  ``chat_template_kwargs`` columns are not used.
* Loss: the model's objective. TRL's ``center_rewards_coefficient`` is refused: add
  ``c * rmreg.RewardCentering()`` to the objective instead.
* Logs: besides TRL's ``accuracy``, ``margin``, ``min/mean/max_reward`` and ``num_tokens``, each objective term's
  unweighted mean as ``terms/<name>`` (``eval_terms/<name>`` in evaluation).
* Checkpoints (``checkpoint-*/`` and ``save_model``) are rmreg checkpoints:
  ``RegularizedRewardModel.from_pretrained(dir)`` loads them (for a PEFT model pass ``base_model=``), and
  ``trainer.train(resume_from_checkpoint=...)`` continues the same run. They are written from the unwrapped
  module, which holds all weights under DDP and DeepSpeed ZeRO-1/2; FSDP and ZeRO-3 are refused (use an Accelerate
  loop, ``examples/accelerate_loop.py``).
* Evaluation predictions (for ``compute_metrics``) are the pair ``(chosen_rewards, rejected_rewards)``.
* As in TRL, ``args.disable_dropout`` (default ``True``) switches dropout off everywhere, the reward head's
  included; set it to ``False`` to train with the paper's head dropout of 0.1.

Example:
    >>> from datasets import Dataset
    >>> from trl import RewardConfig
    >>> from rmreg.integrations.trl import RegularizedRewardTrainer
    >>> from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs
    >>> args = RewardConfig("out", max_steps=2, bf16=False, save_strategy="no", report_to="none", disable_tqdm=True)
    >>> trainer = RegularizedRewardTrainer(
    ...     tiny_causal_lm("llama"),
    ...     args,
    ...     train_dataset=Dataset.from_list(toy_pairs(8)),
    ...     processing_class=tiny_tokenizer(),
    ...     objective="grm-sft",
    ... )
    >>> result = trainer.train()  # doctest: +ELLIPSIS
    {'train_runtime': ..., 'terms/bradley_terry': ..., 'terms/sft': ..., 'epoch': '2'}
    >>> result.global_step
    2
    >>> metrics = trainer.evaluate(Dataset.from_list(toy_pairs(8, seed=1)))  # doctest: +ELLIPSIS
    {'eval_loss': ..., 'eval_accuracy': ..., 'eval_margin': ..., 'eval_terms/sft': ..., 'epoch': '2'}
"""

import contextlib
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

try:
    import trl
    from datasets import Dataset, IterableDataset
    from packaging.version import Version
    from transformers import AutoModelForCausalLM, set_seed
    from transformers.trainer import TRAINING_ARGS_NAME
    from trl import RewardConfig, RewardTrainer
    from trl.models import get_act_offloading_ctx_manager
    from trl.trainer.utils import disable_dropout_in_model
except ImportError as error:  # tests/test_integrations_trl.py hides `trl` to check this message
    raise ImportError(
        f'rmreg.integrations.trl needs TRL and datasets ({error}); install them with: pip install "rmreg[trl]"'
    ) from error

import rmreg
from rmreg.model import causal_lm as lm
from rmreg.model import checkpoint
from rmreg.data import PairCollator, encode_pair
from rmreg.heads import RewardHead
from rmreg.model import Reference, RegularizedRewardModel

if Version(trl.__version__) < Version("1.0"):
    raise ImportError(f'rmreg.integrations.trl needs TRL >= 1.0, found {trl.__version__}: pip install "rmreg[trl]"')

__all__ = ["RegularizedRewardTrainer"]

_COLUMNS = ["prompt_ids", "chosen_ids", "rejected_ids", "margin", "ref_chosen_logps", "ref_rejected_logps"]


def _tokenize(example: dict[str, Any], tokenizer: Any) -> dict[str, list[int]]:
    pair = encode_pair(tokenizer, example)
    return {
        "prompt_ids": list(pair.prompt_ids),
        "chosen_ids": list(pair.chosen_ids),
        "rejected_ids": list(pair.rejected_ids),
    }


def _build_model(
    model: str | nn.Module,
    args: RewardConfig,
    objective: str | rmreg.Objective | None,
    reward_head: RewardHead | None,
    reference: Reference | nn.Module | None,
    peft_config: Any,
) -> RegularizedRewardModel:
    """The trainer's model: a RegularizedRewardModel as given, or one built around a causal LM (or its path)."""
    if isinstance(model, RegularizedRewardModel):
        given = {"objective": objective, "reward_head": reward_head, "reference": reference, "peft_config": peft_config}
        extra = sorted(name for name, value in given.items() if value is not None)
        if extra:
            raise ValueError(
                f"{', '.join(extra)} configure a causal LM; the RegularizedRewardModel passed as model already has them"
            )
        return model
    if isinstance(model, (str, os.PathLike)):
        model = AutoModelForCausalLM.from_pretrained(model, **(args.model_init_kwargs or {}))
    if peft_config is not None:
        try:
            from peft import get_peft_model
        except ImportError as error:
            raise ImportError('peft_config needs PEFT: pip install "rmreg[peft]"') from error
        model = get_peft_model(model, peft_config)
    if objective is None or isinstance(objective, str):
        objective = rmreg.objective(objective or "grm-sft")
    return RegularizedRewardModel(
        model, reward_head=reward_head, objective=objective, reference="auto" if reference is None else reference
    )


class RegularizedRewardTrainer(RewardTrainer):
    """``trl.RewardTrainer`` for a :class:`~rmreg.model.RegularizedRewardModel` (see the module docstring).

    Args:
        model: a ``RegularizedRewardModel``; or a Hugging Face causal LM (or a path to one, loaded with
            ``args.model_init_kwargs``), wrapped with ``objective``, ``reward_head`` and ``reference``.
        args: TRL's ``RewardConfig``; default ``RewardConfig("rmreg-reward")``.
        data_collator: default :class:`~rmreg.data.PairCollator` in the model's layout.
        train_dataset: a preference ``Dataset`` or ``IterableDataset`` in any TRL format.
        eval_dataset: the same, or a dict of them.
        processing_class: the tokenizer (required; its ``pad_token`` falls back to ``args.pad_token`` or
            ``eos_token``, as in TRL).
        compute_metrics: called with predictions ``(chosen_rewards, rejected_rewards)``.
        callbacks: Trainer callbacks.
        optimizers: ``(optimizer, scheduler)``.
        optimizer_cls_and_kwargs: optimizer class and keyword arguments.
        preprocess_logits_for_metrics: as in ``transformers.Trainer``.
        peft_config: a ``peft.PeftConfig`` applied to a causal LM ``model`` (e.g. the paper's LoRA on q/k/v/o).
        objective: for a causal LM ``model``: an ``rmreg.Objective`` or a preset name (default ``"grm-sft"``
            with α = 0.01, β = 0.1; build ``rmreg.objective(name, alpha=...)`` for others).
        reward_head: for a causal LM ``model``: the reward head (default the paper's MLP head).
        reference: for a causal LM ``model`` and a DPO regularizer: default the PEFT model with its adapters
            off, else a frozen copy of the causal LM.

    Raises:
        ValueError: no train dataset or tokenizer, model options for an already built model, an unsupported
            ``RewardConfig`` option (``center_rewards_coefficient``, ``chat_template_path``), FSDP or ZeRO-3.
    """

    # The objective returns a per-micro-batch mean: Trainer divides it by the gradient accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: str | nn.Module,
        args: RewardConfig | None = None,
        data_collator: Any = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        compute_metrics: Any = None,
        callbacks: Any = None,
        optimizers: tuple[Any, Any] = (None, None),
        optimizer_cls_and_kwargs: Any = None,
        preprocess_logits_for_metrics: Any = None,
        peft_config: Any = None,
        *,
        objective: str | rmreg.Objective | None = None,
        reward_head: RewardHead | None = None,
        reference: Reference | nn.Module | None = None,
    ) -> None:
        args = RewardConfig("rmreg-reward") if args is None else args
        if train_dataset is None:
            raise ValueError("train_dataset is required")
        if processing_class is None:
            raise ValueError("pass the tokenizer as processing_class=")
        if args.center_rewards_coefficient is not None:
            raise ValueError(
                "center_rewards_coefficient is not used: add the term to the objective instead, e.g. "
                "rmreg.objective('grm-sft') + c * rmreg.RewardCentering()"
            )
        if args.chat_template_path is not None:
            raise ValueError("chat_template_path is not supported: set processing_class.chat_template instead")
        set_seed(args.seed)  # as TRL: before building the model, whose new reward head is randomly initialised
        if isinstance(train_dataset, IterableDataset):  # as TRL: Accelerate cannot concatenate dispatched batches
            args.accelerator_config.dispatch_batches = False
        model = _build_model(model, args, objective, reward_head, reference, peft_config)
        if lm.is_peft_model(model.causal_lm) and args.gradient_checkpointing:
            model.causal_lm.enable_input_require_grads()
        if args.disable_dropout:
            disable_dropout_in_model(model)
        processing_class.pad_token = args.pad_token or processing_class.pad_token or processing_class.eos_token
        if data_collator is None:
            data_collator = PairCollator(
                processing_class, layout=model.layout, pad_to_multiple_of=args.pad_to_multiple_of
            )
        train_dataset = self._prepare_dataset(train_dataset, processing_class, args, "train")
        if isinstance(eval_dataset, dict):
            eval_dataset = {
                key: self._prepare_dataset(data, processing_class, args, key) for key, data in eval_dataset.items()
            }
        elif eval_dataset is not None:
            eval_dataset = self._prepare_dataset(eval_dataset, processing_class, args, "eval")
        # RewardTrainer.__init__ builds a sequence classifier and a collator without prompt masks; skip to Trainer's.
        super(RewardTrainer, self).__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        )
        deepspeed = self.accelerator.state.deepspeed_plugin
        if self.is_fsdp_enabled or (deepspeed is not None and deepspeed.zero_stage == 3):
            raise ValueError(
                "RegularizedRewardTrainer saves checkpoints from the unwrapped model, which FSDP and DeepSpeed ZeRO-3 "
                "shard; use DDP or ZeRO-1/2, or an Accelerate loop (examples/accelerate_loop.py)"
            )
        if args.n_gpu > 1:
            raise ValueError("nn.DataParallel is not supported: launch with `accelerate launch` or `torchrun`")
        # The state RewardTrainer.__init__ would set, which its evaluate/log/training_step read.
        self.can_return_loss = True
        self.label_names = []
        self.maybe_activation_offload_context = (
            get_act_offloading_ctx_manager(model=self.model) if args.activation_offloading else contextlib.nullcontext()
        )
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._total_train_tokens = 0
        parallelism = self.accelerator.parallelism_config
        self._tp_size = 1 if parallelism is None else parallelism.tp_size

    def _prepare_dataset(
        self, dataset: Dataset | IterableDataset, processing_class: Any, args: RewardConfig, dataset_name: str
    ) -> Dataset | IterableDataset:
        """Tokenize with rmreg (prompt kept apart) and leave out pairs longer than ``args.max_length``."""
        map_kwargs: dict[str, Any] = {}
        if isinstance(dataset, Dataset):  # IterableDataset.map takes neither num_proc nor desc
            map_kwargs = {"num_proc": args.dataset_num_proc, "desc": f"Tokenizing {dataset_name} pairs"}
        with args.main_process_first(desc=f"tokenizing {dataset_name} pairs"):
            dataset = dataset.map(_tokenize, fn_kwargs={"tokenizer": processing_class}, **map_kwargs)
            if args.max_length is not None:
                if isinstance(dataset, Dataset):
                    map_kwargs["desc"] = f"Filtering {dataset_name} pairs > {args.max_length} tokens"
                dataset = dataset.filter(
                    lambda row: (
                        len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"]))
                        <= args.max_length
                    ),
                    **map_kwargs,
                )
        return dataset

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = list(_COLUMNS)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective's loss; records accuracy, margin, reward statistics and every term for the logs."""
        mode = "train" if self.model.training else "eval"
        output = model(**inputs)
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            chosen, rejected = output.chosen_rewards.detach(), output.rejected_rewards.detach()
            rewards = self.accelerator.gather(torch.cat([chosen, rejected]))
            self._metrics[mode]["min_reward"].append(rewards.min().item())
            self._metrics[mode]["mean_reward"].append(rewards.mean().item())
            self._metrics[mode]["max_reward"].append(rewards.max().item())
            per_batch = {"accuracy": output.accuracy, "margin": (chosen - rejected).mean()}
            per_batch.update({f"terms/{name}": value for name, value in output.terms.items()})
            for key, value in per_batch.items():
                self._metrics[mode][key].append(self.accelerator.gather_for_metrics(value).mean().item())
        if return_outputs:
            return output.loss, {"chosen_rewards": chosen, "rejected_rewards": rejected}
        return output.loss

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write an rmreg checkpoint (``RegularizedRewardModel.save_pretrained``) and the training arguments."""
        if not self.args.should_save:
            return
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        self.accelerator.unwrap_model(self.model).save_pretrained(output_dir, tokenizer=self.processing_class)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        """Load a checkpoint written by :meth:`_save` into the model in place (to resume training)."""
        model = self.accelerator.unwrap_model(self.model if model is None else model)
        directory = Path(resume_from_checkpoint)
        if lm.is_peft_model(model.causal_lm):
            from peft import set_peft_model_state_dict
            from peft.utils import load_peft_weights
            from safetensors.torch import load_file

            set_peft_model_state_dict(model.causal_lm, load_peft_weights(str(directory / "backbone")))
            model.reward_head.load_state_dict(load_file(str(directory / checkpoint.HEAD_NAME)))
        else:
            model.load_state_dict(RegularizedRewardModel.from_pretrained(directory).state_dict())

    def _load_best_model(self) -> None:
        self._load_from_checkpoint(self.state.best_model_checkpoint)

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """No TRL model card: TRL's reads a transformers config, which a RegularizedRewardModel does not have."""

    def _send_telemetry(self) -> None:
        """No usage report to the Hugging Face Hub (TRL's reads a transformers config, too)."""
