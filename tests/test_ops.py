"""Tests for rmreg.ops: chunked and fused LM-head log-probs against the naive reference."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rmreg
from rmreg import ops
from rmreg._typing import TypeCheckError
from rmreg.ops import (
    FUSED_MAX_BUFFERS,
    auto_chunk_size,
    linear_logprobs,
    linear_logprobs_naive,
    sequence_linear_logprobs,
)

F64_TOL = 1e-6
# bf16/fp16: the LM-head matmul runs in the input dtype, so each logit is rounded to 8 (bf16) or 11 (fp16)
# significant bits before the fp32 log-sum-exp; for logits of size ~3 that gives log-prob errors of a few 1e-2.
LOW_PRECISION_TOL = {torch.bfloat16: 0.08, torch.float16: 0.01}


def make_inputs(n, hidden, vocab, *, dtype=torch.float64, bias=False, frozen=False, ignored=0.25, seed=0):
    """Random hidden [n, hidden], weight [vocab, hidden], optional bias [vocab], targets with ~``ignored`` -100s."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hidden, generator=gen, dtype=torch.float64)
    w = torch.randn(vocab, hidden, generator=gen, dtype=torch.float64) / hidden**0.5 * 2
    b = torch.randn(vocab, generator=gen, dtype=torch.float64) if bias else None
    targets = torch.randint(0, vocab, (n,), generator=gen)
    targets[torch.rand(n, generator=gen) < ignored] = -100
    h = h.to(dtype).requires_grad_()
    w = w.to(dtype).requires_grad_(not frozen)
    b = None if b is None else b.to(dtype).requires_grad_(not frozen)
    return h, w, b, targets


def grads(out, upstream, *tensors):
    """Gradients of <out, upstream> w.r.t. the tensors that require grad (None for the others)."""
    wanted = [t for t in tensors if t is not None and t.requires_grad]
    found = iter(torch.autograd.grad(out, wanted, upstream))
    return [next(found) if t is not None and t.requires_grad else None for t in tensors]


def assert_close_all(got, expected, tol):
    for g, e in zip(got, expected, strict=True):
        assert (g is None) == (e is None)
        if g is not None:
            torch.testing.assert_close(g, e, atol=tol, rtol=0)


def segment_sums(token_logps, sequence_ids, num_sequences):
    return token_logps.new_zeros(num_sequences).index_add(0, sequence_ids, token_logps)


# --- float64 equality with the naive path ---------------------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 7, 16, 64, None])
def test_linear_logprobs_matches_naive_float64(bias, frozen, chunk_size):
    h, w, b, y = make_inputs(37, 8, 29, bias=bias, frozen=frozen)
    upstream = torch.randn(37, dtype=torch.float64)
    expected = linear_logprobs_naive(h, w, y, bias=b)
    got = linear_logprobs(h, w, y, bias=b, chunk_size=chunk_size)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, atol=F64_TOL, rtol=0)
    assert_close_all(grads(got, upstream, h, w, b), grads(expected, upstream, h, w, b), F64_TOL)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("num_sequences", [1, 3, FUSED_MAX_BUFFERS + 2])  # the last one recomputes two sequences
def test_sequence_linear_logprobs_matches_naive_float64(bias, frozen, num_sequences):
    h, w, b, y = make_inputs(41, 6, 23, bias=bias, frozen=frozen)
    sequence_ids = torch.randint(0, num_sequences, (41,), generator=torch.Generator().manual_seed(1))  # unsorted
    upstream = torch.randn(num_sequences, dtype=torch.float64)
    expected = segment_sums(linear_logprobs_naive(h, w, y, bias=b), sequence_ids, num_sequences)
    got = sequence_linear_logprobs(h, w, y, sequence_ids, num_sequences=num_sequences, bias=b, chunk_size=5)
    torch.testing.assert_close(got, expected, atol=F64_TOL, rtol=0)
    assert_close_all(grads(got, upstream, h, w, b), grads(expected, upstream, h, w, b), F64_TOL)


def test_sequence_linear_logprobs_infers_num_sequences_and_keeps_empty_sequences():
    h, w, _, y = make_inputs(10, 4, 9, ignored=0.0)
    sequence_ids = torch.tensor([0, 0, 0, 2, 2, 2, 2, 3, 3, 3])  # sequence 1 is empty
    got = sequence_linear_logprobs(h, w, y, sequence_ids)
    assert got.shape == (4,) and got[1] == 0
    torch.testing.assert_close(got, segment_sums(linear_logprobs_naive(h, w, y), sequence_ids, 4))


def jacobian_rows_fresh(fn, inputs):
    """Analytical Jacobian [outputs, inputs] with a fresh forward pass per row (one backward per forward)."""
    rows = []
    for i in range(fn(*inputs).numel()):
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(fn(*inputs)[i], inputs)]))
    return torch.stack(rows)


