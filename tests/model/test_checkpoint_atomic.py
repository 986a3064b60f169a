"""The writing primitives under checkpoints (and the CLI's run folders): staged directories, manifests."""

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from rmreg.model import atomic
from rmreg.model.atomic import check_writable_directory, staged_directory, write_text_atomically
from rmreg.model.manifest import MANIFEST_NAME, read_manifest, verify_manifest, write_manifest


def tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_staged_directory_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    with staged_directory(target) as staging:
        (staging / "x.txt").write_text("1")
        assert not target.exists() and staging.parent == target.parent
    assert tree(target) == {"x.txt": b"1"} and sorted(p.name for p in target.parent.iterdir()) == ["b"]
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == 0o777 & ~atomic._umask()  # not mkdtemp's 0o700


def test_replacing_whole_leaves_nothing_of_the_old(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with staged_directory(target) as staging:
        (staging / "old.txt").write_text("old")
        (staging / "sub").mkdir()
        (staging / "sub" / "f").write_text("old")
    with staged_directory(target) as staging:
        (staging / "new.txt").write_text("new")
    assert tree(target) == {"new.txt": b"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_exception_leaves_the_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.mkdir()
    (target / "keep.txt").write_text("before")
    with pytest.raises(RuntimeError), staged_directory(target) as staging:
        (staging / "keep.txt").write_text("after")
        raise RuntimeError("interrupted")
    assert tree(target) == {"keep.txt": b"before"} and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_in_place_update_keeps_other_entries_and_moves_the_commit_file_last(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out"
    target.mkdir()
    for name in ("model.bin", "commit", "logs.txt"):
        (target / name).write_text("old")
    order = []
    real = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (order.append(Path(b).name), real(a, b)))
    with staged_directory(target, replaces={"model.bin", "commit"}, commit_file="commit") as staging:
        for name in ("model.bin", "extra.bin", "commit"):
            (staging / name).write_text("new")
    assert tree(target) == {"commit": b"new", "extra.bin": b"new", "logs.txt": b"old", "model.bin": b"new"}
    assert order[-1] == "commit" and sorted(order) == ["commit", "extra.bin", "model.bin"]


def test_working_directory_is_updated_in_place_not_renamed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("old")
    with staged_directory(".", replaces={"f"}) as staging:
        (staging / "f").write_text("new")
    assert Path.cwd() == tmp_path and (tmp_path / "f").read_text() == "new"


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="exists and is not a directory"), staged_directory(tmp_path / "file"):
        pass


def test_write_text_atomically(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "metrics.json"
    write_text_atomically(path, "{}")
    assert path.read_text() == "{}"
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(OSError, match="full"):
        write_text_atomically(path, '{"new": 1}')
    assert path.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_check_writable_directory(tmp_path: Path) -> None:
    assert check_writable_directory(tmp_path / "new" / "dir").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        check_writable_directory(tmp_path / "file")
    with pytest.raises(ValueError, match="cannot write to"):
        check_writable_directory(tmp_path / "file" / "below")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match=r"cannot write to .*locked"):
            check_writable_directory(locked)
    assert list((tmp_path / "new" / "dir").iterdir()) == []  # the probe is gone


def test_manifest_lists_sizes_and_digests(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.json").write_text('{"x": 1}')
    (tmp_path / "sub" / "w.bin").write_bytes(bytes(range(256)) * 10)
    manifest = write_manifest(tmp_path, writer="1.2.3")
    assert manifest == read_manifest(tmp_path) == json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["writer"] == "1.2.3" and sorted(manifest["files"]) == ["a.json", "sub/w.bin"]
    entry = manifest["files"]["sub/w.bin"]
    assert entry == {"size": 2560, "sha256": hashlib.sha256(bytes(range(256)) * 10).hexdigest()}
    assert verify_manifest(tmp_path) == manifest


def test_manifest_verification_names_what_differs(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"\x00" * 100)
    write_manifest(tmp_path, writer="t")
    (tmp_path / "w.bin").write_bytes(b"\x00" * 99 + b"\x01")  # same size, other bytes
    with pytest.raises(ValueError, match=r"w.bin does not match its SHA-256"):
        verify_manifest(tmp_path)
    verify_manifest(tmp_path, hashes=False)
    (tmp_path / "w.bin").write_bytes(b"\x00" * 50)
    with pytest.raises(ValueError, match=r"w.bin is 50 bytes but was saved with 100"):
        verify_manifest(tmp_path, hashes=False)
    (tmp_path / "w.bin").unlink()
    with pytest.raises(ValueError, match=r"w.bin is missing \(listed in rmreg_manifest.json, written by rmreg t\)"):
        verify_manifest(tmp_path)


def test_unlisted_files_that_loaders_read_are_refused(tmp_path: Path) -> None:
    write_manifest(tmp_path, writer="t")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "extra.safetensors").write_bytes(b"")
    verify_manifest(tmp_path, must_be_listed=lambda name: name == "config.json")
    with pytest.raises(ValueError, match=r"extra.safetensors is not part of the checkpoint"):
        verify_manifest(tmp_path, must_be_listed=lambda name: name.endswith(".safetensors"))


@pytest.mark.parametrize("content", ["not json", '{"files": []}', '{"format": "rmreg-manifest/1", "files": {"a": {}}}'])
def test_malformed_manifest_is_named(tmp_path: Path, content: str) -> None:
    (tmp_path / MANIFEST_NAME).write_text(content)
    with pytest.raises(ValueError, match=r"rmreg_manifest.json: (unreadable|not an rmreg) manifest"):
        verify_manifest(tmp_path)


def test_no_manifest_means_an_unfinished_save(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) is None
    with pytest.raises(ValueError, match=r"no rmreg_manifest.json, so the save that wrote it did not finish"):
        verify_manifest(tmp_path)
