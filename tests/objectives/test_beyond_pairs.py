"""Terms and presets beyond pairs (rankings, ties, ratings, BSR) on hand-built inputs, against float64 loops."""

import json
import math

import naive
import pytest
import torch

import rmreg
from rmreg.objectives import BradleyTerry, DPORegularizer, Objective, PairInputs, SFTRegularizer
from rmreg.objectives.batch import BatchSumRegularizer
from rmreg.objectives.beyond_pairs_presets import BEYOND_PAIRS_PRESETS, BSR_WEIGHT, beyond_pairs_objective
from rmreg.objectives.rankings import GroupDPORegularizer, ListwiseSoftmax, PlackettLuce
from rmreg.objectives.ratings import OrdinalRating, RatingMSE
from rmreg.objectives.ties import Davidson, RaoKupper


def beyond_pairs_inputs(groups: int = 5, slots: int = 4, attributes: int = 3, seed: int = 0) -> PairInputs:
    """float64 inputs with every name the new terms read: ``chosen_*`` is each group's best completion and
    ``rejected_*`` its worst, as the model provides them; padding slots and missing ratings hold NaN."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale

    mask = torch.rand(groups, slots, generator=generator) < 0.6
    mask[:, :2] = True  # at least two completions, the best in slot 0
    rewards, logps, ref_logps = rand(groups, slots, scale=2.0), -rand(groups, slots).abs() * 30, -rand(groups, slots)
    last, rows = slots - 1 - mask.flip(1).int().argmax(1), torch.arange(groups)
    rated = torch.rand(2, groups, attributes, generator=generator) < 0.7
    ratings = torch.randint(1, 6, (2, groups, attributes), generator=generator).double().masked_fill(~rated, math.nan)
    return PairInputs(
        chosen_rewards=rewards[:, 0],
        rejected_rewards=rewards[rows, last],
        chosen_logps=logps[:, 0],
        rejected_logps=logps[rows, last],
        ref_chosen_logps=ref_logps[:, 0].abs().neg(),
        ref_rejected_logps=ref_logps[rows, last].abs().neg(),
        group_rewards=rewards.masked_fill(~mask, math.nan),
        group_mask=mask,
        group_logps=logps.masked_fill(~mask, math.nan),
        ref_group_logps=ref_logps.abs().neg().masked_fill(~mask, math.nan),
        tie=torch.rand(groups, generator=generator) < 0.4,
        chosen_attribute_rewards=rand(groups, attributes, scale=2.0),
        rejected_attribute_rewards=rand(groups, attributes, scale=2.0),
        chosen_ratings=ratings[0],
        rejected_ratings=ratings[1],
        chosen_rating_mask=rated[0],
        rejected_rating_mask=rated[1],
    )


def close(actual: torch.Tensor, expected: list[float] | float, tol: float = 1e-6) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), rtol=tol, atol=tol)


def real_slots(inputs: PairInputs, name: str) -> list[list[float]]:
    return [row[mask].tolist() for row, mask in zip(inputs[name], inputs["group_mask"], strict=True)]


def naive_group_dpo(inputs: PairInputs, beta: float, reference: bool) -> list[float]:
    losses = []
    refs = real_slots(inputs, "ref_group_logps") if reference else None
    for g, logps in enumerate(real_slots(inputs, "group_logps")):
        ref = refs[g] if refs else [0.0] * len(logps)
        each = naive.dpo([logps[0]] * (len(logps) - 1), logps[1:], [ref[0]] * (len(ref) - 1), ref[1:], beta)
        losses.append(naive.mean(each))
    return losses


def naive_ratings(inputs: PairInputs, per_rating) -> list[float]:
    """Σ over a pair's observed ratings of ``per_rating(score, rating)`` / (2·A)."""
    losses = []
    for i in range(inputs.num_pairs):
        total = 0.0
        for side in ("chosen", "rejected"):
            scores, ratings = inputs[f"{side}_attribute_rewards"][i], inputs[f"{side}_ratings"][i]
            for a, observed in enumerate(inputs[f"{side}_rating_mask"][i].tolist()):
                total += per_rating(float(scores[a]), float(ratings[a])) if observed else 0.0
        losses.append(total / (2 * scores.shape[0]))
    return losses


@pytest.mark.parametrize("seed", range(3))
def test_group_terms_match_naive(seed):
    inputs = beyond_pairs_inputs(seed=seed)
    rewards = real_slots(inputs, "group_rewards")
    close(PlackettLuce().per_pair(inputs), naive.plackett_luce(rewards))
    close(ListwiseSoftmax().per_pair(inputs), naive.listwise_softmax([r[0] for r in rewards], [r[1:] for r in rewards]))
    for reference in (True, False):
        got = GroupDPORegularizer(beta=0.2, reference=reference).per_pair(inputs)
        close(got, naive_group_dpo(inputs, 0.2, reference))


