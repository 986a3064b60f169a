"""Objectives: presets against the paper's formulas, composition, custom terms, serialization, bad input."""

import json

import naive
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import rmreg
from rmreg.objectives import (
    PRESETS,
    BradleyTerry,
    DPORegularizer,
    Needs,
    Objective,
    PairInputs,
    RewardCentering,
    SFTRegularizer,
    Term,
    register_term,
)


def random_inputs(pairs: int = 5, hidden: int = 3, seed: int = 0) -> PairInputs:
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale

    return PairInputs(
        chosen_rewards=rand(pairs, scale=2.0),
        rejected_rewards=rand(pairs, scale=2.0),
        chosen_logps=-rand(pairs, scale=30.0).abs(),
        rejected_logps=-rand(pairs, scale=30.0).abs(),
        ref_chosen_logps=-rand(pairs, scale=30.0).abs(),
        ref_rejected_logps=-rand(pairs, scale=30.0).abs(),
        margin=rand(pairs).abs(),
        chosen_hidden=rand(pairs, hidden),
        rejected_hidden=rand(pairs, hidden),
    )


def naive_preset(name: str, x: PairInputs, alpha: float, beta: float, eps: float) -> list[float]:
    """The paper's per-pair objective, from the independent float64 formulas."""
    c, r = x.chosen_rewards.tolist(), x.rejected_rewards.tolist()
    pc, pr = x.chosen_logps.tolist(), x.rejected_logps.tolist()
    bt = naive.bradley_terry(c, r)
    regularizers = {
        "grm-sft": lambda: naive.sft(pc, beta),
        "grm-sft-nll": lambda: naive.sft(pc, beta, log_sigmoid_form=False),
        "grm-dpo": lambda: naive.dpo(pc, pr, x.ref_chosen_logps.tolist(), x.ref_rejected_logps.tolist(), beta),
        "grm-dpo-noref": lambda: naive.dpo(pc, pr, None, None, beta),
    }
    if name == "bt":
        return bt
    if name == "margin":
        return naive.bradley_terry(c, r, margin=x.margin.tolist())
    if name == "label-smoothing":
        return naive.bradley_terry(c, r, label_smoothing=eps)
    return [(1 - alpha) * b + alpha * g for b, g in zip(bt, regularizers[name](), strict=True)]


