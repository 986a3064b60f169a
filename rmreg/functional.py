"""The math of GRM as pure functions: per-pair reward losses, regularizers and sequence log-probs.

Everything here is stateless and works on per-pair tensors: ``chosen[i]`` and ``rejected[i]`` belong to
the same pair. Losses are computed in float32 (float64 inputs stay float64) with log-sigmoid, so any finite
input, rewards of ±1e4 included, gives a finite loss and gradient. Every loss takes
``reduction="mean" | "sum" | "none"``.

Reference:
    Rui Yang, Ruomeng Ding, Yong Lin, Huan Zhang, Tong Zhang. "Regularizing Hidden States Enables Learning
    Generalizable Reward Model for LLMs". NeurIPS 2024. https://arxiv.org/abs/2406.10216
"""

from typing import Literal

import torch
import torch.nn.functional as F

from rmreg._typing import Float, Int, Tensor, shape_checked

__all__ = [
    "Reduction",
    "bradley_terry_loss",
    "dpo_regularizer",
    "reduce",
    "reward_centering",
    "sequence_logprobs",
    "sft_regularizer",
]

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


def reduce(per_pair: Float[Tensor, " pairs"], reduction: Reduction) -> Float[Tensor, "..."]:
    """Reduce per-pair losses: ``"mean"`` and ``"sum"`` give a scalar, ``"none"`` keeps ``[pairs]``."""
    if reduction == "mean":
        return per_pair.mean()
    if reduction == "sum":
        return per_pair.sum()
    if reduction == "none":
        return per_pair
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _as_loss_dtype(name: str, values: Tensor) -> Tensor:
    """Validate a per-pair vector and upcast half precision to float32 (float64 stays float64)."""
    if not isinstance(values, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(values).__name__}")
    if not values.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {values.dtype}")
    if values.ndim != 1:
        raise ValueError(f"{name} must have shape [pairs], got shape {tuple(values.shape)}")
    if values.numel() == 0:
        raise ValueError(f"{name} is empty: a loss needs at least one pair")
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} contains NaN or infinite values; check the model's outputs")
    return values if values.dtype == torch.float64 else values.float()


