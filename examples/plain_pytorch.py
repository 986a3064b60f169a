"""The shortest complete loop: train a GRM reward model in plain PyTorch, then check it on held-out pairs.

Replace the tiny model, tokenizer and generated pairs with yours (``AutoModelForCausalLM.from_pretrained(...)``,
``AutoTokenizer.from_pretrained(...)``, a list of ``{"prompt", "chosen", "rejected"}`` dicts)::

    python examples/plain_pytorch.py
"""

from typing import Any

import torch
from torch.utils.data import DataLoader

import rmreg
from rmreg.data import PairCollator
from rmreg.model import RegularizedRewardModel
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs


def main(epochs: int = 2) -> dict[str, Any]:
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    model = RegularizedRewardModel(tiny_causal_lm("llama"), objective=rmreg.objective("grm-sft"))
    collate = PairCollator(tokenizer, max_length=128)
    train = DataLoader(toy_pairs(256, seed=0), batch_size=16, shuffle=True, collate_fn=collate)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)

    losses = []
    model.train()
    for _ in range(epochs):
        for batch in train:
            output = model(**batch)
            output.loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(output.loss.item())

    model.eval()
    with torch.no_grad():
        held_out = model(**collate(toy_pairs(64, seed=1)))
        rewards = model.score_texts(tokenizer, [("Say a vowel: ", "aei"), ("Say a vowel: ", "xyz")])
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; held-out pair accuracy {held_out.accuracy:.2f}")
    print(f"rewards of 'aei' and 'xyz': {rewards.tolist()}")
    return {"losses": losses, "held_out_accuracy": held_out.accuracy.item()}


if __name__ == "__main__":
    main()
