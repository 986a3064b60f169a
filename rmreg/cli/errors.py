"""How the ``rmreg`` command reports bad input: one line on stderr and exit code 2, never a traceback."""

import argparse
import sys
from typing import NoReturn

__all__ = ["EXIT_USAGE", "CLIError", "Parser", "user_error"]

EXIT_USAGE = 2
"""Exit code of bad input (as argparse uses)."""

# The library's errors about the user's input (files, model directories): each says what is wrong and where.
_INPUT_ERRORS = (("rmreg.data.files", "DataFileError"), ("rmreg.pretrained", "PretrainedError"))


class CLIError(Exception):
    """Bad input: the message says what is wrong and how to fix it, in one line."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are :class:`CLIError` (one line) instead of usage text and exit."""

    def error(self, message: str) -> NoReturn:
        """Raise the parse error as a :class:`CLIError` that names the command and points to its help."""
        raise CLIError(f"{message} (see '{self.prog} --help')")


def user_error(error: BaseException) -> str | None:
    """The one-line message of an error caused by the user's input, or ``None`` for any other error (a bug).

    The library modules are looked up, not imported: an error from one of them means it is loaded already.
    """
    known = [getattr(sys.modules.get(module), name, None) for module, name in _INPUT_ERRORS]
    if isinstance(error, CLIError) or any(kind is not None and isinstance(error, kind) for kind in known):
        return " ".join(str(error).split()) or type(error).__name__
    return None
