"""Reading a checkpoint: verified, strict (every tensor used, every parameter found), local (never the network)."""

import json
import os
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from rmreg.heads import RewardEnsemble, RewardHead
from rmreg.model import causal_lm as lm
from rmreg.model.checkpoint.adapters import load_adapters
from rmreg.model.checkpoint.causal_lms import (
    backbone_class,
    build_backbone,
    is_sequence_classifier_class,
    load_causal_lm_dir,
)
from rmreg.model.checkpoint.classifier import load_head_state, read_classifier
from rmreg.model.checkpoint.errors import first_line
from rmreg.model.checkpoint.layout import (
    BACKBONE_DIR,
    CONFIG_NAME,
    HEAD_NAME,
    LM_HEAD_NAME,
    REFERENCE_DIR,
    check_config,
    read_by_loaders,
    read_config,
    writer_of,
)
from rmreg.model.checkpoint.parts import Parts
from rmreg.model.checkpoint.tensors import read_tensors
from rmreg.model.manifest import verify_manifest
from rmreg.objectives import Objective

__all__ = ["load"]


def _fail(directory: Path, config: dict[str, Any], problem: str) -> ValueError:
    return ValueError(f"{directory / CONFIG_NAME}: {problem}; the checkpoint was written by {writer_of(config)}")


def _reward_head(directory: Path, config: dict[str, Any]) -> RewardHead | RewardEnsemble:
    fields = dict(config["reward_head"])
    head_class: type[RewardHead] | type[RewardEnsemble] = RewardEnsemble if "num_heads" in fields else RewardHead
    if config["format_version"] == 1:
        fields.setdefault("bias", True)  # format 1 predates the option: its heads all had an output bias
    if head_class is RewardHead:
        fields.setdefault("output_weights", None)  # written before several outputs had weights: their mean
    known = set(RewardEnsemble(1, 1).config() if head_class is RewardEnsemble else RewardHead(1).config())
    if set(fields) != known:
        raise _fail(directory, config, f"reward_head has fields {sorted(fields)}, expected {sorted(known)}")
    try:
        head = head_class(**fields)
    except (TypeError, ValueError) as error:
        raise _fail(directory, config, f"reward_head: {first_line(error)}") from None
    return head.to(getattr(torch, config.get("reward_head_dtype", "float32")))


def _objective(directory: Path, config: dict[str, Any]) -> Objective | None:
    if config["objective"] is None:
        return None
    try:
        return Objective.from_config(config["objective"])
    except (TypeError, ValueError, KeyError) as error:
        raise _fail(directory, config, f"objective: {first_line(error)}") from None


def _full_backbone(directory: Path, config: dict[str, Any], head: RewardHead | RewardEnsemble) -> nn.Module:
    backbone = config["backbone"]
    causal_config, decoder = read_classifier(directory, backbone, head)
    lm_head = backbone["lm_head"]
    if (lm_head == "none") != is_sequence_classifier_class(backbone["causal_lm_class"]):
        raise _fail(directory, config, f"backbone.lm_head is {lm_head!r} for a {backbone['causal_lm_class']}")
    tied_in_config = bool(getattr(causal_config, "tie_word_embeddings", False))
    if lm_head != "none" and tied_in_config != (lm_head == "tied"):
        problem = f"backbone.lm_head is {lm_head!r}, config.json: tie_word_embeddings={tied_in_config}"
        raise _fail(directory, config, problem)
    try:
        prefix = backbone_class(causal_config).base_model_prefix
    except ValueError as error:
        raise ValueError(f"{directory / 'config.json'}: {error}") from None
    state = {f"{prefix}.{name}": tensor for name, tensor in decoder.items()}
    if lm_head == "untied":
        state |= read_tensors(directory / LM_HEAD_NAME)
    elif lm_head == "none":  # the classifier's score layer is the reward head: one weight
        state["score.weight"] = head.output_layer.weight.detach()
    model = build_backbone(
        causal_config,
        state,
        dtype=getattr(torch, backbone["dtype"]),
        attn_implementation=config["attn_implementation"],
        where=str(directory),
    )
    buffers = dict(model.named_buffers())
    for name, dtype in backbone["buffer_dtypes"].items():
        if name not in buffers:
            raise _fail(directory, config, f"backbone.buffer_dtypes names {name!r}, which the model does not have")
        owner, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(owner), leaf, buffers[name].to(getattr(torch, dtype)))
    if lm_head == "none":
        head.output_layer.weight = cast(nn.Linear, model.score).weight  # a *ForSequenceClassification's score layer
    return model


