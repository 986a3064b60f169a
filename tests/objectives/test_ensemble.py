"""EnsembleBradleyTerry: each head on its own bootstrap resample, against float64 loops; through the model with GRM."""

import json

import naive
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.autograd import gradcheck

import rmreg
from rmreg.data import PairCollator
from rmreg.heads import RewardEnsemble, aggregate_rewards, reward_spread
from rmreg.model import RegularizedRewardModel
from rmreg.objectives import BradleyTerry, Objective, PairInputs, SFTRegularizer
from rmreg.objectives.ensemble import EnsembleBradleyTerry
from rmreg.testing import tiny_causal_lm, tiny_tokenizer

TOK = tiny_tokenizer()
PAIRS = [
    {"prompt": "Name a fruit:", "chosen": "apple", "rejected": "a rock"},
    {"prompt": "2+2=", "chosen": "4", "rejected": "five"},
    {"prompt": "Hi", "chosen": "Hello there!", "rejected": "Go."},
]


def ensemble_inputs(chosen: torch.Tensor, rejected: torch.Tensor, weights: torch.Tensor) -> PairInputs:
    return PairInputs(
        chosen.mean(1),
        rejected.mean(1),
        chosen_head_rewards=chosen,
        rejected_head_rewards=rejected,
        head_bootstrap_weights=weights,
    )


def naive_ensemble(chosen: list[list[float]], rejected: list[list[float]], weights: list[list[float]], eps=0.0):
    """(1/K) Σ_k Σ_p w_pk ℓ_pk / Σ_p w_pk, a head with an empty resample counting 0."""
    pairs, heads = len(chosen), len(chosen[0])
    total = 0.0
    for k in range(heads):
        losses = naive.bradley_terry([c[k] for c in chosen], [r[k] for r in rejected], label_smoothing=eps)
        size = sum(weights[p][k] for p in range(pairs))
        total += sum(weights[p][k] * losses[p] for p in range(pairs)) / size if size else 0.0
    return total / heads


@st.composite
def ensembles(draw):
    pairs, heads = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    reward = st.floats(-8, 8, allow_nan=False)
    chosen = draw(st.lists(st.lists(reward, min_size=heads, max_size=heads), min_size=pairs, max_size=pairs))
    rejected = draw(st.lists(st.lists(reward, min_size=heads, max_size=heads), min_size=pairs, max_size=pairs))
    count = st.integers(0, 3).map(float)
    weights = draw(st.lists(st.lists(count, min_size=heads, max_size=heads), min_size=pairs, max_size=pairs))
    return chosen, rejected, weights


@given(case=ensembles(), eps=st.sampled_from([0.0, 0.1]))
def test_each_head_on_its_resample_matches_a_float64_loop(case, eps):
    chosen, rejected, weights = case
    inputs = ensemble_inputs(*(torch.tensor(x, dtype=torch.float64) for x in case))
    term = EnsembleBradleyTerry(label_smoothing=eps)
    expected = naive_ensemble(chosen, rejected, weights, eps)
    torch.testing.assert_close(term(inputs), torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(term(inputs, "sum"), term.per_pair(inputs).sum())
    unweighted = EnsembleBradleyTerry(label_smoothing=eps, bootstrap=False)
    ones = [[1.0] * len(chosen[0]) for _ in chosen]
    torch.testing.assert_close(
        unweighted(inputs), torch.tensor(naive_ensemble(chosen, rejected, ones, eps), dtype=torch.float64)
    )


@given(pairs=st.integers(1, 6), seed=st.integers(0, 99))
def test_one_head_on_every_pair_is_bradley_terry(pairs, seed):
    generator = torch.Generator().manual_seed(seed)
    chosen, rejected = torch.randn(pairs, 1, generator=generator), torch.randn(pairs, 1, generator=generator)
    inputs = ensemble_inputs(chosen, rejected, torch.ones(pairs, 1))
    expected = BradleyTerry().per_pair(inputs)
    torch.testing.assert_close(EnsembleBradleyTerry().per_pair(inputs), expected)
    torch.testing.assert_close(EnsembleBradleyTerry(bootstrap=False).per_pair(inputs), expected)


def test_gradcheck_and_no_gradient_from_pairs_outside_a_resample():
    weights = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 2.0]], dtype=torch.float64)

    def loss(chosen, rejected):
        return EnsembleBradleyTerry()(ensemble_inputs(chosen, rejected, weights))

    chosen = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    rejected = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert gradcheck(loss, (chosen, rejected))
    loss(chosen, rejected).backward()
    assert torch.equal(chosen.grad == 0, weights == 0)


