"""``rmreg train``: train reward models with one or more objectives, save them, and report their accuracy.

With no arguments it runs offline on the built-in task (see :mod:`rmreg.task.runs`): it pre-trains the tiny LM
once (cached), trains reward models with Bradley–Terry and with GRM over five seeds, and prints pair accuracy
in the shape of the paper's Table 1, in-distribution and on shifted splits; then one line per split with the paired
difference GRM − BT (same seeds, same data order) and its 95% t-interval, and best-of-N with every model as the
proxy (the built-in LM's samples, scored by the task's gold reward), as in the paper's Figure 2.

Everything a run can be refused for is checked before any model work, in this order: the options, the output
directory, the data files (every row), the model's config and tokenizer (a decoder, positions enough for
``--max-length``), then the encoded data (token ids within the vocabulary); then the model loads.
"""

import argparse
import time
from typing import Any

from rmreg.cli.errors import CLIError
from rmreg.cli.options import alpha, non_negative_int, positive_float, positive_int, require, row_length
from rmreg.objectives import BEYOND_PAIRS_PRESETS, PRESETS
from rmreg.pretrained import DEFAULT_MAX_LENGTH
from rmreg.task import runs as builtin

__all__ = ["USER_ALPHA", "USER_LEARNING_RATE", "add_parser", "run"]

USER_ALPHA, USER_LEARNING_RATE = 0.01, 1e-5

DESCRIPTION = (
    "Train reward models with one or more objectives, save them, and report their pair accuracy. With no "
    "arguments: offline, on the built-in synthetic task, pre-train a tiny LM once (cached), train reward models "
    "with Bradley–Terry and GRM over five seeds, print accuracy in-distribution and on shifted splits, the paired "
    "difference GRM − BT per split with its 95% interval, and best-of-N with each model as the proxy. "
    "MODEL and DATA may be given as positionals or as --model and --data."
)