def _head_file(directory: Path, head: RewardHead | RewardEnsemble, *, legacy: bool) -> None:
    state = read_tensors(directory / HEAD_NAME)
    dtypes = {tensor.dtype for tensor in state.values()}
    if legacy and len(dtypes) == 1:  # format 1 records no dtype: the head has its tensors'
        head.to(dtypes.pop())
    load_head_state(head, state, directory / HEAD_NAME)


def _share_score_layer(directory: Path, classifier: nn.Module, head: RewardHead | RewardEnsemble) -> None:
    """Make ``head`` the PEFT classifier's score layer again (one weight), which its adapters restored."""
    score = lm.score_layer(classifier)
    if not torch.equal(score.weight, head.output_layer.weight):
        raise ValueError(
            f"{directory / HEAD_NAME} disagrees with the score layer in {BACKBONE_DIR}/: the reward head of a "
            "sequence classifier is its score layer"
        )
    head.output_layer.weight = score.weight


def _legacy_base_model(adapters: Path) -> dict[str, Any] | None:
    """Format 1 records no base model: PEFT's ``base_model_name_or_path``, as PEFT reads it (from here)."""
    try:
        name = json.loads((adapters / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    return {"path": name, "relative_to_checkpoint": False} if isinstance(name, str) and name else None


def load(
    directory: str | os.PathLike[str],
    *,
    base_model: nn.Module | str | os.PathLike[str] | None = None,
    is_trainable: bool = False,
    verify: bool = True,
) -> Parts:
    """Read the parts written by :func:`~rmreg.model.checkpoint.save`.

    Nothing is downloaded: every ``from_pretrained`` runs with ``local_files_only=True``, and a PEFT checkpoint's
    base model is found at the path recorded with it (relative to the checkpoint when it was given relative).

    Args:
        directory: the checkpoint's directory.
        base_model: for PEFT checkpoints, the base causal LM (its adapters are injected in place) or its path;
            default the one recorded in the checkpoint.
        is_trainable: for PEFT checkpoints, whether the loaded adapters train.
        verify: compare every file's SHA-256 with the manifest (reads every byte once). Presence and sizes are
            always checked; ``False`` skips the digests (very large checkpoints) and admits format-1
            checkpoints, which have no manifest.

    Raises:
        ValueError: not an rmreg checkpoint; an unfinished save; a missing, truncated, corrupted or edited file; a
            config this rmreg does not read; weights that do not fit the config; a PEFT checkpoint without a known
            base model. One line naming the file and, for configs, the rmreg version that wrote it.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: no such directory")
    config = read_config(directory)
    version = config["format_version"]
    if version == 1 and verify:
        raise _fail(
            directory,
            config,
            "format 1 has no manifest, so its files cannot be verified: load it with verify=False (format 1 "
            "checkpoints load as before), then save it again to get a verified, transformers-loadable checkpoint",
        )
    if version > 1:
        verify_manifest(directory, hashes=verify, must_be_listed=read_by_loaders)
    check_config(directory, config)
    head = _reward_head(directory, config)
    objective = _objective(directory, config)
    attn = config["attn_implementation"]
    if config["peft"]:
        classifier = version > 1 and is_sequence_classifier_class(config["base_model_class"])
        causal_lm = load_adapters(
            directory / BACKBONE_DIR,
            directory,
            base_model,
            config["base_model"] if version > 1 else _legacy_base_model(directory / BACKBONE_DIR),
            attn_implementation=attn,
            is_trainable=is_trainable,
            sequence_classifier=classifier,
        )
        _head_file(directory, head, legacy=version == 1)
        if classifier:
            _share_score_layer(directory, causal_lm, head)
    elif version == 1:
        causal_lm = load_causal_lm_dir(directory / BACKBONE_DIR, attn)
        _head_file(directory, head, legacy=True)
    else:
        causal_lm = _full_backbone(directory, config, head)
    reference = config["reference"]
    if reference == "model":
        reference = load_causal_lm_dir(directory / REFERENCE_DIR, config["reference_attn_implementation"])
    return Parts(
        causal_lm=causal_lm,
        reward_head=head,
        objective=objective,
        layout=config["layout"],
        reference=reference,
        lm_head_trainable=config["lm_head_trainable"],
    )
