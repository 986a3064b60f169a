"""A reward head with several outputs: the weighted scalar reward, rating terms through the model, checkpoints."""

import json
import math

import naive
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import rmreg
from rmreg import RewardHead
from rmreg.data import PairCollator
from rmreg.data.group_collation import GroupCollator
from rmreg.heads import RewardEnsemble
from rmreg.model import RegularizedRewardModel
from rmreg.objectives import BradleyTerry, OrdinalRating, RatingMSE, SFTRegularizer
from rmreg.objectives.ensemble import EnsembleBradleyTerry
from rmreg.testing import tiny_causal_lm, tiny_tokenizer

TOK = tiny_tokenizer()
WEIGHTS = [0.5, 0.3, 0.2]
RATED = [
    {"prompt": "Name a fruit:", "chosen": "apple", "rejected": "a rock", "chosen_ratings": [4, None, 3],
     "rejected_ratings": [1, 2, None]},
    {"prompt": "2+2=", "chosen": "4", "rejected": "five", "chosen_ratings": [4, 4, 4],
     "rejected_ratings": [None, None, 0]},
    {"prompt": "Hi", "chosen": "Hello there!", "rejected": "Go.", "chosen_ratings": [3, 2, None],
     "rejected_ratings": [2, 1, 1]},
]  # fmt: skip


@given(outputs=st.integers(1, 5), rows=st.integers(1, 4), data=st.data())
def test_combine_is_the_weighted_sum_of_the_outputs(outputs, rows, data):
    weights = data.draw(st.lists(st.floats(-3, 3), min_size=outputs, max_size=outputs) | st.none())
    head = RewardHead(6, hidden=4, num_outputs=outputs, output_weights=weights, dropout=0.0).double()
    hidden = torch.randn(rows, 6, dtype=torch.float64)
    scores = head(hidden).reshape(rows, outputs).tolist()
    used = weights if weights is not None else [1.0 / outputs] * outputs
    expected = [sum(w * f for w, f in zip(used, row, strict=True)) for row in scores]
    torch.testing.assert_close(head.reward(hidden), torch.tensor(expected, dtype=torch.float64))
    assert head.config()["output_weights"] == (None if weights is None else [float(w) for w in weights])


def test_one_output_without_weights_is_returned_bit_for_bit_and_bad_weights_are_named():
    head = RewardHead(6, hidden=4)
    outputs = head(torch.randn(3, 6))
    assert head.combine(outputs) is outputs
    assert RewardHead(6, hidden=4, num_outputs=3).combination.tolist() == pytest.approx([1 / 3] * 3)
    assert "combination" not in head.state_dict()  # configuration, saved with config(), not a tensor
    for weights in ([1.0], [1.0, float("nan"), 0.0], [1, True, 0], "abc"):
        with pytest.raises(ValueError, match="output_weights must be 3 finite numbers"):
            RewardHead(6, num_outputs=3, output_weights=weights)
    with pytest.raises(ValueError, match=r"outputs of this head have shape"):
        RewardHead(6, num_outputs=3).combine(torch.zeros(2, 4))


def rated_model(objective, *, outputs: int = 3, weights=WEIGHTS) -> RegularizedRewardModel:
    lm = tiny_causal_lm("llama", dtype=torch.float64)
    head = RewardHead(lm.config.hidden_size, hidden=16, num_outputs=outputs, output_weights=weights).double()
    return RegularizedRewardModel(lm, reward_head=head, objective=objective).eval()


def rows_alone(model: RegularizedRewardModel, batch: dict) -> tuple[list[list[float]], list[float]]:
    """Each row alone, unpadded, through the plain forward: the head's outputs and the summed response log-prob."""
    scores, logps = [], []
    for row in range(batch["input_ids"].shape[0]):
        keep = batch["attention_mask"][row].bool()
        ids, labels = batch["input_ids"][row][keep][None], batch["labels"][row][keep][None]
        out = model.causal_lm(input_ids=ids, output_hidden_states=True)
        scores.append(model.reward_head(out.hidden_states[-1][:, -1])[0].reshape(-1).tolist())
        logps.append(float(rmreg.functional.sequence_logprobs(out.logits, labels)[0]))
    return scores, logps


