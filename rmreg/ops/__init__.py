"""Log-probabilities through an LM head without materializing the logits.

GRM's regularizers (Yang et al., NeurIPS 2024, arXiv 2406.10216) need log π(y|x): the fp32 log-softmax of the
LM head's logits ``hidden @ weight.T (+ bias)`` at each response token's target, summed per sequence. Done
naively this builds an [N, V] logit matrix (and a log-softmax copy, and their gradients): gigabytes at a
vocabulary of 128k, far more than the unavoidable extra of training, the weight gradient [V, H] and the
hidden-state gradient [N, H]. This module computes the same numbers chunk by chunk.

For one token with logits z = W h + b, target y and softmax p::

    log p_y = z_y − logsumexp(z)        ∂ log p_y / ∂z = onehot(y) − p =: g
    ∂/∂h = gᵀ W       ∂/∂W = g hᵀ       ∂/∂b = g

Design:

* Rows (tokens) are processed in chunks of ``chunk_size``; one [chunk, V] buffer (fp32, or float64 for float64
  inputs) is allocated per pass and reused for every chunk, so only one chunk's logits exist at a time and no
  chunk pays for fresh memory (on a CPU, page faults). The buffer only ever holds exp(z − c) for a per-row
  constant c: the one-hot part of g and the per-row factors are applied to the [chunk, H] operands of the
  matmuls (∂/∂h_t = s_t W[y_t] − (s_t/Z_t) e_t W, ∂/∂W = Σ_t s_t onehot(y_t) h_tᵀ − eᵀ((s/Z) ⊙ h) with
  e = exp(z − c), Z = Σ_v e), so a chunk costs four elementwise passes over [chunk, V] (max, subtract, exp,
  sum) and none in a recompute beyond subtract and exp. Tokens whose target is ``ignore_index`` are skipped
  (log-prob 0, no gradient). The logit and hidden-gradient matmuls run in the inputs' dtype (tensor cores on
  a GPU); logits are cast to fp32 before the log-sum-exp, and every sum across chunks (weight and bias
  gradients, per-sequence log-probs) is accumulated in fp32 (float64 inputs stay float64). Plain PyTorch
  ops: CPU and CUDA alike.
* :func:`linear_logprobs` (per-token log-probs, any downstream loss). Trainable head: the forward pass keeps
  its inputs and the per-row log-sum-exp ([N] floats); the backward pass recomputes each chunk's logits,
  turns them into softmax with one subtract and one exp, and accumulates the three gradients, so the extra
  memory is the weight gradient + the hidden gradient + one chunk, at the price of one more matmul per chunk
  than the naive path (four instead of three). Frozen head (weight and bias do not require grad, the
  paper's LoRA setting): ∂ log p_t/∂h_t = W[y_t] − p_t W does not depend on the downstream loss, so the
  forward pass prepares it ([N, H]) and the backward pass only scales its rows by the incoming gradient: two
  matmuls per chunk, no recompute, no weight gradient.
* :func:`sequence_linear_logprobs` (per-sequence sums, the "fused" path). Once a sequence's log-probs are
  summed, the loss reaches every token of that sequence through one scalar ∂L/∂ log π_s, so the forward pass
  computes each sequence's gradients, chunk by chunk (chunks never straddle two sequences), into one fp32
  weight-gradient buffer per sequence, and the backward pass only combines them, in place:
  ∂L/∂W = Σ_s (∂L/∂ log π_s) · buffer_s is accumulated into the first buffer and every other buffer is freed
  once added; ∂L/∂h_t = (∂L/∂ log π_s(t)) · ∂ log p_t/∂h_t scales the prepared hidden gradient in place.
  Three matmuls per chunk, as many as the naive path, and none in the backward pass. Extra memory with a
  trainable head: one fp32 weight-sized buffer per sequence (the combined gradient reuses the first) plus one
  chunk. To bound it, at most :data:`FUSED_MAX_BUFFERS` sequences get a buffer; the weight gradient of any
  further sequence is recomputed in the backward pass, chunk by chunk, straight into the combined gradient
  (its hidden gradient is still prepared in the forward pass), so the extra memory is at most
  ``FUSED_MAX_BUFFERS`` × the weight gradient + one chunk, and each recomputed token costs one more matmul
  (DPO on 2 pairs: 4 sequences, 3 buffers, a quarter of the tokens recomputed). Per-sequence buffers were
  chosen over sequence-by-sequence accumulation into one buffer because the per-sequence scale is unknown
  until the backward pass. Because the buffers are consumed, the fused
  path allows one backward pass per forward pass (a second one raises ``RuntimeError``). With a frozen head
  no weight buffer is needed and any number of sequences is fused.

The chunk size, when not given, comes from a memory budget: one chunk's fp32 logits take at most
``max(DEFAULT_CHUNK_BYTES, 4·V·H / 8)`` bytes, i.e. 64 MiB or an eighth of an fp32 copy of the weight,
whichever is larger (:func:`auto_chunk_size`): 131 rows at V = 128k, H = 256 (about half the weight
gradient), 256 rows at V = 256k, H = 2048. Larger chunks mean fewer, larger matmuls (faster on a busy CPU or
a GPU), smaller ones less memory.

:func:`linear_logprobs_naive` is the straightforward reference (full logits, ``log_softmax``, ``gather``).
"""

from rmreg.ops._common import DEFAULT_CHUNK_BYTES, auto_chunk_size
from rmreg.ops.chunked import linear_logprobs
from rmreg.ops.fused import FUSED_MAX_BUFFERS, sequence_linear_logprobs
from rmreg.ops.reference import linear_logprobs_naive

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "FUSED_MAX_BUFFERS",
    "auto_chunk_size",
    "linear_logprobs",
    "linear_logprobs_naive",
    "sequence_linear_logprobs",
]
