"""GRM's regularizers fused into the LM-head pass: the default forward path when the objective allows it.

A regularizer such as the SFT or DPO term reads the LM head only through each pair's summed log-probs, in the form
``w_c·log π(y_c|x) + w_r·log π(y_r|x)`` (SFT: ``(1, 0)``, DPO: ``(1, −1)``; a term says so with
:attr:`~rmreg.objectives.Term.logps_weights`). Its loss is then a function of the summed log-probs alone, so
:func:`rmreg.ops.fused_logprob_loss` computes it inside the LM-head pass, with every gradient of the LM head and the
hidden states ready at the end of the forward pass and nothing but a scaling left for the backward pass (Yang et
al., NeurIPS 2024, arXiv 2406.10216). By default in two passes over the vocabulary (log-sum-exps, then gradients):
no weight-sized buffer; with ``model.fused_passes = 1`` in one pass, pair by pair, where every fused term shares one
``logps_weights`` (then the loss depends on a pair only through one Σ w_s·log π_s): a quarter fewer LM-head matmuls
for one more weight-sized buffer. The loss equals the generic path's; the other terms (Bradley–Terry, ...) are
computed as usual.

The path is taken when every term that reads log-probs declares ``logps_weights`` and none reads per-token
log-probs; otherwise (or with ``model.fuse_regularizers = False``) the generic path runs. As with the fused op,
one backward pass per forward pass.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from rmreg._typing import Tensor
from rmreg.data.layout import pair_order
from rmreg.model import causal_lm as lm
from rmreg.model.outputs import RewardModelOutput
from rmreg.model.pair_outputs import compute_pair_inputs
from rmreg.objectives import Needs, Objective, PairInputs, Term
from rmreg.objectives.inputs import LOGPS_INPUTS, union

if TYPE_CHECKING:
    from rmreg.model.reward_model import RegularizedRewardModel

__all__ = ["fusable", "fused_forward", "shared_weights"]


def _fused_term(term: Term) -> bool:
    """Whether ``term`` reads the LM head (then its loss is computed inside the fused LM-head pass)."""
    return term.needs.policy_logps


def fusable(objective: Objective) -> bool:
    """Whether ``objective``'s log-prob terms can be fused: every one declares ``logps_weights``, none reads
    per-token log-probs."""
    reading = [term for _, term in objective.weighted_terms() if _fused_term(term)]
    declared = all(term.logps_weights is not None and not term.needs.token_logps for term in reading)
    return bool(reading) and declared


def shared_weights(objective: Objective) -> tuple[float, float] | None:
    """The ``(w_c, w_r)`` shared by every log-prob term of a fusable ``objective``, or ``None`` if they differ."""
    weights = {term.logps_weights for _, term in objective.weighted_terms() if _fused_term(term)}
    return weights.pop() if len(weights) == 1 else None


def fused_forward(
    model: "RegularizedRewardModel",
    objective: Objective,
    input_ids: Tensor,
    attention_mask: Tensor,
    labels: Tensor | None,
    columns: Mapping[str, Tensor],
) -> RewardModelOutput:
    """``model(**batch)`` with the objective's log-prob terms fused into the LM-head pass (see the module docstring)."""
    if labels is None:
        raise ValueError("the objective's regularizer needs labels (response token ids, -100 elsewhere)")
    names = union(term.needs for _, term in objective.weighted_terms()).names
    keep: dict[str, Tensor] = {}
    inputs = compute_pair_inputs(
        causal_lm=model.causal_lm,
        reward_head=model.reward_head,
        lm_head=None,
        reference=model._reference,
        layout=model.layout,
        input_ids=input_ids,
        attention_mask=attention_mask,
        labels=labels,
        needs=Needs(*(names - LOGPS_INPUTS)),
        columns=columns,
        keep=keep,
    )
    hidden, pairs = keep["hidden"], inputs.num_pairs
    fused = [(weight, term) for weight, term in objective.weighted_terms() if _fused_term(term)]
    declared = [term.logps_weights for _, term in fused]
    sides = [side for k, side in enumerate(("chosen", "rejected")) if any(w and w[k] != 0 for w in declared)]
    chosen_rows, rejected_rows = pair_order(pairs, model.layout, hidden.device)
    rows = torch.cat([chosen_rows if side == "chosen" else rejected_rows for side in sides])
    row_of_token, position = lm.response_tokens(labels, rows)
    source = rows[row_of_token]

    def with_logps(logps: Tensor) -> PairInputs:
        return inputs.replace(**{f"{side}_logps": logps[k * pairs : (k + 1) * pairs] for k, side in enumerate(sides)})

    def loss_fn(logps: Tensor) -> Tensor:
        pair_inputs = with_logps(logps)
        return sum(weight * term.per_pair(pair_inputs).mean() for weight, term in fused)  # type: ignore[return-value]

    head = model.retained_lm_head
    lm.check_not_sharded_alone(head.lm_head)
    if model.fused_passes not in (1, 2):
        raise ValueError(f"fused_passes must be 1 or 2; got {model.fused_passes!r}")
    weights = shared_weights(objective) if model.fused_passes == 1 else None
    group_ids = sequence_weights = None
    if weights is not None:  # one pass, one pair per group: the loss reads it through w_c·log π_c + w_r·log π_r
        group_ids = torch.arange(len(sides) * pairs) % pairs
        signs = [weights[0 if side == "chosen" else 1] for side in sides]
        sequence_weights = torch.tensor(signs).repeat_interleave(pairs)
    fused_loss, logps = head.logprob_loss(
        hidden[source, position],
        labels[source, position + 1],
        row_of_token,
        loss_fn,
        num_sequences=len(sides) * pairs,
        group_ids=group_ids,
        sequence_weights=sequence_weights,
    )
    logged = with_logps(logps)
    loss, per_pair, terms = fused_loss, torch.zeros(pairs, device=logps.device, dtype=logps.dtype), {}
    for weight, term, values in objective.term_values(logged):
        terms[term.name] = values.detach().mean()
        if not _fused_term(term):
            loss = loss + weight * values.mean()
        per_pair = per_pair + weight * (values.detach() if _fused_term(term) else values)
    return RewardModelOutput.of(logged, loss=loss, per_pair=per_pair, terms=terms)