def test_two_completion_groups_are_the_pair_terms():
    inputs = beyond_pairs_inputs(slots=2)
    torch.testing.assert_close(PlackettLuce().per_pair(inputs), BradleyTerry().per_pair(inputs))
    torch.testing.assert_close(ListwiseSoftmax().per_pair(inputs), BradleyTerry().per_pair(inputs))
    for reference in (True, False):
        torch.testing.assert_close(
            GroupDPORegularizer(reference=reference).per_pair(inputs),
            DPORegularizer(reference=reference).per_pair(inputs),
        )


def test_group_terms_take_the_first_real_slot_as_best():
    inputs = beyond_pairs_inputs(slots=5)
    shifted = {
        name: torch.cat([torch.full_like(inputs[name][:, :1], 99.0), inputs[name]], 1)
        for name in ("group_rewards", "group_logps", "ref_group_logps")
    }
    mask = torch.cat([torch.zeros(inputs.num_pairs, 1, dtype=torch.bool), inputs["group_mask"]], 1)
    moved = inputs.replace(**shifted, group_mask=mask)
    for term in (PlackettLuce(), ListwiseSoftmax(), GroupDPORegularizer()):
        torch.testing.assert_close(term.per_pair(moved), term.per_pair(inputs))


def test_group_dpo_needs_two_completions():
    inputs = beyond_pairs_inputs()
    single = inputs["group_mask"].clone()
    single[2, 1:] = False
    with pytest.raises(ValueError, match=r"groups \[2\] have a single completion"):
        GroupDPORegularizer().per_pair(inputs.replace(group_mask=single))


@pytest.mark.parametrize("seed", range(3))
def test_tie_terms_match_naive_and_learn_their_parameter(seed):
    inputs = beyond_pairs_inputs(seed=seed)
    c, r, tie = inputs.chosen_rewards.tolist(), inputs.rejected_rewards.tolist(), inputs["tie"].tolist()
    close(RaoKupper(theta=1.7).per_pair(inputs), naive.rao_kupper(c, r, tie, 1.7))
    close(Davidson(nu=0.4).per_pair(inputs), naive.davidson(c, r, tie, 0.4))
    for term, value in ((RaoKupper(theta=1.7, learn_theta=True), 1.7), (Davidson(nu=0.4, learn_nu=True), 0.4)):
        parameters = list(term.parameters())
        assert len(parameters) == 1
        close(
            term.per_pair(inputs).float(),
            (RaoKupper(theta=value) if value > 1 else Davidson(nu=value)).per_pair(inputs).float().tolist(),
            1e-5,
        )
        term(inputs).backward()
        assert parameters[0].grad is not None and parameters[0].grad.abs() > 0
        with torch.no_grad():  # no step can reach θ = 1 or ν = 0, where a tie has probability 0
            parameters[0].fill_(-1e4)
        assert (term.theta > 1.0) if isinstance(term, RaoKupper) else (term.nu > 0.0)
        assert torch.isfinite(term(inputs))


def test_tie_terms_need_the_tie_column_and_valid_parameters():
    inputs = beyond_pairs_inputs()
    untied = PairInputs(inputs.chosen_rewards, inputs.rejected_rewards)
    for term in (RaoKupper(), Davidson()):
        assert "tie" in term.needs
        with pytest.raises(ValueError, match=f"term {term.name!r} needs input 'tie'"):
            Objective([(1.0, term)])(untied)
    for bad in (1.0, 0.5, math.nan, "2"):
        with pytest.raises(ValueError, match="theta must be a finite number > 1"):
            RaoKupper(theta=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nu must be a finite number > 0"):
        Davidson(nu=0.0)


def test_batch_sum_term_gives_every_pair_the_batch_value():
    inputs = beyond_pairs_inputs()
    pairs = BatchSumRegularizer().per_pair(inputs)
    expected = naive.squared_mean(inputs.chosen_rewards.tolist() + inputs.rejected_rewards.tolist())
    close(pairs, [expected] * inputs.num_pairs)
    groups = BatchSumRegularizer(groups=True).per_pair(inputs)
    every_completion = [reward for group in real_slots(inputs, "group_rewards") for reward in group]
    close(groups, [naive.squared_mean(every_completion)] * inputs.num_pairs)
    assert BatchSumRegularizer(groups=True).needs == PlackettLuce().needs
    rewards = inputs.chosen_rewards.clone().requires_grad_()
    Objective([(1.0, BatchSumRegularizer())])(inputs.replace(chosen_rewards=rewards)).loss.backward()
    everything = torch.cat([rewards.detach(), inputs.rejected_rewards])
    close(rewards.grad, [2 * everything.mean().item() / len(everything)] * inputs.num_pairs)  # BSR's own gradient


@pytest.mark.parametrize("seed", range(3))
def test_rating_terms_match_naive(seed):
    inputs = beyond_pairs_inputs(seed=seed)
    close(RatingMSE().per_pair(inputs), naive_ratings(inputs, lambda f, y: (f - y) ** 2))
    cuts = [-1.5, -0.2, 0.4, 2.0]
    term = OrdinalRating(5, lowest=1, thresholds=cuts, learn_thresholds=False)
    assert term.thresholds == pytest.approx(cuts, abs=1e-6)

    def ordinal(f: float, y: float) -> float:
        return naive.ordinal_logistic([[f]], [[int(y) - 1]], [cuts], [[True]])[0][0]

    close(term.per_pair(inputs).float(), naive_ratings(inputs, ordinal), 1e-5)


def test_ordinal_thresholds_learn_and_stay_ordered():
    inputs = beyond_pairs_inputs()
    term = OrdinalRating(5, lowest=1)
    assert term.thresholds == pytest.approx([-1.5, -0.5, 0.5, 1.5], abs=1e-6)
    Objective([(1.0, term)])(inputs).loss.backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in term.parameters())
    with torch.no_grad():
        for parameter in term.parameters():
            parameter.copy_(torch.randn_like(parameter) * 20)
    assert all(b < c for b, c in zip(term.thresholds, term.thresholds[1:], strict=False))
    restored = Objective.from_config(json.loads(json.dumps(Objective([(1.0, term)]).config())))
    close(restored(inputs).loss.float(), Objective([(1.0, term)])(inputs).loss.item(), 1e-5)


