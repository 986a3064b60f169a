"""The tokenization rule: a row's ids are the joined text's (or conversation's) ids, as TRL builds them; the prompt
part is where they stop agreeing with the prompt's own ids. Checked on a BPE tokenizer whose merges cross the
prompt/response boundary, where tokenizing the two apart gives other ids."""

import json

import pytest
import torch
from bpe_testing import ZEN, bpe_tokenizer
from hypothesis import given
from hypothesis import strategies as st

from rmreg.data import PairCollator, collate_texts, encode_pair, encode_text
from rmreg.data.encoding import common_prefix_length
from rmreg.model import RegularizedRewardModel
from rmreg.testing import tiny_causal_lm

TOK = bpe_tokenizer()
EOS = TOK.eos_token


def cut(sentence: str, at: int) -> tuple[str, str]:
    return sentence[:at], sentence[at:]


def cuts() -> list[dict[str, str]]:
    """Pairs cut from the Zen at every third character: inside words, before and after spaces."""
    examples = []
    for i, sentence in enumerate(ZEN):
        other = ZEN[(i + 1) % len(ZEN)]
        for at in range(3, len(sentence) - 1, 3):
            prompt, chosen = cut(sentence, at)
            examples.append({"prompt": prompt, "chosen": chosen, "rejected": other[at % len(other) :] or "x"})
    return examples


EXAMPLES = cuts()


def ids(text: str) -> list[int]:
    return TOK(text).input_ids


def test_text_rows_are_the_joined_texts_ids_and_the_prompt_part_is_their_common_prefix() -> None:
    crossing = 0
    for example in EXAMPLES:
        pair = encode_pair(TOK, example)
        chosen_row, rejected_row = (
            ids(example["prompt"] + example["chosen"] + EOS),
            ids(example["prompt"] + example["rejected"] + EOS),
        )
        assert [*pair.prompt_ids, *pair.chosen_ids] == chosen_row
        assert [*pair.prompt_ids, *pair.rejected_ids] == rejected_row
        prompt_alone = ids(example["prompt"])
        expected_split = min(
            common_prefix_length(prompt_alone, chosen_row), common_prefix_length(prompt_alone, rejected_row)
        )
        assert len(pair.prompt_ids) == expected_split
        assert list(pair.prompt_ids) == prompt_alone[:expected_split]
        apart = prompt_alone + TOK(example["chosen"] + EOS, add_special_tokens=False).input_ids
        crossing += apart != chosen_row
    # the case the rule is for: tokenized apart, many rows would get other ids than TRL's
    assert crossing > len(EXAMPLES) // 4, (crossing, len(EXAMPLES))


@given(sentence=st.sampled_from(ZEN), at=st.integers(1, 60), add_eos=st.booleans())
def test_one_row_is_the_whole_texts_ids_split_inside_the_prompts_own_ids(sentence: str, at: int, add_eos: bool) -> None:
    prompt, response = cut(sentence, min(at, len(sentence) - 1))
    prompt_ids, response_ids = encode_text(TOK, prompt, response, add_eos=add_eos)
    assert prompt_ids + response_ids == ids(sentence + (EOS if add_eos else ""))
    assert prompt_ids == ids(prompt)[: len(prompt_ids)]
    assert not response_ids or not ids(prompt)[len(prompt_ids) :] or ids(prompt)[len(prompt_ids)] != response_ids[0]


def test_eos_is_appended_as_text_once() -> None:
    assert encode_text(TOK, "Now is", " better." + EOS) == encode_text(TOK, "Now is", " better.")
    _, response = encode_text(TOK, "Now is", " better.")
    assert response[-1] == TOK.eos_token_id and response.count(TOK.eos_token_id) == 1


def chat_ids(messages: list[dict], **options: object) -> list[int]:
    return TOK.apply_chat_template(messages, tokenize=True, return_dict=True, **options)["input_ids"]


def conversation(prompt: str, response: str) -> tuple[list[dict], list[dict]]:
    return [{"role": "user", "content": prompt}], [{"role": "assistant", "content": response}]


def test_conversational_rows_are_the_templates_ids_of_the_whole_conversation() -> None:
    user, good = conversation("Is flat better than nested?", "Flat is better than nested.")
    _, bad = conversation("", "Nested is better.")
    pair = encode_pair(TOK, {"prompt": user, "chosen": good, "rejected": bad})
    assert [*pair.prompt_ids, *pair.chosen_ids] == chat_ids(user + good)
    assert [*pair.prompt_ids, *pair.rejected_ids] == chat_ids(user + bad)
    assert list(pair.prompt_ids) == chat_ids(user, add_generation_prompt=True)
    implicit = encode_pair(TOK, {"chosen": user + good, "rejected": user + bad})
    assert implicit == pair


def test_implicit_conversations_accept_every_pair_trl_accepts() -> None:
    first, second = conversation("Readability?", "Counts."), conversation("Errors?", "Never pass silently.")
    diverging = {"chosen": first[0] + first[1], "rejected": second[0] + second[1]}  # no message in common
    pair = encode_pair(TOK, diverging)
    assert [*pair.prompt_ids, *pair.chosen_ids] == chat_ids(diverging["chosen"])
    assert [*pair.prompt_ids, *pair.rejected_ids] == chat_ids(diverging["rejected"])
    user_last = {"chosen": first[0], "rejected": first[0] + first[1]}  # the shorter one is all prompt but its end
    pair = encode_pair(TOK, user_last)
    assert [*pair.prompt_ids, *pair.chosen_ids] == chat_ids(first[0])


def test_tools_and_chat_template_kwargs_columns_reach_the_template() -> None:
    user, good = conversation("Weather in Paris?", "Sunny.")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"city": "string"}}}]
    example = {"prompt": user, "chosen": good, "rejected": conversation("", "Rain.")[1]}
    as_list = encode_pair(TOK, {**example, "tools": tools})
    as_json = encode_pair(TOK, {**example, "tools": json.dumps(tools)})
    assert as_list == as_json
    assert "get_weather" in TOK.decode(as_list.prompt_ids)
    assert as_list.prompt_ids != encode_pair(TOK, example).prompt_ids
    capital = encode_pair(TOK, {**example, "chat_template_kwargs": {"role_capital": True}})
    assert TOK.decode([*capital.prompt_ids, *capital.chosen_ids]) == TOK.apply_chat_template(
        user + good, tokenize=False, role_capital=True
    )
    assert "USER" in TOK.decode(capital.prompt_ids)
    with pytest.raises(ValueError, match="'tools' column is not valid JSON"):
        encode_pair(TOK, {**example, "tools": "{not json"})


def test_training_and_scoring_see_the_same_ids() -> None:
    examples = EXAMPLES[:12]
    batch = PairCollator(TOK)(examples)
    rows = collate_texts(TOK, [(e["prompt"], e[side]) for side in ("chosen", "rejected") for e in examples])
    assert torch.equal(batch["input_ids"], rows["input_ids"])
    assert torch.equal(batch["attention_mask"], rows["attention_mask"])
    model = RegularizedRewardModel(tiny_causal_lm("qwen2", vocab_size=len(TOK))).eval()
    texts = [(e["prompt"], e[side]) for side in ("chosen", "rejected") for e in examples]
    torch.testing.assert_close(
        model.score_texts(TOK, texts, batch_size=5), model.score(batch["input_ids"], batch["attention_mask"])
    )
