"""Run-time shape and dtype checking: on in the tests, switchable by users, and really raising."""

import os
import subprocess
import sys

import pytest
import torch

import rmreg
from rmreg import functional as F


def test_checking_is_on_in_the_test_suite():
    assert rmreg.typechecking_enabled()


def test_wrong_shape_raises_a_type_check_error():
    with pytest.raises(rmreg.TypeCheckError, match="rejected"):
        F.bradley_terry_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(rmreg.TypeCheckError):
        F.sft_regularizer(torch.zeros(3, 1))
    with pytest.raises(rmreg.TypeCheckError):
        rmreg.RewardHead(4)(torch.zeros(4))


def test_wrong_dtype_raises_a_type_check_error():
    with pytest.raises(rmreg.TypeCheckError, match="chosen"):
        F.bradley_terry_loss(torch.zeros(3, dtype=torch.long), torch.zeros(3))
    with pytest.raises(rmreg.TypeCheckError):
        rmreg.RetainedLMHead(torch.nn.Linear(4, 6)).logprobs(torch.zeros(2, 4), torch.zeros(2))


def test_wrong_input_type_to_an_objective_raises():
    with pytest.raises(rmreg.TypeCheckError):
        rmreg.objective("bt")({"chosen_rewards": torch.zeros(2)})  # type: ignore[arg-type]


def test_context_manager_switches_and_restores():
    with rmreg.typechecking(False):
        assert not rmreg.typechecking_enabled()
        with pytest.raises(ValueError, match="same shape"):  # the function's own check still runs
            F.bradley_terry_loss(torch.zeros(3), torch.zeros(4))
        with rmreg.typechecking():
            assert rmreg.typechecking_enabled()
        assert not rmreg.typechecking_enabled()
    assert rmreg.typechecking_enabled()


@pytest.mark.parametrize(("value", "expected"), [("1", "True"), ("0", "False"), ("", "False")])
def test_environment_variable_switches_checking_on_at_import(value, expected):
    env = {**os.environ, "RMREG_TYPECHECK": value}
    code = "import rmreg; print(rmreg.typechecking_enabled())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
