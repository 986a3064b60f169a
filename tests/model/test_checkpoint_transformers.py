"""A saved reward model loads with transformers alone: AutoModelForSequenceClassification, logits = score()."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

import rmreg
from rmreg.data import PairCollator
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.model.checkpoint import plan_classifier
from rmreg.testing import FAMILIES, tiny_causal_lm, tiny_tokenizer, toy_pairs

TOK = tiny_tokenizer()
PAIRS = toy_pairs(3)


def pad_is_eos_tokenizer():
    """A tokenizer without a pad token of its own, as Llama 3's: pad = eos."""
    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def rows(tokenizer=TOK, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    batch = PairCollator(tokenizer, padding_side=side)(PAIRS)
    return batch["input_ids"], batch["attention_mask"]


def model_with(lm, head: RewardHead) -> RegularizedRewardModel:
    """A reward model whose head gives rewards far from 0 (so that a lost bias or a wrong token would show)."""
    model = RegularizedRewardModel(lm, reward_head=head, objective=rmreg.objective("bt"))
    torch.nn.init.normal_(head.output_layer.weight)
    if head.output_layer.bias is not None:
        torch.nn.init.constant_(head.output_layer.bias, 3.0)
    return model.eval()


def logits_of(directory: Path, input_ids, attention_mask, **kwargs) -> torch.Tensor:
    classifier = AutoModelForSequenceClassification.from_pretrained(directory, local_files_only=True, **kwargs).eval()
    with torch.no_grad():
        return classifier(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]


def bf16_lm(family: str, tmp_path: Path):
    """A bf16 causal LM as from_pretrained(dtype=bfloat16) builds it (rotary frequencies stay float32)."""
    tiny_causal_lm(family).save_pretrained(tmp_path / "base")
    return AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype=torch.bfloat16)


@pytest.mark.parametrize("family", FAMILIES)
def test_bias_free_linear_head_loads_natively(tmp_path: Path, family: str) -> None:
    model = model_with(tiny_causal_lm(family), RewardHead(32, kind="linear"))
    model.save_pretrained(tmp_path / "ckpt", tokenizer=TOK)
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["model_type"] == family
    assert not (tmp_path / "ckpt" / "modeling_rmreg.py").exists()
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ckpt")
    assert type(classifier).__module__.startswith("transformers.models.")
    ids, mask = rows()
    torch.testing.assert_close(logits_of(tmp_path / "ckpt", ids, mask), model.score(ids, mask), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("family", "head"),
    [
        ("llama", RewardHead(32, kind="linear", bias=True)),
        ("gpt2", RewardHead(32, kind="linear", bias=True, dropout=0.1)),
        ("qwen2", RewardHead(32, hidden=16)),
        ("gemma", RewardHead(32, hidden=16, num_layers=2, bias=True)),
    ],
    ids=["linear-bias", "linear-bias-dropout", "mlp", "mlp-2-layers-bias"],
)
@pytest.mark.parametrize("side", ["right", "left"])
def test_other_heads_load_with_remote_code(tmp_path: Path, family: str, head: RewardHead, side: str) -> None:
    model = model_with(tiny_causal_lm(family), head)
    model.save_pretrained(tmp_path / "ckpt", tokenizer=TOK)
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["model_type"] == "rmreg_reward_model" and "AutoModelForSequenceClassification" in config["auto_map"]
    with pytest.raises(ValueError, match="trust_remote_code"):  # refused without it, never loaded wrong
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "ckpt")
    ids, mask = rows(side=side)
    logits = logits_of(tmp_path / "ckpt", ids, mask, trust_remote_code=True)
    torch.testing.assert_close(logits, model.score(ids, mask), rtol=1e-5, atol=1e-5)
    if head.bias:
        assert not torch.allclose(logits - head.output_layer.bias, model.score(ids, mask), atol=1.0)


