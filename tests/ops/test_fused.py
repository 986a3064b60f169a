"""rmreg.ops.sequence_linear_logprobs (the fused per-sequence path) against the naive reference."""

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

from rmreg.ops import FUSED_MAX_BUFFERS, _kernel, linear_logprobs_naive, sequence_linear_logprobs


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("num_sequences", [1, 3, FUSED_MAX_BUFFERS + 2])  # the last one recomputes two sequences
def test_matches_naive_float64(bias, frozen, num_sequences):
    h, w, b, y = make_inputs(41, 6, 23, bias=bias, frozen=frozen)
    sequence_ids = torch.randint(0, num_sequences, (41,), generator=torch.Generator().manual_seed(1))  # unsorted
    upstream = torch.randn(num_sequences, dtype=torch.float64)
    expected = segment_sums(linear_logprobs_naive(h, w, y, bias=b), sequence_ids, num_sequences)
    got = sequence_linear_logprobs(h, w, y, sequence_ids, num_sequences=num_sequences, bias=b, chunk_size=5)
    torch.testing.assert_close(got, expected, atol=F64_TOL, rtol=0)
    assert_close_all(grads(got, upstream, h, w, b), grads(expected, upstream, h, w, b), F64_TOL)


def test_infers_num_sequences_and_keeps_empty_sequences():
    h, w, _, y = make_inputs(10, 4, 9, ignored=0.0)
    sequence_ids = torch.tensor([0, 0, 0, 2, 2, 2, 2, 3, 3, 3])  # sequence 1 is empty
    got = sequence_linear_logprobs(h, w, y, sequence_ids)
    assert got.shape == (4,) and got[1] == 0
    torch.testing.assert_close(got, segment_sums(linear_logprobs_naive(h, w, y), sequence_ids, 4))


def test_jacobian_float64():
    """The fused path allows one backward per forward (gradcheck backpropagates twice through one graph), so its
    Jacobian is checked the way gradcheck does it, with a fresh forward pass per row."""
    h, w, b, y = make_inputs(9, 3, 7, bias=True)
    sequence_ids = torch.tensor([1, 0, 0, 1, 2, 2, 3, 1, 3])  # 4 sequences: the last one is recomputed
    frozen_w = w.detach()
    for fn, inputs in [
        (lambda *a: sequence_linear_logprobs(*a[:2], y, sequence_ids, bias=a[2], chunk_size=2), (h, w, b)),
        (lambda h: sequence_linear_logprobs(h, frozen_w, y, sequence_ids), (h,)),
    ]:
        torch.testing.assert_close(
            jacobian_rows_fresh(fn, inputs), jacobian_central_differences(fn, inputs), atol=1e-5, rtol=1e-3
        )


def test_second_backward_raises():
    h, w, _, y = make_inputs(8, 3, 7)
    out = sequence_linear_logprobs(h, w, y, torch.tensor([0] * 4 + [1] * 4))
    out.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass per forward pass"):
        out.sum().backward()


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 12), min_size=1, max_size=FUSED_MAX_BUFFERS + 2),
    vocab=st.integers(1, 20),
    chunk_size=st.one_of(st.none(), st.integers(1, 20)),
    ignored=st.sampled_from([0.0, 0.3, 1.0]),
    frozen=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_equals_naive(lengths, vocab, chunk_size, ignored, frozen, seed):
    sequence_ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    n = len(sequence_ids)
    h, w, b, y = make_inputs(n, 4, vocab, bias=True, frozen=frozen, ignored=ignored, seed=seed)
    upstream = torch.randn(len(lengths), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    expected = segment_sums(linear_logprobs_naive(h, w, y, bias=b), sequence_ids, len(lengths))
    got = sequence_linear_logprobs(h, w, y, sequence_ids, num_sequences=len(lengths), bias=b, chunk_size=chunk_size)
    torch.testing.assert_close(got, expected, atol=F64_TOL, rtol=0)
    assert_close_all(grads(got, upstream, h, w, b), grads(expected, upstream, h, w, b), F64_TOL)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_sums_against_float64(dtype):
    h64, w64, _, y = make_inputs(20, 16, 50, ignored=0.0)
    h, w = (t.detach().to(dtype) for t in (h64, w64))
    sums = sequence_linear_logprobs(h, w, y, torch.zeros(20, dtype=torch.long))
    expected = linear_logprobs_naive(h.double(), w.double(), y).sum()
    torch.testing.assert_close(
        sums.double(), expected[None], atol={torch.bfloat16: 0.08, torch.float16: 0.01}[dtype] * 20, rtol=0
    )


def test_backward_only_scales(monkeypatch):
    h, w, b, y = make_inputs(12, 4, 9, bias=True)
    sequence_ids = torch.tensor([0] * 5 + [1] * 7)
    out = sequence_linear_logprobs(h, w, y, sequence_ids, num_sequences=2, bias=b)
    monkeypatch.setattr(_kernel.Sweep, "softmax", lambda *a, **k: pytest.fail("the backward pass recomputed logits"))
    (out * torch.tensor([2.0, -3.0], dtype=torch.float64)).sum().backward()
    assert h.grad is not None and w.grad is not None and b.grad is not None
