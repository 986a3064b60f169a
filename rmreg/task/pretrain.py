"""A tiny Llama pre-trained as a language model on the task's text, and its on-disk cache.

The LM learns the task's world (which attribute is true of each topic) and, from the judged documents of
:meth:`~rmreg.task.PreferenceTask.pretraining_corpus`, to predict a response's grade at its EOS, so its
last-token hidden state carries a quality signal worth preserving (the situation GRM's regularizer is built
for). Pre-training is deterministic given the task and :class:`PretrainConfig`; with the defaults it takes about
a minute on two CPU cores, after which :func:`pretrained_lm` loads it from the cache: a directory under
``$RMREG_CACHE`` (default ``~/.cache/rmreg``) named by a hash of the task and the config, written with
``save_pretrained`` beside its tokenizer, so that any Hugging Face loader (and rmreg's CLI) can open it.
"""

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from rmreg.task.synthetic import PreferenceTask
from rmreg.task.tokenizer import task_tokenizer

__all__ = ["PretrainConfig", "PretrainedLM", "cache_dir", "lm_loss", "pretrain_lm", "pretrained_lm"]

_FORMAT = 1  # bump when the meaning of a cached model changes
_LOG_FILE = "rmreg_pretrain.json"
_EVAL_DOCUMENTS = 256


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Size and training schedule of the tiny LM; every field enters the cache key.

    The defaults give a Llama of about 170k parameters (4 layers, width 64).

    Args:
        hidden_size: model width (a multiple of ``num_heads``).
        num_layers: decoder layers.
        num_heads: attention heads (half as many key/value heads).
        max_positions: longest sequence (the long test split needs about 130 tokens).
        steps: optimizer steps; each sees ``batch_size`` fresh documents.
        batch_size: documents per step.
        learning_rate: peak AdamW learning rate (linear warm-up, then cosine decay to a tenth).
        warmup_steps: steps of linear warm-up.
        judged_fraction: fraction of documents followed by their grade.
        seed: seed of the initialisation and of the documents.

    Raises:
        ValueError: a non-positive size, step count or learning rate, or ``judged_fraction`` outside [0, 1].
    """

    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 4
    max_positions: int = 256
    steps: int = 1500
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    judged_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "max_positions", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.warmup_steps < 0:
            raise ValueError("learning_rate must be positive and warmup_steps non-negative")
        if not 0.0 <= self.judged_fraction <= 1.0:
            raise ValueError(f"judged_fraction must be in [0, 1]; got {self.judged_fraction}")


@dataclasses.dataclass
class PretrainedLM:
    """A pre-trained task LM.

    Attributes:
        model: the ``LlamaForCausalLM``, in eval mode.
        tokenizer: the task's tokenizer (:func:`~rmreg.task.task_tokenizer`).
        path: its cache directory, or ``None`` when it was not saved.
        from_cache: whether it was loaded rather than trained by this call.
        log: the task, the config, and the training record: ``train_loss`` ([step, mean loss], 40 times),
            ``eval_loss_before``, ``eval_loss_after``, ``seconds``, ``parameters``.
    """

    model: Any
    tokenizer: Any
    path: Path | None
    from_cache: bool
    log: dict[str, Any]


def cache_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where pre-trained task LMs are kept: ``directory``, else ``$RMREG_CACHE``, else ``~/.cache/rmreg``."""
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get("RMREG_CACHE") or Path.home() / ".cache" / "rmreg")


def _identity(task: PreferenceTask, config: PretrainConfig) -> dict[str, Any]:
    return {"format": _FORMAT, "task": dataclasses.asdict(task), "pretrain": dataclasses.asdict(config)}


