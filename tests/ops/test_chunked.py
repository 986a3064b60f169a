"""rmreg.ops.linear_logprobs (the chunked path) against the naive full-logits reference."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_testing import F64_TOL, assert_close_all, grads, make_inputs

from rmreg.ops import _kernel, linear_logprobs, linear_logprobs_naive

# bf16/fp16: the LM-head matmul runs in the input dtype, so each logit is rounded to 8 (bf16) or 11 (fp16)
# significant bits before the fp32 log-sum-exp; for logits of size ~3 that gives log-prob errors of a few 1e-2.
LOW_PRECISION_TOL = {torch.bfloat16: 0.08, torch.float16: 0.01}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 7, 16, 64, None])
def test_matches_naive_float64(bias, frozen, chunk_size):
    h, w, b, y = make_inputs(37, 8, 29, bias=bias, frozen=frozen)
    upstream = torch.randn(37, dtype=torch.float64)
    expected = linear_logprobs_naive(h, w, y, bias=b)
    got = linear_logprobs(h, w, y, bias=b, chunk_size=chunk_size)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, atol=F64_TOL, rtol=0)
    assert_close_all(grads(got, upstream, h, w, b), grads(expected, upstream, h, w, b), F64_TOL)


def test_gradcheck_float64():
    h, w, b, y = make_inputs(9, 3, 7, bias=True)
    assert torch.autograd.gradcheck(lambda *a: linear_logprobs(*a[:2], y, bias=a[2], chunk_size=4), (h, w, b))
    frozen_w = w.detach()
    assert torch.autograd.gradcheck(lambda h: linear_logprobs(h, frozen_w, y, chunk_size=4), (h,))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 40),
    hidden=st.integers(1, 6),
    vocab=st.integers(1, 20),
    chunk_size=st.one_of(st.none(), st.integers(1, 50)),
    ignored=st.sampled_from([0.0, 0.3, 1.0]),
    bias=st.booleans(),
    frozen=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_equals_naive(n, hidden, vocab, chunk_size, ignored, bias, frozen, seed):
    h, w, b, y = make_inputs(n, hidden, vocab, bias=bias, frozen=frozen, ignored=ignored, seed=seed)
    upstream = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    expected = linear_logprobs_naive(h, w, y, bias=b)
    got = linear_logprobs(h, w, y, bias=b, chunk_size=chunk_size)
    torch.testing.assert_close(got, expected, atol=F64_TOL, rtol=0)
    assert_close_all(grads(got, upstream, h, w, b), grads(expected, upstream, h, w, b), F64_TOL)


@settings(max_examples=12, deadline=None)
@given(
    dtype=st.sampled_from([torch.bfloat16, torch.float16]),
    n=st.integers(1, 30),
    chunk_size=st.one_of(st.none(), st.integers(1, 40)),
    seed=st.integers(0, 2**16),
)
def test_property_low_precision_against_float64(dtype, n, chunk_size, seed):
    """bf16/fp16 inputs: fp32 log-probs within LOW_PRECISION_TOL of float64; gradients in the input dtype."""
    h64, w64, _, y = make_inputs(n, 16, 50, seed=seed)
    h, w = (t.detach().to(dtype).requires_grad_() for t in (h64, w64))
    upstream = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    got = linear_logprobs(h, w, y, chunk_size=chunk_size)
    # float64 reference on the same (rounded) inputs, so that only the computation's error is measured
    hr, wr = (t.detach().double().requires_grad_() for t in (h, w))
    expected = linear_logprobs_naive(hr, wr, y)
    assert got.dtype == torch.float32
    tol = LOW_PRECISION_TOL[dtype]
    torch.testing.assert_close(got.double(), expected, atol=tol, rtol=0)
    for g, e in zip(grads(got, upstream, h, w), grads(expected, upstream.double(), hr, wr), strict=True):
        assert g.dtype == dtype
        torch.testing.assert_close(g.double(), e, atol=tol, rtol=tol)


def test_all_targets_ignored_and_empty_input():
    h, w, b, _ = make_inputs(5, 3, 7, bias=True)
    y = torch.full((5,), -100)
    out = linear_logprobs(h, w, y, bias=b)
    assert torch.equal(out, torch.zeros(5, dtype=torch.float64))
    out.sum().backward()
    assert not h.grad.any() and not w.grad.any() and not b.grad.any()
    assert linear_logprobs(h[:0], w, y[:0]).shape == (0,)


def test_frozen_head_backward_does_not_recompute(monkeypatch):
    h, w, _, y = make_inputs(12, 4, 9, frozen=True)
    out = linear_logprobs(h, w, y, chunk_size=5)
    monkeypatch.setattr(_kernel.Sweep, "softmax", lambda *a, **k: pytest.fail("the backward pass recomputed logits"))
    out.sum().backward()
    assert w.grad is None and h.grad is not None


def test_no_grad_and_int32_targets():
    h, w, b, y = make_inputs(11, 4, 9, bias=True)
    with torch.no_grad():
        out = linear_logprobs(h, w, y.int(), bias=b, chunk_size=3)
    assert not out.requires_grad
    torch.testing.assert_close(out, linear_logprobs_naive(h, w, y, bias=b).detach())
