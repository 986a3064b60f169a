"""The built-in task's runs: what ``rmreg train`` uses when given no model and no data, and its data as files.

The scale is chosen for a first run on a laptop: the LM pre-trains in under a minute on two CPU cores (once;
it is cached), and each reward model trains in seconds, so the default compares Bradley–Terry with GRM over
five seeds (the fewest for a useful paired t-interval) and runs best-of-N with every model in about three minutes.
The generalization benchmark starts from the same LM and defaults.

Every setting here is fixed in advance, none tuned on the test splits: the official code's schedule (2 epochs,
cosine, warm-up 0.03, grad norm 5) with the learning rate raised to 1e-3 for a from-scratch 155k-parameter LM,
the paper's β = 0.1, α scaled as below, and 512 training pairs because the paper's gains are largest with less
data (its 40K against 400K pairs) and the default must stay short.

α is scaled for the task's short responses. The SFT regularizer's gradient is about α·β·σ(−β·log π) times the
SUM of the response's per-token gradients, so its pull relative to the Bradley–Terry loss grows with response
length. The paper's responses run to hundreds of tokens; here they have about 15–50, so the paper's α = 0.01
would leave GRM indistinguishable from Bradley–Terry. The default multiplies it by ten.

Example:
    >>> train, tests = builtin_splits(4, 2)
    >>> len(train), list(tests)
    (4, ['test', 'test_long', 'test_marker_flip', 'test_length_flip'])
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rmreg.data.files import write_jsonl
from rmreg.task.best_of_n import Candidates, sample_candidates
from rmreg.task.graded import graded_split
from rmreg.task.pretrain import PretrainConfig, pretrained_lm
from rmreg.task.synthetic import SPLITS, PreferenceTask

__all__ = [
    "ALPHA",
    "ALPHA_NOTE",
    "BON_MAX_NEW_TOKENS",
    "BON_PROMPTS",
    "BON_SAMPLES",
    "DESCRIPTION",
    "LEARNING_RATE",
    "OBJECTIVES",
    "PRETRAIN_STEPS",
    "SEEDS",
    "TASK",
    "TEST_PAIRS",
    "TRAIN_PAIRS",
    "best_of_n_candidates",
    "builtin_lm",
    "builtin_splits",
    "export_splits",
    "pretrain_config",
]

TASK = PreferenceTask()
PRETRAIN_STEPS = 600
TRAIN_PAIRS = 512
TEST_PAIRS = 256
ALPHA = 0.1
LEARNING_RATE = 1e-3
OBJECTIVES = ("bt", "grm-sft")
GRADED_OBJECTIVES = ("bt", "plackett-luce", "plackett-luce+grm-sft")
"""``rmreg train --graded``: Bradley–Terry on the binarized rankings against Plackett–Luce on the rankings."""
GRADED_COMPLETIONS = 4
SEEDS = 5
BON_PROMPTS = 32  # best-of-N: prompts (drawn apart from the training prompts) ...
BON_SAMPLES = 64  # ... and policy samples per prompt, the largest N (KL = log 64 − 63/64 ≈ 3.17)
BON_MAX_NEW_TOKENS = 128
_BON_PROMPT_SEED = 1
DESCRIPTION = (
    "test = in-distribution; shifted: test_long = longer responses, test_marker_flip = the spurious marker "
    "word sits on the rejected response, test_length_flip = the chosen response is the shorter one"
)
ALPHA_NOTE = (
    f"α = {ALPHA}: the paper's 0.01 × 10, since its responses run to hundreds of tokens and the task's to "
    "15–50 (the SFT regularizer's pull grows with response length)"
)


def pretrain_config(steps: int = PRETRAIN_STEPS) -> PretrainConfig:
    """The tiny LM's configuration: the library's default model, trained for ``steps`` steps."""
    return PretrainConfig(steps=steps, warmup_steps=min(PretrainConfig.warmup_steps, max(1, steps // 10)))


def builtin_lm(
    steps: int, progress: Callable[[int, float], None] | None = None, *, task: PreferenceTask = TASK
) -> tuple[Path, dict[str, Any]]:
    """The pre-trained task LM's cache directory (pre-training it first if needed) and its training record."""
    result = pretrained_lm(task, pretrain_config(steps), progress=progress)
    assert result.path is not None
    return result.path, {
        "path": str(result.path),
        "from_cache": result.from_cache,
        "steps": steps,
        "seconds": result.log["seconds"],
        "parameters": result.log["parameters"],
        "eval_loss_before": result.log["eval_loss_before"],
        "eval_loss_after": result.log["eval_loss_after"],
    }


def best_of_n_candidates(
    steps: int, prompts: int = BON_PROMPTS, samples: int = BON_SAMPLES, *, task: PreferenceTask = TASK
) -> Candidates:
    """The pre-trained LM's own samples (it is the policy) for best-of-N on fresh prompts, with their gold reward.

    Args:
        steps: pre-training steps of the LM (loaded from the cache, pre-trained first if needed).
        prompts: prompts, drawn from a stream apart from the training prompts.
        samples: samples per prompt (the largest N).
        task: the task whose LM is the policy and whose gold reward scores the samples.
    """
    lm = pretrained_lm(task, pretrain_config(steps))
    chosen_prompts = task.prompts(prompts, seed=_BON_PROMPT_SEED)
    return sample_candidates(lm.model, lm.tokenizer, task, chosen_prompts, samples, max_new_tokens=BON_MAX_NEW_TOKENS)


def builtin_splits(train_pairs: int, test_pairs: int) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The training pairs and the evaluation splits (in-distribution ``test`` first, then the shifted ones)."""
    splits = TASK.splits(train_pairs, test_pairs, seed=0)
    return splits["train"], {name: splits[name] for name in SPLITS if name != "train"}


def builtin_graded(train_pairs: int) -> list[dict[str, Any]]:
    """The graded variant's training rankings: ``train_pairs // (K − 1)`` prompts with K = 4 scored completions each,
    so that binarized best-against-each they give about ``train_pairs`` pairs (see :func:`rmreg.task.graded_split`)."""
    prompts = max(1, train_pairs // (GRADED_COMPLETIONS - 1))
    return graded_split(TASK, prompts, completions=GRADED_COMPLETIONS, seed=0)


def export_splits(
    directory: str | os.PathLike[str], train_pairs: int = TRAIN_PAIRS, test_pairs: int = TEST_PAIRS
) -> dict[str, Path]:
    """Write the built-in task's splits (the ones ``rmreg train`` uses) as ``<split>.jsonl`` in TRL's standard
    format (``prompt``, ``chosen``, ``rejected`` as text, and the gold ``margin``); return the files by split.

    Example:
        >>> import tempfile
        >>> files = export_splits(tempfile.mkdtemp(), 4, 2)
        >>> [path.name for path in files.values()]
        ['train.jsonl', 'test.jsonl', 'test_long.jsonl', 'test_marker_flip.jsonl', 'test_length_flip.jsonl']
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    train, tests = builtin_splits(train_pairs, test_pairs)
    return {name: write_jsonl(directory / f"{name}.jsonl", rows) for name, rows in {"train": train, **tests}.items()}
