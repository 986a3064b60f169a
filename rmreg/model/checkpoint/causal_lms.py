"""Building causal LMs from checkpoint files: strictly (every tensor used, every parameter found) and locally."""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from rmreg.model.checkpoint.errors import first_line

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "backbone_class",
    "build_backbone",
    "is_sequence_classifier_class",
    "lm_head_state",
    "load_causal_lm_dir",
    "local_model_directory",
]


def lm_head_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LM head's tensors under their names in ``model``'s state dict (``lm_head.weight``, ...)."""
    hf_model: Any = model  # a transformers model; nn.Module's attributes type as Tensor | Module
    head: nn.Module = hf_model.get_output_embeddings()
    prefix = next(name for name, module in model.named_modules() if module is head)
    return {f"{prefix}.{name}": tensor for name, tensor in head.state_dict().items()}


def _describe(entry: Any) -> str:
    """A key, or a mismatched ``(key, shape in the file, shape the config gives)`` of transformers' loading info."""
    if isinstance(entry, tuple) and len(entry) == 3:
        return f"{entry[0]} (files {tuple(entry[1])}, config {tuple(entry[2])})"
    return str(entry)


def _check_loading_info(info: dict[str, Any], where: str, *, unexpected_ok: bool = False) -> None:
    problems = [
        f"{label} {sorted(map(_describe, info.get(key) or ()))[:5]}"
        for key, label in (
            ("missing_keys", "parameters absent from the files"),
            ("unexpected_keys", "tensors the model does not use"),
            ("mismatched_keys", "tensors of another shape"),
        )
        if info.get(key) and not (unexpected_ok and key == "unexpected_keys")
    ]
    problems += [str(message).splitlines()[0] for message in info.get("error_msgs") or ()]
    if problems:
        raise ValueError(
            f"{where}: the weights do not fit the model its config describes ({'; '.join(problems)}); "
            "edited config or renamed tensors?"
        )


def is_sequence_classifier_class(name: str) -> bool:
    """Whether a backbone class is a ``*ForSequenceClassification`` (a decoder and a score layer, no LM head)."""
    return name.endswith("ForSequenceClassification")


def backbone_class(config: Any) -> type["PreTrainedModel"]:
    """The transformers class named by ``config.architectures`` (a causal LM or a sequence classifier).

    Raises:
        ValueError: transformers has no such class for this config.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING,
    )

    name = (config.architectures or [""])[0]
    mapping = (
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING if is_sequence_classifier_class(name) else MODEL_FOR_CAUSAL_LM_MAPPING
    )
    # transformers annotates the values as (slow, fast) tokenizer-class pairs; a model mapping's are model classes
    cls: type[PreTrainedModel] | None = mapping.get(type(config), None)  # type: ignore[assignment]
    if cls is None or cls.__name__ != name:
        raise ValueError(f"transformers has no {name or 'model'} for {type(config).__name__}")
    return cls


def build_backbone(
    config: Any, state: dict[str, torch.Tensor], *, dtype: torch.dtype, attn_implementation: str | None, where: str
) -> nn.Module:
    """The model ``config.architectures`` names (``*ForCausalLM`` or ``*ForSequenceClassification``) holding
    exactly ``state`` (tied weights may be left out).

    Raises:
        ValueError: a tensor left over, a parameter without tensor, or a shape mismatch (naming ``where``).
    """
    try:
        cls = backbone_class(config)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    kwargs: dict[str, Any] = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    kwargs |= {"dtype": dtype, "output_loading_info": True, "local_files_only": True, "ignore_mismatched_sizes": True}
    try:
        loaded = cls.from_pretrained(None, config=config, state_dict=state, **kwargs)
        # output_loading_info=True: (model, info), which transformers' return annotation does not express
        model, info = cast(tuple[nn.Module, dict[str, Any]], loaded)
    except (RuntimeError, ValueError, OSError) as error:
        raise ValueError(f"{where}: the weights do not load into {cls.__name__} ({first_line(error)})") from None
    _check_loading_info(info, where)
    return model


def local_model_directory(name: str | os.PathLike[str]) -> Path:
    """``name`` itself if it is a directory, else the snapshot of the hub model ``name`` in the local cache.

    Found by looking at files only: even ``local_files_only=True`` loads of a hub name make huggingface_hub
    build request headers, which can go online.

    Raises:
        ValueError: neither a directory nor a cached model (rmreg never downloads).
    """
    from huggingface_hub import try_to_load_from_cache

    if Path(name).is_dir():
        return Path(name)
    try:
        found = try_to_load_from_cache(str(name), "config.json")
    except ValueError:  # not a valid hub name either
        found = None
    if not isinstance(found, str):
        raise ValueError(
            f"{name}: does not load as a causal LM (not a local directory nor in the local cache; rmreg never "
            "downloads: download it first or pass the model)"
        )
    return Path(found).parent


def load_causal_lm_dir(
    path: str | os.PathLike[str],
    attn_implementation: str | None,
    *,
    unexpected_ok: bool = False,
    sequence_classifier: bool = False,
) -> nn.Module:
    """A causal LM (or a one-label sequence classifier) from a ``save_pretrained`` directory or a model already in
    the local cache, never the network; its own dtype, every parameter found in the files and (unless
    ``unexpected_ok``) every tensor used.

    Raises:
        ValueError: not found locally, unreadable, or weights that do not fit (naming the path).
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    directory = local_model_directory(path)
    kwargs: dict[str, Any] = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    auto: type[AutoModelForCausalLM | AutoModelForSequenceClassification] = AutoModelForCausalLM
    what = "causal LM"
    if sequence_classifier:
        auto, what, kwargs["num_labels"] = AutoModelForSequenceClassification, "sequence classifier", 1
    try:
        loaded = auto.from_pretrained(
            directory, dtype="auto", local_files_only=True, output_loading_info=True, **kwargs
        )
        # output_loading_info=True: (model, info), which transformers' return annotation does not express
        model, info = cast(tuple[nn.Module, dict[str, Any]], loaded)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as error:
        raise ValueError(f"{path}: does not load as a {what}: {first_line(error)}") from None
    _check_loading_info(info, str(path), unexpected_ok=unexpected_ok)
    return model
