"""BradleyTerry(use_margin="auto"): the batch's margin when it carries one (as TRL's RewardTrainer), else none."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rmreg.objectives import BradleyTerry, Needs, Objective, PairInputs

values = st.lists(st.floats(-5, 5), min_size=1, max_size=6)


def naive(chosen: list[float], rejected: list[float], margin: list[float] | None) -> float:
    margin = margin or [0.0] * len(chosen)
    losses = [math.log1p(math.exp(-(c - r - m))) for c, r, m in zip(chosen, rejected, margin, strict=True)]
    return sum(losses) / len(losses)


@given(values, st.data())
def test_auto_subtracts_the_margin_exactly_when_the_batch_has_one(chosen: list[float], data: st.DataObject) -> None:
    rejected = data.draw(st.lists(st.floats(-5, 5), min_size=len(chosen), max_size=len(chosen)))
    margin = data.draw(st.lists(st.floats(0, 3), min_size=len(chosen), max_size=len(chosen)))
    as_tensor = lambda xs: torch.tensor(xs, dtype=torch.float64)  # noqa: E731
    with_margin = PairInputs(as_tensor(chosen), as_tensor(rejected), margin=as_tensor(margin))
    without = PairInputs(as_tensor(chosen), as_tensor(rejected))
    auto = BradleyTerry(use_margin="auto")
    assert auto(with_margin).item() == pytest.approx(naive(chosen, rejected, margin), rel=1e-9, abs=1e-12)
    assert auto(without).item() == pytest.approx(naive(chosen, rejected, None), rel=1e-9, abs=1e-12)
    assert auto(with_margin).item() == pytest.approx(BradleyTerry(use_margin=True)(with_margin).item(), abs=1e-12)
    assert BradleyTerry()(with_margin).item() == pytest.approx(naive(chosen, rejected, None), rel=1e-9, abs=1e-12)


def test_auto_needs_no_margin_true_requires_one_and_config_round_trips() -> None:
    assert BradleyTerry(use_margin="auto").needs == Needs()
    assert BradleyTerry(use_margin=True).needs == Needs(margin=True)
    with pytest.raises(ValueError, match="needs input 'margin'"):
        BradleyTerry(use_margin=True)(PairInputs(torch.zeros(2), torch.zeros(2)))
    objective = Objective([(1.0, BradleyTerry(use_margin="auto"))])
    rebuilt = Objective.from_config(objective.config())
    assert rebuilt.terms[0].use_margin == "auto"
    with pytest.raises(ValueError, match="use_margin must be True, False or 'auto'"):
        BradleyTerry(use_margin="yes")  # type: ignore[arg-type]


def test_auto_margin_gradient() -> None:
    chosen, rejected = torch.randn(4, dtype=torch.float64, requires_grad=True), torch.randn(4, dtype=torch.float64)
    margin = torch.rand(4, dtype=torch.float64)
    term = BradleyTerry(use_margin="auto")
    assert torch.autograd.gradcheck(lambda c: term(PairInputs(c, rejected, margin=margin)), (chosen,))
