"""The trainer's model: a :class:`~rmreg.model.RegularizedRewardModel` built the way TRL builds its reward model.

TRL's ``RewardTrainer`` loads a model id with ``AutoModelForSequenceClassification`` (float32 unless
``args.model_init_kwargs`` says otherwise, ``args.trust_remote_code``, ``num_labels=1``). Here a causal LM id is
loaded with ``AutoModelForCausalLM`` under the same rules, so that GRM's regularizers keep its LM head; a
sequence-classifier id (or instance) is kept whole, its trained ``score`` layer becoming the reward head, for
objectives that read rewards only.
"""

import os
from typing import Any, cast

import torch
from torch import nn

try:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, logging
    from trl.trainer.utils import create_model_from_path
except ImportError as error:  # rmreg.integrations.trl's __init__ names the extra first
    raise ImportError(f'rmreg.integrations.trl needs TRL ({error}): pip install "rmreg[trl]"') from error

import rmreg
from rmreg.heads import RewardHead
from rmreg.model import Reference, RegularizedRewardModel
from rmreg.model import causal_lm as lm
from rmreg.objectives import BradleyTerry, Objective, RewardCentering, Term, as_objective

__all__ = ["apply_peft", "backbone", "build_reward_model", "check_model", "load_model", "model_id", "trl_objective"]

logger = logging.get_logger(__name__)

Model = str | os.PathLike[str] | nn.Module


def backbone(model: nn.Module) -> Any:
    """The transformers model inside (a RegularizedRewardModel's causal LM, a PEFT model's base model)."""
    return lm.unwrap(model.causal_lm if isinstance(model, RegularizedRewardModel) else model)


def model_id(model: Model) -> str:
    """The model's id or path, as TRL finds it (``config._name_or_path`` of an instance)."""
    return (
        os.fspath(model)
        if isinstance(model, (str, os.PathLike))
        else getattr(backbone(model).config, "_name_or_path", "")
    )


def _is_classifier_checkpoint(path: str, trust_remote_code: bool, revision: str | None) -> bool:
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    return any(name.endswith("ForSequenceClassification") for name in config.architectures or ())


def load_model(path: str, args: Any, quantization_config: Any) -> tuple[nn.Module, str | None]:
    """Load a model id or path with TRL's rules; returns the model and the revision (for the tokenizer).

    A checkpoint whose architecture is a ``*ForSequenceClassification`` loads as one (with ``num_labels=1``, as
    TRL loads every model); any other loads as a causal LM.
    """
    kwargs = dict(args.model_init_kwargs or {})  # a copy: TRL does not mutate model_init_kwargs either
    if quantization_config is not None:
        if "quantization_config" in kwargs:
            raise ValueError(
                "You set `quantization_config` both as a trainer argument and in `args.model_init_kwargs`. "
                "Please set it in only one place, preferably as a trainer argument."
            )
        kwargs["quantization_config"] = quantization_config
    if args.distributed_state.distributed_type in ["MULTI_GPU", "DEEPSPEED"]:
        kwargs["device_map"] = None  # as TRL: distributed training requires device_map=None
    kwargs.setdefault("trust_remote_code", args.trust_remote_code)
    revision = kwargs.get("revision")
    if _is_classifier_checkpoint(path, kwargs["trust_remote_code"], revision):
        kwargs["num_labels"] = 1
        return create_model_from_path(path, cast(Any, AutoModelForSequenceClassification), **kwargs), revision
    return create_model_from_path(path, cast(Any, AutoModelForCausalLM), **kwargs), revision


def check_model(model: nn.Module, args: Any, quantization_config: Any) -> None:
    """TRL's checks and warnings for a model passed as an instance."""
    if args.model_init_kwargs is not None:
        logger.warning(
            "You passed `model_init_kwargs` to the `RewardConfig`, but your model is already instantiated. "
            "The `model_init_kwargs` will be ignored."
        )
    if quantization_config is not None:
        logger.warning(
            "You passed `quantization_config` to the trainer, but your model is already instantiated. The "
            "`quantization_config` will be ignored."
        )
    if lm.is_sequence_classifier(model) and getattr(backbone(model).config, "num_labels", None) != 1:
        raise ValueError(
            f"The model has `num_labels={backbone(model).config.num_labels}`, but reward models require "
            "`num_labels=1` to output a single scalar reward per sequence. Please instantiate your model with "
            "`num_labels=1` or pass a model name as a string to have it configured automatically."
        )


