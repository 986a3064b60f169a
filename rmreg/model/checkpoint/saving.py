"""Writing a checkpoint: staged beside its place, with a manifest, moved in whole (see :mod:`rmreg.model.atomic`)."""

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from torch import nn

from rmreg.model import causal_lm as lm
from rmreg.model.atomic import staged_directory
from rmreg.model.checkpoint.adapters import base_model_record
from rmreg.model.checkpoint.causal_lms import is_sequence_classifier_class, lm_head_state
from rmreg.model.checkpoint.classifier import dtype_name, plan_classifier, write_classifier
from rmreg.model.checkpoint.layout import (
    BACKBONE_DIR,
    CONFIG_NAME,
    FORMAT_VERSION,
    HEAD_NAME,
    LM_HEAD_NAME,
    REFERENCE_DIR,
    checkpoint_entries,
)
from rmreg.model.checkpoint.parts import Parts
from rmreg.model.checkpoint.tensors import MAX_SHARD_SIZE, write_tensors
from rmreg.model.manifest import MANIFEST_NAME, write_manifest

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["save"]


def _rmreg_version() -> str:
    import rmreg

    return rmreg.__version__


def _attn_implementation(causal_lm: nn.Module) -> str | None:
    return getattr(lm.unwrap(causal_lm).config, "_attn_implementation", None)


def _write_backbone(parts: Parts, staging: Path, tokenizer: Any, max_shard_size: int | str) -> dict[str, Any]:
    """The classifier files and the untied LM head of a full model; its ``backbone`` description."""
    model = cast("PreTrainedModel", parts.causal_lm)  # no PEFT here: a transformers model
    plan = plan_classifier(model, parts.reward_head, tokenizer)
    write_classifier(staging, model, parts.reward_head, plan, max_shard_size=max_shard_size)
    if is_sequence_classifier_class(type(model).__name__):
        lm_head = "none"  # a sequence classifier: its score layer is the reward head, stored as the head
    elif lm.lm_head_is_tied(model) and bool(getattr(model.config, "tie_word_embeddings", False)):
        lm_head = "tied"
    else:
        lm_head = "untied"
        write_tensors(staging / LM_HEAD_NAME, lm_head_state(model))
    return {
        "classifier": plan.kind,
        "classifier_reason": plan.reason,
        "causal_lm_class": type(model).__name__,
        "decoder_prefix": plan.decoder_prefix,
        "lm_head": lm_head,
        "dtype": dtype_name(model.dtype),
        # buffers are not saved but rebuilt; a model cast with .to() has them in its dtype, a loaded one may not
        "buffer_dtypes": {name: dtype_name(b.dtype) for name, b in model.named_buffers() if b.is_floating_point()},
    }


def save(
    parts: Parts,
    directory: str | os.PathLike[str],
    *,
    tokenizer: Any = None,
    max_shard_size: int | str = MAX_SHARD_SIZE,
) -> None:
    """Write ``parts`` to ``directory`` (see :mod:`rmreg.model.checkpoint` for the layout), atomically.

    Saving over an earlier checkpoint replaces it whole; other entries of the directory (a Trainer's
    ``checkpoint-*/``, logs) are kept. An interrupted save leaves the earlier checkpoint, or nothing that loads.

    Args:
        parts: what to save (``Parts.of(model)``).
        directory: the checkpoint's directory; created with its parents if needed.
        tokenizer: saved beside the model (its pad token decides how transformers' classifier pools).
        max_shard_size: largest weight file before the weights are split into shards (transformers' default).
    """
    directory = Path(directory)
    reference = parts.reference
    peft = lm.is_peft_model(parts.causal_lm)
    head = parts.reward_head
    config: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "rmreg_version": _rmreg_version(),
        "layout": parts.layout,
        "reward_head": head.config(),
        "reward_head_dtype": dtype_name(head.output_layer.weight.dtype),
        "objective": None if parts.objective is None else parts.objective.config(),
        "reference": reference if reference in (None, "adapters") else "model",
        "peft": peft,
        "lm_head_trainable": parts.lm_head_trainable,
        "attn_implementation": _attn_implementation(parts.causal_lm),
    }
    replaces = checkpoint_entries(directory)
    with staged_directory(directory, replaces=replaces, commit_file=MANIFEST_NAME) as staging:
        if peft:
            peft_model: Any = parts.causal_lm  # a peft.PeftModel; nn.Module types its attributes as Tensor | Module
            peft_model.save_pretrained(staging / BACKBONE_DIR)
            write_tensors(staging / HEAD_NAME, head.state_dict())
            config["base_model"] = base_model_record(parts.causal_lm, directory)
            config["base_model_class"] = type(lm.unwrap(parts.causal_lm)).__name__
        else:
            config["backbone"] = _write_backbone(parts, staging, tokenizer, max_shard_size)
        if isinstance(reference, nn.Module):
            config["reference_attn_implementation"] = _attn_implementation(reference)
            reference_model: Any = reference  # a causal LM, transformers' or PEFT's: it has save_pretrained
            reference_model.save_pretrained(staging / REFERENCE_DIR)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        write_manifest(staging, writer=_rmreg_version())
