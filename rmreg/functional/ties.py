"""Preference pairs that may be tied: the Rao–Kupper and Davidson extensions of Bradley–Terry.

Both give three outcomes for a pair with reward difference :math:`d = r_c - r_r` (chosen ≻ rejected, the reverse,
a tie) and reduce to Bradley–Terry on untied pairs as their tie parameter vanishes (θ → 1, ν → 0). The loss of a
tied pair is −log P(tie) (symmetric in the two rewards, so which one is called "chosen" does not matter); of an
untied pair −log P(chosen ≻ rejected). Everything is computed in log space from log-sigmoid and ``log1p``, so any
finite rewards give a finite loss and gradient.
"""

import torch
import torch.nn.functional as F

from rmreg._typing import Bool, Float, Tensor, shape_checked
from rmreg.functional._checks import (
    Reduction,
    _as_flags,
    _as_hyperparameter,
    _as_pair,
    _check_reduction,
    reduce,
)

__all__ = ["davidson_loss", "rao_kupper_loss"]


def _require_positive_where_tied(name: str, value: Tensor, tie: Tensor, bound: float, why: str) -> None:
    tied_values = value.expand(tie.shape)[tie]
    if bool((tied_values <= bound).any()):
        raise ValueError(f"{name} must be > {bound:g} where pairs are tied: {why}")


@shape_checked
def rao_kupper_loss(
    chosen: Float[Tensor, " pairs"],
    rejected: Float[Tensor, " pairs"],
    tie: Bool[Tensor, " pairs"],
    *,
    theta: float | Float[Tensor, ""] | Float[Tensor, " pairs"],
    reduction: Reduction = "mean",
) -> Float[Tensor, "..."]:
    r"""Rao–Kupper loss: Bradley–Terry with a tie outcome whose width is set by θ ≥ 1.

    With :math:`d = r_c - r_r`:

    .. math::
        P(c \succ r) = \sigma(d - \log\theta), \qquad
        P(\text{tie}) = 1 - \sigma(d - \log\theta) - \sigma(-d - \log\theta)
                      = (\theta^2 - 1)\,\sigma(d - \log\theta)\,\sigma(-d - \log\theta)

    and the loss of a pair is :math:`-\log P(\text{tie})` if it is tied, :math:`-\log P(c \succ r)` otherwise.
    The product form gives :math:`\log P(\text{tie}) = \log(\theta^2 - 1) + \log\sigma(d - \log\theta) +
    \log\sigma(-d - \log\theta)`, computed with ``log(θ² − 1) = 2 log θ + log(−expm1(−2 log θ))``, so rewards of
    any magnitude and θ close to 1 stay accurate. θ = 1 is Bradley–Terry exactly (and leaves no room for a tie).

    Args:
        chosen: rewards of the first response of each pair (the preferred one if the pair is not tied), ``[pairs]``.
        rejected: rewards of the second response, ``[pairs]``.
        tie: True where the pair is tied, ``[pairs]`` bool.
        theta: θ ≥ 1 (θ > 1 if any pair is tied): a number, or a tensor (``[]`` or ``[pairs]``) to learn it; keep
            a learned θ above 1 by a parametrization such as ``1 + softplus(w)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-pair losses).

    Raises:
        ValueError: shapes differ, non-finite rewards, ``tie`` is not bool, θ < 1, θ = 1 on a tied pair.

    Example:
        >>> import torch
        >>> from rmreg.functional import rao_kupper_loss
        >>> rao_kupper_loss(torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([False, True]),
        ...                 theta=3.0, reduction="none")  # P(win) = 1/4, P(tie) = 1/2
        tensor([1.3863, 0.6931])

    Reference:
        P. V. Rao and L. L. Kupper, "Ties in Paired-Comparison Experiments: A Generalization of the Bradley-Terry
        Model", Journal of the American Statistical Association 62(317), 1967.
    """
    _check_reduction(reduction)
    chosen, rejected = _as_pair("chosen", chosen, "rejected", rejected)
    tie = _as_flags("tie", tie, chosen)
    theta = _as_hyperparameter("theta", theta, 1.0, chosen)
    difference = chosen - rejected
    log_theta = theta.log()
    log_win = F.logsigmoid(difference - log_theta)
    if not bool(tie.any()):
        return reduce(-log_win, reduction)
    _require_positive_where_tied("theta", theta, tie, 1.0, "theta = 1 gives a tie probability 0")
    safe_log_theta = torch.where(tie, log_theta, 1.0)  # keeps the unused branch finite (and its gradient 0)
    log_tie = (
        2 * safe_log_theta
        + torch.log(-torch.expm1(-2 * safe_log_theta))
        + F.logsigmoid(difference - safe_log_theta)
        + F.logsigmoid(-difference - safe_log_theta)
    )
    return reduce(-torch.where(tie, log_tie, log_win), reduction)


