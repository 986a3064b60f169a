"""RegularizedRewardTrainer: ``trl.RewardTrainer`` training a :class:`~rmreg.model.RegularizedRewardModel`.

See :mod:`rmreg.integrations.trl` for what is the same as TRL and what differs.
"""

import contextlib
import os
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

try:
    import transformers
    from accelerate.logging import get_logger
    from datasets import Dataset, IterableDataset
    from packaging.version import Version
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer
    from trl.models import get_act_offloading_ctx_manager
    from trl.trainer.utils import disable_dropout_in_model
except ImportError as error:  # rmreg.integrations.trl's __init__ names the extra first
    raise ImportError(f'rmreg.integrations.trl needs TRL ({error}): pip install "rmreg[trl]"') from error

from rmreg.data import PairCollator
from rmreg.heads import RewardHead
from rmreg.integrations.trl import models, processing
from rmreg.model import Reference, RegularizedRewardModel
from rmreg.model import causal_lm as lm
from rmreg.model.checkpoint.layout import BACKBONE_DIR, HEAD_NAME
from rmreg.objectives import BradleyTerry, Objective, Term

__all__ = ["TRAINING_ARGS_NAME", "RegularizedRewardTrainer"]

TRAINING_ARGS_NAME = "training_args.json"
"""The training arguments beside each checkpoint, as JSON (transformers writes a pickle, ``training_args.bin``)."""

logger = get_logger(__name__)


