"""A reward model as a transformers sequence-classification checkpoint: ``config.json`` and ``model.safetensors``.

Two forms, chosen per model (:func:`plan_classifier`):

* **native** — the backbone's own ``*ForSequenceClassification`` (``model_type`` "llama", "qwen2", ...): the
  decoder's weights and the head's as ``score.weight``. ``AutoModelForSequenceClassification.from_pretrained(dir)``
  loads it. Chosen when it computes exactly rmreg's reward: a linear head without bias (the classifier's ``score``
  layer has none, and a bias cannot be folded into it exactly), in the backbone's dtype (the classifier casts its
  head to the backbone's dtype), and a pad token that is not the EOS token (the classifier pools at the last
  token that is not the pad token: with ``pad = eos`` that is the token before the trailing EOS, not the EOS that
  rmreg reads).
* **remote code** — ``model_type`` "rmreg_reward_model" with ``configuration_rmreg.py`` and ``modeling_rmreg.py``
  beside it (torch and transformers only); ``from_pretrained(dir, trust_remote_code=True)`` loads it, and without
  ``trust_remote_code`` transformers refuses it rather than load it wrong. Any head (the paper's MLP, a bias, a
  float32 head on a bf16 backbone), pooled on the attention mask, positions counted over real tokens.

The native classifier numbers positions from the start of each row: with right padding (or none) its logits equal
rmreg's rewards; with left padding pass ``position_ids`` counted over real tokens (rotary models agree to rounding
without them, absolute-position models such as GPT-2 do not). The remote-code model does this itself.
"""

import copy
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from torch import nn

from rmreg.heads import RewardEnsemble, RewardHead
from rmreg.model.checkpoint.layout import CLASSIFIER_CONFIG
from rmreg.model.checkpoint.tensors import read_weights, write_weights
from rmreg.model.remote_code import MODULE_FILES, source

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "REMOTE_MODEL_TYPE",
    "ClassifierPlan",
    "dtype_name",
    "load_head_state",
    "plan_classifier",
    "read_classifier",
    "write_classifier",
]

REMOTE_MODEL_TYPE = "rmreg_reward_model"
_REMOTE_PREFIX = "model"
_AUTO_MAP = {
    "AutoConfig": "configuration_rmreg.RmregRewardConfig",
    "AutoModelForSequenceClassification": "modeling_rmreg.RmregRewardModel",
}


def dtype_name(dtype: torch.dtype) -> str:
    """``"float32"`` for ``torch.float32``, as configs record dtypes."""
    return str(dtype).removeprefix("torch.")


@dataclasses.dataclass(frozen=True)
class ClassifierPlan:
    """Which form a model's classifier checkpoint takes, why, and the pad id its config records.

    Attributes:
        kind: ``"native"`` or ``"remote_code"``.
        reason: why the native form does not compute rmreg's reward (empty for native).
        pad_token_id: the tokenizer's pad id (else the backbone config's).
        native_class: the ``*ForSequenceClassification`` class name (native only).
        decoder_prefix: the name under which the decoder's weights are stored (``model``, ``transformer``, ...).
    """

    kind: Literal["native", "remote_code"]
    reason: str
    pad_token_id: int | None
    native_class: str | None
    decoder_prefix: str


def _ids(value: Any) -> set[int]:
    if value is None:
        return set()
    return {int(v) for v in value} if isinstance(value, (list, tuple)) else {int(value)}


