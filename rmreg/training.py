"""rmreg's own training loop for :class:`~rmreg.RegularizedRewardModel`, built on Hugging Face Accelerate.

The loop is plain PyTorch under an ``accelerate.Accelerator``, so ``accelerate launch`` scales it out (data
parallel, mixed precision) without changes: AdamW, linear warm-up then cosine decay (the paper's official
schedule), gradient accumulation, gradient clipping, a progress bar on the main process, a per-step metrics
history, and evaluation of pair accuracy on named splits after every epoch.

Evaluation reports two accuracies per split (Yang et al., NeurIPS 2024, https://arxiv.org/abs/2406.10216):
``reward_accuracy``, the fraction of pairs whose chosen response gets the higher reward, and ``lm_accuracy``,
the same for the LM head's implicit reward (summed response log-prob): the clearest view of whether the
backbone kept its language modelling, which GRM's regularizer protects and plain Bradley–Terry erodes.

Needs the ``accelerate`` extra; ``import rmreg`` does not import this module.

Example:
    >>> import rmreg
    >>> from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs
    >>> from rmreg.training import TrainingConfig, train
    >>> tok = tiny_tokenizer()
    >>> model = rmreg.RegularizedRewardModel(tiny_causal_lm(vocab_size=len(tok)), objective=rmreg.objective("grm-sft"))
    >>> pairs = toy_pairs(8)
    >>> config = TrainingConfig(batch_size=4, progress=False)
    >>> result = train(model, pairs, rmreg.PairCollator(tok), config, eval_sets={"train": pairs})
    >>> len(result.history), sorted(result.final["train"])
    (4, ['lm_accuracy', 'pairs', 'reward_accuracy'])
"""

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from rmreg.model import RegularizedRewardModel
from rmreg.objectives import Needs

__all__ = ["TrainingConfig", "TrainingResult", "evaluate", "train"]

