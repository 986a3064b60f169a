"""save_pretrained / from_pretrained round trips and the sequence-classifier export."""

import json
from pathlib import Path

import pytest
import torch

import rmreg
from rmreg.data import PairCollator
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.testing import FAMILIES, tiny_causal_lm, tiny_tokenizer, toy_pairs

TOK = tiny_tokenizer()
BATCH = PairCollator(TOK, padding_side="left")(toy_pairs(3))
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def files(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}


def trained(model: RegularizedRewardModel) -> RegularizedRewardModel:
    """One optimizer step, so that saved weights differ from any fresh initialisation."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    model(**BATCH).loss.backward()
    optimizer.step()
    return model.eval()


@pytest.mark.parametrize(
    ("family", "kind", "name", "reference", "dtype"),
    [
        ("llama", "mlp", "grm-sft", None, torch.float32),
        ("gpt2", "linear", "margin", None, torch.float32),
        ("qwen2", "mlp", "grm-dpo", "copy", torch.float32),
        ("gemma", "mlp", "label-smoothing", None, torch.bfloat16),
    ],
)
def test_round_trip_is_bit_identical(tmp_path: Path, family: str, kind: str, name: str, reference, dtype) -> None:
    lm = tiny_causal_lm(family, dtype=dtype, attn_implementation="eager")
    head = RewardHead(lm.config.hidden_size, kind=kind, hidden=16)
    model = trained(RegularizedRewardModel(lm, reward_head=head, objective=rmreg.objective(name), reference=reference))
    model.save_pretrained(tmp_path, tokenizer=TOK)
    saved = files(tmp_path)
    assert {"rmreg_config.json", "reward_head.safetensors", "backbone/model.safetensors"} <= saved
    assert not {Path(f).suffix for f in saved} & PICKLE_SUFFIXES
    assert ("reference/model.safetensors" in saved) == (reference == "copy")
    config = json.loads((tmp_path / "rmreg_config.json").read_text())
    assert config["objective"]["name"] == name and config["reward_head"]["kind"] == kind

    loaded = RegularizedRewardModel.from_pretrained(tmp_path)
    assert not loaded.training
    assert loaded.causal_lm.dtype == dtype and loaded.reward_head.output_layer.weight.dtype == torch.float32
    assert loaded.causal_lm.config._attn_implementation == "eager"
    assert loaded.objective.config() == model.objective.config()
    args = (BATCH["input_ids"], BATCH["attention_mask"])
    assert torch.equal(loaded.score(*args), model.score(*args))
    before, after = model(**BATCH), loaded(**BATCH)
    assert torch.equal(before.loss, after.loss)
    if reference == "copy":
        for original, restored in zip(
            model.reference_logps(*args, BATCH["labels"]), loaded.reference_logps(*args, BATCH["labels"]), strict=True
        ):
            assert torch.equal(original, restored)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an rmreg checkpoint"):
        RegularizedRewardModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("family", FAMILIES)
def test_export_loads_with_transformers_and_matches_score(tmp_path: Path, family: str) -> None:
    from transformers import AutoModelForSequenceClassification

    lm = tiny_causal_lm(family)
    model = trained(
        RegularizedRewardModel(lm, reward_head=RewardHead(32, kind="linear"), objective=rmreg.objective("bt"))
    )
    model.export_sequence_classifier(tmp_path, tokenizer=TOK)
    assert not {Path(f).suffix for f in files(tmp_path)} & PICKLE_SUFFIXES
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(classifier).__module__.startswith("transformers.")
    batch = PairCollator(TOK, padding_side="right")(toy_pairs(3))
    args = (batch["input_ids"], batch["attention_mask"])
    with torch.no_grad():
        logits = classifier(input_ids=args[0], attention_mask=args[1]).logits.squeeze(-1)
    bias = model.reward_head.output_layer.bias
    torch.testing.assert_close(logits + bias, model.score(*args), rtol=1e-5, atol=1e-5)
    assert classifier.config.rmreg_reward_bias == pytest.approx(bias.item())


def test_export_refuses_mlp_heads(tmp_path: Path) -> None:
    model = RegularizedRewardModel(tiny_causal_lm("llama"), reward_head=RewardHead(32, hidden=8))
    with pytest.raises(ValueError, match="only a linear reward head"):
        model.export_sequence_classifier(tmp_path)
