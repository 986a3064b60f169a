"""The ``rmreg`` command: ``train``, ``eval``, ``score``, ``data`` and ``bench``; argument parsing and dispatch only.

Run ``rmreg train`` with no arguments for the offline default (the built-in task and tiny LM, Bradley–Terry vs
GRM). Bad input prints one line saying what is wrong and how to fix it, and exits with code 2.

Parsing runs in two steps, so that ``rmreg --help`` needs neither torch nor transformers: this module knows the
commands by name; a command's own module (and the library behind it) is imported only when it runs.
"""

import importlib
import sys
from collections.abc import Sequence

from rmreg.cli.errors import EXIT_USAGE, Parser, user_error

__all__ = ["COMMANDS", "main"]

COMMANDS = {
    "train": (
        "rmreg.cli.train",
        "train reward models (default: offline comparison of bt and grm-sft on a built-in task)",
    ),
    "eval": ("rmreg.cli.evaluate", "pair accuracy of a reward model on data files, or a public reward benchmark"),
    "score": ("rmreg.cli.score", "score responses with a saved reward model"),
    "data": ("rmreg.cli.data", "write the built-in task's data as JSONL files, or check data files"),
    "bench": ("rmreg.cli.bench", "run the quick loss-overhead benchmark (Bradley–Terry vs GRM regularizers)"),
}
"""Each command's module (with ``add_parser(subparsers)``) and its one-line help."""

_DESCRIPTION = (
    "Reward models that generalize, by regularizing hidden states (GRM, arXiv 2406.10216). Start with 'rmreg "
    "train': offline, it compares Bradley–Terry with GRM on a built-in task."
)


def _commands_parser() -> Parser:
    parser = Parser(prog="rmreg", description=_DESCRIPTION, epilog="Run 'rmreg COMMAND --help' for its options.")
    parser.add_argument("--version", action="store_true", help="print rmreg's version and exit")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for name, (_, summary) in COMMANDS.items():
        subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def _command_parser(name: str) -> Parser:
    parser = Parser(prog="rmreg")
    subparsers = parser.add_subparsers(metavar="COMMAND", dest="command", required=True)
    importlib.import_module(COMMANDS[name][0]).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rmreg`` command with ``argv`` (default ``sys.argv[1:]``); return its exit code.

    Args:
        argv: the arguments.

    Example:
        >>> main(["train", "--objective", "nope"])
        2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        command = next((index for index, arg in enumerate(argv) if not arg.startswith("-")), len(argv))
        parser = _commands_parser()
        first = parser.parse_args(argv[: command + 1])
        if first.version:
            import rmreg

            print(f"rmreg {rmreg.__version__}")
            return 0
        if first.command is None:
            parser.error(f"no command; choose one of {', '.join(COMMANDS)}")
        args = _command_parser(first.command).parse_args(argv[command:])
        return args.run(args)
    except KeyboardInterrupt:
        print("rmreg: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        message = user_error(error)
        if message is None:
            raise
        print(f"rmreg: error: {message}", file=sys.stderr)
        return EXIT_USAGE
