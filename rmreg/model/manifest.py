"""A directory's manifest: each file's size and SHA-256, written last, checked on load.

``rmreg_manifest.json`` lists every file of a checkpoint (relative POSIX paths) with its size in bytes and its
SHA-256. Written after all other files, it marks the checkpoint complete; verifying it finds a truncated,
corrupted, edited, missing or foreign file and names it.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "config.json").write_text("{}")
    >>> write_manifest(d, writer="0.1.0")["files"]["config.json"]["size"]
    2
    >>> _ = (d / "config.json").write_text("{ }")
    >>> verify_manifest(d)
    Traceback (most recent call last):
    ...
    ValueError: ...config.json is 3 bytes but was saved with 2 (truncated, edited or replaced after saving)
"""

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_NAME", "read_manifest", "verify_manifest", "write_manifest"]

MANIFEST_NAME = "rmreg_manifest.json"
_FORMAT = "rmreg-manifest/1"
_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(directory: Path) -> list[str]:
    return sorted(
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and path.name != MANIFEST_NAME
    )


def write_manifest(directory: str | os.PathLike[str], *, writer: str) -> dict[str, Any]:
    """Hash every file under ``directory`` and write the manifest beside them (call it last); returns it.

    Args:
        directory: the directory to describe (its subdirectories included).
        writer: the version of the program that wrote the files (rmreg's), recorded for error messages.
    """
    directory = Path(directory)
    manifest = {
        "format": _FORMAT,
        "writer": writer,
        "files": {
            name: {"size": (directory / name).stat().st_size, "sha256": _sha256(directory / name)}
            for name in _files(directory)
        },
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of ``directory``, ``None`` when there is none.

    Raises:
        ValueError: the manifest is unreadable or malformed (naming it).
    """
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable manifest ({error})") from None
    entries = manifest.get("files") if isinstance(manifest, dict) else None
    well_formed = isinstance(entries, dict) and all(
        isinstance(entry, dict) and isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str)
        for entry in entries.values()
    )
    if not well_formed or manifest.get("format") != _FORMAT:
        raise ValueError(f"{path}: not an rmreg manifest ({_FORMAT} with a size and sha256 per file)")
    return manifest


def verify_manifest(
    directory: str | os.PathLike[str], *, hashes: bool = True, must_be_listed: Callable[[str], bool] | None = None
) -> dict[str, Any]:
    """Check every file the manifest lists: present, same size and (``hashes=True``) same SHA-256; returns it.

    Args:
        directory: the directory with its manifest.
        hashes: also compare SHA-256 digests (reads every byte); sizes and presence are always checked.
        must_be_listed: whether a file (relative POSIX path) is one that loaders read: such a file that the
            manifest does not list (left by another save) is an error too.

    Raises:
        ValueError: no manifest, or the first file that does not match, named, with what differs.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        raise ValueError(f"{directory}: no {MANIFEST_NAME}, so the save that wrote it did not finish")
    writer = manifest.get("writer", "an unknown version")
    listed = manifest["files"]
    for name, entry in sorted(listed.items()):
        path = directory / name
        if not path.is_file():
            raise ValueError(f"{path} is missing (listed in {MANIFEST_NAME}, written by rmreg {writer})")
        size = path.stat().st_size
        if size != entry["size"]:
            raise ValueError(
                f"{path} is {size} bytes but was saved with {entry['size']} (truncated, edited or replaced after "
                "saving)"
            )
        if hashes and _sha256(path) != entry["sha256"]:
            raise ValueError(
                f"{path} does not match its SHA-256 in {MANIFEST_NAME}: its contents changed after saving "
                "(corrupted or edited)"
            )
    for name in _files(directory):
        if name not in listed and must_be_listed is not None and must_be_listed(name):
            raise ValueError(
                f"{directory / name} is not part of the checkpoint (not in {MANIFEST_NAME}): left by another save? "
                "remove it or save the model again"
            )
    return manifest
