"""Ties and batch-sum regularization through the TRL trainer: the formats TRL can carry (pairs with extra columns).

Ranked groups of K completions are not a format TRL's RewardTrainer carries (its batches are pairs); they train
through :class:`rmreg.data.GroupCollator` with rmreg's own loop or plain PyTorch (tests/model/test_group_outputs.py).
"""

from pathlib import Path

import pytest
import torch
from trl_testing import config

import rmreg
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

datasets = pytest.importorskip("datasets")
pytest.importorskip("trl")

from rmreg.integrations.trl import RegularizedRewardTrainer  # noqa: E402


def tied_pairs(n: int) -> list[dict]:
    return [{**pair, "tie": i % 3 == 0} for i, pair in enumerate(toy_pairs(n))]


@pytest.mark.parametrize("name", ["rao-kupper+grm-sft", "davidson", "bsr+grm-dpo-noref"])
def test_tie_and_batch_objectives_train_and_log_every_term(tmp_path: Path, name: str) -> None:
    trainer = RegularizedRewardTrainer(
        tiny_causal_lm("llama"),
        config(tmp_path, max_steps=3, per_device_train_batch_size=4, logging_steps=1, save_strategy="no"),
        train_dataset=datasets.Dataset.from_list(tied_pairs(12)),
        processing_class=tiny_tokenizer(),
        objective=name,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    names = [term.name for _, term in rmreg.objective(name).weighted_terms()]
    assert logged and all(f"terms/{term}" in logged[-1] for term in names)
    changed = [n for n, p in trainer.model.named_parameters() if p.requires_grad and not torch.equal(before[n], p)]
    assert any(n.startswith("reward_head.") for n in changed) and any(n.startswith("causal_lm.") for n in changed)


def test_a_tie_objective_without_a_tie_column_says_so(tmp_path: Path) -> None:
    trainer = RegularizedRewardTrainer(
        tiny_causal_lm("llama"),
        config(tmp_path, max_steps=1, per_device_train_batch_size=4, save_strategy="no"),
        train_dataset=datasets.Dataset.from_list(toy_pairs(8)),
        processing_class=tiny_tokenizer(),
        objective="rao-kupper",
    )
    with pytest.raises(ValueError, match="tie"):
        trainer.train()


def test_rating_lists_train_a_multi_output_head(tmp_path: Path) -> None:
    rated = [
        {**pair, "chosen_ratings": [4.0, None], "rejected_ratings": [1.0, 2.0]} for pair in toy_pairs(8)
    ]  # None: a missing rating, masked
    head = rmreg.RewardHead(32, kind="linear", num_outputs=2, output_weights=[0.5, 0.5])
    objective = rmreg.objectives.RatingMSE() + rmreg.BradleyTerry() + 0.01 * rmreg.SFTRegularizer()
    trainer = RegularizedRewardTrainer(
        tiny_causal_lm("llama"),
        config(tmp_path, max_steps=2, per_device_train_batch_size=4, logging_steps=1, save_strategy="no"),
        train_dataset=datasets.Dataset.from_list(rated),
        processing_class=tiny_tokenizer(),
        objective=objective,
        reward_head=head,
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert all(f"terms/{name}" in logged[-1] for name in ("rating_mse", "bradley_terry", "sft"))


def test_an_ensemble_trains_and_its_checkpoint_reloads(tmp_path: Path) -> None:
    from rmreg.heads import RewardEnsemble

    trainer = RegularizedRewardTrainer(
        tiny_causal_lm("llama"),
        config(tmp_path, max_steps=2, per_device_train_batch_size=4, logging_steps=1, save_strategy="no"),
        train_dataset=datasets.Dataset.from_list(toy_pairs(8)),
        processing_class=tiny_tokenizer(),
        objective="ensemble+grm-sft",
        reward_head=RewardEnsemble(32, 3, seed=1),
    )
    trainer.train()
    assert {"terms/ensemble_bradley_terry", "terms/sft"} <= set(trainer.state.log_history[-2])
    trainer.save_model(str(tmp_path / "saved"))
    reloaded = rmreg.RegularizedRewardModel.from_pretrained(tmp_path / "saved")
    assert isinstance(reloaded.reward_head, RewardEnsemble) and reloaded.reward_head.num_outputs == 3
    ids = torch.tensor([[1, 40, 41, 2]])
    heads = reloaded.score_heads(ids, torch.ones_like(ids))
    torch.testing.assert_close(reloaded.score(ids, torch.ones_like(ids)), heads.mean(-1))
