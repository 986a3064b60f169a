"""Documentation that runs: module doctests, the README's Python examples, and the README/CI contract."""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import rmreg
from rmreg import functional, ops

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text()


# Modules whose doctests need a setting of their own are run by their own tests (a temporary working directory,
# a pre-trained tiny LM) or hold no library code (the command line).
_OWN_DOCTEST_TESTS = ("rmreg.cli", "rmreg.integrations", "rmreg.task", "rmreg.training", "rmreg.__main__")
MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(rmreg.__path__, "rmreg.") if not name.startswith(_OWN_DOCTEST_TESTS)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


@pytest.mark.parametrize("block", re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL))
def test_readme_python_examples_run(block):
    exec(compile(block, "README.md", "exec"), {})


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_command():
    commands = re.search(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    assert commands is not None
    lines = [line for line in commands.group(1).splitlines() if line and not line.startswith("#")]
    assert len(lines) == 2, lines
    test_command = lines[1].split("&&")[-1].strip()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert test_command in ci, f"CI must call the README's test command {test_command!r}"


def test_public_api_is_exported():
    for name in ("RewardHead", "RetainedLMHead", "objective", "Objective", "PairInputs", "Term", "functional", "ops"):
        assert hasattr(rmreg, name)
    for name in ("bradley_terry_loss", "reward_centering", "sft_regularizer", "dpo_regularizer", "sequence_logprobs"):
        assert callable(getattr(functional, name))
    assert callable(ops.linear_logprobs)