def naive_rating_term(scores, ratings, per_rating) -> list[float]:
    """Σ over a pair's observed ratings (chosen and rejected) of per_rating(score, rating) / (2·A)."""
    pairs = len(ratings) // 2
    losses = []
    for i in range(pairs):
        total = 0.0
        for row in (i, pairs + i):
            total += sum(per_rating(f, y) for f, y in zip(scores[row], ratings[row], strict=True) if y is not None)
        losses.append(total / (2 * len(scores[i])))
    return losses


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_ratings_with_a_preference_term_and_sft_through_the_model(padding_side):
    objective = RatingMSE() + 0.5 * BradleyTerry() + 0.1 * SFTRegularizer(beta=0.1)
    model = rated_model(objective)
    batch = PairCollator(TOK, padding_side=padding_side)(RATED)
    out = model(**batch)
    scores, logps = rows_alone(model, batch)
    ratings = [p["chosen_ratings"] for p in RATED] + [p["rejected_ratings"] for p in RATED]
    mse = naive_rating_term(scores, ratings, lambda f, y: (f - y) ** 2)
    rewards = [sum(w * f for w, f in zip(WEIGHTS, row, strict=True)) for row in scores]
    bt = naive.bradley_terry(rewards[:3], rewards[3:])
    expected = naive.mean(mse) + 0.5 * naive.mean(bt) + 0.1 * naive.mean(naive.sft(logps[:3], 0.1))
    torch.testing.assert_close(out.loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out.chosen_rewards, torch.tensor(rewards[:3], dtype=torch.float64))
    torch.testing.assert_close(out.inputs["rejected_attribute_rewards"], torch.tensor(scores[3:], dtype=torch.float64))
    calls = [0]
    model.causal_lm.model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    model(**batch)
    assert calls[0] == 1


def test_missing_ratings_reach_neither_loss_nor_gradient():
    model = rated_model(RatingMSE())
    batch = PairCollator(TOK)(RATED)
    out = model(**batch)
    far = dict(batch, chosen_ratings=batch["chosen_ratings"].masked_fill(~batch["chosen_rating_mask"], 1e6))
    assert torch.equal(model(**far).loss, out.loss)
    scores = out.inputs["chosen_attribute_rewards"]
    scores.retain_grad()
    out.loss.backward()
    assert torch.equal(scores.grad == 0, ~batch["chosen_rating_mask"])


def test_ordinal_ratings_through_the_model_and_learned_thresholds_get_gradients():
    term = OrdinalRating(5, lowest=0)
    model = rated_model(term + 0.5 * BradleyTerry())
    batch = PairCollator(TOK)(RATED)
    out = model(**batch)
    scores, _ = rows_alone(model, batch)
    cuts = term.current_thresholds().tolist()

    def nll(f: float, y: float) -> float:
        upper = 1.0 if y == 4 else 1 / (1 + math.exp(-(cuts[int(y)] - f)))
        lower = 0.0 if y == 0 else 1 / (1 + math.exp(-(cuts[int(y) - 1] - f)))
        return -math.log(upper - lower)

    ratings = [p["chosen_ratings"] for p in RATED] + [p["rejected_ratings"] for p in RATED]
    expected = naive.mean(naive_rating_term(scores, ratings, nll))
    torch.testing.assert_close(
        out.terms["ordinal_rating"], torch.tensor(expected, dtype=torch.float64), rtol=1e-7, atol=1e-9
    )
    out.loss.backward()
    assert term.raw_gaps.grad is not None and float(term.raw_gaps.grad.abs().sum()) > 0


def test_training_on_ratings_fits_them():
    model = rated_model(RatingMSE()).train()
    model.reward_head.layers[0].p = 0.0
    batch = PairCollator(TOK)(RATED)
    optimizer = torch.optim.Adam(model.reward_head.parameters(), lr=0.05)
    first = float(model(**batch).loss)
    for _ in range(60):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    assert float(model(**batch).loss) < 0.05 * first


def test_a_one_output_head_rates_one_attribute():
    lm = tiny_causal_lm("llama", dtype=torch.float64)
    model = RegularizedRewardModel(lm, reward_head=RewardHead(32, hidden=8).double(), objective=RatingMSE()).eval()
    one = [{k: (v[:1] if "ratings" in k else v) for k, v in pair.items()} for pair in RATED]
    out = model(**PairCollator(TOK)(one))
    assert out.inputs["chosen_attribute_rewards"].shape == (3, 1)
    torch.testing.assert_close(out.inputs["chosen_attribute_rewards"][:, 0], out.chosen_rewards)


def test_what_the_model_refuses_with_several_outputs():
    model = rated_model(rmreg.objective("plackett-luce"))
    groups = [{"prompt": "Hi", "completions": ["Hello!", "Go."], "ranking": [0, 1]}]
    with pytest.raises(ValueError, match="ranked groups need a reward head with one output"):
        model(**GroupCollator(TOK)(groups))
    with pytest.raises(ValueError, match=r"reads \['chosen_head_rewards'.*only a RewardEnsemble gives"):
        model.pair_outputs(**PairCollator(TOK)(RATED), needs=rmreg.Needs("chosen_head_rewards"))


