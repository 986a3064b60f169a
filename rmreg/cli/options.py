"""Argument types and dependency checks shared by the ``rmreg`` subcommands."""

import argparse
import importlib.util

from rmreg.cli.errors import CLIError

__all__ = ["positive_float", "positive_int", "require"]


def positive_int(text: str) -> int:
    """An integer ≥ 1 (argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A number > 0 (argparse ``type``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def require(module: str, extra: str) -> None:
    """Raise :class:`CLIError` naming the extra to install unless ``module`` can be imported."""
    if importlib.util.find_spec(module) is None:
        raise CLIError(f"this command needs {module}; install it with: pip install 'rmreg[{extra}]'")
