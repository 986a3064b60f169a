"""RegularizedRewardModel against an independent computation, padding and pairing properties, errors."""

import math

import naive
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import rmreg
from rmreg import functional, ops
from rmreg.data import PairCollator
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.objectives import PRESETS, BradleyTerry, Needs, PairInputs, Term
from rmreg.objectives import objective as make_objective
from rmreg.testing import FAMILIES, tiny_causal_lm, tiny_tokenizer, toy_pairs

TOK = tiny_tokenizer()
ALPHA, BETA, EPS = 0.3, 0.1, 0.1  # a large α so that the regularizer weighs in the comparison
PAIRS = [
    {"prompt": "Name a fruit:", "chosen": "apple", "rejected": "a rock", "margin": 1.0},
    {"prompt": "2+2=", "chosen": "4", "rejected": "five or six", "margin": 0.5},
    {"prompt": "Hi", "chosen": "Hello, how are you?", "rejected": "Go.", "margin": 2.0},
]


def build(family: str, name: str, layout: str = "concat", dtype: torch.dtype = torch.float64, **kwargs):
    lm = tiny_causal_lm(family, dtype=dtype)
    torch.manual_seed(0)
    head = RewardHead(lm.config.hidden_size, hidden=16).to(dtype)
    reference = tiny_causal_lm(family, dtype=dtype, seed=1) if name == "grm-dpo" else None
    objective = make_objective(name, alpha=ALPHA, beta=BETA, label_smoothing=EPS)
    kwargs.setdefault("reference", reference)
    return RegularizedRewardModel(lm, reward_head=head, objective=objective, layout=layout, **kwargs).eval()


def by_hand(model: RegularizedRewardModel, batch: dict, layout: str) -> dict[str, list[float]]:
    """Each row alone, unpadded, through the plain Hugging Face forward (full logits); the head at its end."""
    rows = batch["input_ids"].shape[0]
    values: dict[str, list[float]] = {"rewards": [], "logps": [], "ref_logps": []}
    for row in range(rows):
        keep = batch["attention_mask"][row].bool()
        ids, labels = batch["input_ids"][row][keep][None], batch["labels"][row][keep][None]
        out = model.causal_lm(input_ids=ids, output_hidden_states=True)
        values["rewards"].append(float(model.reward_head(out.hidden_states[-1][:, -1]).detach()[0]))
        values["logps"].append(float(functional.sequence_logprobs(out.logits, labels).detach()[0]))
        if model.reference_model is not None:
            ref_logits = model.reference_model(input_ids=ids).logits
            values["ref_logps"].append(float(functional.sequence_logprobs(ref_logits, labels)[0]))
    pairs = rows // 2
    chosen = list(range(pairs)) if layout == "concat" else list(range(0, rows, 2))
    rejected = list(range(pairs, rows)) if layout == "concat" else list(range(1, rows, 2))
    return {
        f"{side}_{key}": [values[key][i] for i in index]
        for key in values
        if values[key]
        for side, index in (("chosen", chosen), ("rejected", rejected))
    }


def expected_loss(name: str, hand: dict[str, list[float]], margin: list[float]) -> float:
    rc, rr = hand["chosen_rewards"], hand["rejected_rewards"]
    bt = naive.bradley_terry(rc, rr, margin if name == "margin" else None, EPS if name == "label-smoothing" else 0.0)
    lc, lr = hand["chosen_logps"], hand["rejected_logps"]
    regularizers = {
        "grm-sft": lambda: naive.sft(lc, BETA),
        "grm-sft-nll": lambda: naive.sft(lc, BETA, log_sigmoid_form=False),
        "grm-dpo": lambda: naive.dpo(lc, lr, hand.get("chosen_ref_logps"), hand.get("rejected_ref_logps"), BETA),
        "grm-dpo-noref": lambda: naive.dpo(lc, lr, None, None, BETA),
    }
    per_pair = bt
    if name in regularizers:
        per_pair = [(1 - ALPHA) * b + ALPHA * g for b, g in zip(bt, regularizers[name](), strict=True)]
    return sum(per_pair) / len(per_pair)


