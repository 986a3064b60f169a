"""Losses on groups of K completions of one prompt: Plackett–Luce rankings and "one chosen among K".

A group is a row of a ``[groups, K]`` reward matrix; a bool ``mask`` of the same shape marks which slots hold a
completion, so groups of different sizes share one batch without padding the backbone's rows (only this small
matrix is padded). Masked slots are ignored wherever they sit: their values (padding, NaN) reach neither the loss
nor its gradient. Both losses equal Bradley–Terry exactly for K = 2.

Composition with GRM: the SFT regularizer applies to the best completion of each group (the first of a ranking,
the chosen one of a listwise group), the DPO regularizer to the best against each of the others.
"""

import torch

from rmreg._typing import Bool, Float, Int, Tensor, shape_checked
from rmreg.functional._checks import (
    Reduction,
    _as_loss_dtype,
    _as_masked_matrix,
    _check_reduction,
    reduce,
)

__all__ = ["listwise_softmax_loss", "plackett_luce_loss"]


def _check_group_sizes(mask: Tensor, minimum: int, what: str) -> None:
    sizes = mask.sum(dim=-1)
    small = (sizes < minimum).nonzero().flatten().tolist()
    if small:
        raise ValueError(
            f"groups {small[:10]}{' ...' if len(small) > 10 else ''} have too few {what} (sizes "
            f"{sizes[small[:10]].tolist()}, at least {minimum} needed); check the mask"
        )


def _as_num_ranked(num_ranked: int | Tensor | None, groups: int, device: torch.device) -> Tensor | None:
    if num_ranked is None:
        return None
    if isinstance(num_ranked, Tensor):
        if num_ranked.dtype not in (torch.int64, torch.int32) or num_ranked.shape != (groups,):
            raise ValueError(
                f"num_ranked must be an int or an integer tensor of shape [groups] = ({groups},), got "
                f"{num_ranked.dtype} of shape {tuple(num_ranked.shape)}"
            )
        counts = num_ranked.to(device)
    elif isinstance(num_ranked, int) and not isinstance(num_ranked, bool):
        counts = torch.full((groups,), num_ranked, device=device)
    else:
        raise ValueError(f"num_ranked must be an int or an integer tensor, got {type(num_ranked).__name__}")
    if bool((counts < 1).any()):
        raise ValueError(f"num_ranked must be >= 1 (the best completion at least), got {counts.min().item()}")
    return counts


@shape_checked
def plackett_luce_loss(
    rewards: Float[Tensor, "groups K"],
    mask: Bool[Tensor, "groups K"] | None = None,
    *,
    num_ranked: int | Int[Tensor, " groups"] | None = None,
    reduction: Reduction = "mean",
) -> Float[Tensor, "..."]:
    r"""Plackett–Luce negative log-likelihood of a ranking of each group's completions, best first.

    With the real completions of a group in ranked order :math:`r_{(1)}, \dots, r_{(n)}` (best first):

    .. math::
        \ell = -\sum_{k=1}^{m} \Big[ r_{(k)} - \log \sum_{j \ge k} e^{r_{(j)}} \Big]

    summed over positions, with :math:`m = n` for a full ranking (the last position contributes 0). A partial
    (top-m) ranking, where only the first ``num_ranked`` completions are ordered and the rest are merely worse,
    sums the first m positions. For n = 2 this is Bradley–Terry, :math:`-\log\sigma(r_{(1)} - r_{(2)})`.
    The loss is invariant to a shift of a group's rewards.

    Args:
        rewards: ``[groups, K]``, each row's real completions ordered best first.
        mask: ``[groups, K]`` bool, False where a slot holds no completion (anywhere in the row; the order of the
            True slots is the ranking). ``None``: every slot is real. Each group needs at least 2 completions.
        num_ranked: how many leading completions of each group are ranked (an int, or ``[groups]``); ``None``
            (default) for full rankings. Values ≥ n − 1 give the full ranking.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-group losses, ``[groups]``).

    Raises:
        ValueError: wrong rank or dtype, a mask of another shape, non-finite real rewards, a group with fewer
            than 2 completions, ``num_ranked`` < 1.

    Example:
        >>> import torch
        >>> from rmreg.functional import plackett_luce_loss
        >>> rewards = torch.tensor([[2.0, 1.0, 0.0], [1.0, 0.0, 9.0]])
        >>> mask = torch.tensor([[True, True, True], [True, True, False]])  # the second group has 2 completions
        >>> plackett_luce_loss(rewards, mask, reduction="none")
        tensor([0.7209, 0.3133])

    Reference:
        R. L. Plackett, "The Analysis of Permutations", Journal of the Royal Statistical Society C 24(2), 1975;
        R. D. Luce, "Individual Choice Behavior", 1959. As a listwise learning-to-rank loss: Xia et al.,
        "Listwise Approach to Learning to Rank: Theory and Algorithm" (ListMLE), ICML 2008.
    """
    _check_reduction(reduction)
    values, mask = _as_masked_matrix("rewards", rewards, "mask", mask, "groups, K")
    _check_group_sizes(mask, 2, "completions")
    groups, slots = values.shape
    counts = _as_num_ranked(num_ranked, groups, values.device)
    # members[g, k, j]: slot j is in the denominator of position k, i.e. j ≥ k and real. Slot k itself is always
    # a member, so every row of the logsumexp holds a finite value and its gradient stays finite; rows of masked
    # positions are dropped below.
    later = torch.ones(slots, slots, dtype=torch.bool, device=values.device).triu()
    itself = torch.eye(slots, dtype=torch.bool, device=values.device)
    members = later & (mask.unsqueeze(1) | itself)
    log_norm = torch.logsumexp(values.unsqueeze(1).masked_fill(~members, float("-inf")), dim=-1)
    scored = mask
    if counts is not None:
        scored = mask & (mask.cumsum(dim=-1) <= counts.unsqueeze(-1))
    per_group = -torch.where(scored, values - log_norm, 0.0).sum(dim=-1)
    return reduce(per_group, reduction)