class RegularizedRewardTrainer(RewardTrainer):
    """``trl.RewardTrainer`` for a :class:`~rmreg.model.RegularizedRewardModel` (see :mod:`rmreg.integrations.trl`).

    Takes every argument of ``trl.RewardTrainer`` (TRL 1.x), in its order, with its defaults, plus three of its
    own, keyword-only.

    Args:
        model: a model id or path (a causal LM is loaded with ``AutoModelForCausalLM``, a sequence classifier with
            ``AutoModelForSequenceClassification``; ``args.model_init_kwargs``, float32 by default, and
            ``args.trust_remote_code`` apply), a transformers causal LM or sequence classifier (possibly PEFT), or a
            ``RegularizedRewardModel``.
        args: TRL's ``RewardConfig``; default ``RewardConfig("<model name>-Reward")``.
        data_collator: default :class:`~rmreg.data.PairCollator` in the model's layout.
        train_dataset: a preference ``Dataset`` or ``IterableDataset`` in any TRL format.
        eval_dataset: the same, or a dict (or ``DatasetDict``) of them.
        processing_class: the tokenizer; default the one saved with the model. Its pad token falls back to
            ``args.pad_token`` or ``eos_token``, as in TRL.
        compute_metrics: called with TRL's ``EvalPrediction``: ``predictions`` are the rewards ``[2P, 1]`` of each
            evaluation batch, chosen rows then rejected rows.
        callbacks: Trainer callbacks.
        optimizers: ``(optimizer, scheduler)``.
        optimizer_cls_and_kwargs: optimizer class and keyword arguments.
        preprocess_logits_for_metrics: as in ``transformers.Trainer`` (it receives the rewards ``[2P, 1]``).
        quantization_config: a ``BitsAndBytesConfig`` used when ``model`` is an id or path.
        peft_config: a ``peft.PeftConfig`` applied to a transformers ``model`` (e.g. the paper's LoRA on q/k/v/o);
            rmreg's reward head always trains in full.
        objective: an ``rmreg.Objective``, a ``Term`` or a preset name; default ``"grm-sft"`` (α = 0.01, β = 0.1)
            for a causal LM, ``"bt"`` for a sequence classifier. Not for a ``RegularizedRewardModel``.
        reward_head: for a causal LM: the reward head (default the paper's MLP head).
        reference: for a causal LM and a DPO regularizer: default the PEFT model with its adapters off, else a
            frozen copy of the causal LM.

    Raises:
        ValueError: no train dataset, model options for an already built model, a GRM objective for a sequence
            classifier, an EOS or pad token outside the vocabulary, FSDP or ZeRO-3, ``nn.DataParallel``.
        TypeError: a train dataset that is not a ``Dataset`` or ``IterableDataset``, a ``peft_config`` that is not
            a ``PeftConfig``.
    """

    _tag_names = ["trl", "reward-trainer", "rmreg"]  # noqa: RUF012 (RewardTrainer's attribute)

    def __init__(
        self,
        model: str | nn.Module,
        args: RewardConfig | None = None,
        data_collator: Any = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        compute_metrics: Callable[..., dict] | None = None,
        callbacks: Any = None,
        optimizers: tuple[Any, Any] = (None, None),
        optimizer_cls_and_kwargs: Any = None,
        preprocess_logits_for_metrics: Callable[..., torch.Tensor] | None = None,
        quantization_config: Any = None,
        peft_config: Any = None,
        *,
        objective: str | Objective | Term | None = None,
        reward_head: RewardHead | None = None,
        reference: Reference | nn.Module | None = None,
    ) -> None:
        if args is None:
            args = RewardConfig(f"{models.model_id(model).split('/')[-1]}-Reward")
        if train_dataset is None:
            raise ValueError("`train_dataset` is required")
        if isinstance(train_dataset, IterableDataset):  # as TRL: Accelerate cannot concatenate dispatched batches
            accelerator_config: Any = args.accelerator_config
            if accelerator_config.dispatch_batches is True:
                logger.warning(
                    "You are using an `IterableDataset` for training with `dispatch_batches=True`. `dispatch_batches` "
                    "is forced to `False` when using an `IterableDataset`. To remove this warning, unset "
                    "`dispatch_batches` in `RewardConfig` or set it to `False`."
                )
            accelerator_config.dispatch_batches = False
        elif not isinstance(train_dataset, Dataset):
            raise TypeError(
                f"`train_dataset` must be a `Dataset` or `IterableDataset`, got `{type(train_dataset).__name__}`."
            )
        set_seed(args.seed)  # as TRL: before building the model, whose new reward head is randomly initialised
        revision = None
        if isinstance(model, (str, os.PathLike)):
            model, revision = models.load_model(os.fspath(model), args, quantization_config)
        else:
            models.check_model(model, args, quantization_config)
        if processing_class is None:
            processing_class = processing.load_tokenizer(models.model_id(model), revision, args)
        hf_model = models.backbone(model)
        processing.set_eos_token(processing_class, hf_model.config, args)
        added_tokens: list[int] = []
        if args.chat_template_path is not None:
            if isinstance(model, RegularizedRewardModel) and model.reference_model is not None:
                raise ValueError(
                    "chat_template_path changes the tokenizer the separate reference model was built for; pass the "
                    "causal LM and let the trainer build the reference"
                )
            added_tokens = processing.set_chat_template(hf_model, processing_class, args.chat_template_path)
        if peft_config is not None:
            model = models.apply_peft(model, peft_config, args, added_tokens)
        model = models.build_reward_model(
            model,
            objective=objective,
            reward_head=reward_head,
            reference=reference,
            center_rewards_coefficient=args.center_rewards_coefficient,
        )
        peft_model: Any = model.causal_lm
        if lm.is_peft_model(peft_model) and args.gradient_checkpointing:
            peft_model.enable_input_require_grads()
        if args.disable_dropout:
            disable_dropout_in_model(model)
        processing.set_pad_token(processing_class, hf_model.config, args)
        processing.warn_if_pad_is_eos(processing_class)
        if data_collator is None:
            data_collator = PairCollator(
                processing_class, layout=model.layout, pad_to_multiple_of=cast(int | None, args.pad_to_multiple_of)
            )
        self._pair_columns: set[str] = set()
        train_dataset = self._prepare_dataset(train_dataset, processing_class, args, "train")
        if isinstance(eval_dataset, dict):
            eval_dataset = {
                key: self._prepare_dataset(data, processing_class, args, key) for key, data in eval_dataset.items()
            }
        elif eval_dataset is not None:
            eval_dataset = self._prepare_dataset(eval_dataset, processing_class, args, "eval")
        if args.gradient_checkpointing and Version(transformers.__version__) < Version("5.0.0"):
            checkpointing: Any = args.gradient_checkpointing_kwargs or {}
            checkpointing.setdefault("use_reentrant", False)  # as TRL
            args.gradient_checkpointing_kwargs = checkpointing
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
            raise ValueError(
                f"{type(self).__name__} does not support `nn.DataParallel`, which `Trainer` uses when several GPUs are "
                "visible to a single process. Launch the script with `accelerate launch` or `torchrun`, or make a "
                "single GPU visible with `CUDA_VISIBLE_DEVICES`."
            )
        # The state RewardTrainer.__init__ would set, which its evaluate/log/training_step read.
        self.can_return_loss = True
        self.label_names = []
        offload: Any = (
            get_act_offloading_ctx_manager(model=model) if args.activation_offloading else contextlib.nullcontext()
        )
        self.maybe_activation_offload_context = offload
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._total_train_tokens = 0
        parallelism = self.accelerator.parallelism_config
        self._tp_size = 1 if parallelism is None else parallelism.tp_size
        backbone = models.backbone(model)
        backbone.add_model_tags(self._tag_names)
        model.model_tags = backbone.model_tags  # Trainer's model card and push_to_hub read trainer.model.model_tags
        self._warn_if_margin_is_ignored()

    def _prepare_dataset(
        self, dataset: Dataset | IterableDataset, processing_class: Any, args: RewardConfig, dataset_name: str
    ) -> Dataset | IterableDataset:
        """TRL's preparation with rmreg's tokenization (see :mod:`rmreg.integrations.trl.processing`)."""
        dataset = processing.prepare_dataset(dataset, processing_class, args, dataset_name)
        self._pair_columns |= processing.numeric_columns(dataset)
        return dataset

    def _set_signature_columns_if_needed(self) -> None:
        # The ids and every per-pair column of the datasets prepared so far survive remove_unused_columns.
        self._signature_columns = [*processing.ID_COLUMNS, *sorted(self._pair_columns)]  # type: ignore[assignment]

    @property
    def _reward_model(self) -> RegularizedRewardModel:
        return cast(RegularizedRewardModel, self.accelerator.unwrap_model(self.model))

    def _warn_if_margin_is_ignored(self) -> None:
        objective = self._reward_model.objective
        terms = [] if objective is None else list(objective.terms)
        if "margin" in self._pair_columns and not any(isinstance(t, BradleyTerry) and t.use_margin for t in terms):
            warnings.warn(
                "the dataset's 'margin' column is ignored: the objective has no Bradley–Terry term to subtract it "
                "from (TRL's RewardTrainer subtracts it from r_c − r_r)",
                stacklevel=3,
            )

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective's loss; records TRL's metrics (accuracy, margin, reward statistics) and every term."""
        mode = "train" if self._reward_model.training else "eval"
        output = model(**inputs)
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            rewards = torch.cat([output.chosen_rewards, output.rejected_rewards]).detach().unsqueeze(-1)
            gathered = self.accelerator.gather(rewards)
            self._metrics[mode]["min_reward"].append(gathered.min().item())
            self._metrics[mode]["mean_reward"].append(gathered.mean().item())
            self._metrics[mode]["max_reward"].append(gathered.max().item())
            margin = (output.chosen_rewards - output.rejected_rewards).detach().mean()
            per_batch = {"accuracy": output.accuracy, "margin": margin}
            per_batch.update({f"terms/{name}": value for name, value in output.terms.items()})
            for key, value in per_batch.items():
                self._metrics[mode][key].append(self.accelerator.gather_for_metrics(value).mean().item())
        # TRL's predictions: the classifier's logits [2P, 1], chosen rows then rejected rows, whatever the layout.
        return (output.loss, {"logits": rewards}) if return_outputs else output.loss

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write the model (``RegularizedRewardModel.save_pretrained``, tokenizer included) and the training
        arguments as JSON; no pickle."""
        if not self.args.should_save:
            return
        directory = Path(output_dir if output_dir is not None else str(self.args.output_dir))
        self._reward_model.save_pretrained(directory, tokenizer=self.processing_class)
        (directory / TRAINING_ARGS_NAME).write_text(self.args.to_json_string())

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        """Load a checkpoint written by :meth:`_save` into the model in place (to resume training)."""
        model = cast(RegularizedRewardModel, self.accelerator.unwrap_model(self.model if model is None else model))
        directory = Path(resume_from_checkpoint)
        if lm.is_peft_model(model.causal_lm):
            from peft import set_peft_model_state_dict
            from peft.utils import load_peft_weights
            from safetensors.torch import load_file

            set_peft_model_state_dict(model.causal_lm, load_peft_weights(str(directory / BACKBONE_DIR)))
            model.reward_head.load_state_dict(load_file(str(directory / HEAD_NAME)))
        else:
            model.load_state_dict(RegularizedRewardModel.from_pretrained(directory).state_dict())

    def _load_best_model(self) -> None:
        if self.state.best_model_checkpoint is not None:
            self._load_from_checkpoint(self.state.best_model_checkpoint)

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """No TRL model card: TRL's reads a transformers config, which a RegularizedRewardModel does not have."""

    def _send_telemetry(self) -> None:
        """No usage report to the Hugging Face Hub (TRL's reads a transformers config, too)."""
