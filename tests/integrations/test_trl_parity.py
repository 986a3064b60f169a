"""Bradley–Terry parity: RegularizedRewardTrainer(objective="bt", bias-free linear head) equals TRL's own
RewardTrainer step by step (≤ 1e-4 in the logged loss), from the same weights, data and RewardConfig.

TRL loads the model path as a sequence classifier whose new ``score`` layer it initialises; rmreg gets the same
causal LM with a ``RewardHead(H, kind="linear", bias=False)`` holding that very ``score`` weight (or, in the
``classifier`` case, TRL's sequence classifier itself). Cases: standard text, conversational, a left-padding
tokenizer (rmreg pads left, TRL right), a ``margin`` column, a BPE tokenizer with merges across the prompt/response
boundary, TRL's ``center_rewards_coefficient``; each with and without gradient accumulation.

Pad = EOS is the one case where the two differ by definition: TRL's classifier skips every token with the pad id,
so it reads the reward at the token before each row's final EOS, while rmreg reads it at the final EOS (the last
token of the attention mask), as rmreg's scoring and its saved checkpoints do (see rmreg.model.checkpoint). The
test shows that this is the only difference: TRL's run equals rmreg's on TRL's own rows without their final EOS
(by causal attention, the hidden state of the token before the EOS does not see the EOS), and the trainer warns.
"""

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("datasets")
pytest.importorskip("trl")

from bpe_testing import ZEN, bpe_tokenizer
from datasets import Dataset
from trl import RewardTrainer
from trl_testing import config

from rmreg import RewardHead
from rmreg.data.encoding import common_prefix_length
from rmreg.integrations.trl import RegularizedRewardTrainer
from rmreg.testing import tiny_causal_lm, tiny_tokenizer

STEPS, PAIRS, TOLERANCE = 10, 40, 1e-4


def words_split(index: int) -> dict[str, str]:
    sentence, other = ZEN[index % len(ZEN)], ZEN[(index + 7) % len(ZEN)]
    words, other_words = sentence.split(" "), other.split(" ")
    k = 1 + index % max(1, len(words) - 1)
    return {"prompt": " ".join(words[:k]), "chosen": " " + " ".join(words[k:]), "rejected": " " + other_words[-1]}


def mid_word_split(index: int) -> dict[str, str]:
    """Cut inside a word or just after a space, where BPE merges cross the boundary."""
    sentence, other = ZEN[index % len(ZEN)], ZEN[(index + 7) % len(ZEN)]
    at = 4 + (index * 5) % (len(sentence) - 6)
    return {"prompt": sentence[:at], "chosen": sentence[at:], "rejected": other[at % (len(other) - 2) :]}


def standard() -> list[dict[str, Any]]:
    return [words_split(i) for i in range(PAIRS)]


def conversational() -> list[dict[str, Any]]:
    return [
        {
            "prompt": [{"role": "user", "content": pair["prompt"]}],
            "chosen": [{"role": "assistant", "content": pair["chosen"].strip()}],
            "rejected": [{"role": "assistant", "content": pair["rejected"].strip()}],
        }
        for pair in standard()
    ]


def with_margin() -> list[dict[str, Any]]:
    return [{**pair, "margin": float(i % 4) / 2} for i, pair in enumerate(standard())]


CASES = {
    "standard": (standard, tiny_tokenizer, {}),
    "conversational": (conversational, bpe_tokenizer, {}),
    "left_padded": (standard, lambda: tiny_tokenizer(padding_side="left"), {}),
    "margin": (with_margin, tiny_tokenizer, {}),
    "bpe": (lambda: [mid_word_split(i) for i in range(PAIRS)], bpe_tokenizer, {}),
    "centering": (standard, tiny_tokenizer, {"center_rewards_coefficient": 0.01}),
    "classifier": (standard, bpe_tokenizer, {}),
}
ACCUMULATION = {
    "no_accumulation": {},
    "accumulation": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2},
}


def save_causal_lm(directory: Path, tokenizer: Any) -> str:
    model = tiny_causal_lm("qwen2", vocab_size=len(tokenizer), attn_implementation="sdpa")
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def args(output_dir: Path, **overrides: Any) -> Any:
    settings = {"max_steps": STEPS, "logging_steps": 1, "save_strategy": "no", "learning_rate": 1e-3, "seed": 3}
    return config(output_dir, **{**settings, **overrides})


def losses(trainer: Any) -> list[float]:
    trainer.train()
    return [log["loss"] for log in trainer.state.log_history if "loss" in log]