def add_parser(subparsers: Any) -> None:
    """Register ``train`` and its options."""
    parser = subparsers.add_parser("train", help="train reward models", description=DESCRIPTION)
    source = parser.add_argument_group("model and data")
    source.add_argument("paths", nargs="*", metavar="MODEL [DATA]", help="the same as --model MODEL --data DATA")
    source.add_argument(
        "--model",
        metavar="DIR",
        help="causal LM directory (save_pretrained, with tokenizer); "
        "default: the built-in tiny LM, pre-trained once and cached in $RMREG_CACHE or ~/.cache/rmreg",
    )
    source.add_argument(
        "--data",
        metavar="FILE",
        help="preference data: .jsonl, .json, .csv, .parquet or a saved datasets directory, in TRL's standard, "
        "conversational or tokenized format; default: the built-in task ('rmreg data export' writes it as JSONL)",
    )
    source.add_argument(
        "--eval-data",
        metavar="FILE",
        action="append",
        default=[],
        help="evaluation data (repeatable); default with --data: the training data",
    )
    objective = parser.add_argument_group("objective")
    objective.add_argument(
        "--objective",
        action="append",
        metavar="NAME",
        help=f"one of {', '.join(PRESETS)}, or beyond pairs {', '.join(BEYOND_PAIRS_PRESETS)}; repeat or "
        "comma-separate to compare several "
        f"(default: {','.join(builtin.OBJECTIVES)} on the built-in task, grm-sft with --data)",
    )
    objective.add_argument(
        "--alpha",
        type=alpha,
        help=f"GRM regularizer weight α in [0, 1) (default: the paper's {USER_ALPHA}; {builtin.ALPHA} on the "
        "built-in task's short responses)",
    )
    objective.add_argument("--beta", type=positive_float, default=0.1, help="GRM β (default: 0.1)")
    objective.add_argument("--head", choices=("mlp", "linear"), default="mlp", help="reward head (default: mlp)")
    objective.add_argument(
        "--ensemble-heads",
        type=positive_int,
        default=4,
        help="heads of the reward ensemble the 'ensemble' objectives train, one backbone (default: 4)",
    )
    objective.add_argument("--lora", action="store_true", help="train LoRA adapters (r 32, α 64) on the attention")
    loop = parser.add_argument_group("training")
    loop.add_argument("--epochs", type=positive_int, default=2, help="default: 2")
    loop.add_argument(
        "--lr",
        type=positive_float,
        help=f"learning rate (default: {USER_LEARNING_RATE}; {builtin.LEARNING_RATE} for the built-in tiny LM)",
    )
    loop.add_argument("--batch-size", type=positive_int, default=32, help="pairs per forward pass (default: 32)")
    loop.add_argument("--gradient-accumulation-steps", type=positive_int, default=1, help="default: 1")
    loop.add_argument(
        "--max-length",
        type=row_length,
        help=f"tokens per row (default: {DEFAULT_MAX_LENGTH}, or the model's positions if fewer)",
    )
    loop.add_argument(
        "--truncation",
        choices=("keep_end", "drop", "error"),
        default="keep_end",
        help="a pair longer than --max-length: keep_end cuts the prompt's start, then the responses' starts (the "
        "end, where the reward is read, stays); drop leaves the pair out; error refuses the data (default: "
        "keep_end; the run prints how many pairs were cut or dropped)",
    )
    loop.add_argument("--seed", type=non_negative_int, default=0, help="first seed (default: 0)")
    loop.add_argument(
        "--seeds",
        type=positive_int,
        help=f"seeds per objective (default: {builtin.SEEDS} on the built-in task, else 1)",
    )
    loop.add_argument("--output-dir", metavar="DIR", default="rmreg-output", help="default: ./rmreg-output")
    loop.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run in --output-dir (whole, once this one ends)"
    )
    loop.add_argument("--threads", type=positive_int, help="torch CPU threads (default: 1 for the built-in tiny LM)")
    loop.add_argument("--no-progress", action="store_true", help="no progress bars")
    task = parser.add_argument_group("built-in task")
    task.add_argument(
        "--train-pairs", type=positive_int, default=builtin.TRAIN_PAIRS, help=f"default: {builtin.TRAIN_PAIRS}"
    )
    task.add_argument(
        "--test-pairs",
        type=positive_int,
        default=builtin.TEST_PAIRS,
        help=f"pairs per test split (default: {builtin.TEST_PAIRS})",
    )
    task.add_argument(
        "--graded",
        action="store_true",
        help=(
            "train on the task's graded variant (4 scored completions per prompt): ranking objectives "
            "(plackett-luce, listwise-softmax, their +grm-* forms) on the rankings, the others on the rankings "
            "binarized best against each; default objectives: " + ",".join(builtin.GRADED_OBJECTIVES)
        ),
    )
    task.add_argument(
        "--bon-prompts",
        type=non_negative_int,
        default=builtin.BON_PROMPTS,
        help=f"best-of-N prompts (default: {builtin.BON_PROMPTS}; 0 skips best-of-N)",
    )
    task.add_argument(
        "--bon-samples",
        type=non_negative_int,
        default=builtin.BON_SAMPLES,
        help=f"best-of-N: samples of the built-in LM per prompt, the largest N (default: {builtin.BON_SAMPLES})",
    )
    task.add_argument(
        "--pretrain-steps",
        type=positive_int,
        default=builtin.PRETRAIN_STEPS,
        help=f"pre-training steps of the built-in LM (default: {builtin.PRETRAIN_STEPS})",
    )
    parser.set_defaults(run=run)


def _model_and_data(args: argparse.Namespace) -> None:
    """Merge the positional MODEL and DATA into ``args.model`` and ``args.data``."""
    if len(args.paths) > 2:
        raise CLIError(
            f"rmreg train takes at most MODEL and DATA as positionals, got {len(args.paths)}; pass evaluation files "
            "with --eval-data FILE (see 'rmreg train --help')"
        )
    for name, value in zip(("model", "data"), args.paths, strict=False):
        given = getattr(args, name)
        if given is not None and given != value:
            raise CLIError(f"{name.upper()} given twice ({value} and --{name} {given}); pass one of them")
        setattr(args, name, value)


def run(args: argparse.Namespace) -> int:
    """Run ``rmreg train``; see :func:`add_parser` for the options and the module docstring for the order."""
    require("transformers", "hf")
    require("accelerate", "accelerate")
    start = time.perf_counter()
    _model_and_data(args)
    from rmreg.cli import train_runs

    return train_runs.run(args, start)
