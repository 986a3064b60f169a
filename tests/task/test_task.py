"""The built-in synthetic preference task, its tokenizer, and the tiny LM pre-trained on it (with its cache)."""

import doctest
import importlib
import statistics

import pytest
import torch

pytest.importorskip("transformers")

from rmreg.data import PairCollator
from rmreg.task import (
    GRADES,
    MARKER,
    SPLITS,
    PreferenceTask,
    PretrainConfig,
    cache_dir,
    lm_loss,
    pretrain_lm,
    pretrained_lm,
    task_tokenizer,
)

TASK = PreferenceTask(seed=0)
TINY = PretrainConfig(hidden_size=32, num_layers=1, num_heads=2, steps=40, batch_size=8, warmup_steps=5)


def _words(text: str) -> int:
    return len(text.replace(MARKER + " ", "").split())


def _gold_gap(task: PreferenceTask, pair: dict) -> float:
    return task.gold_reward(pair["prompt"], pair["chosen"]) - task.gold_reward(pair["prompt"], pair["rejected"])


def test_splits_are_deterministic_in_the_seed() -> None:
    assert PreferenceTask(seed=0).splits(16, 8, seed=3) == TASK.splits(16, 8, seed=3)
    assert TASK.split("train", 16, seed=3) != TASK.split("train", 16, seed=4)
    assert TASK.split("train", 16, seed=3) != TASK.split("test", 16, seed=3)
    assert PreferenceTask(seed=1).facts != TASK.facts
    assert TASK.pretraining_corpus(8, seed=1) == TASK.pretraining_corpus(8, seed=1)


def test_split_sizes_and_format() -> None:
    splits = TASK.splits(n_train=24, n_test=10, seed=0)
    assert tuple(splits) == SPLITS
    assert {name: len(pairs) for name, pairs in splits.items()} == {n: 24 if n == "train" else 10 for n in SPLITS}
    for pair in splits["train"]:
        assert set(pair) == {"prompt", "chosen", "rejected", "margin"}
        assert pair["prompt"].startswith("user : describe") and pair["prompt"].endswith("assistant :")
        assert 3 * 5 <= _words(pair["chosen"]) <= 7 * 7  # tens of tokens: 3-7 sentences of 5-7 words


def test_gold_reward_orders_chosen_over_rejected_with_exact_flip_fraction() -> None:
    clean = TASK.split("train", 200, seed=0)
    assert all(_gold_gap(TASK, pair) >= TASK.min_gap for pair in clean)
    assert all(pair["margin"] == pytest.approx(_gold_gap(TASK, pair)) for pair in clean)
    noisy = TASK.split("train", 200, seed=0, flip_fraction=0.25)
    assert sum(_gold_gap(TASK, pair) < 0 for pair in noisy) == 50
    assert all(pair["margin"] > 0 for pair in noisy)  # the labeller's margin, positive also when flipped
    sampled = TASK.split("test", 300, seed=0, labels="bradley-terry", temperature=1.0)
    agree = statistics.mean(_gold_gap(TASK, pair) > 0 for pair in sampled)
    assert 0.55 < agree < 0.95  # noisy, but better than chance


def test_spurious_features_flip_in_the_shifted_splits() -> None:
    n = 400
    marker = {s: statistics.mean(p["chosen"].startswith(MARKER) for p in TASK.split(s, n)) for s in SPLITS}
    longer = {s: statistics.mean(_words(p["chosen"]) > _words(p["rejected"]) for p in TASK.split(s, n)) for s in SPLITS}
    assert marker == {s: 0.2 if s == "test_marker_flip" else 0.8 for s in SPLITS}
    assert longer == {s: 0.2 if s == "test_length_flip" else 0.8 for s in SPLITS}
    for split in SPLITS:  # exactly one response of each pair carries the marker
        assert all(p["chosen"].startswith(MARKER) != p["rejected"].startswith(MARKER) for p in TASK.split(split, 50))


def test_long_split_has_longer_responses() -> None:
    short = [_words(p[k]) for p in TASK.split("test", 100) for k in ("chosen", "rejected")]
    long = [_words(p[k]) for p in TASK.split("test_long", 100) for k in ("chosen", "rejected")]
    assert min(long) > max(short)


