"""Your own regularizer, joined to GRM's SFT regularizer: a penalty on the norm of the hidden state that the reward
head reads, as a term that declares what it needs, is logged by name and is saved with the model::

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


OBJECTIVE = rmreg.objective("grm-sft") + 1e-2 * HiddenNormPenalty()
# --------------------------------------------------------------------------------------------------------------


def main(steps: int = 30) -> dict[str, Any]:
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    model = RegularizedRewardModel(tiny_causal_lm("llama"), objective=OBJECTIVE)
    print(model.objective)
    collate = PairCollator(tokenizer)
    pairs = toy_pairs(16 * steps, seed=0)
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
        held_out = model.eval()(**collate(toy_pairs(64, seed=1)))
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        reloaded = RegularizedRewardModel.from_pretrained(directory)
    print(f"held-out pair accuracy {held_out.accuracy:.2f}; reloaded objective: {reloaded.objective.extra_repr()}")
    return {"losses": losses, "held_out_accuracy": held_out.accuracy.item(), "terms": dict(output.terms)}


if __name__ == "__main__":
    main()