def test_rating_terms_reject_bad_ratings_and_settings():
    inputs = beyond_pairs_inputs()
    off_scale = inputs["chosen_ratings"].nan_to_num(3.0) + 0.5
    with pytest.raises(ValueError, match=r"ratings must be integers in \[1, 6\)"):
        all_rated = torch.ones_like(inputs["chosen_rating_mask"])
        OrdinalRating(5, lowest=1).per_pair(inputs.replace(chosen_ratings=off_scale, chosen_rating_mask=all_rated))
    with pytest.raises(ValueError, match="term 'ordinal_rating' needs input 'chosen_rating_mask'"):
        Objective([(1.0, OrdinalRating(5, lowest=1))])(inputs.replace(chosen_rating_mask=None))
    with pytest.raises(ValueError, match="levels must be an int >= 2"):
        OrdinalRating(1)
    with pytest.raises(ValueError, match="strictly increasing"):
        OrdinalRating(3, thresholds=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"thresholds must be 2 numbers"):
        OrdinalRating(3, thresholds=[1.0])


def naive_preset(name: str, inputs: PairInputs, alpha: float, beta: float) -> list[float]:
    reward, _, regularizer = name.partition("+")
    c, r, tie = inputs.chosen_rewards.tolist(), inputs.rejected_rewards.tolist(), inputs["tie"].tolist()
    rewards = real_slots(inputs, "group_rewards")
    bsr = naive.squared_mean(c + r)
    base = {
        "plackett-luce": lambda: naive.plackett_luce(rewards),
        "listwise-softmax": lambda: naive.listwise_softmax([g[0] for g in rewards], [g[1:] for g in rewards]),
        "rao-kupper": lambda: naive.rao_kupper(c, r, tie, 2.0),
        "davidson": lambda: naive.davidson(c, r, tie, 1.0),
        "bsr": lambda: [bt + BSR_WEIGHT * bsr for bt in naive.bradley_terry(c, r)],
        "ratings": lambda: [
            mse + bt
            for mse, bt in zip(naive_ratings(inputs, lambda f, y: (f - y) ** 2), naive.bradley_terry(c, r), strict=True)
        ],
    }[reward]()
    if not regularizer:
        return base
    grouped = reward in ("plackett-luce", "listwise-softmax")
    if regularizer.startswith("grm-dpo"):
        reference = regularizer == "grm-dpo"
        if grouped:
            extra = naive_group_dpo(inputs, beta, reference)
        else:
            ref_c, ref_r = (
                inputs[f"ref_{side}_logps"].tolist() if reference else None for side in ("chosen", "rejected")
            )
            extra = naive.dpo(inputs.chosen_logps.tolist(), inputs.rejected_logps.tolist(), ref_c, ref_r, beta)
    else:
        extra = naive.sft(inputs.chosen_logps.tolist(), beta, log_sigmoid_form=regularizer == "grm-sft")
    return [(1 - alpha) * b + alpha * e for b, e in zip(base, extra, strict=True)]


ENSEMBLE_PRESETS = [name for name in BEYOND_PAIRS_PRESETS if name.startswith("ensemble")]