@pytest.mark.parametrize("name", PRESETS)
@given(alpha=st.floats(0.0, 1.0), beta=st.floats(0.01, 1.0), eps=st.floats(0.0, 0.5), seed=st.integers(0, 999))
def test_presets_match_the_paper_formulas(name, alpha, beta, eps, seed):
    inputs = random_inputs(seed=seed)
    output = rmreg.objective(name, alpha=alpha, beta=beta, label_smoothing=eps)(inputs, reduction="none")
    expected = naive_preset(name, inputs, alpha, beta, eps)
    torch.testing.assert_close(output.loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(output.per_pair, output.loss)


def test_paper_defaults():
    grm = rmreg.objective("grm-sft")
    assert grm.weights == [0.99, 0.01]
    assert isinstance(grm.terms[1], SFTRegularizer) and grm.terms[1].beta == 0.1 and grm.terms[1].log_sigmoid
    smoothing = rmreg.objective("label-smoothing").terms[0]
    assert isinstance(smoothing, BradleyTerry) and smoothing.label_smoothing == 0.1
    dpo = rmreg.objective("grm-dpo").terms[1]
    assert isinstance(dpo, DPORegularizer) and dpo.reference and dpo.beta == 0.1
    assert rmreg.objective("grm-dpo-noref").terms[1].reference is False


@pytest.mark.parametrize(
    ("name", "needs"),
    [
        ("bt", Needs()),
        ("margin", Needs(margin=True)),
        ("label-smoothing", Needs()),
        ("grm-sft", Needs(chosen_logps=True)),
        ("grm-sft-nll", Needs(chosen_logps=True)),
        ("grm-dpo", Needs(chosen_logps=True, rejected_logps=True, reference_logps=True)),
        ("grm-dpo-noref", Needs(chosen_logps=True, rejected_logps=True)),
    ],
)
def test_presets_declare_only_what_they_need(name, needs):
    assert rmreg.objective(name).needs == needs


@given(alpha=st.floats(0.0, 1.0), beta=st.floats(0.01, 2.0))
def test_composition_by_operators_equals_the_preset(alpha, beta):
    inputs = random_inputs()
    composed = (1 - alpha) * BradleyTerry() + alpha * SFTRegularizer(beta=beta)
    preset = rmreg.objective("grm-sft", alpha=alpha, beta=beta)
    torch.testing.assert_close(composed(inputs).loss, preset(inputs).loss)


@given(weights=st.lists(st.floats(-3.0, 3.0), min_size=4, max_size=4), seed=st.integers(0, 999))
def test_composed_objective_is_the_weighted_sum_of_its_terms(weights, seed):
    inputs = random_inputs(seed=seed)
    terms = [BradleyTerry(), RewardCentering(), SFTRegularizer(), DPORegularizer(reference=False)]
    objective = weights[0] * terms[0] + weights[1] * terms[1] + (weights[2] * terms[2] + weights[3] * terms[3])
    output = objective(inputs)
    expected = sum(w * t(inputs) for w, t in zip(weights, terms, strict=True))
    torch.testing.assert_close(output.loss, expected)
    for term in terms:  # logged values are each term's own, unweighted, mean
        torch.testing.assert_close(output.terms[term.name], term(inputs))
        assert not output.terms[term.name].requires_grad
    assert (2.0 * objective).weights == [2.0 * w for w in weights]


@pytest.mark.parametrize("name", PRESETS)
def test_reductions_and_pair_permutation(name):
    inputs = random_inputs(pairs=6)
    objective = rmreg.objective(name, alpha=0.3)
    per_pair = objective(inputs, reduction="none").loss
    torch.testing.assert_close(objective(inputs, reduction="mean").loss, per_pair.mean())
    torch.testing.assert_close(objective(inputs, reduction="sum").loss, per_pair.sum())
    order = torch.randperm(6)
    permuted = PairInputs(**{k: (v[order] if v is not None else None) for k, v in inputs.items()})
    torch.testing.assert_close(objective(permuted, reduction="none").loss, per_pair[order])


@pytest.mark.parametrize("name", PRESETS)
def test_gradcheck_through_presets(name):
    base = random_inputs(pairs=3)
    objective = rmreg.objective(name, alpha=0.3)
    fields = ["chosen_rewards", "rejected_rewards", "chosen_logps", "rejected_logps"]

    def loss(*tensors: torch.Tensor) -> torch.Tensor:
        return objective(PairInputs(**{**base, **dict(zip(fields, tensors, strict=True))})).loss

    tensors = tuple(getattr(base, f).clone().requires_grad_(True) for f in fields)
    assert torch.autograd.gradcheck(loss, tensors, eps=1e-6, atol=1e-6)


@register_term("test_hidden_norm")
class HiddenNorm(Term):
    """A user's own regularizer: the squared norm of the chosen rows' pooled hidden state."""

    needs = Needs(hidden_states=True)
    default_name = "hidden_norm"
    config_fields = ("power",)

    def __init__(self, *, power: float = 2.0, name: str | None = None):
        super().__init__(name=name)
        self.power = power

    def per_pair(self, inputs: PairInputs) -> torch.Tensor:
        return inputs.require("chosen_hidden", self).abs().pow(self.power).sum(-1)


def test_custom_term_joins_a_preset_and_round_trips():
    objective = rmreg.objective("grm-sft") + 1e-3 * HiddenNorm()
    assert objective.needs == Needs(chosen_logps=True, hidden_states=True)
    inputs = random_inputs()
    output = objective(inputs)
    expected = rmreg.objective("grm-sft")(inputs).loss + 1e-3 * inputs.chosen_hidden.square().sum(-1).mean()
    torch.testing.assert_close(output.loss, expected)
    assert set(output.terms) == {"bradley_terry", "sft", "hidden_norm"}
    restored = Objective.from_config(json.loads(json.dumps(objective.config())))
    torch.testing.assert_close(restored(inputs).loss, output.loss)


@pytest.mark.parametrize("name", PRESETS)
def test_config_round_trip(name):
    objective = rmreg.objective(name, alpha=0.2, beta=0.5, label_smoothing=0.2)
    restored = Objective.from_config(json.loads(json.dumps(objective.config())))
    assert restored.config() == objective.config()
    assert restored.name == name
    inputs = random_inputs()
    torch.testing.assert_close(restored(inputs).loss, objective(inputs).loss)


def test_unregistered_and_unknown_terms_cannot_be_saved_or_loaded():
    class Unregistered(Term):
        def per_pair(self, inputs):
            return inputs.chosen_rewards

    with pytest.raises(ValueError, match="register_term"):
        (1.0 * Unregistered()).config()
    with pytest.raises(ValueError, match="unknown term type 'nope'"):
        Objective.from_config({"terms": [{"type": "nope", "weight": 1.0, "name": "x", "params": {}}]})
    with pytest.raises(ValueError, match="another term type is already registered"):
        register_term("bradley_terry")(Unregistered)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": -0.01}, r"alpha must be in \[0, 1\]"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"alpha": float("nan")}, r"alpha must be in \[0, 1\]"),
        ({"beta": 0.0}, "beta must be a finite number > 0"),
        ({"beta": -0.1}, "beta must be a finite number > 0"),
        ({"label_smoothing": 0.6}, r"label_smoothing must be in \[0, 0.5\]"),
        ({"label_smoothing": -0.1}, r"label_smoothing must be in \[0, 0.5\]"),
    ],
)
def test_invalid_hyperparameters_say_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rmreg.objective("grm-sft", **kwargs)


