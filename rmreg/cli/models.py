"""Loading models for the ``rmreg`` command from local directories (never from a hub), with clear errors."""

from pathlib import Path
from typing import Any

import torch

from rmreg.model.checkpoint import CONFIG_NAME
from rmreg.cli.errors import CLIError
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.objectives import Objective

__all__ = ["build_reward_model", "load_causal_lm", "load_reward_model", "load_tokenizer", "quiet_transformers"]

_LORA = {"r": 32, "lora_alpha": 64, "lora_dropout": 0.05}  # the paper's official settings
_ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


def quiet_transformers() -> None:
    """Hide transformers' per-load progress bars (loading and writing shards), which crowd the command's output."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def _check_dir(path: Path, needs: str, what: str) -> None:
    if not path.is_dir():
        raise CLIError(f"{path}: no such directory; pass {what}")
    if not (path / needs).is_file():
        raise CLIError(f"{path} has no {needs}; pass {what}")


def load_tokenizer(path: str | Path, *, what: str = "the model's directory") -> Any:
    """The tokenizer saved in ``path``; without a pad token, its EOS token pads (padding is masked).

    Raises:
        CLIError: the directory holds no tokenizer files, or the tokenizer has neither pad nor EOS token.
    """
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise CLIError(f"{path}: no such directory; pass {what}, written by save_pretrained")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError):
        tokenizer = None
    if tokenizer is None or not hasattr(tokenizer, "pad_token_id"):
        raise CLIError(
            f"{path} has no tokenizer (tokenizer.json or tokenizer_config.json); save one into {what} with "
            "tokenizer.save_pretrained(DIR)"
        )
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise CLIError(f"the tokenizer in {path} has neither a pad nor an EOS token; set pad_token and save it")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(path: str | Path) -> Any:
    """A causal LM from a local ``save_pretrained`` directory.

    Raises:
        CLIError: no such directory, no ``config.json``, or weights that do not load as a causal LM.
    """
    from transformers import AutoModelForCausalLM

    path = Path(path)
    _check_dir(path, "config.json", "a directory written by a causal LM's save_pretrained (config, weights, tokenizer)")
    try:
        return AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CLIError(f"{path} does not load as a causal LM ({message})") from None


def _lora(causal_lm: Any) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise CLIError("--lora needs peft; install it with: pip install 'rmreg[peft]'") from None
    names = {name.rsplit(".", 1)[-1] for name, _ in causal_lm.named_modules()}
    targets = [name for name in _ATTENTION_PROJECTIONS if name in names] or "all-linear"
    return get_peft_model(causal_lm, LoraConfig(target_modules=targets, **_LORA))


def build_reward_model(
    base: str | Path, objective: Objective, *, head: str, lora: bool, seed: int
) -> RegularizedRewardModel:
    """A fresh reward model on the causal LM in ``base``.

    Args:
        base: the causal LM's directory.
        objective: the training objective.
        head: ``"mlp"`` (the paper's) or ``"linear"``.
        lora: train LoRA adapters on the attention projections (r 32, α 64, dropout 0.05) instead of every
            weight.
        seed: seed of the reward head's (and adapters') initialisation.

    The DPO regularizer's reference is the model with its adapters switched off under LoRA, else a frozen copy.
    """
    causal_lm = load_causal_lm(base)
    size = causal_lm.get_output_embeddings().weight.shape[1]
    torch.manual_seed(seed)
    if lora:
        causal_lm = _lora(causal_lm)
    return RegularizedRewardModel(
        causal_lm, reward_head=RewardHead(size, kind=head), objective=objective, reference="auto"
    )


def load_reward_model(path: str | Path) -> tuple[RegularizedRewardModel, Any]:
    """A reward model written by ``rmreg train`` (or ``save_pretrained`` with its tokenizer), and the tokenizer.

    Raises:
        CLIError: not an rmreg checkpoint, or no tokenizer saved with it.
    """
    path = Path(path)
    _check_dir(path, CONFIG_NAME, "a directory written by 'rmreg train' or RegularizedRewardModel.save_pretrained")
    tokenizer = load_tokenizer(path, what="the checkpoint (model.save_pretrained(DIR, tokenizer=tokenizer))")
    try:
        model = RegularizedRewardModel.from_pretrained(path)
    except (OSError, ValueError, KeyError) as error:
        raise CLIError(f"{path} does not load as an rmreg reward model ({str(error).splitlines()[0]})") from None
    return model, tokenizer
