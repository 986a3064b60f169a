"""Ranked groups through the model: one backbone pass over the real completions, K-wise losses, GRM on the best."""

import naive
import pytest
import torch

import rmreg
from rmreg.data import PairCollator
from rmreg.data.group_collation import GroupCollator
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.testing import tiny_causal_lm, tiny_tokenizer

TOK = tiny_tokenizer()
GROUPS = [
    {"prompt": "Name a fruit:", "completions": ["apple", "a rock", "pear or plum"], "scores": [2.0, 0.0, 1.0]},
    {"prompt": "2+2=", "completions": ["4", "five"], "ranking": [0, 1]},
    {"prompt": "Hi", "completions": ["Hello!", "Go.", "Hey there, friend", "..."], "ranking": [2, 0, 1, 3]},
]


def model_for(name: str, **kwargs) -> RegularizedRewardModel:
    lm = tiny_causal_lm("llama", dtype=torch.float64)
    head = RewardHead(lm.config.hidden_size, hidden=16).double()
    return RegularizedRewardModel(lm, reward_head=head, objective=rmreg.objective(name, alpha=0.3), **kwargs).eval()


def row_values(model: RegularizedRewardModel, batch: dict) -> tuple[list[float], list[float]]:
    """Each row alone, unpadded, through the plain Hugging Face forward: its reward and summed response log-prob."""
    rewards, logps = [], []
    for row in range(batch["input_ids"].shape[0]):
        keep = batch["attention_mask"][row].bool()
        ids, labels = batch["input_ids"][row][keep][None], batch["labels"][row][keep][None]
        out = model.causal_lm(input_ids=ids, output_hidden_states=True)
        rewards.append(float(model.reward_head(out.hidden_states[-1][:, -1])[0]))
        logps.append(float(rmreg.functional.sequence_logprobs(out.logits, labels)[0]))
    return rewards, logps


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_plackett_luce_with_sft_on_the_best_matches_each_row_alone(padding_side: str) -> None:
    model = model_for("plackett-luce+grm-sft")
    batch = GroupCollator(TOK, padding_side=padding_side)(GROUPS)
    assert batch["input_ids"].shape[0] == 3 + 2 + 4  # the real completions only, no padding to the largest K
    out = model(**batch)
    rewards, logps = row_values(model, batch)
    groups = [[rewards[i] for i in row if i >= 0] for row in batch["group_index"].tolist()]
    best = [logps[row[0]] for row in batch["group_index"].tolist()]
    pl = naive.plackett_luce(groups)
    expected = sum(0.7 * p + 0.3 * s for p, s in zip(pl, naive.sft(best, 0.1), strict=True)) / 3
    torch.testing.assert_close(out.loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out.inputs["group_rewards"][0, :3], torch.tensor(groups[0], dtype=torch.float64))
    torch.testing.assert_close(out.chosen_rewards, torch.tensor([g[0] for g in groups], dtype=torch.float64))
    torch.testing.assert_close(out.rejected_rewards, torch.tensor([g[-1] for g in groups], dtype=torch.float64))


def test_groups_of_two_are_bradley_terry_on_pairs() -> None:
    model = model_for("plackett-luce+grm-dpo-noref")
    pairs = [
        {"prompt": "Q", "chosen": "good answer", "rejected": "bad"},
        {"prompt": "R", "chosen": "x", "rejected": "yz"},
    ]
    groups = [{"prompt": p["prompt"], "completions": [p["chosen"], p["rejected"]], "ranking": [0, 1]} for p in pairs]
    as_groups = model(**GroupCollator(TOK)(groups))
    bt = RegularizedRewardModel(
        model.causal_lm, reward_head=model.reward_head, objective=rmreg.objective("grm-dpo-noref", alpha=0.3)
    ).eval()
    as_pairs = bt(**PairCollator(TOK)(pairs))
    torch.testing.assert_close(as_groups.terms["plackett_luce"], as_pairs.terms["bradley_terry"])
    torch.testing.assert_close(as_groups.terms["group_dpo_noref"], as_pairs.terms["dpo_noref"])
    torch.testing.assert_close(as_groups.loss, as_pairs.loss)


def test_gradients_reach_the_backbone_and_the_lm_head() -> None:
    model = model_for("plackett-luce+grm-sft").train()
    model(**GroupCollator(TOK)(GROUPS)).loss.backward()
    assert model.causal_lm.lm_head.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.reward_head.parameters())


def test_malformed_groups_fail_before_compute() -> None:
    model = model_for("plackett-luce")
    batch = GroupCollator(TOK)(GROUPS)
    with pytest.raises(ValueError, match="group_mask must be True exactly where"):
        model(**{**batch, "group_mask": torch.ones_like(batch["group_mask"])})
    with pytest.raises(ValueError, match="points past"):
        model(**{**batch, "group_index": batch["group_index"].masked_fill(batch["group_index"] == 8, 9)})
    with pytest.raises(ValueError, match="needs group_mask"):
        model(**{k: v for k, v in batch.items() if k != "group_mask"})
    with pytest.raises(ValueError, match="row 0: field 'rejected'"):
        GroupCollator(TOK)([{"prompt": "Q", "chosen": ["a"], "rejected": []}])