def jacobian_central_differences(fn, inputs, eps=1e-6):
    """Numerical Jacobian [outputs, inputs] by central differences, as gradcheck computes it."""
    columns = []
    with torch.no_grad():
        for tensor in inputs:
            flat = tensor.view(-1)
            for j in range(flat.numel()):
                flat[j] += eps
                plus = fn(*inputs)
                flat[j] -= 2 * eps
                minus = fn(*inputs)
                flat[j] += eps
                columns.append((plus - minus) / (2 * eps))
    return torch.stack(columns, dim=1)


def test_gradcheck_float64():
    h, w, b, y = make_inputs(9, 3, 7, bias=True)
    sequence_ids = torch.tensor([1, 0, 0, 1, 2, 2, 3, 1, 3])  # 4 sequences: the last one is recomputed
    assert torch.autograd.gradcheck(lambda *a: linear_logprobs(*a[:2], y, bias=a[2], chunk_size=4), (h, w, b))
    frozen_w = w.detach()
    assert torch.autograd.gradcheck(lambda h: linear_logprobs(h, frozen_w, y, chunk_size=4), (h,))
    # the fused path allows one backward per forward (gradcheck backpropagates twice through one graph), so
    # its Jacobian is checked the way gradcheck does it, with a fresh forward pass per row
    for fused, inputs in [
        (lambda *a: sequence_linear_logprobs(*a[:2], y, sequence_ids, bias=a[2], chunk_size=2), (h, w, b)),
        (lambda h: sequence_linear_logprobs(h, frozen_w, y, sequence_ids), (h,)),
    ]:
        torch.testing.assert_close(
            jacobian_rows_fresh(fused, inputs), jacobian_central_differences(fused, inputs), atol=1e-5, rtol=1e-3
        )


def test_fused_second_backward_raises():
    h, w, _, y = make_inputs(8, 3, 7)
    out = sequence_linear_logprobs(h, w, y, torch.tensor([0] * 4 + [1] * 4))
    out.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass per forward pass"):
        out.sum().backward()


# --- hypothesis properties ------------------------------------------------------------------------------------


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
def test_property_chunked_equals_naive(n, hidden, vocab, chunk_size, ignored, bias, frozen, seed):
    h, w, b, y = make_inputs(n, hidden, vocab, bias=bias, frozen=frozen, ignored=ignored, seed=seed)
    upstream = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    expected = linear_logprobs_naive(h, w, y, bias=b)
    got = linear_logprobs(h, w, y, bias=b, chunk_size=chunk_size)
    torch.testing.assert_close(got, expected, atol=F64_TOL, rtol=0)
    assert_close_all(grads(got, upstream, h, w, b), grads(expected, upstream, h, w, b), F64_TOL)


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 12), min_size=1, max_size=FUSED_MAX_BUFFERS + 2),
    vocab=st.integers(1, 20),
    chunk_size=st.one_of(st.none(), st.integers(1, 20)),
    ignored=st.sampled_from([0.0, 0.3, 1.0]),
    frozen=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_fused_equals_naive(lengths, vocab, chunk_size, ignored, frozen, seed):
    sequence_ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    n = len(sequence_ids)
    h, w, b, y = make_inputs(n, 4, vocab, bias=True, frozen=frozen, ignored=ignored, seed=seed)
    upstream = torch.randn(len(lengths), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    expected = segment_sums(linear_logprobs_naive(h, w, y, bias=b), sequence_ids, len(lengths))
    got = sequence_linear_logprobs(h, w, y, sequence_ids, num_sequences=len(lengths), bias=b, chunk_size=chunk_size)
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
    sums = sequence_linear_logprobs(h, w, y, torch.zeros(n, dtype=torch.long))
    torch.testing.assert_close(sums.double(), expected.sum()[None], atol=tol * n, rtol=0)


# --- behaviour ------------------------------------------------------------------------------------------------


def test_all_targets_ignored_and_empty_input():
    h, w, b, _ = make_inputs(5, 3, 7, bias=True)
    y = torch.full((5,), -100)
    out = linear_logprobs(h, w, y, bias=b)
    assert torch.equal(out, torch.zeros(5, dtype=torch.float64))
    out.sum().backward()
    assert not h.grad.any() and not w.grad.any() and not b.grad.any()
    empty = linear_logprobs(h[:0], w, y[:0])
    assert empty.shape == (0,)
    assert sequence_linear_logprobs(h[:0], w, y[:0], y[:0]).shape == (0,)


def test_frozen_head_backward_does_not_recompute(monkeypatch):
    h, w, _, y = make_inputs(12, 4, 9, frozen=True)
    out = linear_logprobs(h, w, y, chunk_size=5)
    monkeypatch.setattr(ops, "_sweep", lambda *a: pytest.fail("frozen-head backward recomputed logits"))
    out.sum().backward()
    assert w.grad is None and h.grad is not None


def test_fused_backward_only_scales(monkeypatch):
    h, w, b, y = make_inputs(12, 4, 9, bias=True)
    sequence_ids = torch.tensor([0] * 5 + [1] * 7)
    out = sequence_linear_logprobs(h, w, y, sequence_ids, num_sequences=2, bias=b)
    monkeypatch.setattr(ops, "_sweep", lambda *a: pytest.fail("fused backward recomputed logits"))
    (out * torch.tensor([2.0, -3.0], dtype=torch.float64)).sum().backward()
    assert h.grad is not None and w.grad is not None and b.grad is not None


def test_no_grad_and_int32_targets():
    h, w, b, y = make_inputs(11, 4, 9, bias=True)
    with torch.no_grad():
        out = linear_logprobs(h, w, y.int(), bias=b, chunk_size=3)
    assert not out.requires_grad
    torch.testing.assert_close(out, linear_logprobs_naive(h, w, y, bias=b).detach())


def test_auto_chunk_size_budget():
    assert auto_chunk_size(128_000, 256) * 128_000 * 4 <= ops.DEFAULT_CHUNK_BYTES
    assert auto_chunk_size(256_000, 2048) == 256  # an eighth of the fp32 weight
    assert auto_chunk_size(10**9, 1) == 1


def test_wrong_shape_raises_under_typechecking():
    h, w, _, y = make_inputs(6, 4, 9)
    with rmreg.typechecking(), pytest.raises(TypeCheckError):
        linear_logprobs(h, w, y[:5])
    with rmreg.typechecking(), pytest.raises(TypeCheckError):
        sequence_linear_logprobs(h, w, y, y[:5])
    with rmreg.typechecking():
        linear_logprobs(h, w, y)  # right shapes pass


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h, w, y: (h, w[:, :3], y), "same H"),
        (lambda h, w, y: (h[0], w, y), "same H"),
        (lambda h, w, y: (h, w, y[:5]), "targets must be"),
        (lambda h, w, y: (h, w, y.double()), "integer"),
        (lambda h, w, y: (h, w, torch.full_like(y, 9)), "targets must lie in"),
        (lambda h, w, y: (h, w, torch.full_like(y, -1)), "targets must lie in"),
        (lambda h, w, y: (h.detach().index_fill(0, torch.tensor([2]), float("nan")), w, y), "NaN"),
        (lambda h, w, y: (h, w.float(), y), "dtype"),
    ],
)
def test_bad_inputs_raise_value_error(change, message):
    """Without the shape checker (off by default) the functions themselves reject bad inputs."""
    h, w, _, y = make_inputs(6, 4, 9)
    h, w, y = change(h, w, y)
    for call in (
        lambda: linear_logprobs(h, w, y),
        lambda: linear_logprobs_naive(h, w, y),
        lambda: sequence_linear_logprobs(h, w, y, torch.zeros(len(y), dtype=torch.long)),
    ):
        with rmreg.typechecking(False), pytest.raises(ValueError, match=message):
            call()