def _cache_path(task: PreferenceTask, config: PretrainConfig, directory: str | os.PathLike[str] | None) -> Path:
    digest = hashlib.sha256(json.dumps(_identity(task, config), sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir(directory) / f"task-lm-{digest}"


def _batch(rows: Sequence[Sequence[int]], pad_token_id: int) -> dict[str, torch.Tensor]:
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": input_ids.masked_fill(attention_mask == 0, -100),
    }


@torch.no_grad()
def lm_loss(model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 64) -> float:
    """Mean next-token negative log-likelihood (nats per token) of ``model`` on ``texts``, padding excluded.

    Example:
        >>> from rmreg.task import PreferenceTask, task_tokenizer
        >>> from rmreg.testing import tiny_causal_lm
        >>> tok = task_tokenizer()
        >>> loss = lm_loss(tiny_causal_lm(vocab_size=len(tok)), tok, PreferenceTask().pretraining_corpus(4))
        >>> abs(loss - math.log(len(tok))) < 0.5  # a random model is close to uniform
        True
    """
    if not texts:
        raise ValueError("lm_loss needs at least one text")
    rows = tokenizer(list(texts))["input_ids"]
    total, tokens = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = _batch(rows[start : start + batch_size], tokenizer.pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        labels = batch["labels"][:, 1:]
        total += torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum"
        ).item()
        tokens += int((labels != -100).sum())
    return total / tokens


def pretrain_lm(
    task: PreferenceTask | None = None,
    config: PretrainConfig | None = None,
    *,
    progress: Callable[[int, float], None] | None = None,
) -> PretrainedLM:
    """Train the tiny LM on the task's text (no cache; see :func:`pretrained_lm`).

    Args:
        task: the task; default ``PreferenceTask()``.
        config: size and schedule; default ``PretrainConfig()``.
        progress: called as ``progress(step, loss)`` after every optimizer step.

    Returns:
        The trained model (eval mode) with its tokenizer and training record; ``path`` is ``None``.
    """
    from rmreg.testing import tiny_causal_lm

    task = PreferenceTask() if task is None else task
    config = PretrainConfig() if config is None else config
    tokenizer = task_tokenizer()
    model = tiny_causal_lm(
        "llama",
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        max_positions=config.max_positions,
        seed=config.seed,
    )
    documents = task.pretraining_corpus(
        config.steps * config.batch_size + _EVAL_DOCUMENTS, seed=config.seed, judged_fraction=config.judged_fraction
    )
    held_out = documents[-_EVAL_DOCUMENTS:]
    rows = tokenizer(documents[:-_EVAL_DOCUMENTS])["input_ids"]
    if max(len(row) for row in rows) > config.max_positions:
        raise ValueError(f"max_positions={config.max_positions} is shorter than the task's documents")
    log: dict[str, Any] = {
        **json.loads(json.dumps(_identity(task, config))),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    log["eval_loss_before"] = lm_loss(model, tokenizer, held_out)

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.98), weight_decay=0.01)

    def schedule(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress_ = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress_))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    start, curve, running, curve_start, every = time.perf_counter(), [], 0.0, 0, max(1, config.steps // 40)
    model.train()
    for step in range(config.steps):
        batch = _batch(rows[step * config.batch_size : (step + 1) * config.batch_size], tokenizer.pad_token_id)
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        running += loss.item()
        if progress is not None:
            progress(step + 1, loss.item())
        if (step + 1) % every == 0 or step + 1 == config.steps:
            curve.append([step + 1, running / (step + 1 - curve_start)])
            running, curve_start = 0.0, step + 1
    model.eval()
    log["seconds"] = round(time.perf_counter() - start, 2)
    log["train_loss"] = curve
    log["eval_loss_after"] = lm_loss(model, tokenizer, held_out)
    return PretrainedLM(model=model, tokenizer=tokenizer, path=None, from_cache=False, log=log)


def pretrained_lm(
    task: PreferenceTask | None = None,
    config: PretrainConfig | None = None,
    *,
    directory: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    progress: Callable[[int, float], None] | None = None,
) -> PretrainedLM:
    """The tiny LM pre-trained on ``task``: loaded from the cache, or trained once and saved there.

    Args:
        task: the task; default ``PreferenceTask()``.
        config: size and schedule; default ``PretrainConfig()``.
        directory: cache directory; default ``$RMREG_CACHE`` or ``~/.cache/rmreg`` (see :func:`cache_dir`).
        refresh: train again even if a cached model exists, and replace it.
        progress: passed to :func:`pretrain_lm` when training.

    Returns:
        The model (eval mode), its tokenizer, its directory, whether it came from the cache, and its record.
    """
    task = PreferenceTask() if task is None else task
    config = PretrainConfig() if config is None else config
    path = _cache_path(task, config, directory)
    if path.is_dir() and not refresh:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        log = json.loads((path / _LOG_FILE).read_text())
        return PretrainedLM(model=model, tokenizer=tokenizer, path=path, from_cache=True, log=log)
    result = pretrain_lm(task, config, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename, so that a reader never sees a half-written model.
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        result.model.save_pretrained(staging)
        result.tokenizer.save_pretrained(staging)
        (staging / _LOG_FILE).write_text(json.dumps(result.log, indent=1))
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a cache directory gets the usual mode
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    result.path = path
    return result


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
