"""``--output-dir``: checked before any work, written beside the target, moved into place whole at the end.

A directory holds an earlier run when it has a ``metrics.json`` or an rmreg checkpoint (``rmreg_config.json`` in
it or in a subfolder). Such a directory is refused unless ``--overwrite`` is given, and then replaced as a whole
(with everything in it), never in part: the run writes into a hidden sibling (``.NAME.partial-…``) and only a
complete run is renamed into place. A directory that holds other files and no run is always refused.
"""

import os
import shutil
import tempfile
from pathlib import Path

from rmreg.cli.errors import CLIError
from rmreg.pretrained import checkpoints_in

__all__ = ["METRICS", "RunDirectory", "earlier_run"]

METRICS = "metrics.json"


def earlier_run(path: Path) -> list[str]:
    """What marks ``path`` as an earlier run's directory: its ``metrics.json`` and checkpoint folders."""
    if not path.is_dir():
        return []
    marks = [METRICS] if (path / METRICS).is_file() else []
    return marks + [
        f"{checkpoint.name}/" if checkpoint != path else "a checkpoint" for checkpoint in checkpoints_in(path)
    ]


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(directory: Path, target: Path) -> None:
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rmreg-write-check-", dir=directory))
    except OSError as error:
        raise CLIError(f"--output-dir {target}: cannot write in {directory} ({error.strerror}); pass another") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class RunDirectory:
    """The output directory of a run, checked when made (before any training).

    Args:
        path: the ``--output-dir``.
        overwrite: replace an earlier run there.

    Raises:
        CLIError: ``path`` (or a parent) is a file, holds an earlier run (without ``overwrite``) or other files,
            or its parent cannot be written.
    """

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.path = Path(path).absolute()
        self.staging: Path | None = None
        existing = _nearest_existing(self.path)
        if not existing.is_dir():
            what = "is a file" if existing == self.path else f"is inside {existing}, which is a file"
            raise CLIError(f"--output-dir {path} {what}; pass a directory")
        if existing == self.path:
            marks = earlier_run(self.path)
            if marks and not overwrite:
                raise CLIError(
                    f"--output-dir {path} holds an earlier run ({', '.join(marks)}); pass --overwrite to replace it "
                    "whole, or another --output-dir"
                )
            if not marks and any(self.path.iterdir()):
                raise CLIError(f"--output-dir {path} holds other files and no rmreg run; pass a new or empty directory")
            existing = self.path.parent
        _check_writable(existing, Path(path))

    def start(self) -> Path:
        """Make the hidden sibling the run writes into (main process only), and return it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=self.path.parent))
        self.staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the run's directory gets the usual mode
        return self.staging

    def commit(self) -> None:
        """Put the finished run in place: into an empty directory, or replacing an earlier run whole."""
        assert self.staging is not None, "start() first"
        if not self.path.exists():
            os.replace(self.staging, self.path)
        elif not any(self.path.iterdir()):  # keep the directory itself (it may be the working directory)
            for child in self.staging.iterdir():
                os.replace(child, self.path / child.name)
            self.staging.rmdir()
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.old-", dir=self.path.parent))
            os.replace(self.path, old)
            os.replace(self.staging, self.path)
            shutil.rmtree(old)
        self.staging = None

    def discard(self) -> None:
        """Remove an unfinished run's files (the earlier run, if any, stays as it was)."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
