"""Log-probabilities through an LM head without materializing the logits.

GRM's regularizers (Yang et al., NeurIPS 2024, arXiv 2406.10216) need log π(y|x): the fp32 log-softmax of the
LM head's logits at each response token's target, summed per sequence. Done naively this builds an [N, V] logit
matrix (and a log-softmax copy, and their gradients): gigabytes at a vocabulary of 128k, far more than the
unavoidable extra of training, the weight gradient [V, H] and the hidden-state gradient [N, H]. This package
computes the same numbers chunk by chunk. For one token with raw logits z = W h + b, the head's logit transform
ℓ = c·tanh(s·z / c) (soft-cap c, as Gemma 2; scale s, as Cohere and Granite; each only when given), target y and
p = softmax(ℓ)::

    log p_y = ℓ_y − logsumexp(ℓ)        g := ∂ log p_y / ∂z = (onehot(y) − p) ⊙ dℓ/dz
    dℓ/dz = s·(1 − tanh²(s·z / c))  (s without a soft-cap)
    ∂/∂h = gᵀ W       ∂/∂W = g hᵀ       ∂/∂b = g

Paths, one module each:

* :func:`linear_logprobs` (``chunked``): per-token log-probs for any downstream loss. Trainable head: the
  forward pass keeps the per-row log-sum-exp ([N] floats); the backward pass recomputes each chunk's logits and
  accumulates the gradients: extra memory = weight gradient + hidden gradient + one chunk, four matmuls per chunk
  (naive: three). Frozen head (the paper's LoRA setting): ∂ log p_t/∂h_t does not depend on the downstream loss,
  so the forward pass prepares it and the backward pass only scales its rows: two matmuls, no recompute.
* :func:`fused_logprob_loss` (``fused_loss``): any loss on the per-sequence sums, fused into the pass; the
  forward pass computes every gradient and the backward pass only scales by the incoming gradient. By default in
  two passes over the vocabulary (``_tiles``): every log-sum-exp, then the sums and the loss's coefficients
  c_s = ∂L/∂log π_s (autograd on the small loss), then tiles of logits again with each row's gradient scaled by its
  c: four matmuls, extra memory beyond the weight gradient of the hidden gradient and one tile, for any number of
  pairs. For a loss separable over groups of sequences (a pair's chosen and rejected responses), one pass, group by
  group, each sequence's gradient into a buffer until its group's coefficients are known: three matmuls per chunk,
  one weight-sized buffer per sequence of a group (or one in all when the caller declares the group's form).
* :func:`sequence_linear_logprobs` (``fused``): the per-sequence sums themselves, with gradients prepared in the
  forward pass into at most :data:`FUSED_MAX_BUFFERS` per-sequence buffers (later sequences recompute in the
  backward pass); for callers that need the sums as a differentiable tensor.
* :func:`linear_logprobs_naive` (``reference``): full logits, ``log_softmax``, ``gather``; tests and benchmarks.

Shared design (``_kernel``): rows are processed in chunks (never straddling a sequence on the per-sequence
paths); one [chunk, V] buffer (fp32, float64 for float64 inputs) is allocated per pass and reused for every
chunk (no fresh allocation, on a CPU no page faults), plus a second one for tanh under a soft-cap and a
low-precision copy when the matmuls run in bf16/fp16. The buffer only ever holds z, ℓ, exp(ℓ − m) and
exp(ℓ − m)⊙dℓ/dz in place; the one-hot part of g and per-row factors act on [chunk, H] operands. Tokens whose
target is ``ignore_index`` are skipped (log-prob 0, no gradient).

Precision: the matmuls run in the inputs' dtype, or inside ``torch.autocast`` in the autocast dtype (an fp32
weight is cast once per pass; float64 is never cast); logits, log-sum-exp, softmax and every sum across chunks
(weight and bias gradients, per-sequence sums) are fp32. On CUDA the bf16/fp16 matmuls write fp32 results
(``out_dtype``); on a CPU the logits are rounded once to bf16 before the fp32 log-sum-exp, and each chunk's
weight-gradient product is rounded once to bf16 before its fp32 accumulation. Gradients are returned in the
inputs' own dtypes. Measured errors against float64 are in ``benchmarks/README.md``.

The chunk size, when not given, comes from a memory budget: the [chunk, V] work buffers take at most
``max(DEFAULT_CHUNK_BYTES, 4·V·H / 8)`` bytes, i.e. 64 MiB or an eighth of an fp32 copy of the weight,
whichever is larger (:func:`auto_chunk_size`): 131 rows at V = 128k, H = 256 with fp32 logits alone, 256 rows at
V = 256k, H = 2048. The two-pass fused loss cuts rows and vocabulary into tiles instead (``_tiles``): 1024 rows ×
a 2 MiB budget on a CPU (cache-sized), 4096 rows × the same budget as a chunk elsewhere. Plain PyTorch ops: CPU
and CUDA alike.
"""

from rmreg.ops._common import DEFAULT_CHUNK_BYTES, auto_chunk_size
from rmreg.ops.chunked import linear_logprobs
from rmreg.ops.fused import FUSED_MAX_BUFFERS, sequence_linear_logprobs
from rmreg.ops.fused_loss import fused_logprob_loss
from rmreg.ops.reference import linear_logprobs_naive

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "FUSED_MAX_BUFFERS",
    "auto_chunk_size",
    "fused_logprob_loss",
    "linear_logprobs",
    "linear_logprobs_naive",
    "sequence_linear_logprobs",
]
