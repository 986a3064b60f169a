"""Loading local causal LMs, tokenizers and rmreg checkpoints, never from a hub, with clear errors.

Every loader reads a local directory (``local_files_only=True``) and raises :class:`PretrainedError`, one line
naming the directory and what to pass instead, for what it cannot use: no such directory, no config or
tokenizer, an encoder-decoder or encoder model (BERT attends to later tokens, so a causal LM head on it learns
nothing a reward model can use), a ``max_length`` beyond the model's positions.

Needs the ``hf`` extra (``transformers``); :mod:`rmreg` does not import this module.

Example:
    >>> import tempfile
    >>> from rmreg.testing import tiny_causal_lm
    >>> directory = tempfile.mkdtemp()
    >>> tiny_causal_lm(max_positions=64).save_pretrained(directory)
    >>> resolve_max_length(load_config(directory), None), resolve_max_length(load_config(directory), 32)
    (64, 32)
"""

from pathlib import Path
from typing import Any, Literal

import torch

from rmreg.heads import RewardEnsemble, RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.model.checkpoint import CONFIG_NAME
from rmreg.objectives import Objective

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "LORA",
    "PretrainedError",
    "build_reward_model",
    "checkpoints_in",
    "load_causal_lm",
    "load_config",
    "load_reward_model",
    "load_tokenizer",
    "max_positions",
    "quiet_transformers",
    "resolve_max_length",
]

DEFAULT_MAX_LENGTH = 1024
"""Tokens per row when none is asked for (or the model's positions, if fewer)."""
LORA: dict[str, Any] = {"r": 32, "lora_alpha": 64, "lora_dropout": 0.05}
"""The paper's official LoRA settings."""
_ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
_CAUSAL_LM = "a directory written by a causal LM's save_pretrained (config, weights, tokenizer)"
_POSITION_FIELDS = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")


HeadKind = Literal["mlp", "linear"]


class PretrainedError(ValueError):
    """A model directory that cannot be used; the message names it and says what to pass instead."""


