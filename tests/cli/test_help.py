"""``rmreg`` itself: help without torch (``import rmreg`` is lazy), ``python -m rmreg``, versions, bench."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import rmreg
from rmreg.cli import COMMANDS, main


def test_the_console_command_answers_help_without_torch_then_runs_a_command(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("rmreg")
    if not script.is_file():
        pytest.skip("the rmreg console script is not installed next to this Python")
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}  # every import, listed on stderr
    result = subprocess.run([script, "--help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0 and all(name in result.stdout for name in COMMANDS)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "rmreg" in imported and not {"torch", "transformers", "numpy"} & imported
    # Past the help, the command imports what it needs and runs as usual.
    argv = [script, "data", "export", "--output-dir", str(tmp_path / "data"), "--train-pairs", "4", "--test-pairs", "2"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "data" / "train.jsonl").read_text().splitlines()) == 4


def test_python_dash_m_rmreg(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["rmreg", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("rmreg", run_name="__main__")
    printed = capsys.readouterr().out
    assert exit_.value.code == 0 and all(name in printed for name in COMMANDS), printed


def test_version_and_each_commands_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0 and capsys.readouterr().out == f"rmreg {rmreg.__version__}\n"
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0 and f"usage: rmreg {name}" in capsys.readouterr().out


def test_the_packages_docstring_example_runs() -> None:
    import doctest

    import rmreg.cli

    assert doctest.testmod(rmreg.cli).failed == 0


def test_no_command_or_an_unknown_one(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, expected in (([], "no command; choose one of train, eval"), (["nope"], "invalid choice: 'nope'")):
        assert main(argv) == 2
        assert expected in capsys.readouterr().err


def test_bench_runs_the_quick_benchmark_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "bench_loss.py"
    script.write_text("")
    commands: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda command: commands.append(command) or 0)
    assert main(["bench", "--script", str(script), "--output-dir", str(tmp_path / "r")]) == 0
    assert commands == [[sys.executable, str(script), "--out", str(tmp_path / "r"), "--quick"]]


def test_an_error_that_is_not_bad_input_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import rmreg.cli.bench as bench

    monkeypatch.setattr(bench, "find_script", lambda _: 1 / 0)  # a bug, not the user's input
    with pytest.raises(ZeroDivisionError):
        main(["bench"])
