"""GPU tier (skipped without CUDA): the ops' bf16 gradients against their fp32 gradients on the same inputs.

On CUDA the bf16 matmuls write fp32 results (``out_dtype``) when the device supports it; both that path and the
fallback (bf16 products added in fp32) are checked. Bounds: log-probs within 2^-8·max|ℓ| of fp32, gradients
within 1e-2 of the largest fp32 entry.
"""

import pytest
import torch
import torch.nn.functional as F

from rmreg.ops import _kernel, fused_logprob_loss, linear_logprobs, linear_logprobs_naive, sequence_linear_logprobs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
GRAD_TOL = 1e-2


def inputs(n=512, hidden=256, vocab=32_000, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    h = torch.randn(n, hidden, device="cuda", generator=gen)
    w = torch.randn(vocab, hidden, device="cuda", generator=gen) * 2 / hidden**0.5
    y = torch.randint(0, vocab, (n,), device="cuda", generator=gen)
    return h, w, y


def path_outputs(path, h, w, y, **kw):
    """Value and (hidden, weight) gradients of one path's scalar objective."""
    h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
    seq = torch.arange(len(y), device="cuda") * 8 // len(y)  # 8 sequences
    if path == "chunked":
        value = linear_logprobs(h, w, y, **kw).sum()
    elif path == "sequence":
        value = -F.logsigmoid(0.1 * sequence_linear_logprobs(h, w, y, seq, **kw)).mean()
    else:

        def dpo(logps):
            return -F.logsigmoid(0.1 * (logps[:4] - logps[4:])).mean()

        grouped = {"group_ids": torch.arange(8) % 4} if path == "fused-loss-one-pass" else {"num_sequences": 8}
        value = fused_logprob_loss(h, w, y, seq, dpo, **grouped, **kw)[0]
    value.backward()
    return value.detach().float(), h.grad.float(), w.grad.float()


@pytest.fixture(params=[True, False], ids=["fp32-output-matmuls", "bf16-products"])
def matmul_mode(request, monkeypatch):
    if not request.param:
        monkeypatch.setitem(_kernel._FP32_OUTPUT_MATMULS, ("cuda", torch.bfloat16), False)
    return request.param


@pytest.mark.parametrize("path", ["chunked", "sequence", "fused-loss", "fused-loss-one-pass"])
@pytest.mark.parametrize(("softcap", "scale"), [(None, None), (30.0, None), (None, 0.0625)])
def test_bf16_gradients_against_fp32(path, softcap, scale, matmul_mode):
    h, w, y = inputs()
    kw = {"softcap": softcap, "scale": scale}
    hb, wb = h.bfloat16(), w.bfloat16()
    value32, dh32, dw32 = path_outputs(path, hb.float(), wb.float(), y, **kw)  # fp32 on the same rounded inputs
    value16, dh16, dw16 = path_outputs(path, hb, wb, y, **kw)
    raw = (hb.float() @ wb.float().T).abs().max().item() * (scale or 1.0)
    assert abs(value16 - value32) <= 2**-8 * (1 + min(raw, softcap or raw)) * max(1.0, abs(value32.item()))
    for got, ref in ((dh16, dh32), (dw16, dw32)):
        assert ((got - ref).abs().max() / ref.abs().max()).item() <= GRAD_TOL
    with torch.autocast("cuda", dtype=torch.bfloat16):
        value_ac, dh_ac, dw_ac = path_outputs(path, hb.float(), wb.float(), y, **kw)
    torch.testing.assert_close(value_ac, value16, atol=1e-3, rtol=1e-3)
    for got, ref in ((dh_ac, dh32), (dw_ac, dw32)):
        assert ((got - ref).abs().max() / ref.abs().max()).item() <= GRAD_TOL


def test_fp32_on_cuda_matches_the_naive_path():
    h, w, y = inputs(n=256, vocab=8000)
    h.requires_grad_()
    got = linear_logprobs(h, w, y, softcap=30.0)
    expected = linear_logprobs_naive(h, w, y, softcap=30.0)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
    (g,) = torch.autograd.grad(got.sum(), h)
    (e,) = torch.autograd.grad(expected.sum(), h)
    torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-4)