def quiet_transformers() -> None:
    """Hide transformers' progress bars and warnings, which crowd a command's output (errors still show)."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def _check_dir(path: Path, needs: str, what: str) -> None:
    if path.is_file():
        raise PretrainedError(f"{path} is a file, not a directory; pass {what}")
    if not path.is_dir():
        raise PretrainedError(f"{path}: no such directory; pass {what}")
    if not (path / needs).is_file():
        raise PretrainedError(f"{path} has no {needs}; pass {what}")


def load_tokenizer(path: str | Path, *, what: str = "the model's directory") -> Any:
    """The tokenizer saved in ``path``; without a pad token, its EOS token pads (padding is masked).

    Raises:
        PretrainedError: no such directory, no tokenizer files, or a tokenizer with neither pad nor EOS token.
    """
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise PretrainedError(f"{path}: no such directory; pass {what}, written by save_pretrained")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, TypeError, KeyError):
        tokenizer = None
    if tokenizer is None or not hasattr(tokenizer, "pad_token_id"):
        raise PretrainedError(
            f"{path} has no tokenizer (tokenizer.json or tokenizer_config.json); save one into {what} with "
            "tokenizer.save_pretrained(DIR)"
        )
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise PretrainedError(
                f"the tokenizer in {path} has neither a pad nor an EOS token; set pad_token and save it"
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_config(path: str | Path) -> Any:
    """The model config in ``path``, checked to be a decoder-only causal LM's (as far as a config can tell).

    Raises:
        PretrainedError: no such directory or ``config.json``, an unreadable config, or an encoder-decoder or
            other non-causal model type.
    """
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    path = Path(path)
    _check_dir(path, "config.json", _CAUSAL_LM)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as error:
        raise PretrainedError(f"{path}/config.json cannot be read ({_first_line(error)})") from None
    kind = getattr(config, "model_type", None) or "unknown"
    if getattr(config, "is_encoder_decoder", False):
        raise PretrainedError(f"{path} holds an encoder-decoder model ({kind}); pass a decoder-only causal LM")
    if kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise PretrainedError(f"{path} holds a {kind} model, which is not a causal LM; pass {_CAUSAL_LM}")
    return config


def max_positions(config: Any) -> int | None:
    """The longest sequence the model's position embeddings cover, or ``None`` where the config does not say."""
    for field in _POSITION_FIELDS:
        value = getattr(config, field, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def resolve_max_length(config: Any, max_length: int | None) -> int:
    """``max_length``, checked against the model's positions; ``None``: :data:`DEFAULT_MAX_LENGTH` or fewer.

    Raises:
        PretrainedError: ``max_length`` beyond the model's positions.
    """
    positions = max_positions(config)
    if max_length is None:
        return min(DEFAULT_MAX_LENGTH, positions or DEFAULT_MAX_LENGTH)
    if positions is not None and max_length > positions:
        raise PretrainedError(
            f"--max-length {max_length} is beyond the {positions} positions of the model "
            f"({getattr(config, 'model_type', 'unknown')}); pass --max-length {positions} or less"
        )
    return max_length


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


@torch.no_grad()
def _attends_ahead(model: Any) -> bool:
    """Whether changing the last token changes the model's outputs at earlier positions (not causal)."""
    vocab = model.get_input_embeddings().num_embeddings
    ids = (torch.arange(6) % vocab).unsqueeze(0).to(model.device)
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % vocab
    was_training = model.training
    model.eval()
    mask = torch.ones_like(ids)
    before = model(input_ids=ids, attention_mask=mask).logits[0, :-1].float()
    after = model(input_ids=changed, attention_mask=mask).logits[0, :-1].float()
    model.train(was_training)
    return not torch.allclose(before, after, rtol=1e-4, atol=1e-5)


def load_causal_lm(path: str | Path) -> Any:
    """A causal LM from a local ``save_pretrained`` directory, checked to attend only to earlier tokens.

    The path is resolved first, so that adapters trained on it record where their base model is.

    Raises:
        PretrainedError: see :func:`load_config`; weights that do not load; or a model whose outputs depend on
            later tokens (an encoder such as BERT).
    """
    from transformers import AutoModelForCausalLM

    path = Path(path).resolve()
    config = load_config(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise PretrainedError(f"{path} does not load as a causal LM ({_first_line(error)})") from None
    if _attends_ahead(model):
        raise PretrainedError(
            f"{path} holds a {config.model_type} model that attends to later tokens (an encoder, not a decoder), so "
            "it cannot be trained as a causal LM; pass a decoder-only causal LM (Llama, Qwen, Gemma, GPT-2, ...)"
        )
    return model


def _lora(causal_lm: Any) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise PretrainedError("LoRA needs peft; install it with: pip install 'rmreg[peft]'") from None
    names = {name.rsplit(".", 1)[-1] for name, _ in causal_lm.named_modules()}
    targets = [name for name in _ATTENTION_PROJECTIONS if name in names] or "all-linear"
    return get_peft_model(causal_lm, LoraConfig(target_modules=targets, **LORA))


def build_reward_model(
    base: str | Path,
    objective: Objective,
    *,
    head: HeadKind,
    lora: bool,
    seed: int,
    ensemble_heads: int = 4,
    attributes: int = 1,
) -> RegularizedRewardModel:
    """A fresh reward model on the causal LM in ``base``.

    Args:
        base: the causal LM's directory.
        objective: the training objective.
        head: ``"mlp"`` (the paper's) or ``"linear"``.
        lora: train LoRA adapters on the attention projections (:data:`LORA`) instead of every weight.
        seed: seed of the reward head's (and adapters') initialisation, and of an ensemble's bootstrap.
        ensemble_heads: heads of the :class:`~rmreg.heads.RewardEnsemble` built when the objective reads every
            head's rewards (the ``ensemble`` presets).
        attributes: outputs of the reward head when the objective reads per-attribute rewards (``ratings``).

    The DPO regularizer's reference is the model with its adapters switched off under LoRA, else a frozen copy.
    """
    causal_lm = load_causal_lm(base)
    size = causal_lm.get_output_embeddings().weight.shape[1]
    torch.manual_seed(seed)
    if lora:
        causal_lm = _lora(causal_lm)
    reward_head: RewardHead | RewardEnsemble = RewardHead(size, kind=head)
    if "chosen_attribute_rewards" in objective.needs:
        reward_head = RewardHead(size, kind=head, num_outputs=attributes)
    if "chosen_head_rewards" in objective.needs:
        reward_head = RewardEnsemble(size, ensemble_heads, kind=head, seed=seed)
    return RegularizedRewardModel(causal_lm, reward_head=reward_head, objective=objective, reference="auto")


def checkpoints_in(directory: str | Path) -> list[Path]:
    """``[directory]`` if it is an rmreg checkpoint, else its subfolders that are (a run of ``rmreg train``)."""
    directory = Path(directory)
    if (directory / CONFIG_NAME).is_file():
        return [directory]
    if not directory.is_dir():
        return []
    return sorted(child for child in directory.iterdir() if (child / CONFIG_NAME).is_file())


def load_reward_model(path: str | Path) -> tuple[RegularizedRewardModel, Any]:
    """A reward model written by ``rmreg train`` (or ``save_pretrained`` with its tokenizer), and the tokenizer.

    Raises:
        PretrainedError: not an rmreg checkpoint, no tokenizer saved with it, or files that do not load.
    """
    path = Path(path)
    _check_dir(path, CONFIG_NAME, "a directory written by 'rmreg train' or RegularizedRewardModel.save_pretrained")
    tokenizer = load_tokenizer(path, what="the checkpoint (model.save_pretrained(DIR, tokenizer=tokenizer))")
    try:
        model = RegularizedRewardModel.from_pretrained(path)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise PretrainedError(f"{path} does not load as an rmreg reward model ({_first_line(error)})") from None
    return model, tokenizer