@rmreg.typechecking(False)
def test_bad_options_raise_value_error():
    h, w, _, y = make_inputs(6, 4, 9)
    with pytest.raises(ValueError, match="chunk_size"):
        linear_logprobs(h, w, y, chunk_size=0)
    with pytest.raises(ValueError, match="bias"):
        linear_logprobs(h, w, y, bias=torch.zeros(8, dtype=torch.float64))
    with pytest.raises(ValueError, match="sequence_ids must lie"):
        sequence_linear_logprobs(h, w, y, torch.tensor([0, 0, 1, 1, 2, 2]), num_sequences=2)
    with pytest.raises(ValueError, match="sequence_ids must be"):
        sequence_linear_logprobs(h, w, y, torch.zeros(5, dtype=torch.long))
    assert linear_logprobs(h, w, torch.full_like(y, -1), ignore_index=-1).eq(0).all()


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_quick(script: str, out: Path) -> None:
    path = BENCHMARKS / script
    if not path.exists():
        pytest.skip("benchmarks/ is not shipped with the installed package")
    subprocess.run([sys.executable, str(path), "--quick", "--out", str(out)], check=True, timeout=120)


@pytest.mark.slow
def test_loss_benchmark_quick_mode_runs(tmp_path):
    """Smoke test of benchmarks/bench_loss.py --quick (no timing assertion)."""
    run_quick("bench_loss.py", tmp_path)
    table = (tmp_path / "bench_loss.md").read_text()
    assert "fused" in table and "naive" in table
    assert (tmp_path / "bench_loss.csv").read_text().count("\n") == 4  # header + naive, chunked, fused


@pytest.mark.slow
def test_step_benchmark_quick_mode_runs(tmp_path):
    """Smoke test of benchmarks/bench_step.py --quick: every provider gives the same first-step loss."""
    run_quick("bench_step.py", tmp_path)
    with open(tmp_path / "bench_step.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["provider"] for r in rows} == {"-", "rmreg", "naive", "official"}
    sft = [float(r["loss"]) for r in rows if r["objective"] == "sft"]
    assert len(sft) == 2 and sft[0] == pytest.approx(sft[1], rel=1e-5)
    assert (tmp_path / "bench_step.md").exists()
