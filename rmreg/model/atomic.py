"""Writing a directory (a checkpoint, a run folder) so that readers see the old one or the new one, never a mix.

Everything is written into a staging directory beside the target (same parent, hence the same file system) and
moved into place only once complete:

* the target does not exist, or holds nothing but what is replaced: the staging directory is renamed to the
  target (the old one is renamed aside first and deleted afterwards), so the old directory is replaced whole;
* the target holds entries of its own that must stay (a Trainer's ``checkpoint-*/`` folders next to the final
  model, a run's logs): the entries being replaced are removed, the new ones moved in, and the *commit file* (a
  checkpoint's manifest) is moved in last. Until it is there nothing loads: a reader that requires the commit file
  sees either the previous complete directory or nothing that loads.

An interrupted write (an exception, a killed process) leaves the target as it was, or, in the few instants of
the final renames, without a commit file. Staging directories of processes that died on this host are removed by
the next write to the same target.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "run"
    >>> with staged_directory(target) as staging:
    ...     _ = (staging / "metrics.json").write_text("{}")
    >>> sorted(p.name for p in target.iterdir())
    ['metrics.json']
"""

import contextlib
import os
import secrets
import shutil
import socket
from collections.abc import Collection, Iterator
from pathlib import Path

__all__ = ["check_writable_directory", "staged_directory", "write_text_atomically"]

_STAGING = ".rmreg-staging"
_ASIDE = ".rmreg-old"


def _sibling(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}{kind}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def _remove_dead_stagings(target: Path) -> None:
    """Delete staging directories for ``target`` left by processes of this host that no longer run."""
    host = socket.gethostname()
    for path in target.parent.glob(f".{target.name}{_STAGING}-*"):
        owner = path.name[len(f".{target.name}{_STAGING}-") :].rsplit("-", 2)
        if len(owner) != 3 or owner[0] != host or not owner[1].isdigit():
            continue
        try:
            os.kill(int(owner[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace_whole(staging: Path, target: Path) -> bool:
    """Whether the target may be swapped as a whole (not a symlink, not the working directory or above it)."""
    if target.is_symlink():
        return False
    cwd = Path.cwd().resolve()
    resolved = target.resolve()
    return resolved != cwd and resolved not in cwd.parents


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _commit_in_place(staging: Path, target: Path, replaces: Collection[str], commit_file: str | None) -> None:
    """Replace the entries ``replaces`` of ``target`` by ``staging``'s, keeping the others; the commit file last."""
    if commit_file is not None:
        with contextlib.suppress(FileNotFoundError):
            (target / commit_file).unlink()  # from here on, the old contents no longer load
    new = {path.name for path in staging.iterdir()}
    for name in sorted(set(replaces) | new):
        _remove(target / name)
    for name in sorted(new - {commit_file}):
        os.replace(staging / name, target / name)
    if commit_file is not None and commit_file in new:
        os.replace(staging / commit_file, target / commit_file)
    staging.rmdir()


def _commit(staging: Path, target: Path, replaces: Collection[str] | None, commit_file: str | None) -> None:
    existing = {path.name for path in target.iterdir()} if target.is_dir() else None
    if existing is None:
        os.replace(staging, target)
        return
    keeps = existing - set(replaces) - {path.name for path in staging.iterdir()} if replaces is not None else set()
    if keeps or not _replace_whole(staging, target):
        _commit_in_place(staging, target, existing - keeps, commit_file)
        return
    aside = _sibling(target, _ASIDE)
    os.replace(target, aside)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def staged_directory(
    target: str | os.PathLike[str], *, replaces: Collection[str] | None = None, commit_file: str | None = None
) -> Iterator[Path]:
    """A staging directory to write into; on a clean exit it becomes ``target`` (see the module docstring).

    Args:
        target: the directory to (re)place; its parents are created.
        replaces: names of the target's top-level entries that the new contents replace; entries outside it (and
            outside the new contents) are kept. ``None``: the whole directory is replaced.
        commit_file: a top-level file of the new contents that is moved in last when the target is updated in
            place (a checkpoint's manifest): readers that require it never see a half-moved directory.

    Yields:
        The staging directory (empty). On an exception it is deleted and the target is left untouched.

    Raises:
        ValueError: ``target`` exists and is not a directory.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_stagings(target)
    staging = _sibling(target, _STAGING)
    staging.mkdir(mode=0o777 & ~_umask())
    try:
        yield staging
        _commit(staging, target, replaces, commit_file)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling file and a rename: readers see old or new, whole."""
    path = Path(path)
    temporary = path.parent / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def check_writable_directory(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` if needed and check that files can be written in it; returns it.

    Raises:
        ValueError: it (or a parent) exists and is not a directory, or it cannot be created or written, with the
            reason.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".rmreg-write-probe-{os.getpid()}-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write to {directory}: {error.strerror or error}") from None
    return directory
