"""GRM's regularizers fused into the LM-head pass: the default forward path when the objective allows it.

A regularizer such as the SFT or DPO term reads the LM head only through each pair's summed log-probs, in the form
``w_c·log π(y_c|x) + w_r·log π(y_r|x)`` (SFT: ``(1, 0)``, DPO: ``(1, −1)``; a term says so with
:attr:`~rmreg.objectives.Term.logps_weights`). Its loss is then separable over pairs, so
:func:`rmreg.ops.fused_logprob_loss` computes it inside the LM-head pass, pair by pair, adding each pair's weight and
hidden-state gradients at once: the extra memory is one weight-gradient buffer for any number of pairs and the
backward pass only scales by the incoming gradient (Yang et al., NeurIPS 2024, arXiv 2406.10216; the idea of
Liger-Kernel's fused preference losses). The loss equals the generic path's; the other terms (Bradley–Terry, ...)
are computed as usual.

The path is taken when every term that reads log-probs declares the same ``logps_weights`` and none reads
per-token log-probs; otherwise (or with ``model.fuse_regularizers = False``) the generic path runs. As with the
fused op, one backward pass per forward pass.
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

__all__ = ["fusable_weights", "fused_forward"]


def _fused_term(term: Term) -> bool:
    """Whether ``term`` reads the LM head (then its loss is computed inside the fused LM-head pass)."""
    return term.needs.policy_logps


def fusable_weights(objective: Objective) -> tuple[float, float] | None:
    """The ``(w_c, w_r)`` shared by every term of ``objective`` that reads log-probs, or ``None`` if not fusable."""
    reading = [term for _, term in objective.weighted_terms() if _fused_term(term)]
    weights = {term.logps_weights for term in reading}
    if not reading or len(weights) != 1 or any(term.needs.token_logps for term in reading):
        return None
    return weights.pop()


def fused_forward(
    model: "RegularizedRewardModel",
    objective: Objective,
    weights: tuple[float, float],
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
    sides = [side for side, weight in zip(("chosen", "rejected"), weights, strict=True) if weight != 0]
    chosen_rows, rejected_rows = pair_order(pairs, model.layout, hidden.device)
    rows = torch.cat([chosen_rows if side == "chosen" else rejected_rows for side in sides])
    row_of_token, position = lm.response_tokens(labels, rows)
    source = rows[row_of_token]
    fused = [(weight, term) for weight, term in objective.weighted_terms() if _fused_term(term)]

    def with_logps(logps: Tensor) -> PairInputs:
        return inputs.replace(**{f"{side}_logps": logps[k * pairs : (k + 1) * pairs] for k, side in enumerate(sides)})

    def loss_fn(logps: Tensor) -> Tensor:
        pair_inputs = with_logps(logps)
        return sum(weight * term.per_pair(pair_inputs).mean() for weight, term in fused)  # type: ignore[return-value]

    head = model.retained_lm_head
    lm.check_not_sharded_alone(head.lm_head)
    fused_loss, logps = head.logprob_loss(
        hidden[source, position],
        labels[source, position + 1],
        row_of_token,
        torch.arange(len(sides) * pairs) % pairs,
        loss_fn,
        sequence_weights=torch.tensor([weights[0 if side == "chosen" else 1] for side in sides]).repeat_interleave(
            pairs
        ),
    )
    logged = with_logps(logps)
    loss, per_pair, terms = fused_loss, torch.zeros(pairs, device=logps.device, dtype=logps.dtype), {}
    for weight, term, values in objective.term_values(logged):
        terms[term.name] = values.detach().mean()
        if not _fused_term(term):
            loss = loss + weight * values.mean()
        per_pair = per_pair + weight * (values.detach() if _fused_term(term) else values)
    return RewardModelOutput.of(logged, loss=loss, per_pair=per_pair, terms=terms)