def close(actual: torch.Tensor | float, expected: list[float] | float, tol: float = 1e-5) -> None:
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=torch.float64).detach(),
        torch.tensor(expected, dtype=torch.float64),
        rtol=tol,
        atol=tol,
    )


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("layout", ["concat", "interleaved"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_objective_matches_independent_computation(family: str, layout: str, side: str) -> None:
    batch = PairCollator(TOK, layout=layout, padding_side=side)(PAIRS)
    margin = batch["margin"].tolist()
    for name in PRESETS:
        model = build(family, name, layout)
        out = model(**batch)
        hand = by_hand(model, batch, layout)
        close(out.chosen_rewards, hand["chosen_rewards"])
        close(out.rejected_rewards, hand["rejected_rewards"])
        close(out.loss, expected_loss(name, hand, margin))
        needs = model.objective.needs
        if needs.chosen_logps:
            close(out.chosen_logps, hand["chosen_logps"])
        if needs.rejected_logps:
            close(out.rejected_logps, hand["rejected_logps"])
        assert (out.chosen_logps is None) != needs.chosen_logps
        assert (out.rejected_logps is None) != needs.rejected_logps
        assert (
            out.accuracy
            == sum(c > r for c, r in zip(hand["chosen_rewards"], hand["rejected_rewards"], strict=True)) / 3
        )
        assert set(out.terms) == {term.name for term in model.objective.terms}


def test_float32_matches_independent_computation() -> None:
    batch = PairCollator(TOK, padding_side="left")(PAIRS)
    model = build("llama", "grm-dpo", dtype=torch.float32)
    out = model(**batch)
    hand = by_hand(model, batch, "concat")
    assert out.loss.dtype == out.chosen_rewards.dtype == out.chosen_logps.dtype == torch.float32
    close(out.chosen_rewards, hand["chosen_rewards"], 1e-5)
    close(out.chosen_logps, hand["chosen_logps"], 1e-5)
    close(out.loss, expected_loss("grm-dpo", hand, batch["margin"].tolist()), 1e-5)


def test_terms_report_each_unweighted_mean() -> None:
    batch = PairCollator(TOK)(PAIRS)
    model = build("qwen2", "grm-sft")
    out = model(**batch)
    hand = by_hand(model, batch, "concat")
    close(out.terms["bradley_terry"], sum(naive.bradley_terry(hand["chosen_rewards"], hand["rejected_rewards"])) / 3)
    close(out.terms["sft"], sum(naive.sft(hand["chosen_logps"], BETA)) / 3)


class HiddenNorm(Term):
    """A user's own term that reads the pooled hidden states."""

    default_name = "hidden_norm"
    needs = Needs(hidden_states=True)

    def per_pair(self, inputs: PairInputs) -> torch.Tensor:
        return inputs.require("chosen_hidden", self).square().sum(-1) + inputs.require("rejected_hidden", self).sum(-1)


def test_custom_term_gets_the_hidden_states_at_the_last_real_token() -> None:
    batch = PairCollator(TOK, layout="interleaved", padding_side="left")(PAIRS)
    lm = tiny_causal_lm("qwen2", dtype=torch.float64)
    head = RewardHead(32, hidden=16).double()
    objective = BradleyTerry() + 0.5 * HiddenNorm()
    model = RegularizedRewardModel(lm, reward_head=head, objective=objective, layout="interleaved").eval()
    out = model(**batch)
    last = []
    for row in range(6):
        ids = batch["input_ids"][row][batch["attention_mask"][row].bool()][None]
        last.append(lm(input_ids=ids, output_hidden_states=True).hidden_states[-1][0, -1].detach())
    chosen, rejected = torch.stack(last[0::2]), torch.stack(last[1::2])
    close(out.terms["hidden_norm"], float((chosen.square().sum(-1) + rejected.sum(-1)).mean()))
    assert out.chosen_logps is None  # no term asked for log-probs


@pytest.mark.parametrize(("name", "rows_scored"), [("bt", 0), ("grm-sft", 3), ("grm-dpo-noref", 6), ("grm-dpo", 6)])
def test_lm_head_runs_only_on_needed_response_tokens(monkeypatch, name: str, rows_scored: int) -> None:
    batch = PairCollator(TOK)(PAIRS)
    model = build("llama", name)
    calls = []
    real, real_fused = ops.sequence_linear_logprobs, ops.fused_logprob_loss

    def spy(hidden, weight, targets, sequence_ids, **kwargs):
        calls.append((hidden.shape[0], kwargs["num_sequences"]))
        return real(hidden, weight, targets, sequence_ids, **kwargs)

    def fused_spy(hidden, weight, targets, sequence_ids, loss_fn, **kwargs):
        calls.append((hidden.shape[0], kwargs["num_sequences"]))
        return real_fused(hidden, weight, targets, sequence_ids, loss_fn, **kwargs)

    monkeypatch.setattr(ops, "sequence_linear_logprobs", spy)
    monkeypatch.setattr(ops, "fused_logprob_loss", fused_spy)  # GRM's regularizers take the fused path
    lm_head_calls = []
    model.causal_lm.get_output_embeddings().register_forward_hook(lambda *args: lm_head_calls.append(1))
    model(**batch)
    assert not lm_head_calls, "the LM head module must never run over the batch"
    response_tokens = (batch["labels"][:, 1:] != -100).sum(-1)
    if rows_scored == 0:
        assert calls == []
    else:
        expected = int(response_tokens[:rows_scored].sum()) if rows_scored == 3 else int(response_tokens.sum())
        policy = calls[-1]  # the reference (if any) runs first
        assert policy == (expected, rows_scored)


@given(
    extra=st.integers(0, 5),
    side=st.sampled_from(["left", "right"]),
    layout=st.sampled_from(["concat", "interleaved"]),
)
def test_padding_amount_and_side_change_nothing(extra: int, side: str, layout: str) -> None:
    model = PADDING_MODELS[layout]
    base = model(**PairCollator(TOK, layout=layout, padding_side="right")(PAIRS))
    batch = PairCollator(TOK, layout=layout, padding_side=side)(PAIRS)
    width = batch["input_ids"].shape[1] + extra
    padded = PairCollator(TOK, layout=layout, padding_side=side, pad_to_multiple_of=width)(PAIRS)
    out = model(**padded)
    for field in ("loss", "chosen_rewards", "rejected_rewards", "chosen_logps", "rejected_logps"):
        torch.testing.assert_close(getattr(out, field), getattr(base, field), rtol=1e-5, atol=1e-5)


PADDING_MODELS = {
    layout: build("gemma", "grm-dpo-noref", layout, dtype=torch.float32) for layout in ("concat", "interleaved")
}


@pytest.mark.parametrize("layout", ["concat", "interleaved"])
def test_rewards_of_a_pair_do_not_depend_on_other_pairs(layout: str) -> None:
    model = build("gpt2", "grm-sft", layout, dtype=torch.float32)
    together = model(**PairCollator(TOK, layout=layout)(PAIRS))
    for i, pair in enumerate(PAIRS):
        alone = model(**PairCollator(TOK, layout=layout)([pair]))
        for field in ("chosen_rewards", "rejected_rewards", "chosen_logps", "per_pair"):
            torch.testing.assert_close(getattr(alone, field)[0], getattr(together, field)[i], rtol=1e-5, atol=1e-5)


def test_score_equals_forward_rewards_and_score_texts() -> None:
    model = build("llama", "bt", dtype=torch.float32)
    batch = PairCollator(TOK, padding_side="left")(PAIRS)
    out = model(**batch)
    scores = model.score(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(scores, torch.cat([out.chosen_rewards, out.rejected_rewards]))
    assert not scores.requires_grad
    texts = [(p["prompt"], p["chosen"]) for p in PAIRS] + [(p["prompt"], p["rejected"]) for p in PAIRS]
    torch.testing.assert_close(model.score_texts(TOK, texts, batch_size=2), scores, rtol=1e-5, atol=1e-5)


def test_three_references_agree_and_get_no_gradient() -> None:
    batch = PairCollator(TOK)(PAIRS)
    separate = build("llama", "grm-dpo", dtype=torch.float32)
    ref_chosen, ref_rejected = separate.reference_logps(batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert not ref_chosen.requires_grad and not ref_rejected.requires_grad
    precomputed = build("llama", "grm-dpo", dtype=torch.float32, reference=None)
    with_module = separate(**batch)
    with_values = precomputed(**batch, ref_chosen_logps=ref_chosen, ref_rejected_logps=ref_rejected)
    torch.testing.assert_close(with_module.loss, with_values.loss)
    with_module.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in separate.reference_model.parameters())
    assert separate.reward_head.output_layer.weight.grad is not None
    # "copy" snapshots the model as built: reference = policy, so the DPO term is log 2
    copied = build("llama", "grm-dpo", dtype=torch.float32, reference="copy")
    close(copied(**batch).terms["dpo"], math.log(2), 1e-6)
    copied.train()
    assert copied.causal_lm.training and not copied.reference_model.training


def test_an_unused_untied_lm_head_is_left_to_the_user_and_ignored_by_ddp() -> None:
    causal_lm = tiny_causal_lm("llama")
    bt = RegularizedRewardModel(causal_lm, objective=make_objective("bt"))
    assert causal_lm.lm_head.weight.requires_grad  # the caller's module is not changed behind their back
    assert bt._ddp_params_and_buffers_to_ignore == ["causal_lm.lm_head.weight"]
    bt(**PairCollator(TOK)(PAIRS)).loss.backward()
    assert causal_lm.lm_head.weight.grad is None  # no term reads it: an optimizer skips it
    grm = RegularizedRewardModel(causal_lm, objective=make_objective("grm-sft"))  # built after, on the same LM
    assert grm._ddp_params_and_buffers_to_ignore == []
    grm(**PairCollator(TOK)(PAIRS)).loss.backward()
    assert causal_lm.lm_head.weight.grad is not None and causal_lm.lm_head.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in grm.parameters() if p.requires_grad)  # fully trainable
    tied = RegularizedRewardModel(tiny_causal_lm("gemma"), objective=make_objective("bt"))
    assert tied._ddp_params_and_buffers_to_ignore == []  # tied to the embeddings, which train


def test_gradient_checkpointing_gives_the_same_loss_and_gradients() -> None:
    batch = PairCollator(TOK)(PAIRS)
    results = []
    for checkpointing in (False, True):
        model = build("llama", "grm-dpo-noref", dtype=torch.float32).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        layer = model.causal_lm.model.layers[0]
        runs = []
        layer.self_attn.register_forward_hook(lambda *args, runs=runs: runs.append(1))
        loss = model(**batch).loss
        loss.backward()
        assert len(runs) == 1 + checkpointing  # the layer is recomputed in the backward pass
        results.append((loss.detach(), layer.self_attn.q_proj.weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


def test_bf16_backbone_keeps_fp32_head_and_losses() -> None:
    batch = PairCollator(TOK)(PAIRS)
    model = build("qwen2", "grm-sft", dtype=torch.float32)
    model.causal_lm.to(torch.bfloat16)
    out = model(**batch)
    assert model.reward_head.output_layer.weight.dtype == torch.float32
    assert out.loss.dtype == out.chosen_rewards.dtype == out.chosen_logps.dtype == torch.float32
    out.loss.backward()
    assert torch.isfinite(model.causal_lm.lm_head.weight.grad.float()).all()


def test_training_lowers_loss_and_learns_the_pairs() -> None:
    torch.manual_seed(0)
    lm = tiny_causal_lm("llama")
    model = RegularizedRewardModel(lm, reward_head=RewardHead(32, hidden=32), objective=rmreg.objective("grm-sft"))
    collate = PairCollator(TOK)
    train, held_out = collate(toy_pairs(32, seed=0)), collate(toy_pairs(32, seed=1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.eval()
    before = model(**held_out)
    model.train()
    for _ in range(25):
        optimizer.zero_grad()
        model(**train).loss.backward()
        optimizer.step()
    model.eval()
    after = model(**held_out)
    assert after.loss < before.loss - 0.1
    assert after.accuracy > 0.8


# ---- errors: each a clear ValueError before the backbone runs ------------------------------------------------


def guard(model: RegularizedRewardModel) -> RegularizedRewardModel:
    """Make the model's decoder fail if it runs."""

    def fail(*args):
        raise AssertionError("the backbone ran before the input was checked")

    model.causal_lm.model.register_forward_pre_hook(fail)
    return model


@pytest.fixture
def guarded() -> RegularizedRewardModel:
    return guard(build("llama", "grm-sft", dtype=torch.float32))


def test_odd_number_of_rows(guarded) -> None:
    batch = PairCollator(TOK)(PAIRS)
    with pytest.raises(ValueError, match="even, positive number of rows"):
        guarded(**{k: v[:5] for k, v in batch.items() if k != "margin"})


def test_labels_of_wrong_shape(guarded) -> None:
    batch = PairCollator(TOK)(PAIRS)
    batch["labels"] = batch["labels"][:, :-1]
    with rmreg.typechecking(False), pytest.raises(ValueError, match="labels must have the shape"):
        guarded(**batch)
    with pytest.raises(rmreg.TypeCheckError):
        guarded(**batch)


def test_missing_inputs_the_objective_needs(guarded) -> None:
    batch = PairCollator(TOK)(PAIRS)
    with pytest.raises(ValueError, match="needs labels"):
        guarded(batch["input_ids"], batch["attention_mask"])
    dpo = guard(build("llama", "grm-dpo", dtype=torch.float32, reference=None))
    with pytest.raises(ValueError, match="needs reference log-probs"):
        dpo(**batch)
    with pytest.raises(ValueError, match=r"needs the per-pair input\(s\) \['margin'\]"):
        guard(build("llama", "margin"))(batch["input_ids"], batch["attention_mask"])
    with pytest.raises(ValueError, match="both ref_chosen_logps and ref_rejected_logps"):
        dpo(**batch, ref_chosen_logps=torch.zeros(3))


def test_response_truncated_away_and_labels_on_padding(guarded) -> None:
    batch = PairCollator(TOK)(PAIRS)
    batch["labels"][1, :] = -100
    with pytest.raises(ValueError, match="row 1 has no response token"):
        guarded(**batch)
    batch = PairCollator(TOK)(PAIRS)
    batch["labels"][batch["attention_mask"] == 0] = 5
    with pytest.raises(ValueError, match="-100 on padding"):
        guarded(**batch)


def test_wrong_margin_shape_is_a_type_error(guarded) -> None:
    batch = PairCollator(TOK)(PAIRS)
    with pytest.raises((rmreg.TypeCheckError, ValueError)):
        guarded(**batch | {"margin": torch.zeros(3, 1)})
    with rmreg.typechecking(False), pytest.raises(ValueError, match="margin must have shape"):
        guarded(**batch | {"margin": torch.zeros(4)})


def test_construction_errors() -> None:
    lm = tiny_causal_lm("llama")
    with pytest.raises(ValueError, match="hidden size 16"):
        RegularizedRewardModel(lm, reward_head=RewardHead(16))
    with pytest.raises(ValueError, match="layout"):
        RegularizedRewardModel(lm, layout="pairs")
    with pytest.raises(ValueError, match="PEFT model"):
        RegularizedRewardModel(lm, reference="adapters")
    with pytest.raises(ValueError, match="LM head differs"):
        RegularizedRewardModel(lm, reference=tiny_causal_lm("llama", vocab_size=50))


def test_a_soft_capped_lm_head_gives_the_models_own_log_probs() -> None:
    """Gemma 2 soft-caps its logits (c·tanh(z/c)): the regularizers' log-probs are the model's own."""
    from transformers import AutoModelForCausalLM, Gemma2Config

    config = Gemma2Config(
        vocab_size=len(TOK),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        final_logit_softcapping=2.0,  # small, so that the cap bends the logits
        attn_implementation="eager",  # Gemma 2 has no sdpa; right padding keeps eager float64 finite
    )
    torch.manual_seed(0)
    capped = AutoModelForCausalLM.from_config(config).double().eval()
    model = RegularizedRewardModel(capped, objective=make_objective("grm-dpo-noref")).eval()
    batch = PairCollator(TOK)(PAIRS)
    out = model(**batch)
    for row in range(6):
        keep = batch["attention_mask"][row].bool()
        ids, labels = batch["input_ids"][row][keep][None], batch["labels"][row][keep][None]
        expected = functional.sequence_logprobs(capped(input_ids=ids).logits, labels)[0]
        actual = (out.chosen_logps if row < 3 else out.rejected_logps)[row % 3]
        torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)


def test_auto_reference_is_a_copy_only_when_a_term_needs_one() -> None:
    assert build("llama", "grm-dpo", dtype=torch.float32, reference="auto").reference_mode == "model"
    assert build("llama", "grm-sft", dtype=torch.float32, reference="auto").reference_mode is None
    with pytest.raises(ValueError, match="reference must be None, 'auto', 'copy', 'adapters'"):
        build("llama", "grm-dpo", dtype=torch.float32, reference="frozen")