@shape_checked
def listwise_softmax_loss(
    chosen: Float[Tensor, " groups"],
    rejected: Float[Tensor, "groups others"],
    mask: Bool[Tensor, "groups others"] | None = None,
    *,
    reduction: Reduction = "mean",
) -> Float[Tensor, "..."]:
    r"""Cross-entropy of picking the one chosen completion among K: RewardBench 2's "1 correct, K − 1 wrong" shape.

    .. math::
        \ell = -\log \frac{e^{r_c}}{e^{r_c} + \sum_{j} e^{r_{j}}}
             = \log\Big(e^{r_c} + \sum_j e^{r_j}\Big) - r_c

    over the group's real rejected completions :math:`r_j`. This is the first position of a Plackett–Luce
    ranking (:func:`plackett_luce_loss` with ``num_ranked=1``); with one rejected completion it is
    Bradley–Terry. The loss does not depend on the order of the rejected completions.

    Args:
        chosen: rewards of each group's chosen completion, ``[groups]``.
        rejected: rewards of the other completions, ``[groups, K - 1]``.
        mask: ``[groups, K - 1]`` bool, False where a slot of ``rejected`` holds no completion; ``None``: all
            real. Each group needs at least one rejected completion.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-group losses, ``[groups]``).

    Raises:
        ValueError: shapes disagree, non-finite real rewards, a group without a rejected completion.

    Example:
        >>> import torch
        >>> from rmreg.functional import listwise_softmax_loss
        >>> listwise_softmax_loss(torch.tensor([1.0]), torch.tensor([[0.0, 0.0, 0.0]]))  # log(e + 3) - 1
        tensor(0.7437)

    Reference:
        Malik et al., "RewardBench 2: Advancing Reward Model Evaluation", 2025 (its best-of-4 format); the
        top-one listwise loss of Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach"
        (ListNet), ICML 2007, with a one-hot target.
    """
    _check_reduction(reduction)
    chosen = _as_loss_dtype("chosen", chosen, dims="groups")
    others, mask = _as_masked_matrix("rejected", rejected, "mask", mask, "groups, K - 1")
    if others.shape[0] != chosen.shape[0]:
        raise ValueError(
            f"chosen [groups] and rejected [groups, K - 1] must have the same number of groups, got "
            f"{tuple(chosen.shape)} and {tuple(others.shape)}"
        )
    _check_group_sizes(mask, 1, "rejected completions")
    dtype = torch.promote_types(chosen.dtype, others.dtype)
    scores = torch.cat([chosen.to(dtype).unsqueeze(-1), others.to(dtype).masked_fill(~mask, float("-inf"))], dim=-1)
    return reduce(torch.logsumexp(scores, dim=-1) - scores[:, 0], reduction)