@pytest.mark.parametrize("name", [name for name in BEYOND_PAIRS_PRESETS if name not in ENSEMBLE_PRESETS])
def test_presets_match_their_formula_and_round_trip(name):
    inputs = beyond_pairs_inputs(seed=4)
    objective = beyond_pairs_objective(name, alpha=0.2, beta=0.3)
    output = objective(inputs, reduction="none")
    close(output.loss, naive_preset(name, inputs, 0.2, 0.3))
    restored = Objective.from_config(json.loads(json.dumps(objective.config())))
    torch.testing.assert_close(restored(inputs).loss, objective(inputs).loss)
    assert restored.name == name


@pytest.mark.parametrize("name", ENSEMBLE_PRESETS)
def test_ensemble_presets_are_their_terms_and_round_trip(name):
    """The ensemble loss itself is checked against its loop reference in tests/objectives/test_ensemble.py."""
    from rmreg.objectives.ensemble import EnsembleBradleyTerry

    base = beyond_pairs_inputs(seed=5)
    generator = torch.Generator().manual_seed(5)
    heads = torch.randn(2, base.num_pairs, 3, generator=generator, dtype=torch.float64)
    counts = torch.randint(0, 3, (base.num_pairs, 3), generator=generator).double()
    inputs = base.replace(chosen_head_rewards=heads[0], rejected_head_rewards=heads[1], head_bootstrap_weights=counts)
    objective = beyond_pairs_objective(name, alpha=0.2, beta=0.3)
    _, _, regularizer = name.partition("+")
    by_hand = EnsembleBradleyTerry() if not regularizer else 0.8 * EnsembleBradleyTerry()
    if regularizer:
        by_hand = by_hand + 0.2 * [term for _, term in rmreg.objective(regularizer, beta=0.3).weighted_terms()][-1]
    torch.testing.assert_close(objective(inputs).loss, (1.0 * by_hand)(inputs).loss)
    restored = Objective.from_config(json.loads(json.dumps(objective.config())))
    torch.testing.assert_close(restored(inputs).loss, objective(inputs).loss)


def test_composing_by_hand_equals_the_preset():
    inputs = beyond_pairs_inputs()
    by_hand = 0.99 * PlackettLuce() + 0.01 * SFTRegularizer(beta=0.1)
    torch.testing.assert_close(by_hand(inputs).loss, beyond_pairs_objective("plackett-luce+grm-sft")(inputs).loss)
    assert set(by_hand.needs) == {"chosen_logps", "group_mask", "group_rewards"}


def test_preset_errors_name_what_is_allowed():
    with pytest.raises(ValueError, match="unknown objective 'rao-kupper\\+grm-dpo'; choose one of plackett-luce"):
        beyond_pairs_objective("rao-kupper+grm-dpo")
    with pytest.raises(ValueError, match="alpha must be in"):
        beyond_pairs_objective("bsr+grm-sft", alpha=1.5)
    with pytest.raises(ValueError, match="beta"):
        beyond_pairs_objective("plackett-luce+grm-sft", beta=0.0)


PAIR_PRESETS = [name for name in BEYOND_PAIRS_PRESETS if name.split("+")[0] in ("rao-kupper", "davidson", "bsr")]


@pytest.mark.parametrize("name", PAIR_PRESETS)
def test_pair_presets_train_through_the_model(name):
    from rmreg.data import PairCollator
    from rmreg.heads import RewardHead
    from rmreg.model import RegularizedRewardModel
    from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

    lm = tiny_causal_lm("llama", dtype=torch.float64)
    objective = beyond_pairs_objective(name, alpha=0.3)
    reference = "copy" if name.endswith("grm-dpo") else None
    head = RewardHead(lm.config.hidden_size, hidden=16).to(torch.float64)
    model = RegularizedRewardModel(lm, reward_head=head, objective=objective, reference=reference).eval()
    batch = PairCollator(tiny_tokenizer())([{k: v for k, v in p.items() if k != "margin"} for p in toy_pairs(4)])
    tie = torch.tensor([True, False, False, True])
    output = model(**batch, tie=tie)
    inputs = model.pair_outputs(**batch, tie=tie, needs=objective.needs)
    torch.testing.assert_close(objective(inputs).loss, output.loss, rtol=1e-12, atol=1e-12)  # fused: other order
    close(output.loss, naive.mean(naive_preset(name, inputs.replace(**_unused_group_inputs(inputs)), 0.3, 0.1)))
    output.loss.backward()
    assert all(p.grad is not None for p in head.parameters())


def _unused_group_inputs(inputs: PairInputs) -> dict[str, torch.Tensor]:
    """Group inputs that the pair presets never read (naive_preset computes them eagerly)."""
    stacked = torch.stack([inputs.chosen_rewards, inputs.rejected_rewards], 1)
    return {"group_rewards": stacked.detach(), "group_mask": torch.ones_like(stacked, dtype=torch.bool)}
