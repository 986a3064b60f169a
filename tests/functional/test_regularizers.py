"""GRM's SFT and DPO regularizers against float64 references, gradients and invariants."""

import math

import naive
import pytest
import torch
from functional_testing import close, gradcheck, logps, t64
from hypothesis import assume, given
from hypothesis import strategies as st

from rmreg import functional as F

LOG2 = math.log(2.0)
betas = st.floats(0.01, 2.0)


@given(st.lists(logps, min_size=1, max_size=8), betas, st.booleans())
def test_sft_matches_naive(values, beta, log_sigmoid):
    got = F.sft_regularizer(t64(values), beta=beta, log_sigmoid=log_sigmoid, reduction="none")
    close(got, naive.sft(values, beta, log_sigmoid))


@given(st.integers(1, 6).flatmap(lambda n: st.lists(st.lists(logps, min_size=4, max_size=4), min_size=n, max_size=n)))
def test_dpo_matches_naive(rows):
    chosen, rejected, ref_chosen, ref_rejected = (list(column) for column in zip(*rows, strict=True))
    got = F.dpo_regularizer(t64(chosen), t64(rejected), t64(ref_chosen), t64(ref_rejected), beta=0.1, reduction="none")
    close(got, naive.dpo(chosen, rejected, ref_chosen, ref_rejected, 0.1))
    got_noref = F.dpo_regularizer(t64(chosen), t64(rejected), beta=0.3, reduction="none")
    close(got_noref, naive.dpo(chosen, rejected, None, None, 0.3))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck(reduction):
    ref_c, ref_r = -torch.rand(5) * 20, -torch.rand(5) * 20
    gradcheck(lambda a: F.sft_regularizer(a, beta=0.1, reduction=reduction), ref_c)
    gradcheck(lambda a: F.sft_regularizer(a, log_sigmoid=False, reduction=reduction), ref_c)
    gradcheck(lambda a, b, rc, rr: F.dpo_regularizer(a, b, rc, rr, reduction=reduction), ref_c, ref_r, ref_r, ref_c)
    gradcheck(lambda a, b: F.dpo_regularizer(a, b, reduction=reduction), ref_c, ref_r)


@given(st.lists(logps, min_size=1, max_size=8), st.lists(logps, min_size=8, max_size=8), betas)
def test_dpo_with_policy_equal_to_reference_is_log2(policy, rejected, beta):
    chosen, rejected = t64(policy), t64(rejected[: len(policy)])
    loss = F.dpo_regularizer(chosen, rejected, chosen.clone(), rejected.clone(), beta=beta, reduction="none")
    close(loss, [LOG2] * len(policy), 1e-9)


@given(st.lists(logps, min_size=2, max_size=8), betas)
def test_reference_free_dpo_equals_dpo_with_zero_reference(values, beta):
    chosen, rejected = t64(values), t64(values[::-1])
    zero = torch.zeros_like(chosen)
    torch.testing.assert_close(
        F.dpo_regularizer(chosen, rejected, beta=beta), F.dpo_regularizer(chosen, rejected, zero, zero, beta=beta)
    )


@given(logps, st.floats(1e-3, 50.0), betas, st.booleans())
def test_sft_decreasing_in_logprob_and_positive(value, step, beta, log_sigmoid):
    assume(value + step <= 0.0)
    lower = F.sft_regularizer(t64([value]), beta=beta, log_sigmoid=log_sigmoid)
    higher = F.sft_regularizer(t64([value + step]), beta=beta, log_sigmoid=log_sigmoid)
    assert higher < lower
    assert higher >= 0.0


def test_beta_out_of_range():
    c, r = torch.zeros(2), torch.zeros(2)
    for beta in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="beta"):
            F.sft_regularizer(c, beta=beta)
        with pytest.raises(ValueError, match="beta"):
            F.dpo_regularizer(c, r, beta=beta)


def test_dpo_needs_both_or_neither_reference():
    c = torch.zeros(2)
    with pytest.raises(ValueError, match="both ref_chosen_logps and ref_rejected_logps"):
        F.dpo_regularizer(c, c, ref_chosen_logps=c)
