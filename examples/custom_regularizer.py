"""Your own terms, joined to GRM's SFT regularizer, without editing rmreg: each declares the inputs it reads by
name, is logged by name and is saved with the model.

* ``HiddenNormPenalty`` reads the pooled hidden states the reward head sees;
* ``LengthNormalizedSFT`` reads per-token log-probs and their mask (an SFT regularizer on the mean token NLL);
* ``AgreementWeightedBT`` reads ``agreement``, a dataset column rmreg has never heard of: the collator passes every
  numeric column through to the terms under its own name.

    python examples/custom_regularizer.py
"""

import tempfile
from typing import Any

import torch

import rmreg
from rmreg.data import PairCollator
from rmreg.model import RegularizedRewardModel
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs


# ---- the regularizer: everything a custom term needs --------------------------------------------------------
@rmreg.register_term("hidden_norm_penalty")  # registered: objectives that use it save and reload
class HiddenNormPenalty(rmreg.Term):
    """Mean squared norm of the final hidden states of both responses at their last token, per pair."""

    needs = rmreg.Needs(hidden_states=True)  # the model then passes chosen_hidden and rejected_hidden
    default_name = "hidden_norm"

    def per_pair(self, inputs: rmreg.PairInputs) -> torch.Tensor:
        chosen = inputs.require("chosen_hidden", self).square().sum(-1)
        rejected = inputs.require("rejected_hidden", self).square().sum(-1)
        return (chosen + rejected) / 2


@rmreg.register_term("length_normalized_sft")
class LengthNormalizedSFT(rmreg.Term):
    """−(1/|y|)·Σ_t log p(y_t | x, y_<t) of the chosen response: the SFT regularizer per token, not per sequence."""

    needs = rmreg.Needs("chosen_token_logps", "chosen_token_mask")
    default_name = "sft_per_token"

    def per_pair(self, inputs: rmreg.PairInputs) -> torch.Tensor:
        mask = inputs.require("chosen_token_mask", self)
        return -(inputs.require("chosen_token_logps", self) * mask).sum(-1) / mask.sum(-1)


@rmreg.register_term("agreement_weighted_bt")
class AgreementWeightedBT(rmreg.Term):
    """Bradley–Terry weighted by the annotators' agreement on the pair, a column of the dataset."""

    needs = rmreg.Needs("agreement")
    default_name = "agreement_bt"

    def per_pair(self, inputs: rmreg.PairInputs) -> torch.Tensor:
        bt = rmreg.functional.bradley_terry_loss(inputs.chosen_rewards, inputs.rejected_rewards, reduction="none")
        return inputs.require("agreement", self) * bt


OBJECTIVE = AgreementWeightedBT() + 0.01 * LengthNormalizedSFT() + 1e-2 * HiddenNormPenalty()


def with_agreement(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The toy pairs with a made-up ``agreement`` column in [0.5, 1]."""
    return [{**pair, "agreement": 0.5 + 0.5 * ((7 * i) % 10) / 9} for i, pair in enumerate(pairs)]


# --------------------------------------------------------------------------------------------------------------


def main(steps: int = 30) -> dict[str, Any]:
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    model = RegularizedRewardModel(tiny_causal_lm("llama"), objective=OBJECTIVE)
    print(model.objective)
    collate = PairCollator(tokenizer)
    pairs = with_agreement(toy_pairs(16 * steps, seed=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(steps):
        output = model(**collate(pairs[16 * step : 16 * (step + 1)]))
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(output.loss.item())
        if step % 10 == 0 or step == steps - 1:
            print(f"step {step:2d}  " + "  ".join(f"{name}={value:.3f}" for name, value in output.terms.items()))
    with torch.no_grad():
        held_out = model.eval()(**collate(with_agreement(toy_pairs(64, seed=1))))
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        reloaded = RegularizedRewardModel.from_pretrained(directory)
    print(f"held-out pair accuracy {held_out.accuracy:.2f}; reloaded objective: {reloaded.objective.extra_repr()}")
    return {"losses": losses, "held_out_accuracy": held_out.accuracy.item(), "terms": dict(output.terms)}


if __name__ == "__main__":
    main()