def test_multi_output_checkpoint_round_trip_and_the_remote_code_classifier(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = rated_model(RatingMSE() + BradleyTerry())
    batch = PairCollator(TOK)(RATED)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    model.save_pretrained(tmp_path, tokenizer=TOK)
    loaded = RegularizedRewardModel.from_pretrained(tmp_path)
    assert loaded.reward_head.output_weights == WEIGHTS
    assert torch.equal(loaded.score(ids, mask), model.score(ids, mask))
    assert torch.equal(loaded.score_heads(ids, mask), model.score_heads(ids, mask))
    assert json.loads((tmp_path / "config.json").read_text())["reward_head"]["output_weights"] == WEIGHTS
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, trust_remote_code=True).eval()
    logits = classifier(input_ids=ids, attention_mask=mask).logits  # the attributes; the reward is their combination
    torch.testing.assert_close(logits, model.score_heads(ids, mask))
    torch.testing.assert_close(logits @ torch.tensor(WEIGHTS, dtype=logits.dtype), model.score(ids, mask))


def test_checkpoints_written_before_output_weights_still_load(tmp_path):
    from rmreg.model.manifest import write_manifest

    model = rated_model(None, weights=None)
    model.save_pretrained(tmp_path)
    for name, key in (("rmreg_config.json", "reward_head"), ("config.json", "reward_head")):
        config = json.loads((tmp_path / name).read_text())
        del config[key]["output_weights"]
        (tmp_path / name).write_text(json.dumps(config))
    write_manifest(tmp_path, writer="0.1.0")  # as the release before output_weights wrote it
    loaded = RegularizedRewardModel.from_pretrained(tmp_path)
    assert loaded.reward_head.output_weights is None
    ids = torch.tensor([[1, 40, 41, 2]])
    assert torch.equal(loaded.score(ids, torch.ones_like(ids)), model.score(ids, torch.ones_like(ids)))


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_ensemble_checkpoint_round_trip_and_the_remote_code_classifier(tmp_path, kind):
    from transformers import AutoModelForSequenceClassification

    lm = tiny_causal_lm("llama")
    head = RewardEnsemble(32, 3, kind=kind, hidden=8, bootstrap="poisson", seed=5)
    model = RegularizedRewardModel(lm, reward_head=head, objective=EnsembleBradleyTerry() + SFTRegularizer()).eval()
    batch = PairCollator(TOK)(RATED)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    model.save_pretrained(tmp_path / "model", tokenizer=TOK)
    loaded = RegularizedRewardModel.from_pretrained(tmp_path / "model")
    assert isinstance(loaded.reward_head, RewardEnsemble) and loaded.reward_head.config() == head.config()
    assert loaded.objective.config() == model.objective.config()
    assert torch.equal(loaded.score_heads(ids, mask), model.score_heads(ids, mask))
    assert torch.equal(
        loaded.reward_head.bootstrap_weights(4), RewardEnsemble(32, 3, bootstrap="poisson", seed=5).bootstrap_weights(4)
    )
    model.export_sequence_classifier(tmp_path / "exported", tokenizer=TOK)
    for directory in ("model", "exported"):
        classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / directory, trust_remote_code=True)
        logits = classifier.eval()(input_ids=ids, attention_mask=mask).logits  # one per head; the reward is the mean
        torch.testing.assert_close(logits, model.score_heads(ids, mask))
        torch.testing.assert_close(logits.mean(-1), model.score(ids, mask))


def test_an_ensemble_on_a_sequence_classifier_is_not_saved(tmp_path):
    from transformers import LlamaForSequenceClassification

    config = tiny_causal_lm("llama").config
    config.num_labels = 1
    classifier = LlamaForSequenceClassification(config)
    model = RegularizedRewardModel(classifier, reward_head=RewardEnsemble(32, 2, kind="linear"))
    for save in (model.save_pretrained, model.export_sequence_classifier):
        with pytest.raises(ValueError, match="score layer, which cannot hold a RewardEnsemble"):
            save(tmp_path)
    assert not any(tmp_path.iterdir())


def test_an_ensemble_on_lora_adapters_round_trips(tmp_path):
    import peft

    lm = tiny_causal_lm("llama")
    lm.save_pretrained(tmp_path / "base")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapted = peft.get_peft_model(lm, config)
    head = RewardEnsemble(32, 3, hidden=8)
    model = RegularizedRewardModel(adapted, reward_head=head, objective=EnsembleBradleyTerry()).eval()
    model.save_pretrained(tmp_path / "lora")
    loaded = RegularizedRewardModel.from_pretrained(tmp_path / "lora", base_model=str(tmp_path / "base"))
    batch = PairCollator(TOK)(RATED)
    assert torch.equal(
        loaded.score_heads(batch["input_ids"], batch["attention_mask"]),
        model.score_heads(batch["input_ids"], batch["attention_mask"]),
    )


def test_combine_gradcheck_reaches_the_outputs_by_their_weights():
    head = RewardHead(4, kind="linear", num_outputs=3, output_weights=[0.5, -1.0, 2.0]).double()
    outputs = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(head.combine, (outputs,))
    head.combine(outputs).sum().backward()
    assert torch.equal(outputs.grad, torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64).expand(5, 3))