def test_bad_inputs_are_named():
    chosen = torch.zeros(2, 3)
    term = EnsembleBradleyTerry()
    with pytest.raises(ValueError, match="head_bootstrap_weights has shape"):
        term(ensemble_inputs(chosen, chosen, torch.ones(2, 2)))
    with pytest.raises(ValueError, match="must be >= 0"):
        term(ensemble_inputs(chosen, chosen, -torch.ones(2, 3)))
    inputs = PairInputs(torch.zeros(2), torch.zeros(2), chosen_head_rewards=chosen, rejected_head_rewards=chosen)
    with pytest.raises(ValueError, match="needs input 'head_bootstrap_weights'"):
        term(inputs)
    assert EnsembleBradleyTerry(bootstrap=False)(inputs).shape == ()
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        EnsembleBradleyTerry(label_smoothing=0.5)
    with pytest.raises(ValueError, match="bootstrap must be True or False"):
        EnsembleBradleyTerry(bootstrap=1)


def test_objective_with_the_term_saves_and_reloads():
    objective = 0.99 * EnsembleBradleyTerry(label_smoothing=0.1) + 0.01 * SFTRegularizer(beta=0.1)
    rebuilt = Objective.from_config(json.loads(json.dumps(objective.config())))
    assert rebuilt.config() == objective.config()
    assert sorted(objective.needs) == [
        "chosen_head_rewards",
        "chosen_logps",
        "head_bootstrap_weights",
        "rejected_head_rewards",
    ]


def ensemble_model(seed: int = 0, heads: int = 3, **kwargs) -> RegularizedRewardModel:
    lm = tiny_causal_lm("llama", dtype=torch.float64)
    torch.manual_seed(seed)
    head = RewardEnsemble(lm.config.hidden_size, heads, hidden=16, dropout=0.0, seed=seed, **kwargs).double()
    objective = 0.7 * EnsembleBradleyTerry() + 0.3 * SFTRegularizer(beta=0.1)
    return RegularizedRewardModel(lm, reward_head=head, objective=objective).train()  # no dropout: deterministic


def count_decoder_calls(model: RegularizedRewardModel) -> list[int]:
    calls = [0]
    model.causal_lm.model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_through_the_model_with_sft_one_backbone_forward_matches_each_row_alone(padding_side):
    model = ensemble_model()
    batch = PairCollator(TOK, padding_side=padding_side)(PAIRS)
    calls = count_decoder_calls(model)
    out = model(**batch)
    assert calls[0] == 1  # all heads and the LM head read one backbone forward
    weights = out.inputs["head_bootstrap_weights"]
    assert weights.shape == (3, 3) and torch.equal(weights.sum(0), torch.full((3,), 3.0, dtype=weights.dtype))
    per_head, logps = [], []
    for row in range(batch["input_ids"].shape[0]):
        keep = batch["attention_mask"][row].bool()
        ids, labels = batch["input_ids"][row][keep][None], batch["labels"][row][keep][None]
        lm_out = model.causal_lm(input_ids=ids, output_hidden_states=True)
        per_head.append(model.reward_head(lm_out.hidden_states[-1][:, -1])[0].tolist())
        logps.append(float(rmreg.functional.sequence_logprobs(lm_out.logits, labels)[0]))
    chosen, rejected = per_head[:3], per_head[3:]
    expected = 0.7 * naive_ensemble(chosen, rejected, weights.tolist()) + 0.3 * naive.mean(naive.sft(logps[:3], 0.1))
    torch.testing.assert_close(out.loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out.chosen_rewards, torch.tensor(chosen, dtype=torch.float64).mean(1))
    torch.testing.assert_close(out.inputs["rejected_head_rewards"], torch.tensor(rejected, dtype=torch.float64))
    model.reward_head.reset_bootstrap()  # the same draw again: the generic path gives the same loss
    inputs = model.pair_outputs(**batch, needs=model.objective.needs)
    assert torch.equal(inputs["head_bootstrap_weights"], weights)
    torch.testing.assert_close(model.objective(inputs).loss, out.loss, rtol=1e-12, atol=1e-12)