def _native_class(model: "PreTrainedModel") -> type["PreTrainedModel"] | None:
    """The backbone's ``*ForSequenceClassification`` if its weights are the decoder's plus ``score.weight``."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    mapping = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING
    try:
        # transformers annotates the values as (slow, fast) tokenizer-class pairs; a model mapping's are model classes
        cls: type[PreTrainedModel] = mapping[type(model.config)]  # type: ignore[assignment]
    except KeyError:
        return None
    config = copy.deepcopy(model.config)
    config.num_labels = 1
    try:
        with torch.device("meta"):
            classifier = cls(config)
    except (RuntimeError, ValueError, TypeError, NotImplementedError):  # cannot tell: the remote-code form is exact
        return None
    score = getattr(classifier, "score", None)
    decoder = {f"{classifier.base_model_prefix}.{name}" for name in model.base_model.state_dict()}
    same_weights = set(classifier.state_dict()) == decoder | {"score.weight"}
    return cls if isinstance(score, nn.Linear) and score.bias is None and same_weights else None


def plan_classifier(model: nn.Module, head: RewardHead | RewardEnsemble, tokenizer: Any = None) -> ClassifierPlan:
    """The form of ``model`` (a ``*ForCausalLM`` or ``*ForSequenceClassification``, adapters merged) with ``head``
    as a classifier, given the tokenizer it is used with (else its config's pad token); see the module docstring."""
    model = _transformers_model(model)
    config = model.config
    pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else config.pad_token_id
    eos = _ids(config.eos_token_id) | _ids(getattr(tokenizer, "eos_token_id", None))
    head_dtype = head.output_layer.weight.dtype
    reasons = []
    if isinstance(head, RewardEnsemble):
        reasons.append(f"the reward head is an ensemble of {head.num_heads} heads")
    elif head.kind != "linear" or head.num_outputs != 1:
        reasons.append(f"the reward head is {head.kind} with {head.num_outputs} output(s), not one linear layer")
    if isinstance(head, RewardHead) and head.bias:
        reasons.append("the reward head has a bias, which the classifier's score layer cannot hold")
    if head_dtype != model.dtype:
        reasons.append(f"the head is {dtype_name(head_dtype)} on a {dtype_name(model.dtype)} backbone")
    if pad is None:
        reasons.append("there is no pad token, by which the classifier finds the last token")
    elif pad in eos:
        reasons.append("the pad token is the EOS token, so the classifier would pool the token before the EOS")
    native = None if reasons else _native_class(model)
    if native is None:
        if not reasons:
            reasons.append(f"{type(model).__name__} has no sequence classifier of the same weights with a linear score")
        return ClassifierPlan("remote_code", "; ".join(reasons), pad, None, _REMOTE_PREFIX)
    return ClassifierPlan("native", "", pad, native.__name__, native.base_model_prefix)


def _transformers_model(model: nn.Module) -> "PreTrainedModel":
    """``model`` typed as what it is, a transformers model (nn.Module types its attributes as Tensor | Module)."""
    return cast("PreTrainedModel", model)


def _backbone_config(model: "PreTrainedModel") -> Any:
    config = copy.deepcopy(model.config)
    config.architectures = [type(model).__name__]
    config.dtype = model.dtype
    return config


def write_classifier(
    directory: Path,
    model: nn.Module,
    head: RewardHead | RewardEnsemble,
    plan: ClassifierPlan,
    *,
    max_shard_size: int | str,
) -> None:
    """Write ``config.json``, the weights and (remote code) the modeling files of ``plan``'s form."""
    model = _transformers_model(model)
    backbone = _backbone_config(model)
    state = {f"{plan.decoder_prefix}.{name}": tensor for name, tensor in model.base_model.state_dict().items()}
    if plan.kind == "native":
        config = copy.deepcopy(backbone)
        config.architectures = [plan.native_class]
        config.num_labels = 1
        config.pad_token_id = plan.pad_token_id
        state["score.weight"] = head.output_layer.weight
    else:
        from rmreg.model.remote_code.configuration_rmreg import RmregRewardConfig

        head_config = head.config() | {"dtype": dtype_name(head.output_layer.weight.dtype)}
        config = RmregRewardConfig(
            backbone_config=backbone.to_dict(),
            reward_head=head_config,
            num_labels=head.num_outputs,
            architectures=["RmregRewardModel"],
            auto_map=dict(_AUTO_MAP),
            dtype=model.dtype,
            pad_token_id=plan.pad_token_id,
        )
        state.update({f"score.{name}": tensor for name, tensor in head.state_dict().items()})
        for name in MODULE_FILES:
            (directory / name).write_bytes(source(name))
    config.to_json_file(str(directory / CLASSIFIER_CONFIG))
    write_weights(directory, state, max_shard_size=max_shard_size)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: not a JSON object")
    return value


def _causal_config(fields: dict[str, Any], causal_class: str, where: Path) -> Any:
    from transformers import CONFIG_MAPPING

    fields = dict(fields)
    model_type = fields.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"{where}: unknown model_type {model_type!r} for the backbone (newer transformers?)")
    fields["architectures"] = [causal_class]
    try:
        return CONFIG_MAPPING[cast(str, model_type)].from_dict(fields)  # in the mapping: one of its str keys
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: the backbone's config does not load ({error})") from None


