"""Argument types and dependency checks shared by the ``rmreg`` subcommands (no torch at import)."""

import argparse
import importlib.util
import math

from rmreg.cli.errors import CLIError

__all__ = ["alpha", "non_negative_int", "positive_float", "positive_int", "require", "row_length"]


def _integer(text: str, what: str, smallest: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < smallest:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1 (argparse ``type``)."""
    return _integer(text, "a positive integer", 1)


def non_negative_int(text: str) -> int:
    """An integer ≥ 0 (argparse ``type``)."""
    return _integer(text, "an integer ≥ 0", 0)


def row_length(text: str) -> int:
    """Tokens per row: an integer ≥ 2, a prompt (or first) token and a response token (argparse ``type``)."""
    return _integer(text, "an integer ≥ 2 (a row needs a first token and a response token)", 2)


def _finite(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (argparse ``type``)."""
    value = _finite(text, "a finite positive number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text!r}")
    return value


def alpha(text: str) -> float:
    """GRM's regularizer weight α in ``[0, 1)``: ``(1 − α)·L_reward + α·L_reg`` needs a reward term."""
    value = _finite(text, "α in [0, 1)")
    if value == 1:
        raise argparse.ArgumentTypeError(
            "α = 1 leaves no Bradley–Terry term in (1 − α)·L_BT + α·L_reg, so the reward head learns nothing; "
            "pass 0 ≤ α < 1"
        )
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected α in [0, 1) (the regularizer's weight), got {text!r}")
    return value


def require(module: str, extra: str) -> None:
    """Raise :class:`CLIError` naming the extra to install unless ``module`` can be imported."""
    if importlib.util.find_spec(module) is None:
        raise CLIError(f"this command needs {module}; install it with: pip install 'rmreg[{extra}]'")