def apply_peft(model: nn.Module, peft_config: Any, args: Any, added_tokens: list[int]) -> nn.Module:
    """``get_peft_model`` with TRL's checks and its handling of tokens added by a cloned chat template."""
    try:
        import peft
    except ImportError as error:
        raise ImportError('You passed `peft_config` but PEFT is not installed: pip install "rmreg[peft]"') from error
    if not isinstance(peft_config, peft.PeftConfig):
        raise TypeError(
            f"`peft_config` must be a `peft.PeftConfig` instance (e.g. `peft.LoraConfig`), "
            f"got {type(peft_config).__name__}."
        )
    config: Any = peft_config  # LoRA and other adapter configs have the fields below
    if isinstance(model, RegularizedRewardModel) or lm.is_peft_model(model):
        raise ValueError(
            "You passed a `PeftModel` (or a RegularizedRewardModel) together with a `peft_config` to the trainer. "
            "Pass the base model with the `peft_config`, or the PEFT model without it."
        )
    if added_tokens:  # as TRL: the cloned template's new tokens and the LM head must train
        indices = dict(config.trainable_token_indices or {})
        indices["embed_tokens"] = [*indices.get("embed_tokens", []), *added_tokens]
        config.trainable_token_indices = indices
        if "lm_head" not in (config.modules_to_save or []) and not lm.is_sequence_classifier(model):
            logger.warning(
                "Cloning chat template added new tokens to the tokenizer, but 'lm_head' is not in PEFT's "
                "`modules_to_save`; adding it so that the LM head learns the new tokens."
            )
            config.modules_to_save = [*(config.modules_to_save or []), "lm_head"]
    kwargs: dict[str, Any] = {}
    quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    if args.deepspeed_plugin is not None and args.deepspeed_plugin.zero_stage == 3 and not quantized:
        kwargs["autocast_adapter_dtype"] = False  # as TRL (trl#6089): one dtype for ZeRO-3's gathers
    model = peft.get_peft_model(model, peft_config, **kwargs)
    if quantized:  # as TRL: QLoRA adapters in bf16, DoRA magnitudes excepted
        for name, param in model.named_parameters():
            if param.requires_grad and "lora_magnitude_vector" not in name:
                param.data = param.data.to(torch.bfloat16)
    return model


def _with_trl_margin(term: Term) -> Term:
    """A Bradley–Terry term that ignores the margin, remade to use the batch's margin whenever it has one."""
    if isinstance(term, BradleyTerry) and term.use_margin is False:
        return BradleyTerry(label_smoothing=term.label_smoothing, use_margin="auto", name=term.name)
    return term


def trl_objective(objective: Objective | Term, center_rewards_coefficient: float | None) -> Objective:
    """The objective under TRL's semantics: a dataset's ``margin`` reaches every Bradley–Terry term (TRL
    subtracts it whenever the column is there), and ``center_rewards_coefficient`` c adds ``c·(r_c + r_r)²``.
    """
    objective = as_objective(objective)
    terms = [(weight, _with_trl_margin(term)) for weight, term in objective.weighted_terms()]
    if center_rewards_coefficient is not None:
        terms.append((float(center_rewards_coefficient), RewardCentering()))
    return Objective(terms, name=objective.name if center_rewards_coefficient is None else None)


def _objective(model: nn.Module, objective: str | Objective | Term | None) -> Objective | Term:
    if not lm.is_sequence_classifier(model):
        return rmreg.objective(objective or "grm-sft") if objective is None or isinstance(objective, str) else objective
    if objective is None:
        logger.warning(
            f"{type(backbone(model)).__name__} is a sequence classifier, with no LM head for GRM's regularizers: "
            "training it with Bradley–Terry ('bt'), TRL's loss. For GRM, pass the causal LM instead."
        )
        return rmreg.objective("bt")
    built = rmreg.objective(objective) if isinstance(objective, str) else as_objective(objective)
    if built.needs.policy_logps or built.needs.reference_logps:
        raise ValueError(
            f"the objective reads response log-probs from the LM head, which the sequence classifier "
            f"{type(backbone(model)).__name__} does not have: pass the causal LM instead "
            "(AutoModelForCausalLM.from_pretrained(...), or its path), or train with objective='bt'"
        )
    return built


def build_reward_model(
    model: nn.Module,
    *,
    objective: str | Objective | Term | None,
    reward_head: RewardHead | None,
    reference: Reference | nn.Module | None,
    center_rewards_coefficient: float | None,
) -> RegularizedRewardModel:
    """The RegularizedRewardModel the trainer trains, with the objective under TRL's semantics.

    A RegularizedRewardModel is used as given (its objective remade by :func:`trl_objective`); a causal LM gets
    ``reward_head`` (default the paper's MLP head) and ``objective`` (default ``"grm-sft"``); a sequence classifier
    keeps its ``score`` layer as the reward head and trains with ``objective`` (default ``"bt"``).
    """
    if isinstance(model, RegularizedRewardModel):
        given = {"objective": objective, "reward_head": reward_head, "reference": reference}
        extra = sorted(name for name, value in given.items() if value is not None)
        if extra:
            raise ValueError(
                f"{', '.join(extra)} configure a causal LM; the RegularizedRewardModel passed as model already has them"
            )
        if model.objective is None:
            raise ValueError("the RegularizedRewardModel passed as model has no objective to train with")
        model.objective = trl_objective(model.objective, center_rewards_coefficient)
        return model
    if lm.is_sequence_classifier(model):
        if reward_head is not None:
            raise ValueError(
                "a sequence classifier's score layer is its reward head; pass reward_head= only with a causal LM"
            )
        reward_head = lm.classifier_reward_head(model)
    built = _objective(model, objective)
    return RegularizedRewardModel(
        model,
        reward_head=reward_head,
        objective=trl_objective(built, center_rewards_coefficient),
        reference="auto" if reference is None else reference,
    )
