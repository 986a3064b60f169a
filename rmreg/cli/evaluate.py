"""``rmreg eval``: pair accuracy of a saved reward model on preference data files."""

import argparse
from typing import Any

from rmreg.cli.datafiles import encode_pairs, read_pairs
from rmreg.cli.models import load_reward_model, quiet_transformers
from rmreg.cli.options import positive_int, require
from rmreg.data import PairCollator
from rmreg.training import evaluate

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``eval`` and its options."""
    parser = subparsers.add_parser(
        "eval",
        help="pair accuracy of a saved reward model on data files",
        description="Print the pair accuracy of a saved reward model on preference data files: of its reward, and of "
        "its LM head's implicit reward (summed response log-prob).",
    )
    parser.add_argument("model", metavar="MODEL_DIR", help="a directory written by 'rmreg train' or save_pretrained")
    parser.add_argument(
        "data",
        metavar="FILE",
        nargs="+",
        help="preference data (.jsonl, .json, .csv, .parquet, or a saved datasets directory)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=64, help="pairs per forward pass (default: 64)")
    parser.add_argument("--max-length", type=positive_int, default=1024, help="tokens per row (default: 1024)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print, per file, the reward's pair accuracy and the LM head's implicit-reward pair accuracy."""
    require("transformers", "hf")
    quiet_transformers()
    model, tokenizer = load_reward_model(args.model)
    collator = PairCollator(tokenizer, max_length=args.max_length, layout=model.layout)
    sets = {path: encode_pairs(tokenizer, read_pairs(path), path) for path in args.data}
    width = max(len("data"), *map(len, sets))
    print(f"{'data'.ljust(width)}  {'pairs':>6}  {'reward acc.':>11}  {'LM-head acc.':>12}")
    for path, examples in sets.items():
        scores = evaluate(model, examples, collator, batch_size=args.batch_size)
        print(
            f"{path.ljust(width)}  {scores['pairs']:>6}  {100 * scores['reward_accuracy']:>10.1f}%  "
            f"{100 * scores['lm_accuracy']:>11.1f}%"
        )
    return 0
