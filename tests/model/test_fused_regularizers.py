"""The fused regularizer path equals the generic one: loss, logged terms and every gradient."""

import copy

import pytest
import torch

import rmreg
from rmreg import ops
from rmreg.data import PairCollator
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.model.fused_regularizers import fusable, shared_weights
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

TOK = tiny_tokenizer()


def run(model: RegularizedRewardModel, batch: dict, fused: bool, passes: int = 2) -> tuple[torch.Tensor, dict, dict]:
    model.fuse_regularizers, model.fused_passes = fused, passes
    model.zero_grad(set_to_none=True)
    out = model(**batch)
    out.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return out.loss.detach(), {k: v.clone() for k, v in out.terms.items()}, grads


@pytest.mark.parametrize("trainable", [True, False])
@pytest.mark.parametrize("layout", ["concat", "interleaved"])
@pytest.mark.parametrize("passes", [2, 1])
@pytest.mark.parametrize("name", ["grm-sft", "grm-sft-nll", "grm-dpo", "grm-dpo-noref", "sft+dpo"])
def test_fused_equals_generic(name: str, layout: str, trainable: bool, passes: int) -> None:
    lm = tiny_causal_lm("llama", dtype=torch.float64)
    head = RewardHead(lm.config.hidden_size, hidden=16).double()
    if name == "sft+dpo":  # two regularizers with different logps_weights: (1, 0) and (1, −1)
        objective = rmreg.objective("grm-sft", alpha=0.3) + 0.2 * rmreg.DPORegularizer(reference=False)
    else:
        objective = rmreg.objective(name, alpha=0.3)
    model = RegularizedRewardModel(
        lm,
        reward_head=head,
        objective=objective,
        layout=layout,
        reference="copy" if name == "grm-dpo" else None,
        lm_head_trainable=trainable,
    ).train()
    assert fusable(objective)
    batch = PairCollator(TOK, layout=layout)(toy_pairs(5))
    torch.manual_seed(1)
    fused = run(model, batch, True, passes)
    torch.manual_seed(1)  # the same dropout masks
    generic = run(model, batch, False)
    torch.testing.assert_close(fused[0], generic[0], rtol=1e-12, atol=1e-12)
    assert fused[1].keys() == generic[1].keys()
    for key in fused[1]:
        torch.testing.assert_close(fused[1][key], generic[1][key], rtol=1e-12, atol=1e-12)
    assert fused[2].keys() == generic[2].keys()
    assert ("causal_lm.lm_head.weight" in fused[2]) == trainable
    for key in fused[2]:
        torch.testing.assert_close(fused[2][key], generic[2][key], rtol=1e-9, atol=1e-12)


class TokenNLL(rmreg.Term):
    """Declares ``logps_weights`` yet reads per-token log-probs: never fused."""

    needs = rmreg.Needs("chosen_token_logps", "chosen_token_mask")
    logps_weights = (1.0, 0.0)
    default_name = "token_nll"

    def per_pair(self, inputs):
        return -(inputs["chosen_token_logps"] * inputs["chosen_token_mask"]).sum(-1)


def test_only_fusable_objectives_take_the_fused_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = ops.fused_logprob_loss
    monkeypatch.setattr(ops, "fused_logprob_loss", lambda *a, **k: calls.append(k.get("group_ids")) or real(*a, **k))
    batch = PairCollator(TOK)(toy_pairs(3))
    mixed = rmreg.objective("grm-sft") + 0.1 * rmreg.DPORegularizer(reference=False)  # (1, 0) and (1, −1)
    tokens = rmreg.objective("bt") + 0.1 * TokenNLL()
    assert fusable(mixed) and shared_weights(mixed) is None and shared_weights(rmreg.objective("grm-sft")) == (1, 0)
    assert not fusable(rmreg.objective("bt")) and not fusable(tokens)
    cases = [(mixed, 1, 2), (mixed, 1, 1), (rmreg.objective("bt"), 0, 2), (tokens, 0, 2)]
    cases += [(rmreg.objective("grm-dpo-noref"), 1, 2), (rmreg.objective("grm-dpo-noref"), 1, 1)]
    for objective, expected, passes in cases:
        calls.clear()
        model = RegularizedRewardModel(tiny_causal_lm("llama"), objective=objective)
        model.fused_passes = passes
        model(**batch).loss.backward()
        assert len(calls) == expected
        one_pass = passes == 1 and shared_weights(objective) is not None  # else two passes: no group_ids
        assert all((group_ids is not None) == one_pass for group_ids in calls)
    model.fuse_regularizers = False
    calls.clear()
    model(**batch).loss.backward()
    assert calls == []
    model.fuse_regularizers, model.fused_passes = True, 3
    with pytest.raises(ValueError, match="fused_passes must be 1 or 2"):
        model(**batch)


def test_fused_gradients_accumulate_like_the_generic_path() -> None:
    """Two micro-batches, one optimizer step: gradient accumulation adds the fused gradients as autograd would."""
    model = RegularizedRewardModel(tiny_causal_lm("llama", dtype=torch.float64), objective=rmreg.objective("grm-sft"))
    model = model.double().eval()
    twin = copy.deepcopy(model)
    twin.fuse_regularizers = False
    for micro in (toy_pairs(2, seed=1), toy_pairs(3, seed=2)):
        batch = PairCollator(TOK)(micro)
        (model(**batch).loss / 2).backward()
        (twin(**batch).loss / 2).backward()
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters(), strict=True):
        if p.grad is not None or q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=name)
