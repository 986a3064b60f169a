"""The names in a checkpoint directory, and ``rmreg_config.json``: what it holds and how it is checked."""

import json
import os
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from rmreg.data.layout import LAYOUTS
from rmreg.model.manifest import MANIFEST_NAME, read_manifest
from rmreg.model.remote_code import MODULE_FILES

__all__ = [
    "BACKBONE_DIR",
    "CLASSIFIER_CONFIG",
    "CONFIG_NAME",
    "EXTRAS_DIR",
    "FORMAT_VERSION",
    "HEAD_NAME",
    "LEGACY_ENTRIES",
    "LM_HEAD_NAME",
    "REFERENCE_DIR",
    "check_config",
    "checkpoint_entries",
    "find_checkpoints",
    "is_checkpoint",
    "read_by_loaders",
    "read_config",
    "writer_of",
]

CONFIG_NAME = "rmreg_config.json"
CLASSIFIER_CONFIG = "config.json"
HEAD_NAME = "reward_head.safetensors"  # PEFT checkpoints (and format 1)
BACKBONE_DIR = "backbone"  # PEFT adapters (format 1: the whole causal LM)
REFERENCE_DIR = "reference"
EXTRAS_DIR = "rmreg_extras"
LM_HEAD_NAME = f"{EXTRAS_DIR}/lm_head.safetensors"
FORMAT_VERSION = 2
#: Top-level entries of a format-1 checkpoint (no manifest lists them).
LEGACY_ENTRIES = (CONFIG_NAME, HEAD_NAME, BACKBONE_DIR, REFERENCE_DIR)

_DTYPES = ("float32", "bfloat16", "float16", "float64")


def read_by_loaders(name: str) -> bool:
    """Whether rmreg or transformers would read the file ``name`` (relative POSIX path) of a checkpoint."""
    top, _, rest = name.partition("/")
    if rest:
        return top in (BACKBONE_DIR, REFERENCE_DIR, EXTRAS_DIR)
    return (
        fnmatchcase(top, "*.safetensors")
        or fnmatchcase(top, "*.safetensors.index.json")
        or top
        in (
            CONFIG_NAME,
            CLASSIFIER_CONFIG,
            *MODULE_FILES,
        )
    )


def checkpoint_entries(directory: Path) -> set[str]:
    """Top-level entries of ``directory`` that belong to an earlier checkpoint (those a new save replaces): what
    its manifest lists, what format 1 wrote, and whatever a loader would read; others (logs, a Trainer's
    ``checkpoint-*/``) are not."""
    if not directory.is_dir():
        return set()
    names = {*LEGACY_ENTRIES, MANIFEST_NAME, EXTRAS_DIR}
    try:
        manifest = read_manifest(directory)
    except ValueError:
        manifest = None
    if manifest is not None:
        names |= {name.split("/")[0] for name in manifest["files"]}
    return names | {path.name for path in directory.iterdir() if read_by_loaders(path.name)}


