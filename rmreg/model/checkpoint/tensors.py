"""Reading and writing safetensors files, with one clear error line naming the file that does not read."""

import json
from pathlib import Path
from typing import Any

import torch

from rmreg.model.checkpoint.errors import first_line

__all__ = ["WEIGHTS_INDEX_NAME", "WEIGHTS_NAME", "read_tensors", "read_weights", "write_tensors", "write_weights"]

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
#: transformers' default shard size.
MAX_SHARD_SIZE = "50GB"


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write ``tensors`` (detached, contiguous; a tensor whose storage an earlier one uses is copied) to ``path``."""
    from safetensors.torch import save_file

    seen: set[int] = set()
    state = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().contiguous()
        storage = tensor.untyped_storage().data_ptr()
        state[name] = tensor.clone() if storage in seen and tensor.numel() else tensor
        seen.add(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": "pt"})


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file.

    Raises:
        ValueError: the file is missing, truncated or not safetensors: one line naming it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ValueError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise ValueError(
            f"{path} is not a readable safetensors file (truncated or corrupted?): {first_line(error)}"
        ) from None


def write_weights(directory: Path, state: dict[str, torch.Tensor], *, max_shard_size: int | str) -> None:
    """Write ``state`` as ``model.safetensors``, or as shards with ``model.safetensors.index.json`` when it is
    larger than ``max_shard_size`` (transformers' layout)."""
    from huggingface_hub import split_torch_state_dict_into_shards

    split = split_torch_state_dict_into_shards(state, max_shard_size=max_shard_size)
    for filename, keys in split.filename_to_tensors.items():
        write_tensors(directory / filename, {key: state[key] for key in keys})
    if split.is_sharded:
        index: dict[str, Any] = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())}}
        index["weight_map"] = dict(sorted(split.tensor_to_filename.items()))
        (directory / WEIGHTS_INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors`` or of the shards its index names.

    Raises:
        ValueError: neither file exists, an unreadable index or shard, a tensor in a shard the index does not
            place there, or one the index names that its shard lacks.
    """
    index_path = directory / WEIGHTS_INDEX_NAME
    if not index_path.is_file():
        return read_tensors(directory / WEIGHTS_NAME)
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{index_path} is not a readable weight index: {error}") from None
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        tensors = read_tensors(directory / shard)
        expected = {name for name, file in weight_map.items() if file == shard}
        if set(tensors) != expected:
            extra, lacking = sorted(set(tensors) - expected), sorted(expected - set(tensors))
            raise ValueError(
                f"{directory / shard} disagrees with {WEIGHTS_INDEX_NAME}: tensors not indexed there "
                f"{extra[:5]}, indexed but absent {lacking[:5]}"
            )
        state.update(tensors)
    return state
