"""Summed response log-probs of a causal LM from its logits: the naive reference path."""

import torch

from rmreg._typing import Float, Int, Tensor, shape_checked

__all__ = ["sequence_logprobs"]


@shape_checked
def sequence_logprobs(
    logits: Float[Tensor, "rows seq vocab"],
    labels: Int[Tensor, "rows seq"],
    *,
    ignore_index: int = -100,
) -> Float[Tensor, " rows"]:
    r"""Summed float32 log-probs of each row's response tokens, shifted as Hugging Face causal LMs do.

    .. math::
        \log\pi(y \mid x) = \sum_{t:\ \mathrm{labels}_{t+1} \ne \mathrm{ignore}}
            \log \mathrm{softmax}(\mathrm{logits}_t)[\mathrm{labels}_{t+1}]

    The logits at position ``t`` predict the token at ``t + 1``; prompt and padding positions carry
    ``ignore_index`` in ``labels`` and count for nothing. The log-softmax runs in float32 (float64 stays
    float64) whatever the logits' dtype. This is the naive reference path: it materializes log-softmax over
    the vocabulary; :func:`rmreg.ops.linear_logprobs` computes the same from hidden states without it.

    Args:
        logits: ``[rows, seq, vocab]``.
        labels: ``[rows, seq]`` token ids, ``ignore_index`` on prompt and padding.
        ignore_index: label value that is skipped (−100, as in Hugging Face).

    Raises:
        ValueError: a row has no response token, a label is out of ``[0, vocab)``, shapes differ, or the
            logits are not finite.

    Example:
        >>> import torch
        >>> from rmreg.functional import sequence_logprobs
        >>> logits = torch.zeros(1, 3, 4)  # uniform over 4 tokens
        >>> sequence_logprobs(logits, torch.tensor([[-100, 2, 3]]))  # two response tokens: 2·log(1/4)
        tensor([-2.7726])
    """
    if logits.ndim != 3 or labels.ndim != 2 or logits.shape[:2] != labels.shape:
        raise ValueError(
            f"logits must be [rows, seq, vocab] and labels [rows, seq] with matching rows and seq; got "
            f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)}"
        )
    if labels.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"labels must be an integer tensor of token ids, got dtype {labels.dtype}")
    targets = labels[:, 1:]
    mask = targets != ignore_index
    empty_rows = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty_rows:
        raise ValueError(
            f"rows {empty_rows} have no response token (every shifted label is {ignore_index}); a response "
            "was empty or truncated away"
        )
    vocab = logits.shape[-1]
    if bool(((targets[mask] < 0) | (targets[mask] >= vocab)).any()):
        raise ValueError(f"labels must be token ids in [0, {vocab}) or {ignore_index}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits contain NaN or infinite values")
    compute_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    log_probs = torch.log_softmax(logits[:, :-1].to(compute_dtype), dim=-1)
    safe_targets = targets.masked_fill(~mask, 0).long()
    token_logps = log_probs.gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)
    return (token_logps * mask).sum(dim=1)
