"""From a batch of ranked groups to the named inputs of ranking terms (K-wise losses, GRM on the best completion).

A batch of groups (:class:`~rmreg.data.GroupCollator`) has one row per completion, group by group, best first, and
two ``[groups, K]`` columns: ``group_index`` (the row of each slot, -1 on empty slots) and ``group_mask``. The
backbone runs once over the real completions; the rewards are gathered into ``group_rewards`` ``[groups, K]``. The
objective's "pairs" are the groups: ``chosen_*`` is each group's best completion and ``rejected_*`` its worst, so
:class:`~rmreg.objectives.SFTRegularizer` regularizes the best completion (the paper's SFT term), and
:class:`~rmreg.objectives.GroupDPORegularizer` reads ``group_logps`` (the best against each of the others).
"""

from collections.abc import Mapping

import torch
from torch import nn

from rmreg._typing import Tensor
from rmreg.heads import RetainedLMHead, RewardHead
from rmreg.model import causal_lm as lm
from rmreg.model.batch_checks import check_inputs, check_values
from rmreg.model.reference import ReferencePolicy
from rmreg.objectives import Needs, PairInputs

__all__ = ["GROUP_COLUMNS", "compute_group_inputs", "is_group_batch"]

GROUP_COLUMNS = ("group_index", "group_mask")
"""The batch columns that make a batch one of ranked groups."""


def is_group_batch(columns: Mapping[str, Tensor]) -> bool:
    """Whether a batch's columns describe ranked groups (``group_index`` is there)."""
    return "group_index" in columns


def _check_structure(input_ids: Tensor, index: Tensor, mask: Tensor) -> list[tuple[Tensor, str]]:
    if index.ndim != 2 or index.dtype != torch.long or mask.shape != index.shape or mask.dtype != torch.bool:
        raise ValueError(
            "group_index must be int64 [groups, K] and group_mask bool of the same shape; got "
            f"{index.dtype} {tuple(index.shape)} and {mask.dtype} {tuple(mask.shape)}"
        )
    if index.shape[1] < 2:
        raise ValueError(f"ranked groups need K >= 2 completions; got group_index of shape {tuple(index.shape)}")
    rows = input_ids.shape[0]
    return [
        ((mask != (index >= 0)).any(), "group_mask must be True exactly where group_index holds a row (>= 0)"),
        ((index >= rows).any(), f"group_index points past the batch's {rows} rows"),
        ((mask.sum(-1) < 2).any(), "every group needs at least 2 completions (group_mask)"),
        ((~mask[:, 0]).any(), "each group's best completion must sit in slot 0 (group_mask[:, 0] all True)"),
    ]


def _last_real(mask: Tensor) -> Tensor:
    """The slot of each group's last (worst) real completion."""
    return mask.shape[1] - 1 - mask.flip(-1).int().argmax(-1)


def compute_group_inputs(
    *,
    causal_lm: nn.Module,
    reward_head: RewardHead,
    lm_head: RetainedLMHead | None,
    reference: ReferencePolicy,
    input_ids: Tensor,
    attention_mask: Tensor,
    labels: Tensor | None,
    needs: Needs,
    columns: Mapping[str, Tensor],
) -> PairInputs:
    """The groups' rewards and exactly the inputs ``needs`` names, as :class:`PairInputs` with one entry per group.

    Raises:
        ValueError: a malformed batch or group structure, or a missing input, before any compute.
    """
    index, mask = columns["group_index"], columns.get("group_mask")
    if mask is None:
        raise ValueError("a batch of groups needs group_mask [groups, K] beside group_index")
    if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(f"input_ids and attention_mask must both be [rows, seq]; got {tuple(input_ids.shape)}")
    check_inputs(needs, labels, columns, int(index.shape[0]), passable=frozenset())
    if needs.token_logps:
        raise ValueError("per-token log-probs are not computed for ranked groups; read group_logps or chosen_logps")
    wants_logps = needs.policy_logps or "group_logps" in needs
    check_values(attention_mask, labels, columns, _check_structure(input_ids, index, mask))
    slots = index.clamp(min=0)
    best, worst = slots[:, 0], slots.gather(1, _last_real(mask)[:, None])[:, 0]
    values: dict[str, Tensor] = dict(columns)
    if needs.reference_logps or "ref_group_logps" in needs:
        assert labels is not None
        ref = reference.row_logps(causal_lm, input_ids, attention_mask, labels)
        values.update(ref_chosen_logps=ref[best], ref_rejected_logps=ref[worst], ref_group_logps=ref[slots])
    hidden = lm.final_hidden_states(causal_lm, input_ids, attention_mask)
    pooled = lm.pool_last(hidden, attention_mask)
    rewards = reward_head(pooled)
    values["group_rewards"] = rewards[slots]
    if needs.hidden_states:
        values.update(chosen_hidden=pooled[best].float(), rejected_hidden=pooled[worst].float())
    if wants_logps:
        assert labels is not None and lm_head is not None
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        logps = lm.response_logprobs(hidden, labels, rows, lm_head)
        values.update(chosen_logps=logps[best], rejected_logps=logps[worst], group_logps=logps[slots])
    return PairInputs(rewards[best], rewards[worst], **values)
