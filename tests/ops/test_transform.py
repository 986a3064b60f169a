"""Soft-capped and scaled LM heads: log-softmax of softcap·tanh(scale·z / softcap) on every path, exact gradients."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_testing import (
    F64_TOL,
    assert_close_all,
    grads,
    jacobian_central_differences,
    jacobian_rows_fresh,
    make_inputs,
    segment_sums,
)

import rmreg
from rmreg.ops import linear_logprobs, linear_logprobs_naive, sequence_linear_logprobs

TRANSFORMS = [(30.0, None), (2.0, None), (None, 0.0625), (None, -1.5), (3.0, 2.5)]  # (softcap, scale)


def loop_logprobs(h, w, b, y, softcap, scale):
    """Plain-Python float64 log p_t = ℓ_t[y_t] − log Σ_v exp(ℓ_t[v]), ℓ = c·tanh(s·z / c), 0 where ignored."""
    out = []
    for t in range(h.shape[0]):
        if y[t] == -100:
            out.append(0.0)
            continue
        logits = []
        for v in range(w.shape[0]):
            z = sum(float(h[t, i]) * float(w[v, i]) for i in range(h.shape[1])) + (0.0 if b is None else float(b[v]))
            z = z * (1.0 if scale is None else scale)
            logits.append(z if softcap is None else softcap * math.tanh(z / softcap))
        peak = max(logits)
        out.append(logits[int(y[t])] - peak - math.log(sum(math.exp(x - peak) for x in logits)))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize(("softcap", "scale"), TRANSFORMS)
def test_reference_matches_plain_loops(softcap, scale):
    h, w, b, y = make_inputs(6, 3, 5, bias=True)
    h = h * 4  # logits large enough for the soft-cap to bend them
    got = linear_logprobs_naive(h, w, y, bias=b, softcap=softcap, scale=scale)
    h, w, b = h.detach(), w.detach(), b.detach()
    torch.testing.assert_close(got.detach(), loop_logprobs(h, w, b, y, softcap, scale), atol=1e-12, rtol=0)


@pytest.mark.parametrize(("softcap", "scale"), TRANSFORMS)
@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_chunked_and_fused_match_reference_float64(softcap, scale, frozen, bias):
    h, w, b, y = make_inputs(37, 8, 29, bias=bias, frozen=frozen)
    h = h * 3
    sequence_ids = torch.randint(0, 5, (37,), generator=torch.Generator().manual_seed(1))  # 5 > FUSED_MAX_BUFFERS
    kw = {"bias": b, "softcap": softcap, "scale": scale}
    expected = linear_logprobs_naive(h, w, y, **kw)
    token_up = torch.randn(37, dtype=torch.float64)
    got = linear_logprobs(h, w, y, chunk_size=6, **kw)
    torch.testing.assert_close(got, expected, atol=F64_TOL, rtol=0)
    assert_close_all(grads(got, token_up, h, w, b), grads(expected, token_up, h, w, b), F64_TOL)
    sums_up = torch.randn(5, dtype=torch.float64)
    expected_sums = segment_sums(linear_logprobs_naive(h, w, y, **kw), sequence_ids, 5)
    sums = sequence_linear_logprobs(h, w, y, sequence_ids, num_sequences=5, chunk_size=4, **kw)
    torch.testing.assert_close(sums, expected_sums, atol=F64_TOL, rtol=0)
    assert_close_all(grads(sums, sums_up, h, w, b), grads(expected_sums, sums_up, h, w, b), F64_TOL)


@pytest.mark.parametrize(("softcap", "scale"), [(2.0, None), (None, 0.5), (1.5, 3.0)])
def test_gradcheck_float64(softcap, scale):
    h, w, b, y = make_inputs(9, 3, 7, bias=True)
    h = (h * 3).detach().requires_grad_()
    kw = {"softcap": softcap, "scale": scale, "chunk_size": 4}
    assert torch.autograd.gradcheck(lambda *a: linear_logprobs(*a[:2], y, bias=a[2], **kw), (h, w, b))
    frozen_w = w.detach()  # the frozen-head fast path: hidden gradient prepared in the forward pass
    assert torch.autograd.gradcheck(lambda h: linear_logprobs(h, frozen_w, y, **kw), (h,))
    sequence_ids = torch.tensor([1, 0, 0, 1, 2, 2, 3, 1, 3])  # 4 sequences: the last one is recomputed
    for fn, inputs in [
        (lambda *a: sequence_linear_logprobs(*a[:2], y, sequence_ids, bias=a[2], **kw), (h, w, b)),
        (lambda h: sequence_linear_logprobs(h, frozen_w, y, sequence_ids, **kw), (h,)),
    ]:
        torch.testing.assert_close(
            jacobian_rows_fresh(fn, inputs), jacobian_central_differences(fn, inputs), atol=1e-6, rtol=1e-5
        )


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 30),
    vocab=st.integers(1, 20),
    chunk_size=st.one_of(st.none(), st.integers(1, 40)),
    softcap=st.one_of(st.none(), st.floats(0.1, 50.0)),
    scale=st.one_of(st.none(), st.floats(-4.0, 4.0)),
    frozen=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_transforms_equal_reference(n, vocab, chunk_size, softcap, scale, frozen, seed):
    h, w, b, y = make_inputs(n, 4, vocab, bias=True, frozen=frozen, seed=seed)
    h = (h * 5).detach().requires_grad_()
    upstream = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    kw = {"bias": b, "softcap": softcap, "scale": scale}
    expected = linear_logprobs_naive(h, w, y, **kw)
    got = linear_logprobs(h, w, y, chunk_size=chunk_size, **kw)
    torch.testing.assert_close(got, expected, atol=F64_TOL, rtol=0)
    assert_close_all(grads(got, upstream, h, w, b), grads(expected, upstream, h, w, b), F64_TOL)


def test_softcap_bounds_the_logits_and_scale_one_is_the_identity():
    h, w, _, y = make_inputs(20, 6, 40, ignored=0.0)
    h = (h * 50).detach()  # raw logits in the hundreds
    capped = linear_logprobs(h, w.detach(), y, softcap=1.0)
    assert capped.min() >= -2.0 - math.log(40)  # |ℓ| < 1 ⇒ log p ≥ −2 − log V
    plain = linear_logprobs(h, w.detach(), y)
    torch.testing.assert_close(linear_logprobs(h, w.detach(), y, scale=1.0), plain)


@rmreg.typechecking(False)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"softcap": 0.0}, "softcap"),
        ({"softcap": -30.0}, "softcap"),
        ({"softcap": math.inf}, "softcap"),
        ({"scale": math.nan}, "scale"),
    ],
)
def test_bad_transform_raises_value_error(options, message):
    h, w, _, y = make_inputs(6, 4, 9)
    for fn in (linear_logprobs, linear_logprobs_naive):
        with pytest.raises(ValueError, match=message):
            fn(h, w, y, **options)
    with pytest.raises(ValueError, match=message):
        sequence_linear_logprobs(h, w, y, torch.zeros(6, dtype=torch.long), **options)
