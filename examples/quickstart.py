"""Quickstart: train a tiny regularized reward model offline, Bradley–Terry against GRM, in plain PyTorch.

The model is a randomly initialised two-layer Llama built in code with a character-level tokenizer; the data
are generated preference pairs in which the chosen reply is polite and on topic and the rejected one is not.
Run it with ``python examples/quickstart.py`` (about half a minute on 2 CPU cores).
"""

import argparse
import random

import torch

import rmreg
from rmreg import PairCollator, RegularizedRewardModel
from rmreg.testing import tiny_causal_lm, tiny_tokenizer

TOPICS = ["tea", "maps", "rain", "code", "bread", "music", "stars", "boats"]
GOOD = ["Sure, here is a clear answer about {t}.", "Happy to help: {t} explained simply.", "Good question on {t}!"]
BAD = ["No.", "Ask someone else about {t}.", "Whatever, {t} is boring."]


def make_pairs(count: int, seed: int) -> list[dict[str, str]]:
    """Prompt/chosen/rejected triples in TRL's standard format."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        topic = rng.choice(TOPICS)
        pairs.append(
            {
                "prompt": f"Tell me about {topic}. ",
                "chosen": rng.choice(GOOD).format(t=topic),
                "rejected": rng.choice(BAD).format(t=topic),
            }
        )
    return pairs


def accuracy(model: RegularizedRewardModel, collate: PairCollator, pairs: list[dict[str, str]]) -> float:
    model.eval()
    with torch.no_grad():
        out = model(**collate(pairs))
    model.train()
    return float(out.accuracy)


def train(objective_name: str, *, steps: int, batch_size: int, lr: float, alpha: float, seed: int) -> None:
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    collate = PairCollator(tokenizer)
    objective = rmreg.objective(objective_name, alpha=alpha)
    model = RegularizedRewardModel(tiny_causal_lm("llama", seed=seed), objective=objective)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    train_pairs, test_pairs = make_pairs(steps * batch_size, seed), make_pairs(64, seed + 1)
    before = accuracy(model, collate, test_pairs)
    for step in range(steps):
        batch = collate(train_pairs[step * batch_size : (step + 1) * batch_size])
        out = model(**batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        if step % max(1, steps // 4) == 0 or step == steps - 1:
            terms = "  ".join(f"{name}={value:.3f}" for name, value in out.terms.items())
            print(f"  [{objective_name}] step {step:3d}  loss={out.loss.item():.4f}  {terms}")
    after = accuracy(model, collate, test_pairs)
    print(f"{objective_name:>8}: held-out pair accuracy {before:.2f} -> {after:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--alpha", type=float, default=0.01, help="GRM regularizer weight α")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("bt", "grm-sft"):
        train(name, steps=args.steps, batch_size=args.batch_size, lr=args.lr, alpha=args.alpha, seed=args.seed)


if __name__ == "__main__":
    main()
