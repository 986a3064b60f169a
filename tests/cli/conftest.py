"""Shared pieces of the command-line tests: tiny model directories, data files of every format, error checks."""

import contextlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from rows_testing import write_rows

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from rmreg.cli import main
from rmreg.testing import tiny_causal_lm, tiny_tokenizer

POSITIONS = 128
"""Positions of the tiny model directory's LM (the --max-length limit)."""

# The built-in task at toy scale: a few pre-training steps, a handful of pairs, one seed, one epoch.
TINY_BUILTIN = [
    *("--pretrain-steps", "20", "--train-pairs", "32", "--test-pairs", "8", "--seeds", "1", "--epochs", "1"),
    *("--bon-prompts", "2", "--bon-samples", "4"),
]


class Capture:
    """Capture stdout and stderr of in-process calls (pytest's capsys is function-scoped)."""

    def __enter__(self) -> "Capture":
        self._out, self._err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self._out))
        self._stack.enter_context(contextlib.redirect_stderr(self._err))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.out, self.err = self._out.getvalue(), self._err.getvalue()


def run(argv: Sequence[str]) -> tuple[int, str, str]:
    """``main(argv)`` in this process: exit code, stdout, stderr."""
    with Capture() as capture:
        code = main(list(argv))
    return code, capture.out, capture.err


def error_line(argv: Sequence[str]) -> str:
    """The one line ``rmreg`` prints for bad input (exit code 2, no traceback), without its prefix."""
    code, out, err = run(argv)
    lines = err.strip().splitlines()
    assert code == 2, (code, out[-2000:], err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("rmreg: error: "), err
    assert "Traceback" not in out + err
    return lines[0].removeprefix("rmreg: error: ")


def save_lm(path: Path, **config: Any) -> Path:
    """A tiny causal LM directory with its tokenizer (what --model takes)."""
    tokenizer = tiny_tokenizer()
    tiny_causal_lm(vocab_size=len(tokenizer), **config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local causal LM directory with its tokenizer, :data:`POSITIONS` positions."""
    return save_lm(tmp_path_factory.mktemp("lm"), max_positions=POSITIONS)


@pytest.fixture
def no_model_work(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Make loading a model fail loudly (not as bad input), to show a check comes before any model work."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr("rmreg.cli.train_runs.build_reward_model", refuse)
    monkeypatch.setattr("rmreg.cli.train_runs._builtin_lm", refuse)
    return lambda: None


class Helpers:
    """What the tests of this folder share, as one fixture (conftest modules are not importable by name)."""

    POSITIONS = POSITIONS
    TINY_BUILTIN = TINY_BUILTIN
    run = staticmethod(run)
    error_line = staticmethod(error_line)
    write_rows = staticmethod(write_rows)
    save_lm = staticmethod(save_lm)


@pytest.fixture(scope="session")
def cli() -> type[Helpers]:
    """:class:`Helpers`: ``run``, ``error_line``, ``write_rows``, ``save_lm`` and the tiny settings."""
    return Helpers


@pytest.fixture(scope="session")
def builtin_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One tiny run of the offline default (bt and grm-sft): its output directory and printed text."""
    root = tmp_path_factory.mktemp("builtin")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RMREG_CACHE", str(root / "cache"))
        code, out, err = run(["train", *TINY_BUILTIN, "--output-dir", str(root / "out"), "--no-progress"])
    assert code == 0, err
    return root / "out", out
