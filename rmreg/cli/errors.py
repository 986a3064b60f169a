"""How the ``rmreg`` command reports bad input: one line on stderr and exit code 2, never a traceback."""

import argparse
from typing import NoReturn

__all__ = ["EXIT_USAGE", "CLIError", "Parser"]

EXIT_USAGE = 2
"""Exit code of bad input (as argparse uses)."""


class CLIError(Exception):
    """Bad input: the message says what is wrong and how to fix it, in one line."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are :class:`CLIError` (one line) instead of usage text and exit."""

    def error(self, message: str) -> NoReturn:
        """Raise the parse error as a :class:`CLIError` that names the command and points to its help."""
        raise CLIError(f"{message} (see '{self.prog} --help')")
