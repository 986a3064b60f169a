"""Saving and loading a regularized reward model: safetensors and JSON, never pickle.

A saved directory holds::

    rmreg_config.json         head and objective configs, layout, reference kind, attention implementation
    reward_head.safetensors   the reward head's weights
    backbone/                 the causal LM's save_pretrained (a PEFT model: its adapters only)
    reference/                a separate reference model's save_pretrained, when the model has one
    tokenizer files           when a tokenizer is given

Loading rebuilds each part with the dtype and attention implementation it was saved with, so that rewards
are bit-identical on the same inputs.
"""

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from rmreg.heads import RewardHead
from rmreg.model import causal_lm as lm
from rmreg.objectives import Objective

__all__ = ["CONFIG_NAME", "HEAD_NAME", "Parts", "load", "save"]

CONFIG_NAME = "rmreg_config.json"
HEAD_NAME = "reward_head.safetensors"
_FORMAT_VERSION = 1


@dataclasses.dataclass
class Parts:
    """The constructor arguments of a :class:`~rmreg.RegularizedRewardModel`, as saved and loaded.

    Attributes:
        causal_lm: the backbone (possibly a PEFT model).
        reward_head: the reward head.
        objective: the objective (``None`` for a scoring-only model).
        layout: ``"concat"`` or ``"interleaved"``.
        reference: ``None``, ``"adapters"``, or a separate reference causal LM.
        lm_head_trainable: the model's ``lm_head_trainable``.
    """

    causal_lm: nn.Module
    reward_head: RewardHead
    objective: Objective | None
    layout: Any
    reference: Any
    lm_head_trainable: bool | None

    @classmethod
    def of(cls, model: Any) -> "Parts":
        """The parts of a :class:`~rmreg.RegularizedRewardModel`."""
        return cls(
            causal_lm=model.causal_lm,
            reward_head=model.reward_head,
            objective=model.objective,
            layout=model.layout,
            reference=model._reference.saved,
            lm_head_trainable=model.lm_head_trainable,
        )

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~rmreg.RegularizedRewardModel` that rebuild the model."""
        return {"causal_lm": self.causal_lm, **{k: v for k, v in vars(self).items() if k != "causal_lm"}}


def _attn_implementation(causal_lm: nn.Module) -> str | None:
    return getattr(lm.unwrap(causal_lm).config, "_attn_implementation", None)


def save(parts: Parts, directory: str | os.PathLike[str], *, tokenizer: Any = None) -> None:
    """Write ``parts`` to ``directory`` (created if needed); see the module docstring for the layout."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    reference = parts.reference
    config = {
        "format_version": _FORMAT_VERSION,
        "layout": parts.layout,
        "reward_head": parts.reward_head.config(),
        "objective": None if parts.objective is None else parts.objective.config(),
        "reference": reference if reference in (None, "adapters") else "model",
        "peft": lm.is_peft_model(parts.causal_lm),
        "lm_head_trainable": parts.lm_head_trainable,
        "attn_implementation": _attn_implementation(parts.causal_lm),
    }
    parts.causal_lm.save_pretrained(directory / "backbone")
    if isinstance(reference, nn.Module):
        config["reference_attn_implementation"] = _attn_implementation(reference)
        reference.save_pretrained(directory / "reference")
    state = {name: tensor.detach().contiguous() for name, tensor in parts.reward_head.state_dict().items()}
    save_file(state, str(directory / HEAD_NAME), metadata={"format": "pt"})
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)


def _load_causal_lm(path: Path, attn_implementation: str | None) -> nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype="auto", attn_implementation=attn_implementation)


def _load_peft(path: Path, base_model: nn.Module | str | None, attn_implementation: str | None, trainable: bool):
    from peft import PeftConfig, PeftModel

    if base_model is None:
        base_model = PeftConfig.from_pretrained(path).base_model_name_or_path
        if not base_model:
            raise ValueError(
                f"{path} holds PEFT adapters whose base model has no recorded path; pass base_model= (the base "
                "causal LM the adapters were trained on)"
            )
    if isinstance(base_model, (str, os.PathLike)):
        base_model = _load_causal_lm(Path(base_model), attn_implementation)
    return PeftModel.from_pretrained(base_model, path, is_trainable=trainable)


def _load_head(path: Path, config: dict[str, Any]) -> RewardHead:
    from safetensors.torch import load_file

    state = load_file(str(path))
    head = RewardHead(**config)
    dtypes = {tensor.dtype for tensor in state.values()}
    if len(dtypes) == 1:
        head.to(dtypes.pop())
    head.load_state_dict(state)
    return head


def load(
    directory: str | os.PathLike[str], *, base_model: nn.Module | str | None = None, is_trainable: bool = False
) -> Parts:
    """Read the parts written by :func:`save`.

    Args:
        directory: the saved model's directory.
        base_model: for PEFT checkpoints, the base causal LM (its adapters are injected in place) or its path.
        is_trainable: for PEFT checkpoints, whether the loaded adapters train.

    Raises:
        ValueError: not an rmreg checkpoint, or a PEFT checkpoint without a known base model.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise ValueError(f"{directory} is not an rmreg checkpoint (no {CONFIG_NAME})")
    config = json.loads(config_path.read_text())
    attn = config.get("attn_implementation")
    if config["peft"]:
        causal_lm = _load_peft(directory / "backbone", base_model, attn, is_trainable)
    else:
        causal_lm = _load_causal_lm(directory / "backbone", attn)
    reference = config["reference"]
    if reference == "model":
        reference = _load_causal_lm(directory / "reference", config.get("reference_attn_implementation"))
    return Parts(
        causal_lm=causal_lm,
        reward_head=_load_head(directory / HEAD_NAME, config["reward_head"]),
        objective=None if config["objective"] is None else Objective.from_config(config["objective"]),
        layout=config["layout"],
        reference=reference,
        lm_head_trainable=config["lm_head_trainable"],
    )