Examples = Sequence[Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Options of :func:`train`.

    Args:
        epochs: passes over the training pairs.
        learning_rate: peak AdamW learning rate.
        batch_size: pairs per forward pass on each process.
        gradient_accumulation_steps: forward passes per optimizer step.
        warmup_ratio: fraction of the optimizer steps spent warming the learning rate up linearly.
        weight_decay: AdamW weight decay.
        max_grad_norm: clip the gradient norm to this; ``None`` does not clip.
        eval_batch_size: pairs per forward pass in evaluation.
        seed: seed of the shuffling of the training pairs.
        progress: show a progress bar (on the main process).

    Raises:
        ValueError: a non-positive count, size or learning rate, or a ratio outside [0, 1).
    """

    epochs: int = 2
    learning_rate: float = 1e-5
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float | None = 5.0
    eval_batch_size: int = 64
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "gradient_accumulation_steps", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1); got {self.warmup_ratio}")


@dataclasses.dataclass
class TrainingResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained model, unwrapped from any distributed wrapper, in eval mode.
        history: one record per optimizer step: ``step``, ``epoch`` (fractional), ``lr``, ``loss``,
            ``accuracy`` (training pairs, reward), and each objective term's value, averaged over the step's
            forward passes and processes.
        evaluations: one record per epoch: ``epoch``, and per evaluation split the dict :func:`evaluate`
            returns.
        seconds: wall time of training and evaluation.
    """

    model: RegularizedRewardModel
    history: list[dict[str, float]]
    evaluations: list[dict[str, Any]]
    seconds: float

    @property
    def final(self) -> dict[str, dict[str, float]]:
        """The last epoch's evaluation, by split (empty without evaluation splits)."""
        if not self.evaluations:
            return {}
        return {name: value for name, value in self.evaluations[-1].items() if name != "epoch"}


def _accelerator(gradient_accumulation_steps: int = 1) -> Any:
    from accelerate import Accelerator

    return Accelerator(gradient_accumulation_steps=gradient_accumulation_steps)


def _schedule(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    return factor


IMPLICIT_REWARD_NEEDS = Needs(chosen_logps=True, rejected_logps=True)
"""What evaluation reads beside the rewards: both responses' summed log-probs (the LM head's implicit reward)."""


@torch.no_grad()
def evaluate(
    model: RegularizedRewardModel,
    examples: Examples,
    collator: Callable[[list[Any]], dict[str, torch.Tensor]],
    *,
    batch_size: int = 64,
    accelerator: Any = None,
) -> dict[str, float]:
    """Pair accuracy of ``model`` on preference examples, with dropout off.

    Args:
        model: the reward model (not wrapped for distribution).
        examples: preference examples in any format ``collator`` takes.
        collator: e.g. :class:`~rmreg.PairCollator` with the model's tokenizer and layout.
        batch_size: pairs per forward pass.
        accelerator: an ``accelerate.Accelerator`` to shard the examples over its processes; ``None`` runs
            them all here, on the model's device.

    Returns:
        ``reward_accuracy`` (chosen reward > rejected reward), ``lm_accuracy`` (summed response log-prob of
        chosen > rejected), as fractions, and the number of ``pairs``.
    """
    if not examples:
        raise ValueError("evaluate needs at least one example")
    loader: Any = torch.utils.data.DataLoader(list(examples), batch_size=batch_size, collate_fn=collator)  # type: ignore[arg-type]
    device = next(model.reward_head.parameters()).device
    if accelerator is not None:
        loader, device = accelerator.prepare(loader), accelerator.device
    was_training = model.training
    model.eval()
    correct = []
    for batch in loader:
        out = model.pair_outputs(**{key: value.to(device) for key, value in batch.items()}, needs=IMPLICIT_REWARD_NEEDS)
        implicit = out["chosen_logps"] > out["rejected_logps"]
        rows = torch.stack([out.chosen_rewards > out.rejected_rewards, implicit], -1)
        correct.append(accelerator.gather_for_metrics(rows) if accelerator is not None else rows)
    model.train(was_training)
    correct_pairs = torch.cat(correct).float()
    reward, lm = correct_pairs.mean(0).tolist()
    return {"reward_accuracy": reward, "lm_accuracy": lm, "pairs": int(correct_pairs.shape[0])}


class _StepMeter:
    """Sums a step's forward-pass metrics, then averages them over passes and processes."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.passes = 0

    def add(self, output: Any) -> None:
        values = {"loss": output.loss.detach(), "accuracy": output.accuracy, **output.terms}
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value.detach().float()
        self.passes += 1

    def flush(self, accelerator: Any) -> dict[str, float]:
        names = sorted(self.sums)
        means = accelerator.reduce(torch.stack([self.sums[n] for n in names]) / self.passes, reduction="mean")
        self.sums, self.passes = {}, 0
        return dict(zip(names, means.tolist(), strict=True))


def train(
    model: RegularizedRewardModel,
    examples: Examples,
    collator: Callable[[list[Any]], dict[str, torch.Tensor]],
    config: TrainingConfig | None = None,
    *,
    eval_sets: Mapping[str, Examples] | None = None,
) -> TrainingResult:
    """Train ``model`` on preference examples, evaluating pair accuracy on ``eval_sets`` after each epoch.

    Runs under a fresh ``accelerate.Accelerator`` (configured by ``accelerate launch`` or its environment);
    every process must call it with the same arguments.

    Args:
        model: the reward model; its trainable parameters (those with ``requires_grad``) are optimized.
        examples: training examples in any format ``collator`` takes (text, conversational, pre-tokenized).
        collator: turns a list of examples into the model's batch, e.g. :class:`~rmreg.PairCollator`.
        config: loop options; default :class:`TrainingConfig`.
        eval_sets: evaluation examples by split name.

    Returns:
        A :class:`TrainingResult` with the unwrapped model, per-step history and per-epoch evaluations.
    """
    from tqdm.auto import tqdm

    config = TrainingConfig() if config is None else config
    if model.objective is None:
        raise ValueError("train needs a model with an objective: RegularizedRewardModel(..., objective=...)")
    if not examples:
        raise ValueError("train needs at least one training example")
    start = time.perf_counter()
    accelerator = _accelerator(config.gradient_accumulation_steps)
    generator = torch.Generator().manual_seed(config.seed)
    loader: Any = torch.utils.data.DataLoader(
        list(examples),  # type: ignore[arg-type]  # a list is a map-style dataset
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=collator,
        generator=generator,
    )
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / config.gradient_accumulation_steps)
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total, config.warmup_ratio))
    unwrapped = accelerator.unwrap_model(model)
    history: list[dict[str, float]] = []
    evaluations: list[dict[str, Any]] = []
    meter = _StepMeter()
    bar = tqdm(total=total, desc="training", disable=not (config.progress and accelerator.is_local_main_process))
    for epoch in range(config.epochs):
        model.train()
        for batch in loader:
            with accelerator.accumulate(model):
                output = model(**batch)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients and config.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(parameters, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            meter.add(output)
            if accelerator.sync_gradients:
                record: dict[str, float] = {"step": len(history) + 1, "lr": float(scheduler.get_last_lr()[0])}
                record.update(meter.flush(accelerator))
                record["epoch"] = record["step"] / steps_per_epoch
                history.append(record)
                scheduler.step()
                bar.update()
                bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}", epoch=epoch + 1)
        if eval_sets:
            scores = {
                name: evaluate(unwrapped, pairs, collator, batch_size=config.eval_batch_size, accelerator=accelerator)
                for name, pairs in eval_sets.items()
            }
            evaluations.append({"epoch": epoch + 1, **scores})
    bar.close()
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return TrainingResult(unwrapped.eval(), history, evaluations, round(time.perf_counter() - start, 2))