def _as_pair(chosen_name: str, chosen: Tensor, rejected_name: str, rejected: Tensor) -> tuple[Tensor, Tensor]:
    chosen = _as_loss_dtype(chosen_name, chosen)
    rejected = _as_loss_dtype(rejected_name, rejected)
    if chosen.shape != rejected.shape:
        raise ValueError(
            f"{chosen_name} and {rejected_name} must have the same shape [pairs], got "
            f"{tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    return chosen, rejected


def _check_beta(beta: float) -> None:
    if not (isinstance(beta, (int, float)) and beta > 0 and beta < float("inf")):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")


@shape_checked
def bradley_terry_loss(
    chosen: Float[Tensor, " pairs"],
    rejected: Float[Tensor, " pairs"],
    *,
    margin: Float[Tensor, " pairs"] | float | None = None,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> Float[Tensor, "..."]:
    r"""Bradley–Terry loss of a reward model on preference pairs, with optional margin and label smoothing.

    With :math:`d = r_c - r_r - m` (``m = 0`` without a margin) and smoothing :math:`\varepsilon`:

    .. math::
        \ell = -(1 - \varepsilon)\,\log\sigma(d) - \varepsilon\,\log\sigma(-d)

    ``margin`` is the margin baseline of GRM Table 1 (e.g. a rating difference, as in Llama 2's reward
    model); ``label_smoothing`` the label-smoothing baseline (ε = 0.1 in the paper). ε = 0.5 makes the loss
    blind to which response was chosen.

    Args:
        chosen: rewards of the chosen responses, ``[pairs]``.
        rejected: rewards of the rejected responses, ``[pairs]``.
        margin: per-pair margin ``m`` (``[pairs]``) or one number for all pairs.
        label_smoothing: ε in ``[0, 0.5]``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-pair losses).

    Returns:
        The reduced loss (float32, or float64 for float64 inputs).

    Raises:
        ValueError: shapes differ, a tensor is empty or non-finite, ε is outside ``[0, 0.5]``.

    Example:
        >>> import torch
        >>> from rmreg.functional import bradley_terry_loss
        >>> bradley_terry_loss(torch.tensor([0.0, 2.0]), torch.tensor([0.0, 0.0]), reduction="none")
        tensor([0.6931, 0.1269])

    Reference:
        Yang et al., "Regularizing Hidden States Enables Learning Generalizable Reward Model for LLMs",
        NeurIPS 2024, Eq. 1 and Table 1 baselines. https://arxiv.org/abs/2406.10216
    """
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5], got {label_smoothing!r}")
    chosen, rejected = _as_pair("chosen", chosen, "rejected", rejected)
    difference = chosen - rejected
    if margin is not None:
        if isinstance(margin, Tensor):
            margin = _as_loss_dtype("margin", margin)
            if margin.shape != difference.shape:
                raise ValueError(
                    f"margin must have shape [pairs] = {tuple(difference.shape)}, got {tuple(margin.shape)}"
                )
        elif not torch.isfinite(torch.tensor(float(margin))):
            raise ValueError(f"margin must be finite, got {margin!r}")
        difference = difference - margin
    per_pair = -F.logsigmoid(difference)
    if label_smoothing > 0.0:
        per_pair = (1.0 - label_smoothing) * per_pair - label_smoothing * F.logsigmoid(-difference)
    return reduce(per_pair, reduction)


@shape_checked
def reward_centering(
    chosen: Float[Tensor, " pairs"],
    rejected: Float[Tensor, " pairs"],
    *,
    reduction: Reduction = "mean",
) -> Float[Tensor, "..."]:
    r"""Centering penalty that pulls the rewards of each pair towards zero mean.

    .. math::
        \ell = (r_c + r_r)^2

    Bradley–Terry only sees ``r_c - r_r``, so rewards can drift by a constant; this term pins it, as TRL's
    ``center_rewards_coefficient`` does (Eisenstein et al., 2023). Add it with a small weight (e.g. 0.01).

    Args:
        chosen: rewards of the chosen responses, ``[pairs]``.
        rejected: rewards of the rejected responses, ``[pairs]``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> import torch
        >>> from rmreg.functional import reward_centering
        >>> reward_centering(torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 1.0]), reduction="none")
        tensor([0., 9.])
    """
    _check_reduction(reduction)
    chosen, rejected = _as_pair("chosen", chosen, "rejected", rejected)
    return reduce((chosen + rejected).square(), reduction)


@shape_checked
def sft_regularizer(
    chosen_logps: Float[Tensor, " pairs"],
    *,
    beta: float = 0.1,
    log_sigmoid: bool = True,
    reduction: Reduction = "mean",
) -> Float[Tensor, "..."]:
    r"""GRM's SFT regularizer on the chosen responses' log-likelihood under the retained LM head.

    .. math::
        \ell = -\log\sigma\big(\beta \log\pi_\theta(y_c \mid x)\big)
        \qquad\text{or, with ``log_sigmoid=False``,}\qquad \ell = -\log\pi_\theta(y_c \mid x)

    ``log π(y_c | x)`` is the SUM of the response tokens' log-probs (:func:`sequence_logprobs`). The
    log-sigmoid form is GRM's default "sft" variant (the DPO regularizer without rejected response and
    reference); ``log_sigmoid=False`` is plain negative log-likelihood ("grm-sft-nll").

    Args:
        chosen_logps: summed log-probs of the chosen responses, ``[pairs]`` (≤ 0).
        beta: β > 0 (0.1 in the paper); ignored by the NLL form.
        log_sigmoid: the log-sigmoid form (default) or plain NLL.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> import torch
        >>> from rmreg.functional import sft_regularizer
        >>> sft_regularizer(torch.tensor([0.0, -20.0]), beta=0.1, reduction="none")
        tensor([0.6931, 2.1269])

    Reference:
        Yang et al., NeurIPS 2024, Sec. 3.2, the SFT regularization term. https://arxiv.org/abs/2406.10216
    """
    _check_reduction(reduction)
    _check_beta(beta)
    chosen_logps = _as_loss_dtype("chosen_logps", chosen_logps)
    per_pair = -F.logsigmoid(beta * chosen_logps) if log_sigmoid else -chosen_logps
    return reduce(per_pair, reduction)


@shape_checked
def dpo_regularizer(
    chosen_logps: Float[Tensor, " pairs"],
    rejected_logps: Float[Tensor, " pairs"],
    ref_chosen_logps: Float[Tensor, " pairs"] | None = None,
    ref_rejected_logps: Float[Tensor, " pairs"] | None = None,
    *,
    beta: float = 0.1,
    reduction: Reduction = "mean",
) -> Float[Tensor, "..."]:
    r"""GRM's DPO regularizer on the retained LM head (with a reference model, or reference-free).

    .. math::
        \ell = -\log\sigma\Big(\beta\big[(\log\pi_\theta(y_c|x) - \log\pi_{ref}(y_c|x))
               - (\log\pi_\theta(y_r|x) - \log\pi_{ref}(y_r|x))\big]\Big)

    Without reference log-probs (both ``None``) the reference terms are 0: the "dpo-noref" variant.

    Args:
        chosen_logps: summed policy log-probs of the chosen responses, ``[pairs]``.
        rejected_logps: summed policy log-probs of the rejected responses, ``[pairs]``.
        ref_chosen_logps: the reference model's, ``[pairs]``, or ``None`` for reference-free.
        ref_rejected_logps: the reference model's, ``[pairs]``, or ``None`` for reference-free.
        beta: β > 0 (0.1 in the paper).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError: only one of the two reference tensors is given, shapes differ, non-finite values.

    Example:
        >>> import torch
        >>> from rmreg.functional import dpo_regularizer
        >>> dpo_regularizer(torch.tensor([-5.0]), torch.tensor([-5.0]))
        tensor(0.6931)

    Reference:
        Yang et al., NeurIPS 2024, Sec. 3.2, the DPO regularization term; Rafailov et al., "Direct Preference
        Optimization", NeurIPS 2023. https://arxiv.org/abs/2406.10216
    """
    _check_reduction(reduction)
    _check_beta(beta)
    chosen_logps, rejected_logps = _as_pair("chosen_logps", chosen_logps, "rejected_logps", rejected_logps)
    log_ratio = chosen_logps - rejected_logps
    if (ref_chosen_logps is None) != (ref_rejected_logps is None):
        raise ValueError(
            "pass both ref_chosen_logps and ref_rejected_logps (DPO with reference) or neither "
            "(reference-free DPO); got only one"
        )
    if ref_chosen_logps is not None and ref_rejected_logps is not None:
        ref_chosen, ref_rejected = _as_pair(
            "ref_chosen_logps", ref_chosen_logps, "ref_rejected_logps", ref_rejected_logps
        )
        if ref_chosen.shape != log_ratio.shape:
            raise ValueError(
                f"reference log-probs must have the policy's shape {tuple(log_ratio.shape)}, "
                f"got {tuple(ref_chosen.shape)}"
            )
        log_ratio = log_ratio - (ref_chosen - ref_rejected).to(log_ratio.dtype)
    return reduce(-F.logsigmoid(beta * log_ratio), reduction)


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