def test_remote_code_needs_neither_rmreg_nor_network(tmp_path: Path) -> None:
    """A fresh interpreter in which importing rmreg fails and sockets refuse to connect still loads the model."""
    model = model_with(tiny_causal_lm("llama"), RewardHead(32, hidden=16, bias=True))
    model.save_pretrained(tmp_path / "ckpt")
    ids, mask = rows()
    save_file({"ids": ids, "mask": mask, "expected": model.score(ids, mask)}, str(tmp_path / "inputs.safetensors"))
    script = f"""
import socket, sys
sys.modules["rmreg"] = None  # any import of rmreg raises ImportError
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification
data = load_file({str(tmp_path / "inputs.safetensors")!r})
model = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True)
with torch.no_grad():
    logits = model(input_ids=data["ids"], attention_mask=data["mask"]).logits[:, 0]
torch.testing.assert_close(logits, data["expected"], rtol=1e-5, atol=1e-5)
print("ok", type(model).__name__)
"""
    env = {"HF_HUB_OFFLINE": "0", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PATH": ""}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok RmregRewardModel" in result.stdout


@pytest.mark.parametrize("kind", ["linear", "mlp"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_is_eos_tokenizer_pools_the_eos_everywhere(tmp_path: Path, kind: str, side: str) -> None:
    """With pad = eos the native classifier would pool the token before the EOS; the checkpoint pools the EOS."""
    tokenizer = pad_is_eos_tokenizer()
    lm = tiny_causal_lm("llama")
    lm.config.pad_token_id = tokenizer.pad_token_id
    model = model_with(lm, RewardHead(32, kind=kind, hidden=16))
    assert plan_classifier(lm, model.reward_head, tokenizer).kind == "remote_code"
    model.save_pretrained(tmp_path / "ckpt", tokenizer=tokenizer)
    ids, mask = rows(tokenizer, side)
    last = torch.where(mask.bool(), torch.arange(ids.shape[1]), -1).max(-1).values
    assert (ids[torch.arange(len(ids)), last] == tokenizer.eos_token_id).all()  # rows end with EOS = pad
    logits = logits_of(tmp_path / "ckpt", ids, mask, trust_remote_code=True)
    torch.testing.assert_close(logits, model.score(ids, mask), rtol=1e-5, atol=1e-5)
    without_eos = model.score(ids, mask.masked_fill(ids == tokenizer.eos_token_id, 0))  # the token before it
    assert not torch.allclose(logits, without_eos, atol=1e-3)


def test_native_form_would_pool_before_the_eos_which_is_why_it_is_not_used(tmp_path: Path) -> None:
    """The failure the remote-code form avoids: transformers' own classifier under pad = eos, right padding."""
    tokenizer = pad_is_eos_tokenizer()
    model = model_with(tiny_causal_lm("llama"), RewardHead(32, kind="linear"))
    model.save_pretrained(tmp_path / "native")  # no tokenizer: the config's pad (<pad>) is not EOS: native
    config = json.loads((tmp_path / "native" / "config.json").read_text())
    config["pad_token_id"] = tokenizer.pad_token_id
    (tmp_path / "native" / "config.json").write_text(json.dumps(config))
    ids, mask = rows(tokenizer, "right")
    logits = logits_of(tmp_path / "native", ids, mask)
    assert not torch.allclose(logits, model.score(ids, mask), atol=1e-3)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_bf16_backbone_with_fp32_head(tmp_path: Path, family: str, kind: str) -> None:
    lm = bf16_lm(family, tmp_path)
    model = model_with(lm, RewardHead(32, kind=kind, hidden=16))
    assert model.reward_head.output_layer.weight.dtype == torch.float32
    model.save_pretrained(tmp_path / "ckpt", tokenizer=TOK)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ckpt", trust_remote_code=True)
    assert classifier.model.dtype == torch.bfloat16 and classifier.score.layers[-1].weight.dtype == torch.float32
    for side in ("right", "left"):
        ids, mask = rows(side=side)
        logits = logits_of(tmp_path / "ckpt", ids, mask, trust_remote_code=True)
        assert logits.dtype == torch.float32
        torch.testing.assert_close(logits, model.score(ids, mask), rtol=1e-5, atol=1e-5)


def test_bf16_backbone_with_bf16_linear_head_loads_natively(tmp_path: Path) -> None:
    model = model_with(bf16_lm("qwen2", tmp_path), RewardHead(32, kind="linear").to(torch.bfloat16))
    model.save_pretrained(tmp_path / "ckpt", tokenizer=TOK)
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["model_type"] == "qwen2"
    ids, mask = rows()
    logits = logits_of(tmp_path / "ckpt", ids, mask, dtype="auto")  # transformers 5's default; 4.x loads float32
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits, model.score(ids, mask), rtol=0, atol=0)  # the same bf16 ops


@pytest.mark.parametrize(
    ("head", "tokenizer", "reason"),
    [
        (RewardHead(32, kind="linear"), TOK, None),
        (RewardHead(32, kind="linear", bias=True), TOK, "has a bias"),
        (RewardHead(32, hidden=8), TOK, "mlp"),
        (RewardHead(32, kind="linear"), pad_is_eos_tokenizer(), "pad token is the EOS"),
        (RewardHead(32, kind="linear").double(), TOK, "float64 on a float32 backbone"),
    ],
)
def test_classifier_plan_says_why(head: RewardHead, tokenizer, reason) -> None:
    plan = plan_classifier(tiny_causal_lm("llama"), head, tokenizer)
    assert plan.kind == ("native" if reason is None else "remote_code")
    assert (reason or "") in plan.reason and (reason is None) == (plan.reason == "")


def test_no_pad_token_at_all_uses_remote_code() -> None:
    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = None
    plan = plan_classifier(tiny_causal_lm("llama"), RewardHead(32, kind="linear"), tokenizer)
    assert plan.kind == "remote_code" and "no pad token" in plan.reason


def sequence_classifier(family: str = "qwen2"):
    """A one-label ``*ForSequenceClassification`` with random weights, as TRL's RewardTrainer trains."""
    config = tiny_causal_lm(family).config
    config.num_labels = 1
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config).eval()


@pytest.mark.parametrize("pad_is_eos", [False, True])
def test_sequence_classifier_backbone_saves_as_itself(tmp_path: Path, pad_is_eos: bool) -> None:
    """A classifier's score layer is the reward head: saved once, loaded as the classifier, the weight shared."""
    tokenizer = pad_is_eos_tokenizer() if pad_is_eos else TOK
    classifier = sequence_classifier()
    classifier.config.pad_token_id = tokenizer.pad_token_id
    model = RegularizedRewardModel(
        classifier,
        reward_head=rmreg.model.causal_lm.classifier_reward_head(classifier),
        objective=rmreg.objective("bt"),
    ).eval()
    model.save_pretrained(tmp_path, tokenizer=tokenizer)
    config = json.loads((tmp_path / "rmreg_config.json").read_text())
    assert config["backbone"]["lm_head"] == "none" and not (tmp_path / "rmreg_extras").exists()
    assert config["backbone"]["classifier"] == ("remote_code" if pad_is_eos else "native")
    ids, mask = rows(tokenizer)
    logits = logits_of(tmp_path, ids, mask, trust_remote_code=pad_is_eos)
    torch.testing.assert_close(logits, model.score(ids, mask), rtol=1e-5, atol=1e-5)
    loaded = RegularizedRewardModel.from_pretrained(tmp_path)
    assert type(loaded.causal_lm).__name__ == "Qwen2ForSequenceClassification"
    assert loaded.reward_head.output_layer.weight is loaded.causal_lm.score.weight
    assert torch.equal(loaded.score(ids, mask), model.score(ids, mask))


def test_peft_sequence_classifier_round_trips(tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    sequence_classifier().save_pretrained(tmp_path / "base")
    base = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=1)
    lora = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], modules_to_save=["score"], init_lora_weights=False)
    classifier = peft.get_peft_model(base, lora)
    head = rmreg.model.causal_lm.classifier_reward_head(classifier)
    with torch.no_grad():
        head.output_layer.weight.normal_()  # trained: no longer the base model's score layer
    model = RegularizedRewardModel(classifier, reward_head=head, objective=rmreg.objective("bt")).eval()
    model.save_pretrained(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "rmreg_config.json").read_text())["base_model_class"] == (
        "Qwen2ForSequenceClassification"
    )
    loaded = RegularizedRewardModel.from_pretrained(tmp_path / "ckpt")
    ids, mask = rows()
    assert torch.equal(loaded.score(ids, mask), model.score(ids, mask))
    assert loaded.reward_head.output_layer.weight is rmreg.model.causal_lm.score_layer(loaded.causal_lm).weight


def test_export_fixes_what_it_got_wrong(tmp_path: Path) -> None:
    """Formerly: logits off by the head's bias, the fp32 head cast to bf16, and no export without pad_token_id."""
    lm = bf16_lm("llama", tmp_path)
    lm.config.pad_token_id = None
    model = model_with(lm, RewardHead(32, kind="linear", bias=True))
    rmreg.model.export.export_sequence_classifier(lm, model.reward_head, tmp_path / "clf")
    ids, mask = rows()
    logits = logits_of(tmp_path / "clf", ids, mask, trust_remote_code=True)
    torch.testing.assert_close(logits, model.score(ids, mask), rtol=1e-5, atol=1e-5)


def test_shared_tensors_are_written_apart(tmp_path: Path) -> None:
    from rmreg.model.checkpoint.tensors import read_tensors, write_tensors

    base = torch.arange(6.0)
    write_tensors(tmp_path / "t.safetensors", {"a": base, "b": base, "c": base[3:]})
    read = read_tensors(tmp_path / "t.safetensors")
    assert torch.equal(read["a"], base) and torch.equal(read["b"], base) and torch.equal(read["c"], base[3:])
