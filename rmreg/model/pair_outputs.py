"""From a batch of ``2·P`` rows to the named per-pair inputs that the objective's terms read.

The backbone runs once over the batch; the reward head reads each row's last real token (all K heads of a
:class:`~rmreg.heads.RewardEnsemble` read the same pooled states, so one backbone forward serves them all); the
retained LM head runs only on the response tokens of the rows some input needs (chosen for the SFT regularizer,
both for DPO, none for Bradley–Terry); the reference runs only when reference log-probs are needed and the batch
does not carry them. See :mod:`rmreg.objectives.inputs` for the names.

The scalar rewards ``chosen_rewards``/``rejected_rewards`` are the head's :meth:`~rmreg.RewardHead.combine` of its
outputs (one output as it is; the weighted attributes of a multi-output head; an ensemble's mean); the outputs
themselves are ``*_attribute_rewards`` (a multi-output head) or ``*_head_rewards`` (an ensemble), from the same
forward pass (the same dropout draw) as the scalar.
"""

from collections.abc import Mapping

import torch
from torch import nn

from rmreg._typing import Tensor
from rmreg.data.layout import IGNORE_INDEX, Layout, pair_order, split_pairs
from rmreg.heads import RetainedLMHead, RewardEnsemble, RewardHead
from rmreg.model import causal_lm as lm
from rmreg.model.batch_checks import check_inputs, check_shapes, check_values
from rmreg.model.reference import ReferencePolicy
from rmreg.objectives import Needs, PairInputs
from rmreg.objectives.inputs import ATTRIBUTE_INPUTS, ENSEMBLE_INPUTS

__all__ = ["check_head_needs", "compute_pair_inputs", "head_inputs"]


def check_head_needs(needs: Needs, head: RewardHead | RewardEnsemble) -> None:
    """Raise ``ValueError`` if ``needs`` names per-head (per-attribute) rewards that ``head`` does not give."""
    ensemble = isinstance(head, RewardEnsemble)
    wrong = sorted(needs.names & (ATTRIBUTE_INPUTS if ensemble else ENSEMBLE_INPUTS))
    if wrong:
        given = "a RewardHead (num_outputs=M)" if ensemble else "a RewardEnsemble"
        raise ValueError(
            f"the objective reads {wrong}, which only {given} gives; this model's head is a {type(head).__name__}"
        )


def head_inputs(head: RewardHead | RewardEnsemble, outputs: Tensor, needs: Needs, layout: Layout) -> dict[str, Tensor]:
    """The per-output inputs of ``head``'s ``outputs`` ``[2P, ...]``: attribute rewards (a head with several
    outputs, or when ``needs`` names them), or an ensemble's head rewards and (when needed) bootstrap weights: the
    ensemble's next draw in training mode, all ones in eval mode (an evaluation loss trains nothing, and leaves the
    sequence of draws alone)."""
    values: dict[str, Tensor] = {}
    if isinstance(head, RewardEnsemble):
        values["chosen_head_rewards"], values["rejected_head_rewards"] = split_pairs(outputs, layout)
        if "head_bootstrap_weights" in needs:  # a new draw per training batch; in eval mode every head sees every pair
            pairs = outputs.shape[0] // 2
            weights = head.bootstrap_weights(pairs) if head.training else torch.ones(pairs, head.num_heads)
            values["head_bootstrap_weights"] = weights.to(outputs.device)
    elif head.num_outputs > 1 or ATTRIBUTE_INPUTS & needs.names:
        matrix = outputs.reshape(outputs.shape[0], head.num_outputs)
        values["chosen_attribute_rewards"], values["rejected_attribute_rewards"] = split_pairs(matrix, layout)
    return values


def _policy_inputs(
    hidden: Tensor, labels: Tensor, needs: Needs, layout: Layout, head: RetainedLMHead
) -> dict[str, Tensor]:
    """Summed (and, when asked, per-token) response log-probs of the chosen and/or rejected rows."""
    pairs = hidden.shape[0] // 2
    chosen_rows, rejected_rows = pair_order(pairs, layout, hidden.device)
    sides = [side for side, wanted in (("chosen", needs.chosen_logps), ("rejected", needs.rejected_logps)) if wanted]
    rows = torch.cat([chosen_rows if side == "chosen" else rejected_rows for side in sides])
    values: dict[str, Tensor] = {}
    if needs.token_logps:
        token_logps, mask = lm.response_token_logprobs(hidden, labels, rows, head)
        for k, side in enumerate(sides):
            part = slice(k * pairs, (k + 1) * pairs)
            values[f"{side}_token_logps"], values[f"{side}_token_mask"] = token_logps[part], mask[part]
            values[f"{side}_logps"] = token_logps[part].sum(-1)
        return values
    logps = lm.response_logprobs(hidden, labels, rows, head)
    for k, side in enumerate(sides):
        values[f"{side}_logps"] = logps[k * pairs : (k + 1) * pairs]
    return values


def compute_pair_inputs(
    *,
    causal_lm: nn.Module,
    reward_head: RewardHead | RewardEnsemble,
    lm_head: RetainedLMHead | None,
    reference: ReferencePolicy,
    layout: Layout,
    input_ids: Tensor,
    attention_mask: Tensor,
    labels: Tensor | None,
    needs: Needs,
    columns: Mapping[str, Tensor],
    keep: dict[str, Tensor] | None = None,
) -> PairInputs:
    """The rewards and exactly the inputs ``needs`` names, plus every batch column, as :class:`PairInputs`.

    ``keep``, when given, receives the final hidden states ``[rows, seq, hidden]`` under ``"hidden"``.

    Raises:
        ValueError: a malformed batch (shapes, rows without real or response tokens, labels on padding,
            non-finite columns) or a missing input (labels, a column, a reference), before any compute.
    """
    pairs = check_shapes(input_ids, attention_mask, labels)
    check_inputs(needs, labels, columns, pairs)
    check_head_needs(needs, reward_head)
    check_values(attention_mask, labels, columns)
    values: dict[str, Tensor] = dict(columns)
    if needs.reference_logps and "ref_chosen_logps" not in columns:
        assert labels is not None
        values["ref_chosen_logps"], values["ref_rejected_logps"] = reference.logps(
            causal_lm, input_ids, attention_mask, labels, layout
        )
    hidden = lm.final_hidden_states(causal_lm, input_ids, attention_mask)
    if keep is not None:
        keep["hidden"] = hidden
    pooled = lm.pool_last(hidden, attention_mask)
    outputs = reward_head(pooled)
    chosen_rewards, rejected_rewards = split_pairs(reward_head.combine(outputs), layout)
    values.update(head_inputs(reward_head, outputs, needs, layout))
    if needs.hidden_states:
        values["chosen_hidden"], values["rejected_hidden"] = (part.float() for part in split_pairs(pooled, layout))
    if labels is not None and needs.policy_logps:
        assert lm_head is not None, "policy log-probs need the retained LM head"
        values.update(_policy_inputs(hidden, labels, needs, layout, lm_head))
    if labels is not None and {"chosen_lengths", "rejected_lengths"} & needs.names:
        lengths = (labels[:, 1:] != IGNORE_INDEX).sum(-1)
        values["chosen_lengths"], values["rejected_lengths"] = split_pairs(lengths, layout)
    return PairInputs(chosen_rewards, rejected_rewards, **values)
