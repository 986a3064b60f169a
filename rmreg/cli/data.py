"""``rmreg data``: ``export`` writes the built-in task's splits as JSONL; ``check`` reads data files as training would.

``rmreg data export --output-dir DIR`` writes ``train.jsonl`` and the test splits (``test``, ``test_long``,
``test_marker_flip``, ``test_length_flip``) in TRL's standard format, the data ``rmreg train`` uses by default, so
that ``rmreg train --data``, ``rmreg eval`` and other tools can read them. ``rmreg data check FILE...`` checks
every row of each file, and with ``--model`` also tokenizes them and counts the pairs ``--max-length`` would cut.
"""

import argparse
from pathlib import Path
from typing import Any

from rmreg.cli.errors import CLIError
from rmreg.cli.options import positive_int, require, row_length

__all__ = ["add_parser", "run_check", "run_export"]


def add_parser(subparsers: Any) -> None:
    """Register ``data`` with its ``export`` and ``check`` commands."""
    parser = subparsers.add_parser("data", help="export the built-in task's data, or check data files")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="data_command", required=True)
    export = commands.add_parser(
        "export",
        help="write the built-in task's splits as JSONL (TRL's standard format)",
        description="Write the built-in task's training split and test splits (the data 'rmreg train' uses by "
        "default) as DIR/<split>.jsonl: prompt, chosen, rejected (text) and the gold margin.",
    )
    export.add_argument("--output-dir", metavar="DIR", required=True, help="where to write the files")
    export.add_argument("--train-pairs", type=positive_int, help="pairs in train.jsonl (default: as rmreg train)")
    export.add_argument("--test-pairs", type=positive_int, help="pairs per test split (default: as rmreg train)")
    export.add_argument("--overwrite", action="store_true", help="replace files of an earlier export")
    export.set_defaults(run=run_export)
    check = commands.add_parser(
        "check",
        help="check data files row by row, as 'rmreg train' reads them",
        description="Read each file, check every row (one line per bad input, naming the file, line and field), "
        "and print its number of pairs and format; with --model, also tokenize them with the model's tokenizer, "
        "check the token ids against its vocabulary, and count the pairs longer than --max-length.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="preference data (.jsonl, .json, .csv, .parquet, dir)")
    check.add_argument("--model", metavar="DIR", help="a causal LM directory whose tokenizer and vocabulary to use")
    check.add_argument("--max-length", type=row_length, help="tokens per row (default: as rmreg train)")
    check.set_defaults(run=run_check)


def run_export(args: argparse.Namespace) -> int:
    """Write the splits; refuse to replace an earlier export's files without ``--overwrite``."""
    require("transformers", "hf")
    from rmreg.task import runs

    directory = Path(args.output_dir)
    if directory.exists() and not directory.is_dir():
        raise CLIError(f"--output-dir {directory} is a file; pass a directory")
    names = ["train", *runs.builtin_splits(1, 1)[1]]
    existing = [name for name in names if (directory / f"{name}.jsonl").exists()]
    if existing and not args.overwrite:
        raise CLIError(
            f"--output-dir {directory} holds an earlier export ({', '.join(f'{name}.jsonl' for name in existing)}); "
            "pass --overwrite to replace it, or another --output-dir"
        )
    try:
        files = runs.export_splits(directory, args.train_pairs or runs.TRAIN_PAIRS, args.test_pairs or runs.TEST_PAIRS)
    except OSError as error:
        raise CLIError(f"--output-dir {directory}: cannot write there ({error.strerror})") from None
    for name, path in files.items():
        print(f"{path}  ({name})")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Check every file (all of them are read before any model work); print one line per file."""
    from rmreg.data import TruncationStats
    from rmreg.data.examples import encode_pairs
    from rmreg.data.files import read_pairs

    if args.max_length is not None and args.model is None:
        raise CLIError("--max-length counts tokens, so it needs --model DIR (the tokenizer)")
    data = {path: read_pairs(path) for path in args.files}
    tokenizer = vocab_size = max_length = None
    if args.model is not None:
        require("transformers", "hf")
        from rmreg.pretrained import load_config, load_tokenizer, quiet_transformers, resolve_max_length

        quiet_transformers()
        config = load_config(args.model)
        max_length, tokenizer = resolve_max_length(config, args.max_length), load_tokenizer(args.model)
        vocab_size = getattr(config, "vocab_size", None)
    for path, rows in data.items():
        line = f"{path}: {len(rows)} pairs, {rows.format} format"
        if tokenizer is not None:
            stats = TruncationStats()
            encode_pairs(tokenizer, rows, max_length=max_length, vocab_size=vocab_size, stats=stats)
            line += f"; {stats.truncated} longer than {max_length} tokens (cut at the start by rmreg train)"
        print(line)
    return 0