def is_checkpoint(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds an rmreg checkpoint (complete or not: its config or its manifest)."""
    directory = Path(directory)
    return (directory / CONFIG_NAME).is_file() or (directory / MANIFEST_NAME).is_file()


def find_checkpoints(directory: str | os.PathLike[str]) -> list[Path]:
    """``directory`` itself and its immediate subdirectories that hold an rmreg checkpoint (an earlier run's)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [directory] if is_checkpoint(directory) else []
    return found + sorted(path for path in directory.iterdir() if path.is_dir() and is_checkpoint(path))


def _is_str_or_none(value: object) -> bool:
    return value is None or isinstance(value, str)


def _one_of(*choices: object):
    """A check that ``value`` is one of ``choices`` and of the same type (``0`` is not ``False``)."""
    return lambda value: any(value is c or (type(value) is type(c) and value == c) for c in choices)


_COMMON = {
    "format_version": (lambda value: isinstance(value, int), "an integer"),
    "layout": (_one_of(*LAYOUTS), f"one of {list(LAYOUTS)}"),
    "reward_head": (lambda value: isinstance(value, dict), "the reward head's config (an object)"),
    "objective": (lambda value: value is None or isinstance(value, dict), "an objective's config or null"),
    "reference": (_one_of(None, "adapters", "model"), 'null, "adapters" or "model"'),
    "peft": (lambda value: isinstance(value, bool), "true or false"),
    "lm_head_trainable": (_one_of(None, True, False), "true, false or null"),
    "attn_implementation": (_is_str_or_none, "a string or null"),
}
_OPTIONAL = {"reference_attn_implementation": (_is_str_or_none, "a string or null")}
_CURRENT = {
    "rmreg_version": (lambda value: isinstance(value, str), "a string"),
    "reward_head_dtype": (_one_of(*_DTYPES), f"one of {list(_DTYPES)}"),
}
_FULL = {"backbone": (lambda value: isinstance(value, dict), "the backbone's description (an object)")}
_PEFT = {
    "base_model": (lambda value: value is None or isinstance(value, dict), "the base model's path or null"),
    "base_model_class": (lambda value: isinstance(value, str), "a class name"),
}
_BACKBONE = {
    "classifier": (_one_of("native", "remote_code"), '"native" or "remote_code"'),
    "classifier_reason": (lambda value: isinstance(value, str), "a string"),
    "causal_lm_class": (lambda value: isinstance(value, str), "a class name"),
    "decoder_prefix": (lambda value: isinstance(value, str), "a string"),
    "lm_head": (_one_of("tied", "untied", "none"), '"tied", "untied" or "none" (a sequence classifier)'),
    "dtype": (_one_of(*_DTYPES), f"one of {list(_DTYPES)}"),
    "buffer_dtypes": (
        lambda value: isinstance(value, dict) and all(dtype in _DTYPES for dtype in value.values()),
        "buffer names and their dtypes",
    ),
}
_BASE_MODEL = {
    "path": (lambda value: isinstance(value, str) and bool(value), "a path or model id"),
    "relative_to_checkpoint": (lambda value: isinstance(value, bool), "true or false"),
}


def writer_of(config: dict[str, Any]) -> str:
    """Which rmreg wrote a checkpoint, for error messages."""
    version = config.get("rmreg_version")
    return f"rmreg {version}" if isinstance(version, str) else "an rmreg release before 0.1.0 (format 1)"


def _check_fields(config: dict[str, Any], schema: dict[str, Any], where: str, fail) -> None:
    for name in sorted(set(config) - set(schema) - set(_OPTIONAL if where == "" else ())):
        fail(f"unknown field {where}{name!r}")
    for name, (valid, expected) in schema.items():
        if name not in config:
            fail(f"missing field {where}{name!r}")
        if not valid(config[name]):
            fail(f"field {where}{name!r} is {config[name]!r}, expected {expected}")


def read_config(directory: Path) -> dict[str, Any]:
    """``rmreg_config.json`` of ``directory``, with a format version this rmreg reads (fields unchecked).

    Raises:
        ValueError: no such file, unreadable JSON, or a format this rmreg does not read: one line naming the file,
            the problem and the rmreg version that wrote it.
    """
    path = directory / CONFIG_NAME
    if not path.is_file():
        hint = (
            "; it is a transformers checkpoint: load it with AutoModelForSequenceClassification"
            if (directory / CLASSIFIER_CONFIG).is_file()
            else ""
        )
        raise ValueError(f"{directory} is not an rmreg checkpoint (no {CONFIG_NAME}){hint}")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a JSON object")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version!r} is not one this rmreg reads (1 to {FORMAT_VERSION}; newer rmreg?); "
            f"the checkpoint was written by {writer_of(config)}"
        )
    return config


def check_config(directory: Path, config: dict[str, Any]) -> None:
    """Check the fields of a :func:`read_config` result against its format version.

    Raises:
        ValueError: a missing, unknown or invalid field, naming it, the file and the rmreg version that wrote it.
    """
    path = directory / CONFIG_NAME

    def fail(problem: str) -> None:
        raise ValueError(f"{path}: {problem}; the checkpoint was written by {writer_of(config)}")

    version = config["format_version"]
    schema = dict(_COMMON)
    if version == FORMAT_VERSION:
        schema |= _CURRENT | (_PEFT if config.get("peft") is True else _FULL)
    _check_fields(config, schema, "", fail)
    if version == FORMAT_VERSION and config["peft"]:
        if config["base_model"] is not None:
            _check_fields(config["base_model"], _BASE_MODEL, "base_model.", fail)
    elif version == FORMAT_VERSION:
        _check_fields(config["backbone"], _BACKBONE, "backbone.", fail)
    if (config["reference"] == "model") != ("reference_attn_implementation" in config):
        fail("reference_attn_implementation must be present exactly when reference is 'model'")
    if config["reference"] == "adapters" and not config["peft"]:
        fail("reference 'adapters' needs a PEFT checkpoint (peft is false)")
