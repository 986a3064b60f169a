"""PEFT checkpoints: adapters + head, the base model found again from any folder without a network, the export."""

import json
import socket
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

import rmreg
from rmreg.data import PairCollator
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.model.manifest import write_manifest
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

peft = pytest.importorskip("peft")

TOK = tiny_tokenizer()
BATCH = PairCollator(TOK)(toy_pairs(3))
ARGS = (BATCH["input_ids"], BATCH["attention_mask"])


class NetworkAttempt(BaseException):
    """Raised by any socket connection or name lookup: not an Exception, so no retry loop swallows it."""


@pytest.fixture
def no_network(monkeypatch) -> None:
    """Network access impossible, and hub offline mode explicitly OFF: only local_files_only keeps loading local."""

    def refuse(*args, **kwargs):
        raise NetworkAttempt(args)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def lora(lm, kind: str = "mlp", objective: str = "grm-dpo", **kwargs) -> RegularizedRewardModel:
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(0)
    model = peft.get_peft_model(lm, config)
    head = RewardHead(32, kind=kind, hidden=16)
    return RegularizedRewardModel(model, reward_head=head, objective=rmreg.objective(objective), **kwargs).eval()


def test_relative_base_model_loads_from_another_folder_without_network(tmp_path: Path, monkeypatch, no_network):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    tiny_causal_lm("llama").save_pretrained(work / "llama")
    monkeypatch.chdir(work)
    model = lora(AutoModelForCausalLM.from_pretrained("llama"), reference="adapters")  # as `rmreg train --model llama`
    model.save_pretrained(Path("runs") / "lora", tokenizer=TOK)
    checkpoint = work / "runs" / "lora"
    config = json.loads((checkpoint / "rmreg_config.json").read_text())
    assert config["base_model"] == {"path": "../../llama", "relative_to_checkpoint": True}
    assert {"backbone/adapter_model.safetensors", "reward_head.safetensors", "rmreg_manifest.json"} <= {
        p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file()
    }
    assert not (checkpoint / "model.safetensors").exists()  # adapters only, as before

    monkeypatch.chdir(elsewhere)
    with pytest.raises(NetworkAttempt):  # the control: here, "llama" is a hub name and transformers would go online
        AutoConfig.from_pretrained("llama")
    loaded = RegularizedRewardModel.from_pretrained(checkpoint)
    assert loaded.reference_mode == "adapters"
    assert torch.equal(loaded.score(*ARGS), model.score(*ARGS))
    assert torch.equal(loaded(**BATCH).loss, model(**BATCH).loss)


def test_absolute_base_model_is_recorded_as_is(tmp_path: Path, monkeypatch, no_network) -> None:
    tiny_causal_lm("llama").save_pretrained(tmp_path / "llama")
    model = lora(AutoModelForCausalLM.from_pretrained(tmp_path / "llama"))
    model.save_pretrained(tmp_path / "ckpt")
    record = json.loads((tmp_path / "ckpt" / "rmreg_config.json").read_text())["base_model"]
    assert record == {"path": str(tmp_path / "llama"), "relative_to_checkpoint": False}
    monkeypatch.chdir(tmp_path / "ckpt")
    assert torch.equal(RegularizedRewardModel.from_pretrained(".").score(*ARGS), model.score(*ARGS))


def test_base_model_by_hub_name_loads_only_from_the_cache(tmp_path: Path, monkeypatch, no_network) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    lm = tiny_causal_lm("llama")
    lm.config.name_or_path = "someone/not-downloaded"
    model = lora(lm)
    model.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(
        ValueError, match=r"someone/not-downloaded: does not load as a causal LM \(not a local"
    ) as error:
        RegularizedRewardModel.from_pretrained(tmp_path / "ckpt")  # NetworkAttempt would escape this
    assert "\n" not in str(error.value)


