"""The ``rmreg`` command: ``train``, ``eval``, ``score`` and ``bench``.

Run ``rmreg train`` with no arguments for the offline default (the built-in task and tiny LM, Bradley–Terry vs
GRM). Bad input prints one line saying what is wrong and how to fix it, and exits with code 2.
"""

import sys
from collections.abc import Sequence

from rmreg import __version__
from rmreg.cli import bench, evaluate, score, train
from rmreg.cli.errors import EXIT_USAGE, CLIError, Parser

__all__ = ["main"]


def _parser() -> Parser:
    parser = Parser(
        prog="rmreg",
        description="Reward models that generalize, by regularizing hidden states (GRM, arXiv 2406.10216). "
        "Start with 'rmreg train': offline, it compares Bradley–Terry with GRM on a built-in task.",
    )
    parser.add_argument("--version", action="version", version=f"rmreg {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in (train, evaluate, score, bench):
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rmreg`` command with ``argv`` (default ``sys.argv[1:]``); return its exit code.

    Example:
        >>> main(["train", "--objective", "nope"])
        2
    """
    try:
        args = _parser().parse_args(argv)
        return args.run(args)
    except CLIError as error:
        print(f"rmreg: error: {error}", file=sys.stderr)
        return EXIT_USAGE