@shape_checked
def davidson_loss(
    chosen: Float[Tensor, " pairs"],
    rejected: Float[Tensor, " pairs"],
    tie: Bool[Tensor, " pairs"],
    *,
    nu: float | Float[Tensor, ""] | Float[Tensor, " pairs"],
    reduction: Reduction = "mean",
) -> Float[Tensor, "..."]:
    r"""Davidson loss: Bradley–Terry with a tie outcome proportional to the geometric mean of the strengths.

    With :math:`d = r_c - r_r` (strengths :math:`e^{r}`, divided through by :math:`e^{(r_c + r_r)/2}`):

    .. math::
        P(c \succ r) = \frac{e^{d/2}}{e^{d/2} + e^{-d/2} + \nu}, \qquad
        P(\text{tie}) = \frac{\nu}{e^{d/2} + e^{-d/2} + \nu}, \qquad \nu \ge 0

    and the loss of a pair is :math:`-\log P(\text{tie})` if it is tied, :math:`-\log P(c \succ r)` otherwise.
    The log-normalizer is computed as :math:`|d|/2 + \log(1 + e^{-|d|} + \nu e^{-|d|/2})`, finite for any
    finite rewards and differentiable in ν at ν = 0. ν = 0 is Bradley–Terry exactly (with no room for a tie).

    Args:
        chosen: rewards of the first response of each pair (the preferred one if the pair is not tied), ``[pairs]``.
        rejected: rewards of the second response, ``[pairs]``.
        tie: True where the pair is tied, ``[pairs]`` bool.
        nu: ν ≥ 0 (ν > 0 if any pair is tied): a number, or a tensor (``[]`` or ``[pairs]``) to learn it; keep a
            learned ν positive by a parametrization such as ``softplus(w)`` or ``exp(w)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-pair losses).

    Raises:
        ValueError: shapes differ, non-finite rewards, ``tie`` is not bool, ν < 0, ν = 0 on a tied pair.

    Example:
        >>> import torch
        >>> from rmreg.functional import davidson_loss
        >>> davidson_loss(torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([False, True]),
        ...               nu=2.0, reduction="none")  # P(win) = 1/4, P(tie) = 1/2
        tensor([1.3863, 0.6931])

    Reference:
        R. R. Davidson, "On Extending the Bradley-Terry Model to Accommodate Ties in Paired Comparison
        Experiments", Journal of the American Statistical Association 65(329), 1970.
    """
    _check_reduction(reduction)
    chosen, rejected = _as_pair("chosen", chosen, "rejected", rejected)
    tie = _as_flags("tie", tie, chosen)
    nu = _as_hyperparameter("nu", nu, 0.0, chosen)
    difference = chosen - rejected
    half_gap = difference.abs() / 2
    log_norm = half_gap + torch.log1p(torch.exp(-2 * half_gap) + nu * torch.exp(-half_gap))
    log_win = difference / 2 - log_norm
    if not bool(tie.any()):
        return reduce(-log_win, reduction)
    _require_positive_where_tied("nu", nu, tie, 0.0, "nu = 0 gives a tie probability 0")
    log_tie = torch.where(tie, nu, 1.0).log() - log_norm  # ν of untied pairs replaced: finite unused branch
    return reduce(-torch.where(tie, log_tie, log_win), reduction)
