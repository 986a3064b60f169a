"""Pointwise losses on ratings: one predicted score per item and attribute, against a rating that may be missing.

``predicted`` and the ratings are ``[items, attributes]`` (e.g. a multi-output reward head's scores for the
helpfulness, correctness, ... of each response); ``mask`` is False where an item has no rating for an attribute,
and the value there (NaN, a placeholder level) reaches neither the loss nor its gradient. ``reduction="mean"``
averages over the observed ratings only; ``"none"`` returns ``[items, attributes]`` with 0 where a rating is
missing.
"""

import torch
import torch.nn.functional as F

from rmreg._typing import Bool, Float, Int, Tensor, shape_checked
from rmreg.functional._checks import Reduction, _as_masked_matrix, _check_float_tensor, _check_reduction, _loss_dtype

__all__ = ["ordinal_rating_loss", "rating_mse_loss"]


def _reduce_observed(per_rating: Tensor, mask: Tensor, reduction: Reduction) -> Tensor:
    observed = int(mask.sum())
    if observed == 0:
        raise ValueError("mask marks no rating as observed: a rating loss needs at least one rating")
    if reduction == "mean":
        return per_rating.sum() / observed
    if reduction == "sum":
        return per_rating.sum()
    return per_rating


@shape_checked
def rating_mse_loss(
    predicted: Float[Tensor, "items attributes"],
    target: Float[Tensor, "items attributes"],
    mask: Bool[Tensor, "items attributes"] | None = None,
    *,
    reduction: Reduction = "mean",
) -> Float[Tensor, "..."]:
    r"""Squared error of predicted ratings per attribute, missing ratings masked out.

    .. math::
        \ell_{ia} = (f_{ia} - y_{ia})^2 \ \text{where rating } y_{ia} \text{ is observed}, \qquad
        \ell_{\text{mean}} = \frac{\sum_{ia} m_{ia}\,\ell_{ia}}{\sum_{ia} m_{ia}}

    Regression on per-attribute ratings is how HelpSteer2's and ArmoRM's multi-attribute reward models are
    trained; a scalar reward for a policy is then a weighted combination of the attributes.

    Args:
        predicted: ``[items, attributes]`` predicted ratings.
        target: ``[items, attributes]`` ratings (any value, NaN included, where ``mask`` is False).
        mask: ``[items, attributes]`` bool, True where the rating is observed; ``None``: all observed.
        reduction: ``"mean"`` (over observed ratings), ``"sum"`` or ``"none"`` (``[items, attributes]``, 0 where
            missing).

    Raises:
        ValueError: shapes differ, an observed value is NaN or infinite, no rating is observed.

    Example:
        >>> import torch
        >>> from rmreg.functional import rating_mse_loss
        >>> predicted = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
        >>> target = torch.tensor([[2.0, float("nan")], [3.0, 2.0]])
        >>> rating_mse_loss(predicted, target, ~target.isnan())  # (1 + 0 + 4) / 3
        tensor(1.6667)

    Reference:
        Wang et al., "HelpSteer2: Open-source dataset for training top-performing reward models", 2024,
        https://arxiv.org/abs/2406.08673; Wang et al., "Interpretable Preferences via Multi-Objective Reward
        Modeling and Mixture-of-Experts" (ArmoRM), 2024, https://arxiv.org/abs/2406.12845.
    """
    _check_reduction(reduction)
    if isinstance(predicted, Tensor) and isinstance(target, Tensor) and predicted.shape != target.shape:
        raise ValueError(
            f"predicted and target must have the same shape [items, attributes], got {tuple(predicted.shape)} "
            f"and {tuple(target.shape)}"
        )
    predicted, mask = _as_masked_matrix("predicted", predicted, "mask", mask, "items, attributes")
    target, _ = _as_masked_matrix("target", target, "mask", mask, "items, attributes")
    per_rating = torch.where(mask, (predicted - target.to(predicted.dtype)).square(), 0.0)
    return _reduce_observed(per_rating, mask, reduction)


def _as_thresholds(thresholds: Tensor, attributes: int) -> Tensor:
    _check_float_tensor("thresholds", thresholds)
    if thresholds.ndim not in (1, 2) or (thresholds.ndim == 2 and thresholds.shape[0] != attributes):
        raise ValueError(
            f"thresholds must have shape [levels - 1] (shared) or [attributes, levels - 1] = ({attributes}, ...), "
            f"got {tuple(thresholds.shape)}"
        )
    if not bool(torch.isfinite(thresholds).all()):
        raise ValueError("thresholds contain NaN or infinite values")
    if bool((thresholds.diff(dim=-1) <= 0).any()):
        raise ValueError(
            "thresholds must be strictly increasing along their last dimension (a learned set can be kept ordered "
            "as b_1 + cumsum(softplus(w)))"
        )
    return _loss_dtype(thresholds).expand(attributes, thresholds.shape[-1])