def test_bootstrap_draws_through_the_model_are_reproducible_and_train_the_heads_apart():
    batch = PairCollator(TOK)(PAIRS)
    first, second = ensemble_model(seed=3), ensemble_model(seed=3)
    for _ in range(3):
        a, b = first(**batch), second(**batch)
        assert torch.equal(a.inputs["head_bootstrap_weights"], b.inputs["head_bootstrap_weights"])
        assert torch.equal(a.loss, b.loss)
    model = ensemble_model(seed=1, heads=4)
    for member in model.reward_head.members[1:]:  # start the heads equal: only the bootstrap can part them
        member.load_state_dict(model.reward_head.members[0].state_dict())
    scores = model.score_heads(batch["input_ids"], batch["attention_mask"])
    assert float(reward_spread(scores).max()) == 0.0
    optimizer = torch.optim.SGD(model.reward_head.parameters(), lr=0.5)
    for _ in range(5):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    scores = model.score_heads(batch["input_ids"], batch["attention_mask"])
    assert float(reward_spread(scores).min()) > 1e-4


def test_scoring_aggregations_and_what_the_model_refuses():
    model = ensemble_model()
    batch = PairCollator(TOK)(PAIRS)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    calls = count_decoder_calls(model)
    heads = model.score_heads(ids, mask)
    assert calls[0] == 1 and heads.shape == (6, 3)
    torch.testing.assert_close(model.score(ids, mask), heads.mean(1))
    torch.testing.assert_close(model.score(ids, mask, aggregate="min"), heads.min(1).values)
    uwo = model.score(ids, mask, aggregate="uncertainty_weighted", penalty=2.0)
    torch.testing.assert_close(uwo, aggregate_rewards(heads, "uncertainty_weighted", penalty=2.0))
    texts = [(p["prompt"], p["chosen"]) for p in PAIRS] + [(p["prompt"], p["rejected"]) for p in PAIRS]
    torch.testing.assert_close(model.score_texts(TOK, texts, batch_size=4, aggregate="min"), heads.min(1).values)
    plain = RegularizedRewardModel(tiny_causal_lm(), objective=BradleyTerry())
    with pytest.raises(ValueError, match="apply to a RewardEnsemble head"):
        plain.score(ids, mask, aggregate="min")
    with pytest.raises(ValueError, match=r"reads \['chosen_head_rewards', .*only a RewardEnsemble gives"):
        plain.pair_outputs(**batch, needs=EnsembleBradleyTerry().needs)


def test_in_eval_mode_every_head_sees_every_pair_and_no_draw_is_used():
    model = ensemble_model().eval()
    out = model(**PairCollator(TOK)(PAIRS))
    assert torch.equal(out.inputs["head_bootstrap_weights"], torch.ones(3, 3))
    assert model.reward_head.draws == 0
    torch.testing.assert_close(
        out.terms["ensemble_bradley_terry"], EnsembleBradleyTerry(bootstrap=False)(out.inputs), rtol=0, atol=0
    )


def test_plain_pair_terms_train_the_ensembles_mean():
    model = ensemble_model()
    model.objective = rmreg.objective("grm-sft")
    batch = PairCollator(TOK)(PAIRS)
    out = model(**batch)
    torch.testing.assert_close(out.chosen_rewards, out.inputs["chosen_head_rewards"].mean(1))
    assert "head_bootstrap_weights" not in out.inputs  # drawn only when a term reads them
    assert model.reward_head.draws == 0


def test_a_saved_ensemble_objective_loads_in_a_fresh_process(tmp_path):
    """The term is registered by ``import rmreg``: loading needs no import of rmreg.objectives.ensemble."""
    import subprocess
    import sys

    RegularizedRewardModel(
        tiny_causal_lm(), reward_head=RewardEnsemble(32, 2, hidden=8), objective=EnsembleBradleyTerry()
    ).save_pretrained(tmp_path)
    code = f"import rmreg; print(rmreg.RegularizedRewardModel.from_pretrained({str(tmp_path)!r}).objective.name)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