def trl_trainer(model_path: str, data: list[dict[str, Any]], tokenizer: Any, output_dir: Path, **overrides: Any):
    return RewardTrainer(
        model=model_path,
        args=args(output_dir, **overrides),
        train_dataset=Dataset.from_list(data),
        processing_class=copy.deepcopy(tokenizer),
    )


def linear_head(trl_model: torch.nn.Module) -> RewardHead:
    """TRL's initial ``score`` layer as rmreg's bias-free linear head."""
    head = RewardHead(trl_model.config.hidden_size, kind="linear", bias=False)
    with torch.no_grad():
        head.output_layer.weight.copy_(trl_model.score.weight)
    return head


@pytest.mark.parametrize("accumulation", ACCUMULATION)
@pytest.mark.parametrize("case", CASES)
def test_bradley_terry_equals_trls_reward_trainer_step_by_step(tmp_path: Path, case: str, accumulation: str) -> None:
    make_data, make_tokenizer, overrides = CASES[case]
    overrides = {**overrides, **ACCUMULATION[accumulation]}
    data, tokenizer = make_data(), make_tokenizer()
    model_path = save_causal_lm(tmp_path / "model", tokenizer)
    trl = trl_trainer(model_path, data, tokenizer, tmp_path / "trl", **overrides)
    start = copy.deepcopy(trl.model)
    if case == "classifier":
        ours = RegularizedRewardTrainer(
            start, args(tmp_path / "rmreg", **overrides), train_dataset=Dataset.from_list(data)
        )
    else:
        ours = RegularizedRewardTrainer(
            model_path,
            args(tmp_path / "rmreg", **overrides),
            train_dataset=Dataset.from_list(data),
            processing_class=copy.deepcopy(tokenizer),
            objective="bt",
            reward_head=linear_head(start),
        )
    # the same ids for every example (BPE: the joined text's), TRL's rows = rmreg's prompt + response
    for trl_row, our_row in zip(trl.train_dataset, ours.train_dataset, strict=True):
        assert trl_row["chosen_ids"] == our_row["prompt_ids"] + our_row["chosen_ids"]
        assert trl_row["rejected_ids"] == our_row["prompt_ids"] + our_row["rejected_ids"]
    if case == "bpe":  # the case is real: many prompts' own ids are not a prefix of their rows'
        prompts = [tokenizer(pair["prompt"]).input_ids for pair in data]
        rows = trl.train_dataset["chosen_ids"]
        crossing = sum(common_prefix_length(p, row) < len(p) for p, row in zip(prompts, rows, strict=True))
        assert crossing >= PAIRS // 4
    if case == "left_padded":
        batch = next(iter(ours.get_train_dataloader()))
        assert (batch["attention_mask"][:, 0] == 0).any()  # rmreg really pads left here
    expected, got = losses(trl), losses(ours)
    assert len(expected) == len(got) == STEPS
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), rtol=0, atol=TOLERANCE)


def strip_final_eos(rows: Dataset, eos: int) -> list[dict[str, Any]]:
    def strip(ids: list[int]) -> list[int]:
        return ids[:-1] if ids[-1] == eos else ids

    return [{"chosen_ids": strip(r["chosen_ids"]), "rejected_ids": strip(r["rejected_ids"])} for r in rows]


@pytest.mark.parametrize("accumulation", ACCUMULATION)
def test_pad_eos_differs_from_trl_only_by_the_token_read(tmp_path: Path, accumulation: str) -> None:
    overrides = ACCUMULATION[accumulation]
    tokenizer = bpe_tokenizer(pad_token=None)  # TRL and rmreg then pad with EOS
    data = standard()
    model_path = save_causal_lm(tmp_path / "model", tokenizer)
    trl = trl_trainer(model_path, data, tokenizer, tmp_path / "trl", **overrides)
    head = linear_head(trl.model)

    def ours(train_data: list[dict[str, Any]], name: str) -> RegularizedRewardTrainer:
        return RegularizedRewardTrainer(
            model_path,
            args(tmp_path / name, **overrides),
            train_dataset=Dataset.from_list(train_data),
            processing_class=copy.deepcopy(tokenizer),
            objective="bt",
            reward_head=copy.deepcopy(head),
        )

    with pytest.warns(UserWarning, match="pad token is its EOS token"):
        same_data = ours(data, "same")
    before_eos = ours(strip_final_eos(trl.train_dataset, tokenizer.eos_token_id), "before_eos")
    expected = losses(trl)
    torch.testing.assert_close(torch.tensor(losses(before_eos)), torch.tensor(expected), rtol=0, atol=TOLERANCE)
    differences = (torch.tensor(losses(same_data)) - torch.tensor(expected)).abs()
    assert differences.max() > 1e-2  # the final EOS, which rmreg reads, is another token than TRL's
