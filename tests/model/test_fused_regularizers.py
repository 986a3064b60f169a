"""The fused regularizer path equals the generic one: loss, logged terms and every gradient."""

import copy

import pytest
import torch

import rmreg
from rmreg import ops
from rmreg.data import PairCollator
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.model.fused_regularizers import fusable_weights
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

TOK = tiny_tokenizer()


def run(model: RegularizedRewardModel, batch: dict, fused: bool) -> tuple[torch.Tensor, dict, dict]:
    model.fuse_regularizers = fused
    model.zero_grad(set_to_none=True)
    out = model(**batch)
    out.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return out.loss.detach(), {k: v.clone() for k, v in out.terms.items()}, grads


@pytest.mark.parametrize("trainable", [True, False])
@pytest.mark.parametrize("layout", ["concat", "interleaved"])
@pytest.mark.parametrize("name", ["grm-sft", "grm-sft-nll", "grm-dpo", "grm-dpo-noref"])
def test_fused_equals_generic(name: str, layout: str, trainable: bool) -> None:
    lm = tiny_causal_lm("llama", dtype=torch.float64)
    head = RewardHead(lm.config.hidden_size, hidden=16).double()
    objective = rmreg.objective(name, alpha=0.3)
    model = RegularizedRewardModel(
        lm,
        reward_head=head,
        objective=objective,
        layout=layout,
        reference="copy" if name == "grm-dpo" else None,
        lm_head_trainable=trainable,
    ).train()
    assert fusable_weights(objective) is not None
    batch = PairCollator(TOK, layout=layout)(toy_pairs(5))
    torch.manual_seed(1)
    fused = run(model, batch, True)
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


def test_only_fusable_objectives_take_the_fused_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = ops.fused_logprob_loss
    monkeypatch.setattr(ops, "fused_logprob_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    batch = PairCollator(TOK)(toy_pairs(3))
    mixed = rmreg.objective("grm-sft") + 0.1 * rmreg.DPORegularizer(reference=False)  # (1, 0) and (1, −1)
    assert fusable_weights(mixed) is None and fusable_weights(rmreg.objective("bt")) is None
    for objective, expected in ((mixed, 0), (rmreg.objective("bt"), 0), (rmreg.objective("grm-dpo-noref"), 1)):
        calls.clear()
        model = RegularizedRewardModel(tiny_causal_lm("llama"), objective=objective)
        model(**batch).loss.backward()
        assert len(calls) == expected
    model.fuse_regularizers = False
    calls.clear()
    model(**batch).loss.backward()
    assert calls == []


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