def test_base_model_by_hub_name_loads_from_the_cache_without_network(tmp_path: Path, monkeypatch, no_network):
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--cached" / "snapshots" / ("0" * 40)
    tiny_causal_lm("llama").save_pretrained(snapshot)  # the layout huggingface_hub's cache has
    (cache / "models--someone--cached" / "refs").mkdir()
    (cache / "models--someone--cached" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    lm = tiny_causal_lm("llama")
    lm.config.name_or_path = "someone/cached"
    model = lora(lm)
    model.save_pretrained(tmp_path / "ckpt")
    record = json.loads((tmp_path / "ckpt" / "rmreg_config.json").read_text())["base_model"]
    assert record == {"path": "someone/cached", "relative_to_checkpoint": False}
    assert torch.equal(RegularizedRewardModel.from_pretrained(tmp_path / "ckpt").score(*ARGS), model.score(*ARGS))


def test_moved_base_model_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    tiny_causal_lm("llama").save_pretrained(tmp_path / "llama")
    monkeypatch.chdir(tmp_path)
    lora(AutoModelForCausalLM.from_pretrained("llama")).save_pretrained("ckpt")
    (tmp_path / "llama").rename(tmp_path / "llama-moved")
    with pytest.raises(
        ValueError, match=r"its base model '../llama' \(relative to the checkpoint\) is not at .*pass base_model="
    ):
        RegularizedRewardModel.from_pretrained(tmp_path / "ckpt")
    loaded = RegularizedRewardModel.from_pretrained(tmp_path / "ckpt", base_model=tmp_path / "llama-moved")
    assert loaded.reference_mode is None


def test_unknown_base_model_asks_for_it(tmp_path: Path) -> None:
    model = lora(tiny_causal_lm("llama"))  # built in code: no path to record
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "rmreg_config.json").read_text())["base_model"] is None
    with pytest.raises(ValueError, match="pass base_model="):
        RegularizedRewardModel.from_pretrained(tmp_path)
    loaded = RegularizedRewardModel.from_pretrained(tmp_path, base_model=tiny_causal_lm("llama"))
    assert torch.equal(loaded.score(*ARGS), model.score(*ARGS))


def test_adapters_that_do_not_fit_the_base_model_are_refused(tmp_path: Path) -> None:
    lora(tiny_causal_lm("llama")).save_pretrained(tmp_path)
    with pytest.raises(
        ValueError, match=r"adapter_model.safetensors: the adapters do not fit .*tensors it does not use"
    ):
        RegularizedRewardModel.from_pretrained(tmp_path, base_model=tiny_causal_lm("llama", num_layers=1))


def test_damaged_peft_files_are_named(tmp_path: Path) -> None:
    lora(tiny_causal_lm("llama")).save_pretrained(tmp_path)
    head = tmp_path / "reward_head.safetensors"
    head.write_bytes(head.read_bytes()[:-4] + b"\x00\x00\x00\x01")
    with pytest.raises(ValueError, match=r"reward_head.safetensors does not match its SHA-256"):
        RegularizedRewardModel.from_pretrained(tmp_path, base_model=tiny_causal_lm("llama"))
    adapters = tmp_path / "backbone" / "adapter_model.safetensors"
    adapters.write_bytes(adapters.read_bytes()[:100])
    write_manifest(tmp_path, writer="test")
    with pytest.raises(ValueError, match=r"adapter_model.safetensors is not a readable safetensors file") as error:
        RegularizedRewardModel.from_pretrained(tmp_path, base_model=tiny_causal_lm("llama"))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("kind", "native"), [("linear", True), ("mlp", False)])
def test_export_writes_the_merged_classifier(tmp_path: Path, kind: str, native: bool) -> None:
    model = lora(tiny_causal_lm("llama"), kind=kind, objective="bt")
    model.export_sequence_classifier(tmp_path, tokenizer=TOK)
    assert rmreg.model.causal_lm.is_peft_model(model.causal_lm)  # the model itself is untouched
    assert not (tmp_path / "rmreg_config.json").exists() and (tmp_path / "rmreg_manifest.json").exists()
    assert (tmp_path / "modeling_rmreg.py").exists() != native
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, trust_remote_code=not native).eval()
    with torch.no_grad():
        logits = classifier(input_ids=ARGS[0], attention_mask=ARGS[1]).logits[:, 0]
    torch.testing.assert_close(logits, model.score(*ARGS), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="it is a transformers checkpoint"):
        RegularizedRewardModel.from_pretrained(tmp_path)


def test_missing_head_file_is_named(tmp_path: Path) -> None:
    lora(tiny_causal_lm("llama")).save_pretrained(tmp_path)
    (tmp_path / "reward_head.safetensors").unlink()
    with pytest.raises(ValueError, match=r"reward_head.safetensors is missing \(listed in rmreg_manifest.json"):
        RegularizedRewardModel.from_pretrained(tmp_path, base_model=tiny_causal_lm("llama"))
    write_manifest(tmp_path, writer="test")
    with pytest.raises(ValueError, match=r"reward_head.safetensors is missing"):
        RegularizedRewardModel.from_pretrained(tmp_path, base_model=tiny_causal_lm("llama"))