def read_classifier(
    directory: Path, backbone: dict[str, Any], head: RewardHead | RewardEnsemble
) -> tuple[Any, dict[str, Any]]:
    """Read back what :func:`write_classifier` wrote: the causal LM's config and the decoder's weights.

    The head's weights are loaded into ``head`` (strictly); ``backbone`` is ``rmreg_config.json``'s description.

    Raises:
        ValueError: a missing or unreadable file, a ``config.json`` that disagrees with ``rmreg_config.json``, or
            tensors that are not the decoder's and the head's (named).
    """
    path = directory / CLASSIFIER_CONFIG
    config = _read_json(path)
    remote = config.get("model_type") == REMOTE_MODEL_TYPE
    if remote != (backbone["classifier"] == "remote_code"):
        kind = backbone["classifier"]
        raise ValueError(f"{path}: model_type {config.get('model_type')!r} is not a {kind} classifier")
    if remote:
        recorded = dict(config.get("reward_head") or {})
        dtype = recorded.pop("dtype", None)
        if isinstance(head, RewardHead):
            recorded.setdefault("output_weights", None)  # written before several outputs had weights
        if recorded != head.config() or dtype != dtype_name(head.output_layer.weight.dtype):
            raise ValueError(f"{path}: its reward_head {config.get('reward_head')} disagrees with rmreg_config.json's")
        fields = config.get("backbone_config")
        if not isinstance(fields, dict):
            raise ValueError(f"{path}: no backbone_config")
    else:
        fields = config
    causal_config = _causal_config(fields, backbone["causal_lm_class"], path)
    weights = read_weights(directory)
    prefix = backbone["decoder_prefix"] + "."
    decoder = {name[len(prefix) :]: t for name, t in weights.items() if name.startswith(prefix)}
    scores = {name.removeprefix("score."): t for name, t in weights.items() if name.startswith("score.")}
    unknown = sorted(set(weights) - {prefix + name for name in decoder} - {f"score.{name}" for name in scores})
    if unknown:
        raise ValueError(f"{directory}: tensors that are neither the decoder's nor the head's: {unknown[:5]}")
    if not remote:
        assert isinstance(head, RewardHead), "an ensemble is always written with remote code"
        output_index = len(head.layers) - 1
        scores = {f"layers.{output_index}.{name}": tensor for name, tensor in scores.items()}
    load_head_state(head, scores, directory / "model.safetensors")
    return causal_config, decoder


def load_head_state(head: nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    """Load ``state`` into ``head``: the same names, shapes and dtype, every one used.

    Raises:
        ValueError: a missing, unexpected, reshaped or re-typed tensor, naming the file.
    """
    expected = head.state_dict()
    problems = []
    if set(state) != set(expected):
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        problems.append(f"missing {missing}, unexpected {unexpected}")
    for name in sorted(set(state) & set(expected)):
        if state[name].shape != expected[name].shape or state[name].dtype != expected[name].dtype:
            problems.append(
                f"{name} is {tuple(state[name].shape)} {dtype_name(state[name].dtype)}, the head needs "
                f"{tuple(expected[name].shape)} {dtype_name(expected[name].dtype)}"
            )
    if problems:
        raise ValueError(f"{where}: the reward head's tensors do not fit its config: {'; '.join(problems)}")
    head.load_state_dict(state)
