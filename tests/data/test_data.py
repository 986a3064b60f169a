"""Pair collation: formats, labels, layouts, padding, truncation and its counts, errors."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rmreg.data import (
    IGNORE_INDEX,
    EncodedPair,
    PairCollator,
    collate_pairs,
    collate_texts,
    encode_pair,
    join_pairs,
    split_pairs,
    truncate_pair,
)
from rmreg.testing import tiny_tokenizer

TOK = tiny_tokenizer()
EOS, PAD = TOK.eos_token_id, TOK.pad_token_id


def ids(text: str) -> list[int]:
    return TOK(text, add_special_tokens=False)["input_ids"]


def unpadded(batch: dict, row: int) -> tuple[list[int], list[int]]:
    """Real tokens of a row and its labels there."""
    keep = batch["attention_mask"][row].bool()
    return batch["input_ids"][row][keep].tolist(), batch["labels"][row][keep].tolist()


EXAMPLES = [
    {"prompt": "Say hi:", "chosen": "Hello there", "rejected": "No", "margin": 2.0},
    {"prompt": "2+2=", "chosen": "4", "rejected": "five", "margin": 0.5},
]


@pytest.mark.parametrize("layout", ["concat", "interleaved"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_text_pairs_rows_labels_layout_and_padding(layout: str, side: str) -> None:
    batch = PairCollator(TOK, layout=layout, padding_side=side)(EXAMPLES)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "margin"}
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long
    torch.testing.assert_close(batch["margin"], torch.tensor([2.0, 0.5]))
    order = [(0, "chosen"), (1, "chosen"), (0, "rejected"), (1, "rejected")]
    if layout == "interleaved":
        order = [(0, "chosen"), (0, "rejected"), (1, "chosen"), (1, "rejected")]
    for row, (pair, side_name) in enumerate(order):
        example = EXAMPLES[pair]
        prompt = [TOK.bos_token_id, *ids(example["prompt"])]
        response = [*ids(example[side_name]), EOS]
        tokens, labels = unpadded(batch, row)
        assert tokens == prompt + response
        assert labels == [IGNORE_INDEX] * len(prompt) + response
        # padding is masked, carries the pad id and no label, and sits on the requested side
        mask = batch["attention_mask"][row]
        assert (batch["labels"][row][mask == 0] == IGNORE_INDEX).all()
        assert (batch["input_ids"][row][mask == 0] == PAD).all()
        real = mask.nonzero().squeeze(1)
        assert real.tolist() == list(range(int(real[0]), int(real[-1]) + 1))
        assert (int(real[-1]) == mask.numel() - 1) if side == "left" else (int(real[0]) == 0)


def test_text_without_prompt_scores_the_whole_text() -> None:
    batch = PairCollator(TOK)([{"chosen": "good", "rejected": "bad"}])
    tokens, labels = unpadded(batch, 0)
    assert tokens == [TOK.bos_token_id, *ids("good"), EOS]
    assert labels == [IGNORE_INDEX, *ids("good"), EOS]


def test_eos_is_not_doubled_and_can_be_left_out() -> None:
    with_eos = encode_pair(TOK, {"prompt": "p", "chosen": "a<eos>", "rejected": "b"})
    assert with_eos.chosen_ids == (*ids("a"), EOS)
    without = encode_pair(TOK, {"prompt": "p", "chosen": "ab", "rejected": "b"}, add_eos=False)
    assert without.chosen_ids == tuple(ids("ab"))


def test_conversational_implicit_and_explicit_prompt_agree() -> None:
    user = {"role": "user", "content": "Hi?"}
    good, bad = {"role": "assistant", "content": "Hello!"}, {"role": "assistant", "content": "Meh."}
    implicit = encode_pair(TOK, {"chosen": [user, good], "rejected": [user, bad]})
    explicit = encode_pair(TOK, {"prompt": [user], "chosen": [good], "rejected": [bad]})
    assert implicit == explicit
    rendered = TOK.apply_chat_template([user, good], tokenize=False)
    assert TOK.decode([*implicit.prompt_ids, *implicit.chosen_ids]) == rendered
    assert TOK.decode(implicit.prompt_ids).endswith("<|assistant|>")
    assert TOK.decode(implicit.chosen_ids) == "Hello!<|end|>"
    batch = PairCollator(TOK)([{"chosen": [user, good], "rejected": [user, bad]}])
    _, labels = unpadded(batch, 0)
    assert labels == [IGNORE_INDEX] * len(implicit.prompt_ids) + list(implicit.chosen_ids)


def test_pretokenized_pairs() -> None:
    pair = encode_pair(TOK, {"prompt_ids": [1, 9], "chosen_ids": [10, 11], "rejected_ids": [12], "margin": 1})
    assert pair == EncodedPair((1, 9), (10, 11), (12,), {"margin": 1.0})
    batch = PairCollator(TOK)([{"prompt_ids": [1, 9], "chosen_ids": [10, 11], "rejected_ids": [12]}])
    assert batch["input_ids"].tolist() == [[1, 9, 10, 11], [1, 9, 12, PAD]]
    assert batch["labels"].tolist() == [[-100, -100, 10, 11], [-100, -100, 12, -100]]
    whole = PairCollator(TOK)([{"chosen_ids": [5, 6, 7], "rejected_ids": [5, 8]}])
    assert whole["labels"].tolist() == [[5, 6, 7], [5, 8, -100]]


def test_reference_logps_pass_through() -> None:
    batch = PairCollator(TOK)(
        [{"chosen": "a", "rejected": "b", "ref_chosen_logps": -1.5, "ref_rejected_logps": -2.5}] * 2
    )
    torch.testing.assert_close(batch["ref_chosen_logps"], torch.tensor([-1.5, -1.5]))
    torch.testing.assert_close(batch["ref_rejected_logps"], torch.tensor([-2.5, -2.5]))


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ({"prompt": "p", "chosen": "a"}, "needs 'chosen' and 'rejected'"),
        ({"chosen_ids": [5, 6]}, "needs 'chosen' and 'rejected'"),
        ({"prompt": "p", "chosen": "a", "rejected": [{"role": "user", "content": "x"}]}, "both be strings"),
        ({"chosen_ids": [], "rejected_ids": [3]}, "chosen_ids is empty"),
    ],
)
def test_bad_examples_raise(example: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_pair(TOK, example)


def test_tokenizer_errors() -> None:
    no_pad = tiny_tokenizer()
    no_pad.pad_token = None
    with pytest.raises(ValueError, match="no pad token"):
        PairCollator(no_pad)
    chat = {"chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}
    with pytest.raises(ValueError, match="chat template"):
        PairCollator(tiny_tokenizer(chat_template=False))([chat])


def test_margin_for_some_pairs_only_raises() -> None:
    with pytest.raises(ValueError, match="'margin' is given for some pairs"):
        PairCollator(TOK)([{"chosen": "a", "rejected": "b", "margin": 1.0}, {"chosen": "a", "rejected": "b"}])


def test_one_token_response_without_prompt_raises() -> None:
    with pytest.raises(ValueError, match="no scorable token"):
        collate_pairs([EncodedPair((), (5,), (6, 7))], pad_token_id=PAD)


def test_truncation_keep_end_keeps_response_end_and_counts() -> None:
    collate = PairCollator(TOK, max_length=8)
    long_prompt = {"prompt": "a long prompt", "chosen": "yes", "rejected": "no"}
    long_response = {"prompt": "q", "chosen": "a very long answer", "rejected": "ok"}
    fits = {"prompt": "q", "chosen": "y", "rejected": "n"}
    batch = collate([long_prompt, long_response, fits])
    assert batch["input_ids"].shape[1] == 8
    # pair 0: the prompt lost its start, the responses are whole
    tokens, labels = unpadded(batch, 0)
    assert tokens == [*ids("a long prompt")[-4:], *ids("yes"), EOS]
    assert labels == [IGNORE_INDEX] * 4 + [*ids("yes"), EOS]
    # pair 1: one prompt token is kept, then the end of the response with its EOS
    tokens, labels = unpadded(batch, 1)
    assert tokens == [ids("q")[0], *ids("a very long answer")[-6:], EOS]
    assert labels[0] == IGNORE_INDEX and labels[-1] == EOS
    assert collate.stats.pairs == 3 and collate.stats.truncated == 2 and collate.stats.responses_cut == 1
    assert collate.stats.dropped == 0


def test_truncation_drop_and_error() -> None:
    collate = PairCollator(TOK, max_length=6, truncation="drop")
    batch = collate([{"chosen": "abcdefgh", "rejected": "b"}, {"chosen": "ab", "rejected": "c"}])
    assert batch["input_ids"].shape[0] == 2 and collate.stats.dropped == 1 and collate.stats.pairs == 2
    assert not collate.fits({"chosen": "abcdefgh", "rejected": "b"}) and collate.fits({"chosen": "a", "rejected": "b"})
    with pytest.raises(ValueError, match="every pair of this batch"):
        collate([{"chosen": "abcdefgh", "rejected": "b"}])
    with pytest.raises(ValueError, match="more than max_length=6"):
        PairCollator(TOK, max_length=6, truncation="error")([{"chosen": "abcdefgh", "rejected": "b"}])


@given(
    prompt=st.integers(0, 12),
    chosen=st.integers(1, 12),
    rejected=st.integers(1, 12),
    max_length=st.integers(2, 20),
)
def test_keep_end_property(prompt: int, chosen: int, rejected: int, max_length: int) -> None:
    pair = EncodedPair(
        tuple(range(100, 100 + prompt)), tuple(range(200, 200 + chosen)), tuple(range(300, 300 + rejected))
    )
    cut = truncate_pair(pair, max_length)
    assert cut is not None and cut.length <= max_length
    assert cut.prompt_ids == pair.prompt_ids[len(pair.prompt_ids) - len(cut.prompt_ids) :]  # a suffix
    for before, after in ((pair.chosen_ids, cut.chosen_ids), (pair.rejected_ids, cut.rejected_ids)):
        assert after and before[-len(after) :] == after  # the response keeps its end
        assert len(after) == min(len(before), max_length - len(cut.prompt_ids))
    if pair.length <= max_length:
        assert cut == pair
    elif prompt:
        assert cut.prompt_ids  # a prompt token stays before the response


@given(pairs=st.integers(1, 6), layout=st.sampled_from(["concat", "interleaved"]))
def test_split_join_are_inverse(pairs: int, layout: str) -> None:
    chosen, rejected = torch.arange(pairs), torch.arange(pairs) + 100
    rows = join_pairs(chosen, rejected, layout)
    assert rows.shape == (2 * pairs,)
    back = split_pairs(rows, layout)
    assert torch.equal(back[0], chosen) and torch.equal(back[1], rejected)
    with pytest.raises(ValueError, match="even number of rows"):
        split_pairs(torch.arange(2 * pairs + 1), layout)


def test_collate_texts_tokenizes_like_training_rows() -> None:
    example = {"prompt": "Q?", "chosen": "A.", "rejected": "B!"}
    pair_batch = PairCollator(TOK)([example])
    text_batch = collate_texts(TOK, [("Q?", "A."), ("Q?", "B!")])
    assert torch.equal(pair_batch["input_ids"], text_batch["input_ids"])
    assert torch.equal(pair_batch["attention_mask"], text_batch["attention_mask"])
    user = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
    chat_rows = collate_texts(TOK, [user], padding_side="left")
    assert TOK.decode(chat_rows["input_ids"][0]) == TOK.apply_chat_template(user, tokenize=False)
    assert collate_texts(TOK, ["abcdef"], max_length=3)["input_ids"].tolist() == [[*ids("ef"), EOS]]