def test_unknown_preset_lists_the_names():
    with pytest.raises(ValueError, match="choose one of bt, margin, label-smoothing, grm-sft"):
        rmreg.objective("grm")


def test_invalid_compositions():
    with pytest.raises(ValueError, match="unique"):
        BradleyTerry() + BradleyTerry()
    assert set((BradleyTerry() + BradleyTerry(name="bt2", label_smoothing=0.1))(random_inputs()).terms) == {
        "bradley_terry",
        "bt2",
    }
    with pytest.raises(ValueError, match="finite number"):
        float("inf") * BradleyTerry()
    with pytest.raises(TypeError):
        BradleyTerry() * BradleyTerry()  # type: ignore[operator]
    with pytest.raises(ValueError, match="at least one term"):
        Objective([])
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 0.5\]"):
        BradleyTerry(label_smoothing=0.7)
    with pytest.raises(ValueError, match="beta"):
        DPORegularizer(beta=0)


def test_missing_inputs_fail_before_any_loss_is_computed():
    rewards = torch.zeros(2), torch.zeros(2)
    with pytest.raises(ValueError, match="'dpo' needs input 'ref_chosen_logps'"):
        rmreg.objective("grm-dpo")(PairInputs(*rewards, chosen_logps=torch.zeros(2), rejected_logps=torch.zeros(2)))
    with pytest.raises(ValueError, match="'sft' needs input 'chosen_logps'"):
        rmreg.objective("grm-sft")(PairInputs(*rewards))
    with pytest.raises(ValueError, match="'bradley_terry' needs input 'margin'"):
        rmreg.objective("margin")(PairInputs(*rewards))


def test_pair_inputs_check_shapes():
    with pytest.raises(ValueError, match=r"rejected_rewards must have shape \[pairs\] = \(2,\)"):
        PairInputs(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"chosen_hidden must have shape \[pairs=2, hidden\]"):
        PairInputs(torch.zeros(2), torch.zeros(2), chosen_hidden=torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"chosen_rewards must be a \[pairs\] tensor"):
        PairInputs(torch.zeros(2, 1), torch.zeros(2, 1))


def test_a_term_returning_the_wrong_shape_is_reported():
    class Scalar(Term):
        def per_pair(self, inputs):
            return inputs.chosen_rewards.sum()

    with pytest.raises(ValueError, match=r"term 'term' returned shape \(\), expected \[pairs\]"):
        (1.0 * Scalar())(random_inputs())
