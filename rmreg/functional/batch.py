"""Regularizers on all the rewards of a batch at once."""

import torch

from rmreg._typing import Float, Tensor, shape_checked, value_checks_enabled
from rmreg.functional._checks import _check_float_tensor, _loss_dtype

__all__ = ["batch_sum_regularizer"]


@shape_checked
def batch_sum_regularizer(rewards: Float[Tensor, "*shape"]) -> Float[Tensor, ""]:
    r"""Batch-wise sum-to-zero regularization (BSR): the squared mean of every reward in the batch.

    .. math::
        \ell = \Big(\frac{1}{N} \sum_{i=1}^{N} r_i\Big)^2

    over all N rewards (chosen and rejected of every pair, or every completion of every group). It pins the
    reward scale's free offset, which Bradley–Terry cannot see, with one constraint per batch. Per-pair
    centering (:func:`reward_centering`, :math:`(r_c + r_r)^2` for each pair) is stronger: it pulls every pair's
    mean to 0, while BSR lets pairs sit anywhere as long as the batch averages 0, so it leaves the spread of
    rewards across prompts free. On pairs, mean centering ≥ 4·BSR of the same rewards (Jensen), with equality
    when every pair has the same mean.

    The paper's code weights this by λ times the per-device batch size in pairs; here the weight is the
    term's own, so the paper's λ with batch size B corresponds to a weight of λ·B.

    Args:
        rewards: rewards of any shape (non-empty).

    Returns:
        A scalar (float32, or float64 for float64 rewards).

    Raises:
        ValueError: empty, non-floating or non-finite rewards.

    Example:
        >>> import torch
        >>> from rmreg.functional import batch_sum_regularizer
        >>> batch_sum_regularizer(torch.tensor([[3.0, -1.0], [2.0, 0.0]]))  # mean 1
        tensor(1.)

    Reference:
        Hong et al., "On the Robustness of Reward Models for Language Model Alignment", ICML 2025, Sec. 4.2.
        https://arxiv.org/abs/2505.07271
    """
    _check_float_tensor("rewards", rewards)
    if value_checks_enabled() and not bool(torch.isfinite(rewards).all()):
        raise ValueError("rewards contain NaN or infinite values; check the model's outputs")
    return _loss_dtype(rewards).mean().square()
