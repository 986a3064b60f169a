"""PEFT (LoRA) backbones: what trains, the adapters-off reference, save/load of adapters only, export."""

from pathlib import Path

import pytest
import torch

import rmreg
from rmreg import functional
from rmreg.data import PairCollator
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

peft = pytest.importorskip("peft")

TOK = tiny_tokenizer()
BATCH = PairCollator(TOK, padding_side="left")(toy_pairs(3))


def lora_model(name: str = "grm-dpo", kind: str = "mlp", **kwargs) -> RegularizedRewardModel:
    """LoRA on q/k/v/o as in the paper, with random B so that the adapters change the model from the start."""
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
    )
    torch.manual_seed(0)
    lm = peft.get_peft_model(tiny_causal_lm("llama"), config)
    head = RewardHead(32, kind=kind, hidden=16)
    return RegularizedRewardModel(lm, reward_head=head, objective=rmreg.objective(name, alpha=0.5), **kwargs)


def base_logps() -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of the batch's chosen and rejected responses under the plain base model, row by row."""
    base = tiny_causal_lm("llama")
    logps = []
    for row in range(BATCH["input_ids"].shape[0]):
        keep = BATCH["attention_mask"][row].bool()
        logits = base(input_ids=BATCH["input_ids"][row][keep][None]).logits
        logps.append(functional.sequence_logprobs(logits, BATCH["labels"][row][keep][None]).detach()[0])
    return torch.stack(logps[:3]), torch.stack(logps[3:])


def test_only_adapters_and_head_train() -> None:
    model = lora_model(reference="adapters").train()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or name.startswith("reward_head.") for name in trainable)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(**BATCH).loss.backward()
    optimizer.step()
    for name, p in model.named_parameters():
        if name not in trainable:
            assert torch.equal(p, before[name]), name
        elif "lora_" in name:
            assert not torch.equal(p, before[name]), name
    assert model.training and model.causal_lm.training  # the reference pass restored train mode


def test_adapters_off_reference_is_the_base_model() -> None:
    model = lora_model(reference="adapters").eval()
    ref_chosen, ref_rejected = model.reference_logps(BATCH["input_ids"], BATCH["attention_mask"], BATCH["labels"])
    expected_chosen, expected_rejected = base_logps()
    torch.testing.assert_close(ref_chosen, expected_chosen, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ref_rejected, expected_rejected, rtol=1e-5, atol=1e-5)
    out = model(**BATCH)
    assert not torch.allclose(out.chosen_logps, ref_chosen, atol=1e-3)  # the adapters are on for the policy
    with_values = model(**BATCH, ref_chosen_logps=ref_chosen, ref_rejected_logps=ref_rejected)
    torch.testing.assert_close(out.loss, with_values.loss)


def test_copy_reference_of_a_peft_model_is_a_merged_plain_model() -> None:
    model = lora_model(reference="copy").eval()
    assert not rmreg.model.causal_lm.is_peft_model(model.reference_model)
    policy = model(**BATCH)
    torch.testing.assert_close(policy.terms["dpo"], torch.tensor(0.6931472), rtol=1e-4, atol=1e-4)


def test_gradient_checkpointing_with_adapters() -> None:
    grads = []
    for checkpointing in (False, True):
        model = lora_model(reference="adapters").train()
        if checkpointing:
            model.activation_checkpointing_enable()
        model(**BATCH).loss.backward()
        layer = model.causal_lm.base_model.model.model.layers[0].self_attn.q_proj
        grads.append(layer.lora_B["default"].weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_save_writes_adapters_only_and_reloads_identically(tmp_path: Path) -> None:
    model = lora_model(reference="adapters").eval()
    model.save_pretrained(tmp_path)
    backbone = {p.name for p in (tmp_path / "backbone").iterdir()}
    assert "adapter_model.safetensors" in backbone and "model.safetensors" not in backbone
    with pytest.raises(ValueError, match="pass base_model="):
        RegularizedRewardModel.from_pretrained(tmp_path)
    loaded = RegularizedRewardModel.from_pretrained(tmp_path, base_model=tiny_causal_lm("llama"))
    assert loaded.reference_mode == "adapters"
    assert not any(p.requires_grad for n, p in loaded.causal_lm.named_parameters())
    args = (BATCH["input_ids"], BATCH["attention_mask"])
    assert torch.equal(loaded.score(*args), model.score(*args))
    assert torch.equal(loaded(**BATCH).loss, model(**BATCH).loss)
    resumed = RegularizedRewardModel.from_pretrained(tmp_path, base_model=tiny_causal_lm("llama"), is_trainable=True)
    assert any("lora_" in n for n, p in resumed.named_parameters() if p.requires_grad)


def test_export_merges_adapters_into_a_copy(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = lora_model("bt", kind="linear").eval()
    model.export_sequence_classifier(tmp_path)
    assert rmreg.model.causal_lm.is_peft_model(model.causal_lm)  # the model itself is untouched
    batch = PairCollator(TOK, padding_side="right")(toy_pairs(3))
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        logits = classifier(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    expected = model.score(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_auto_reference_of_a_peft_model_switches_its_adapters_off() -> None:
    model = lora_model("grm-dpo", reference="auto")
    assert model.reference_mode == "adapters" and model.reference_model is None
