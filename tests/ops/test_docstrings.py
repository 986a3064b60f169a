"""The docstring examples of every module of rmreg.ops run (tests/test_docs.py sees only the package)."""

import doctest
import importlib

import pytest

MODULES = [
    "rmreg.ops",
    "rmreg.ops._common",
    "rmreg.ops.chunked",
    "rmreg.ops.fused",
    "rmreg.ops.fused_loss",
    "rmreg.ops.reference",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
