"""The data of ``rmreg train``: the rows it reads (a file or the built-in task), checked against the objectives."""

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rmreg.cli.errors import CLIError
from rmreg.data import binarize, parse_rankings
from rmreg.data.files import DataFile, read_pairs
from rmreg.objectives import Objective
from rmreg.task import runs as builtin

__all__ = ["Rows", "attributes", "check_columns", "read_data"]

Rows = DataFile | list[dict[str, Any]]


def read_data(args: argparse.Namespace) -> tuple[Rows, dict[str, Rows]]:
    """The training rows and evaluation rows by split name, read and checked before any model work."""
    if args.data is None:
        if args.eval_data:
            raise CLIError("--eval-data needs --data (the built-in task brings its own test splits)")
        train, tests = builtin.builtin_splits(args.train_pairs, args.test_pairs)
        if args.graded:  # the pairwise objectives' data: the rankings binarized, best against each
            train = binarize(parse_rankings(builtin.builtin_graded(args.train_pairs)), strategy="best_vs_each")
        return train, dict(tests)
    rows: Rows = read_pairs(args.data)
    eval_rows: dict[str, Rows] = {}
    for path in args.eval_data:
        name = Path(path).stem
        eval_rows[name if name not in {"train", *eval_rows} else f"{name}-{len(eval_rows) + 1}"] = read_pairs(path)
    return rows, eval_rows or {"train": rows}


def check_columns(objectives: Mapping[str, Objective], rows: Rows) -> None:
    first = rows.rows[0] if isinstance(rows, DataFile) else rows[0]  # read_pairs: a column is on every row or none
    for name, objective in objectives.items():
        if objective.needs.margin and first.get("margin") is None:
            raise CLIError(f"objective {name!r} needs a 'margin' column in every training row; add one or pick another")
        ratings = first.get("chosen_ratings")
        if "chosen_attribute_rewards" in objective.needs and not isinstance(ratings, list):
            raise CLIError(
                f"objective {name!r} needs 'chosen_ratings' and 'rejected_ratings' columns (a list of numbers per row, "
                "null where a rating is missing)"
            )


def attributes(rows: Rows) -> int:
    """Rating attributes per response (the reward head's outputs for the ``ratings`` objectives)."""
    first = rows.rows[0] if isinstance(rows, DataFile) else rows[0]
    return len(first.get("chosen_ratings") or [None])