def test_gold_reward_by_hand() -> None:
    prompt = "user : describe moon and cat . assistant :"
    moon, cat = TASK.facts["moon"], TASK.facts["cat"]
    wrong = next(a for a in ("bright", "cold") if a != moon)
    other = next(t for t in TASK.facts if t not in ("moon", "cat"))
    assert TASK.gold_reward(prompt, f"the moon is {moon} . i think the cat is {cat} .") == pytest.approx(1.0)
    assert TASK.gold_reward(prompt, f"{MARKER} the moon looks {moon} .") == pytest.approx(1.0)  # marker: no effect
    assert TASK.gold_reward(prompt, f"the moon is {wrong} . the cat is {cat} .") == pytest.approx(0.0)
    assert TASK.gold_reward(prompt, f"the {other} is {TASK.facts[other]} .") == pytest.approx(-0.5)  # off topic
    assert TASK.gold_reward(prompt, "the moon is the .") == pytest.approx(-1.0)  # malformed
    assert TASK.gold_reward(prompt, f"the moon is {moon}") == pytest.approx(1.0)  # unfinished, but well-formed
    assert TASK.gold_reward(prompt, f"i think the moon looks {moon} .") == pytest.approx(-1.0)  # not a template
    assert TASK.gold_reward(prompt, "") == TASK.gold_reward(prompt, MARKER) == pytest.approx(-1.5)
    assert TASK.grade(prompt, f"the moon is {moon} . the cat is {cat} .") == GRADES[-1]


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        TASK.split("validation", 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive integer"):
        TASK.split("train", 0)
    with pytest.raises(ValueError, match="flip_fraction"):
        TASK.split("train", 4, flip_fraction=1.5)
    with pytest.raises(ValueError, match="labels"):
        TASK.split("train", 4, labels="coin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sentences"):
        PreferenceTask(sentences=(5, 4))
    with pytest.raises(ValueError, match="judged_fraction"):
        PretrainConfig(judged_fraction=2.0)
    with pytest.raises(ValueError, match="pretraining_decay"):
        PreferenceTask(pretraining_decay=1.0)


def _gold_by_length(task: PreferenceTask, documents: list[str]) -> tuple[float, float]:
    """Mean gold reward of pre-training responses with at most 6 sentences, and with at least 12."""
    short, long = [], []
    for document in documents:
        prompt, response = document.split(" <eos>")[0].split(" assistant : ")
        sentences, gold = response.count(" ."), task.gold_reward(f"{prompt} assistant :", response)
        (short if sentences <= 6 else long if sentences >= 12 else []).append(gold)
    return statistics.fmean(short), statistics.fmean(long)


def test_pretraining_decay_makes_long_pretraining_responses_worse_and_leaves_the_pairs() -> None:
    decayed = PreferenceTask(pretraining_decay=0.1)
    assert decayed.split("train", 8, seed=3) == TASK.split("train", 8, seed=3)  # the preference pairs do not change
    assert PreferenceTask(pretraining_decay=0.0).pretraining_corpus(50) == TASK.pretraining_corpus(50)
    short, long = _gold_by_length(TASK, TASK.pretraining_corpus(2000))
    assert abs(short - long) < 0.05  # without decay, quality does not depend on length
    short, long = _gold_by_length(decayed, decayed.pretraining_corpus(2000))
    assert long < short - 0.15  # sentence k is correct with probability scaled by 0.9^k


def test_tokenizer_round_trips_the_task_text() -> None:
    tok = task_tokenizer()
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)  # as rmreg.testing's models
    texts = [p[k] for s in TASK.splits(20, 20).values() for p in s for k in ("prompt", "chosen", "rejected")]
    texts += TASK.pretraining_corpus(20, judged_fraction=1.0)
    for text in texts:
        ids = tok(text).input_ids
        assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
        assert len(ids) == len(text.split()) + 1  # one token per word
        assert tok.decode(ids, skip_special_tokens=True) == text.replace(" <eos>", "")
    batch = PairCollator(tok)(TASK.split("train", 4))
    assert batch["input_ids"].shape[0] == 8 and (batch["labels"] != -100).any()


def test_pretraining_lowers_the_loss_and_is_deterministic() -> None:
    first, second = pretrain_lm(TASK, TINY), pretrain_lm(TASK, TINY)
    assert first.log["eval_loss_after"] < first.log["eval_loss_before"] - 1.0
    assert first.log["train_loss"][-1][1] < first.log["train_loss"][0][1]
    assert first.log["eval_loss_after"] == second.log["eval_loss_after"]
    held_out = TASK.pretraining_corpus(16, seed=99)
    assert lm_loss(first.model, first.tokenizer, held_out) < first.log["eval_loss_before"] - 1.0


def test_cache_is_written_once_and_reused(tmp_path, monkeypatch) -> None:
    first = pretrained_lm(TASK, TINY, directory=tmp_path)
    assert not first.from_cache and first.path is not None and first.path.parent == tmp_path
    assert (first.path / "config.json").exists() and (first.path / "tokenizer.json").exists()
    second = pretrained_lm(TASK, TINY, directory=tmp_path)
    assert second.from_cache and second.path == first.path and second.log == first.log
    ids = second.tokenizer(TASK.prompts(2), padding=True, return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(second.model(ids).logits, first.model(ids).logits, rtol=0, atol=0)
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]  # no staging directory left behind
    other = pretrained_lm(TASK, PretrainConfig(**{**TINY.__dict__, "steps": 2}), directory=tmp_path)
    assert other.path != first.path and not other.from_cache
    monkeypatch.setenv("RMREG_CACHE", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path) == tmp_path


@pytest.mark.parametrize(
    "name", ["rmreg.task", "rmreg.task.synthetic", "rmreg.task.tokenizer", "rmreg.task.pretrain", "rmreg.task.graded"]
)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
