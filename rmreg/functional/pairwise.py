"""Losses on preference pairs: Bradley–Terry (with margin and label smoothing) and per-pair reward centering.

``chosen[i]`` and ``rejected[i]`` belong to the same pair. The loss is computed with log-sigmoid in float32
(float64 inputs stay float64), so any finite input, rewards of ±1e4 included, gives a finite loss and gradient.

Reference:
    Rui Yang, Ruomeng Ding, Yong Lin, Huan Zhang, Tong Zhang. "Regularizing Hidden States Enables Learning
    Generalizable Reward Model for LLMs". NeurIPS 2024. https://arxiv.org/abs/2406.10216
"""

import torch
import torch.nn.functional as F

from rmreg._typing import Float, Tensor, shape_checked
from rmreg.functional._checks import Reduction, _as_loss_dtype, _as_pair, _check_reduction, reduce

__all__ = ["bradley_terry_loss", "reward_centering"]


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
