"""Loading local models for the command line and the benchmarks: decoders only, positions, LoRA, checkpoints."""

from pathlib import Path

import pytest

pytest.importorskip("transformers")

import rmreg
from rmreg.pretrained import (
    DEFAULT_MAX_LENGTH,
    PretrainedError,
    build_reward_model,
    checkpoints_in,
    load_causal_lm,
    load_config,
    load_reward_model,
    load_tokenizer,
    max_positions,
    resolve_max_length,
)
from rmreg.testing import FAMILIES, tiny_causal_lm, tiny_tokenizer


def _save(path: Path, model, tokenizer=None) -> Path:
    model.save_pretrained(path)
    (tokenizer or tiny_tokenizer()).save_pretrained(path)
    return path


@pytest.mark.parametrize("family", FAMILIES)
def test_decoders_of_every_family_load_and_report_their_positions(family: str, tmp_path: Path) -> None:
    path = _save(tmp_path, tiny_causal_lm(family, max_positions=96))
    config = load_config(path)
    assert max_positions(config) == 96
    assert resolve_max_length(config, None) == 96 and resolve_max_length(config, 96) == 96
    with pytest.raises(
        PretrainedError, match=f"--max-length 97 is beyond the 96 positions of the model \\({family}\\)"
    ):
        resolve_max_length(config, 97)
    assert type(load_causal_lm(path)).__name__.endswith(("ForCausalLM", "LMHeadModel"))


def test_the_default_max_length_where_positions_are_many_or_unknown() -> None:
    class Config:
        max_position_embeddings = 10**6

    assert resolve_max_length(Config(), None) == DEFAULT_MAX_LENGTH
    assert max_positions(object()) is None and resolve_max_length(object(), 5000) == 5000


def test_an_encoder_is_refused_after_a_probe_of_its_attention(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    path = _save(tmp_path / "bert", BertForMaskedLM(config))
    assert load_config(path).model_type == "bert"  # BERT has a causal-LM class, so its config alone passes
    with pytest.raises(PretrainedError, match="attends to later tokens"):
        load_causal_lm(path)
    config.is_decoder = True  # BERT as a decoder (causal attention) is a causal LM
    decoder = _save(tmp_path / "bert-decoder", BertForMaskedLM(config))
    assert load_causal_lm(decoder) is not None


def test_missing_paths_never_reach_a_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.chdir(tmp_path)
    for name in ("gpt2", "meta-llama/Llama-3.2-1B"):  # hub names, not directories here
        with pytest.raises(PretrainedError, match="no such directory"):
            load_causal_lm(name)
        with pytest.raises(PretrainedError, match="no such directory"):
            load_tokenizer(name)


def test_a_tokenizer_without_pad_token_pads_with_eos(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.pad_token == loaded.eos_token == "<eos>"


def test_lora_records_the_base_model_by_its_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("peft")
    _save(tmp_path / "lm", tiny_causal_lm())
    monkeypatch.chdir(tmp_path)
    model = build_reward_model("lm", rmreg.objective("grm-sft"), head="linear", lora=True, seed=0)
    assert model.causal_lm.peft_config["default"].base_model_name_or_path == str(tmp_path / "lm")
    assert model.causal_lm.peft_config["default"].r == 32


def test_checkpoints_in_a_checkpoint_a_run_directory_and_elsewhere(tmp_path: Path) -> None:
    model = rmreg.RegularizedRewardModel(tiny_causal_lm(), reward_head=rmreg.RewardHead(32, kind="linear"))
    for name in ("b", "a"):
        model.save_pretrained(tmp_path / "run" / name, tokenizer=tiny_tokenizer())
    (tmp_path / "run" / "notes").mkdir()
    assert checkpoints_in(tmp_path / "run") == [tmp_path / "run" / "a", tmp_path / "run" / "b"]
    assert checkpoints_in(tmp_path / "run" / "a") == [tmp_path / "run" / "a"]
    assert checkpoints_in(tmp_path / "nowhere") == []
    loaded, tokenizer = load_reward_model(tmp_path / "run" / "a")
    assert loaded.reward_head.kind == "linear" and tokenizer.pad_token_id == 0
    with pytest.raises(PretrainedError, match=r"has no rmreg_config\.json"):
        load_reward_model(tmp_path / "run")
