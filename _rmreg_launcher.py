"""The ``rmreg`` console command's entry point: runs :func:`rmreg.cli.main` with the package import deferred.

``import rmreg`` loads torch (its public API is the model), which takes seconds. To answer ``rmreg --help`` at
once, the launcher puts an empty ``rmreg`` package in place (its ``__init__`` not run yet), so that the argument
parser in :mod:`rmreg.cli` imports alone, and runs the package's ``__init__`` once the command is known.
"""

import importlib.util
import sys

__all__ = ["main"]


def _finish_import() -> None:
    package = sys.modules["rmreg"]
    if getattr(package, "_rmreg_deferred", False):
        del package._rmreg_deferred
        package.__spec__.loader.exec_module(package)


def main() -> int:
    """Run the ``rmreg`` command line; return its exit code."""
    if "rmreg" not in sys.modules:
        spec = importlib.util.find_spec("rmreg")
        if spec is None or spec.loader is None:
            raise SystemExit("rmreg: error: the rmreg package is not installed in this Python")
        package = importlib.util.module_from_spec(spec)
        package._rmreg_deferred = True
        sys.modules["rmreg"] = package
    from rmreg.cli import main as run

    return run(prepare=_finish_import)


if __name__ == "__main__":
    raise SystemExit(main())