@shape_checked
def ordinal_rating_loss(
    predicted: Float[Tensor, "items attributes"],
    level: Int[Tensor, "items attributes"],
    thresholds: Float[Tensor, " cuts"] | Float[Tensor, "attributes cuts"],
    mask: Bool[Tensor, "items attributes"] | None = None,
    *,
    reduction: Reduction = "mean",
) -> Float[Tensor, "..."]:
    r"""Cumulative-link (ordinal logistic, proportional-odds) loss of a predicted score against a rating level.

    Levels are :math:`0, \dots, L - 1` and the ordered thresholds :math:`b_1 < \dots < b_{L-1}` cut the score
    line into them: :math:`P(y \le l \mid f) = \sigma(b_{l+1} - f)`, so

    .. math::
        P(y = l \mid f) = \sigma(b_{l+1} - f) - \sigma(b_l - f), \qquad b_0 = -\infty,\ b_L = +\infty

    and the loss is :math:`-\log P(y = l \mid f)`. It is computed in log space as
    :math:`\log\sigma(b_{l+1} - f) + \log\sigma(f - b_l) + \log(1 - e^{-(b_{l+1} - b_l)})` (the outer levels
    keep only their one sigmoid), so any finite score gives a finite loss. Unlike MSE it uses only the order of
    the levels, not their spacing; shifting the scores and the thresholds together changes nothing.

    Args:
        predicted: ``[items, attributes]`` scores f.
        level: ``[items, attributes]`` integer rating levels in ``[0, L)`` (any value where ``mask`` is False).
        thresholds: ``[L - 1]`` cut points shared by all attributes, or ``[attributes, L - 1]``; strictly
            increasing; learnable (keep them ordered by a parametrization such as ``b_1 + cumsum(softplus(w))``).
        mask: ``[items, attributes]`` bool, True where the rating is observed; ``None``: all observed.
        reduction: ``"mean"`` (over observed ratings), ``"sum"`` or ``"none"`` (``[items, attributes]``, 0 where
            missing).

    Raises:
        ValueError: shapes differ, a level outside ``[0, L)``, thresholds not strictly increasing, non-finite
            values, no rating observed.

    Example:
        >>> import torch
        >>> from rmreg.functional import ordinal_rating_loss
        >>> thresholds = torch.tensor([-1.0, 1.0])  # three levels: 0, 1, 2
        >>> ordinal_rating_loss(torch.zeros(1, 3), torch.tensor([[0, 1, 2]]), thresholds, reduction="none")
        tensor([[1.3133, 0.7719, 1.3133]])

    Reference:
        P. McCullagh, "Regression Models for Ordinal Data", Journal of the Royal Statistical Society B 42(2),
        1980.
    """
    _check_reduction(reduction)
    scores, mask = _as_masked_matrix("predicted", predicted, "mask", mask, "items, attributes")
    if not isinstance(level, Tensor) or level.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"level must be an integer tensor of rating levels, got {getattr(level, 'dtype', level)!r}")
    if level.shape != scores.shape:
        raise ValueError(
            f"level must have the shape of predicted [items, attributes] = {tuple(scores.shape)}, got "
            f"{tuple(level.shape)}"
        )
    cuts = _as_thresholds(thresholds, scores.shape[1]).to(device=scores.device)
    num_cuts = cuts.shape[-1]
    levels = torch.where(mask, level.to(scores.device).long(), 0)
    outside = (levels < 0) | (levels > num_cuts)
    if bool(outside.any()):
        row, column = (int(i) for i in outside.nonzero()[0])
        raise ValueError(
            f"level {int(levels[row, column])} at row {row}, column {column} is outside [0, {num_cuts + 1}) "
            f"({num_cuts} thresholds give {num_cuts + 1} levels)"
        )
    dtype = torch.promote_types(scores.dtype, cuts.dtype)
    scores = scores.to(dtype)
    per_item_cuts = cuts.to(dtype).unsqueeze(0).expand(scores.shape[0], -1, -1)
    upper = per_item_cuts.gather(-1, levels.clamp(max=num_cuts - 1).unsqueeze(-1)).squeeze(-1)
    lower = per_item_cuts.gather(-1, (levels - 1).clamp(min=0).unsqueeze(-1)).squeeze(-1)
    has_upper, has_lower = levels < num_cuts, levels > 0
    interior = has_upper & has_lower
    gap = torch.where(interior, upper - lower, 1.0)  # > 0; outer levels get a finite unused value
    log_prob = (
        torch.where(has_upper, F.logsigmoid(upper - scores), 0.0)
        + torch.where(has_lower, F.logsigmoid(scores - lower), 0.0)
        + torch.where(interior, torch.log(-torch.expm1(-gap)), 0.0)
    )
    return _reduce_observed(torch.where(mask, -log_prob, 0.0), mask, reduction)
