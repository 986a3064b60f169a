"""Scorers: a (model, tokenizer) tuple, any callable, a transformers sequence classifier; checks on what they return."""

import re

import numpy as np
import pytest
import torch

from rmreg import RegularizedRewardModel, RewardHead
from rmreg.evaluation import run_benchmark, sequence_classifier_scorer
from rmreg.evaluation.scorers import as_scorer, check_rewards, reward_model_scorer
from rmreg.testing import tiny_causal_lm, tiny_tokenizer

ITEMS = [("2+2=", "4"), ("2+2=", "five"), ("Name a colour.", "Blue, the colour of the sky.")]
ROWS = [{"pair_id": str(i), "source": "livecodebench", "question": "Q", "response_A": "a", "response_B": "b",
         "label": "A>B"} for i in range(5)]  # fmt: skip


@pytest.mark.parametrize(
    "rewards",
    [[1.0, 0.0], (1, 0), torch.tensor([1.0, 0.0]), torch.tensor([[1.0], [0.0]]), np.array([1.0, 0.0]), [[1.0], [0.0]]],
    ids=["list", "tuple", "tensor", "logits", "array", "nested"],
)
def test_every_kind_of_return_value_is_read(rewards: object) -> None:
    assert check_rewards(rewards, ITEMS[:2]) == [1.0, 0.0]


def test_bad_return_values_and_scorers_are_errors() -> None:
    with pytest.raises(
        ValueError, match=re.escape("judgebench, items 0..9: the scorer returned 9 rewards for 10 items")
    ):
        run_benchmark("judgebench", ROWS, lambda items: [0.0] * (len(items) - 1))
    with pytest.raises(ValueError, match="returned nan for item 2 of a batch; rewards must be finite"):
        run_benchmark("judgebench", ROWS, lambda items: [0.0, 1.0, float("nan"), *[0.0] * (len(items) - 3)])
    with pytest.raises(ValueError, match="returned 'x' for item 0"):
        check_rewards(["x"], ITEMS[:1])
    with pytest.raises(ValueError, match="the scorer returned float"):
        check_rewards(1.0, ITEMS[:1])
    with pytest.raises(TypeError, match="a \\(RegularizedRewardModel, tokenizer\\) tuple or a callable"):
        as_scorer(("not a model", "tokenizer"))
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        run_benchmark("judgebench", ROWS, lambda items: [0.0] * len(items), batch_size=0)
    with pytest.raises(ValueError, match="unknown benchmark 'rewardbench3'; choose from rewardbench, rewardbench2"):
        run_benchmark("rewardbench3", ROWS, lambda items: [0.0] * len(items))


def test_batches_and_progress() -> None:
    seen, done = [], []

    def scorer(items: list[object]) -> list[float]:
        seen.append(len(items))
        return [0.0] * len(items)

    run_benchmark("judgebench", ROWS, scorer, batch_size=4, progress=done.append)
    assert seen == [4, 4, 2] and done == seen


@pytest.fixture(scope="module")
def model_and_tokenizer() -> tuple[RegularizedRewardModel, object]:
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    lm = tiny_causal_lm(vocab_size=len(tokenizer))
    return RegularizedRewardModel(lm, reward_head=RewardHead(lm.config.hidden_size, kind="linear")), tokenizer


def test_a_model_is_scored_in_eval_mode_and_its_mode_restored(model_and_tokenizer) -> None:
    model, tokenizer = model_and_tokenizer
    model.train()
    rewards = reward_model_scorer(model, tokenizer)(list(ITEMS))
    assert model.training
    with torch.no_grad():
        expected = model.eval().score_texts(tokenizer, list(ITEMS))
    torch.testing.assert_close(rewards, expected, rtol=0, atol=0)
    chat = reward_model_scorer(model, tokenizer, chat_template=True)(list(ITEMS))
    conversations = [[{"role": "user", "content": p}, {"role": "assistant", "content": r}] for p, r in ITEMS]
    with torch.no_grad():
        torch.testing.assert_close(chat, model.score_texts(tokenizer, conversations), rtol=0, atol=0)


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_an_exported_classifier_scores_as_the_rmreg_model(head: str, tmp_path) -> None:
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    lm = tiny_causal_lm(vocab_size=len(tokenizer))
    model = RegularizedRewardModel(lm, reward_head=RewardHead(lm.config.hidden_size, kind=head, hidden=8)).eval()
    model.export_sequence_classifier(tmp_path / "clf", tokenizer=tokenizer)
    # A bias-free linear head is the backbone's own classifier; any other head is code in the directory.
    scorer = sequence_classifier_scorer(tmp_path / "clf", trust_remote_code=head != "linear")
    with torch.no_grad():
        rewards = model.score_texts(tokenizer, list(ITEMS))
    torch.testing.assert_close(scorer(list(ITEMS)), rewards, rtol=0, atol=1e-5)


def test_a_classifier_scores_each_row_as_it_scores_the_row_alone(tmp_path) -> None:
    import transformers

    tokenizer = tiny_tokenizer()
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, num_labels=1, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(1)
    classifier = transformers.AutoModelForSequenceClassification.from_config(config).eval()
    classifier.save_pretrained(tmp_path / "clf")
    tokenizer.save_pretrained(tmp_path / "clf")
    batched = sequence_classifier_scorer(tmp_path / "clf")(list(ITEMS))  # padded to the longest row
    alone = []
    for prompt, response in ITEMS:  # naive: one unpadded row each, <bos> prompt, response, <eos>
        ids = tokenizer(prompt).input_ids + tokenizer(response, add_special_tokens=False).input_ids + [2]
        with torch.no_grad():
            alone.append(classifier(input_ids=torch.tensor([ids])).logits[0, 0])
    torch.testing.assert_close(batched, torch.stack(alone), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="num_labels=2"):
        config.num_labels = 2
        sequence_classifier_scorer(transformers.AutoModelForSequenceClassification.from_config(config), tokenizer)
