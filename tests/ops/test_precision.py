"""Numerics against float64 in fp32, bf16 and under torch.autocast (CPU); the GPU tier is in test_gpu.py.

Errors are measured against a float64 computation on the same (rounded) inputs, so they are the computation's
own: log-prob absolute error, gradients as max abs error / max abs value.
"""

import pytest
import torch
from ops_testing import make_inputs

from rmreg.ops import linear_logprobs, linear_logprobs_naive, sequence_linear_logprobs

TRANSFORMS = [(None, None), (30.0, None), (5.0, None), (None, 0.0625), (3.0, 2.0)]  # (softcap, scale)
# fp32: log p within 1e-6 relative (|log p| reaches ~16 here, where one fp32 ulp is 2e-6), gradients 1e-5.
FP32_REL, FP32_GRAD = 1e-6, 1e-5
# bf16 (CPU): each logit is rounded to bf16 (8 significant bits) before the fp32 log-sum-exp, so
# |Δ log p| ≲ 2^-8 · max|ℓ|; gradients (bf16 matmuls, fp32 accumulation) within 2e-2 of the largest entry.
BF16_GRAD = 2e-2


def inputs(dtype, seed=0):
    h, w, _, y = make_inputs(96, 64, 700, ignored=0.1, seed=seed)
    return h.detach().to(dtype).requires_grad_(), w.detach().to(dtype).requires_grad_(), y


def float64_twin(*tensors):
    return [t.detach().double().requires_grad_() for t in tensors]


def rel(got, expected):
    return ((got.double() - expected).abs().max() / expected.abs().max()).item()


def run(fn, h, w, y, upstream, **kw):
    out = fn(h, w, y, **kw)
    h.grad = w.grad = None
    (out.double() * upstream).sum().backward()
    return out, h.grad, w.grad


@pytest.mark.parametrize(("softcap", "scale"), TRANSFORMS)
@pytest.mark.parametrize("path", ["chunked", "fused"])
def test_fp32_against_float64(softcap, scale, path):
    h, w, y = inputs(torch.float32)
    h64, w64 = float64_twin(h, w)
    seq = torch.arange(96) // 24
    kw = {"softcap": softcap, "scale": scale, "chunk_size": 40}
    if path == "chunked":
        fn, up = linear_logprobs, torch.randn(96, dtype=torch.float64)
    else:
        fn, up = (lambda *a, **k: sequence_linear_logprobs(*a, seq, **k)), torch.randn(4, dtype=torch.float64)
    out, dh, dw = run(fn, h, w, y, up, **kw)
    ref, dh64, dw64 = run(fn, h64, w64, y, up, **kw)  # float64 through the same op: tested equal to the naive one
    assert out.dtype == dh.dtype == dw.dtype == torch.float32
    assert ((out.double() - ref).abs() <= FP32_REL * (1 + ref.abs())).all()
    assert rel(dh, dh64) <= FP32_GRAD and rel(dw, dw64) <= FP32_GRAD
    naive_error = (
        (
            linear_logprobs_naive(h.detach(), w.detach(), y, softcap=softcap, scale=scale).double()
            - linear_logprobs_naive(h64.detach(), w64.detach(), y, softcap=softcap, scale=scale)
        )
        .abs()
        .max()
    )
    if path == "chunked":  # no worse than the naive fp32 computation (both are fp32-rounding-limited)
        assert (out.double() - ref).abs().max() <= 2 * naive_error + 1e-7


@pytest.mark.parametrize(("softcap", "scale"), TRANSFORMS)
def test_bf16_inputs_against_float64(softcap, scale):
    h, w, y = inputs(torch.bfloat16)
    h64, w64 = float64_twin(h, w)
    up = torch.randn(96, dtype=torch.float64)
    kw = {"softcap": softcap, "scale": scale}
    out, dh, dw = run(linear_logprobs, h, w, y, up, **kw)
    ref, dh64, dw64 = run(linear_logprobs, h64, w64, y, up, **kw)
    assert out.dtype == torch.float32 and dh.dtype == dw.dtype == torch.bfloat16
    raw = (h64 @ w64.T).abs().max().item() * (1.0 if scale is None else abs(scale))
    bound = 2**-8 * (1 + min(raw, softcap or raw))
    assert (out.double() - ref).abs().max() <= bound
    assert rel(dh, dh64) <= BF16_GRAD and rel(dw, dw64) <= BF16_GRAD


@pytest.mark.parametrize(("softcap", "scale"), TRANSFORMS)
@pytest.mark.parametrize("path", ["chunked", "fused"])
def test_autocast_runs_the_matmuls_in_bf16_and_keeps_fp32_gradients(softcap, scale, path):
    h, w, y = inputs(torch.float32)
    seq = torch.arange(96) // 24
    if path == "chunked":
        fn, up = linear_logprobs, torch.randn(96, dtype=torch.float64)
    else:
        fn, up = (lambda *a, **k: sequence_linear_logprobs(*a, seq, **k)), torch.randn(4, dtype=torch.float64)
    kw = {"softcap": softcap, "scale": scale}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, dh, dw = run(fn, h, w, y, up, **kw)
    assert out.dtype == dh.dtype == dw.dtype == torch.float32
    # the same numbers as on explicitly bf16-rounded inputs (the matmuls ran in bf16) ...
    hb, wb = (t.detach().bfloat16().requires_grad_() for t in (h, w))
    out_bf16, dh_bf16, dw_bf16 = run(fn, hb, wb, y, up, **kw)
    torch.testing.assert_close(out, out_bf16, atol=1e-5, rtol=0)
    assert rel(dh, dh_bf16.double()) <= 1e-2 and rel(dw, dw_bf16.double()) <= 1e-2
    # ... which differ from fp32 by the bf16 rounding, and lie within the bf16 bound of float64 on those inputs
    out_fp32, _, _ = run(fn, *(t.detach().requires_grad_() for t in (h, w)), y, up, **kw)
    assert (out - out_fp32).abs().max() > 1e-4
    h64, w64 = float64_twin(hb, wb)
    ref, dh64, dw64 = run(fn, h64, w64, y, up, **kw)
    raw = (h64 @ w64.T).abs().max().item() * (1.0 if scale is None else abs(scale))
    assert (out.double() - ref).abs().max() <= 2**-8 * (1 + min(raw, softcap or raw)) * (1 if path == "chunked" else 24)
    assert rel(dh, dh64) <= BF16_GRAD and rel(dw, dw64) <= BF16_GRAD


def test_autocast_accepts_a_bf16_hidden_with_an_fp32_weight():
    h, w, y = inputs(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = linear_logprobs(h.detach().bfloat16(), w, y)
        naive = linear_logprobs_naive(h.detach().bfloat16(), w, y)
    mixed.sum().backward()
    assert w.grad.dtype == torch.float32
    torch.testing.assert_close(mixed, naive.float(), atol=2e-2, rtol=0)


def test_float64_inputs_ignore_autocast():
    h, w, _, y = make_inputs(20, 8, 30)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = linear_logprobs(h, w, y)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, linear_logprobs_naive(h, w, y), atol=1e-12, rtol=0)
