"""``rmreg data export`` and ``rmreg data check``, the built-in task's runs module, and the README's commands."""

import doctest
import re
import shlex
from pathlib import Path

import pytest

from rmreg.cli import COMMANDS, _command_parser
from rmreg.data.files import read_pairs
from rmreg.task import runs

README = Path(__file__).resolve().parents[2] / "README.md"


def test_export_writes_the_splits_train_uses_in_trls_format(tmp_path: Path, cli) -> None:
    out = tmp_path / "data"
    code, printed, _ = cli.run(["data", "export", "--output-dir", str(out), "--train-pairs", "6", "--test-pairs", "3"])
    assert code == 0 and len(printed.splitlines()) == 5
    train, tests = runs.builtin_splits(6, 3)
    for name, rows in {"train": train, **tests}.items():
        data = read_pairs(out / f"{name}.jsonl")
        assert data.rows == rows and data.format == "text"
        assert set(data.rows[0]) == {"prompt", "chosen", "rejected", "margin"}
    line = cli.error_line(["data", "export", "--output-dir", str(out)])
    assert line.startswith(f"--output-dir {out} holds an earlier export (train.jsonl, test.jsonl, ")
    assert cli.run(["data", "export", "--output-dir", str(out), "--train-pairs", "2", "--overwrite"])[0] == 0
    assert len(read_pairs(out / "train.jsonl")) == 2


def test_check_counts_pairs_and_what_max_length_would_cut(model_dir: Path, tmp_path: Path, cli) -> None:
    rows = [{"prompt": "Q" * 40, "chosen": "a", "rejected": "b"}, {"chosen": "ab", "rejected": "cd"}]
    path = cli.write_rows(tmp_path / "pairs.csv", rows)
    code, printed, _ = cli.run(["data", "check", str(path)])
    assert code == 0 and printed == f"{path}: 2 pairs, text format\n"
    code, printed, _ = cli.run(["data", "check", str(path), "--model", str(model_dir), "--max-length", "16"])
    assert (
        code == 0
        and printed == f"{path}: 2 pairs, text format; 1 longer than 16 tokens (cut at the start by rmreg train)\n"
    )


def test_a_five_megabyte_response_is_cut_before_it_is_tokenized(model_dir: Path, tmp_path: Path, cli) -> None:
    path = cli.write_rows(tmp_path / "big.jsonl", [{"prompt": "Q", "chosen": "ab " * 1_700_000, "rejected": "cd"}])
    assert path.stat().st_size > 5_000_000
    code, printed, _ = cli.run(["data", "check", str(path), "--model", str(model_dir)])
    assert code == 0 and printed.endswith(f"1 longer than {cli.POSITIONS} tokens (cut at the start by rmreg train)\n")


def test_the_built_in_task_runs_doctests() -> None:
    assert doctest.testmod(runs, optionflags=doctest.ELLIPSIS).failed == 0


def _readme_commands() -> list[list[str]]:
    section = README.read_text().split("## The `rmreg` command", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        while words and "=" in words[0]:  # an environment variable before the command
            words.pop(0)
        if words[:1] == ["torchrun"]:
            words = words[words.index("rmreg") :]
        if words:
            assert words[0] == "rmreg", line
            commands.append(words[1:])
    return commands


@pytest.mark.parametrize("argv", _readme_commands(), ids=lambda argv: " ".join(argv))
def test_the_readmes_commands_parse(argv: list[str]) -> None:
    assert argv[0] in COMMANDS
    _command_parser(argv[0]).parse_args(argv)


def test_the_readme_evaluates_files_that_data_export_writes() -> None:
    commands = _readme_commands()
    export = next(argv for argv in commands if argv[:2] == ["data", "export"])
    directory = export[export.index("--output-dir") + 1]
    names = {"train", *runs.builtin_splits(1, 1)[1]}
    files = [word for argv in commands for word in argv if word.endswith(".jsonl")]
    assert files and all(Path(file).parent == Path(directory) and Path(file).stem in names for file in files)
