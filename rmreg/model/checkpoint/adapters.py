"""PEFT checkpoints: the adapters in ``backbone/``, and the base model they were trained on, found again locally.

The base model's path is recorded in ``rmreg_config.json``: a local directory given relative to the working
directory is recorded relative to the checkpoint (and resolved against it when loading, from any working
directory), an absolute one as it is, anything else (a hub id) as a name that loads only from the local cache.
"""

import os
from pathlib import Path
from typing import Any

from torch import nn

from rmreg.model import causal_lm as lm
from rmreg.model.checkpoint.causal_lms import load_causal_lm_dir
from rmreg.model.checkpoint.errors import first_line
from rmreg.model.checkpoint.tensors import read_tensors

__all__ = ["base_model_record", "load_adapters"]

_ADAPTER_WEIGHTS = "adapter_model.safetensors"


def base_model_record(causal_lm: nn.Module, checkpoint: Path) -> dict[str, Any] | None:
    """Where the PEFT model's base model is, as ``rmreg_config.json`` records it (``None``: unknown)."""
    peft_model: Any = causal_lm  # a peft.PeftModel; nn.Module types its attributes as Tensor | Module
    config = peft_model.peft_config.get(peft_model.active_adapter)
    name = getattr(config, "base_model_name_or_path", None) or lm.unwrap(causal_lm).config.name_or_path
    if not name:
        return None
    path = Path(name)
    if not path.is_dir():
        return {"path": str(name), "relative_to_checkpoint": False}
    if path.is_absolute():
        return {"path": str(path), "relative_to_checkpoint": False}
    try:
        relative = os.path.relpath(path.resolve(), checkpoint.resolve())
    except ValueError:  # another drive
        return {"path": str(path.resolve()), "relative_to_checkpoint": False}
    return {"path": Path(relative).as_posix(), "relative_to_checkpoint": True}


def _base_model_path(record: dict[str, Any] | None, checkpoint: Path) -> str | Path:
    if record is None:
        raise ValueError(
            f"{checkpoint} holds PEFT adapters whose base model has no recorded path; pass base_model= (the base "
            "causal LM the adapters were trained on)"
        )
    path = record["path"]
    if record["relative_to_checkpoint"]:
        path = (checkpoint / path).resolve()
        if not path.is_dir():
            raise ValueError(
                f"{checkpoint}: its base model {record['path']!r} (relative to the checkpoint) is not at {path}; "
                "pass base_model="
            )
    return path


def load_adapters(
    directory: Path,
    checkpoint: Path,
    base_model: nn.Module | str | os.PathLike[str] | None,
    record: dict[str, Any] | None,
    *,
    attn_implementation: str | None,
    is_trainable: bool,
    sequence_classifier: bool = False,
) -> nn.Module:
    """The PEFT model: ``base_model`` (a module, a path, or ``None`` for the recorded one; a one-label sequence
    classifier when ``sequence_classifier``) with the adapters of ``directory`` injected, every adapter tensor of
    the file used and every adapter parameter found in it.

    Raises:
        ValueError: no known base model, a base model that does not load, or adapters that do not fit it.
    """
    from peft import PeftModel, get_peft_model_state_dict

    saved = read_tensors(directory / _ADAPTER_WEIGHTS)
    path = _base_model_path(record, checkpoint) if base_model is None else base_model
    base: nn.Module
    if isinstance(path, (str, os.PathLike)):
        base = load_causal_lm_dir(
            path, attn_implementation, unexpected_ok=True, sequence_classifier=sequence_classifier
        )
        path = Path(path).resolve() if Path(path).is_dir() else path
    else:  # the module passed as base_model
        base = path
    try:
        model = PeftModel.from_pretrained(base, directory, is_trainable=is_trainable, local_files_only=True)
    except (RuntimeError, ValueError, KeyError, OSError) as error:
        raise ValueError(f"{directory}: the adapters do not load into the base model ({first_line(error)})") from None
    if isinstance(path, (str, os.PathLike)):  # the base as found, so that saving the model again records it
        model.peft_config[model.active_adapter].base_model_name_or_path = str(path)
    # explicit save_embedding_layers: "auto" looks the base model up on the hub
    adapter = model.active_adapter
    required = set(get_peft_model_state_dict(model, adapter_name=adapter, save_embedding_layers=False))
    allowed = set(get_peft_model_state_dict(model, adapter_name=adapter, save_embedding_layers=True))
    if not required <= set(saved) <= allowed:
        unused, absent = sorted(set(saved) - allowed)[:5], sorted(required - set(saved))[:5]
        raise ValueError(
            f"{directory / _ADAPTER_WEIGHTS}: the adapters do not fit the base model (tensors it does not use: "
            f"{unused}; adapter parameters without tensor: {absent})"
        )
    return model
