"""GRM's text-generation regularizers on the retained LM head: the SFT and the DPO forms.

Both read summed response log-probs (:func:`rmreg.functional.sequence_logprobs` or
:func:`rmreg.ops.linear_logprobs`), one value per pair.

Reference:
    Rui Yang, Ruomeng Ding, Yong Lin, Huan Zhang, Tong Zhang. "Regularizing Hidden States Enables Learning
    Generalizable Reward Model for LLMs". NeurIPS 2024, Sec. 3.2. https://arxiv.org/abs/2406.10216
"""

import torch.nn.functional as F

from rmreg._typing import Float, Tensor, shape_checked
from rmreg.functional._checks import Reduction, _as_loss_dtype, _as_pair, _check_beta, _check_reduction, reduce

__all__ = ["dpo_regularizer", "sft_regularizer"]


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
