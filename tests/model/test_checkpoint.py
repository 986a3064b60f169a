"""save_pretrained / from_pretrained: bit-identical round trips, the layout on disk, and format-1 checkpoints."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import rmreg
from rmreg.data import PairCollator
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel
from rmreg.model.checkpoint import find_checkpoints, is_checkpoint
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

TOK = tiny_tokenizer()
BATCH = PairCollator(TOK, padding_side="left")(toy_pairs(3))
ARGS = (BATCH["input_ids"], BATCH["attention_mask"])
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def files(directory: Path) -> set[str]:
    return {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}


def trained(model: RegularizedRewardModel) -> RegularizedRewardModel:
    """One optimizer step, so that saved weights differ from any fresh initialisation."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    model(**BATCH).loss.backward()
    optimizer.step()
    return model.eval()


@pytest.mark.parametrize(
    ("family", "kind", "bias", "name", "reference", "dtype", "attn"),
    [
        ("llama", "mlp", False, "grm-sft", None, torch.float32, "eager"),
        ("gpt2", "linear", False, "margin", None, torch.float32, "sdpa"),
        ("qwen2", "mlp", True, "grm-dpo", "copy", torch.float32, "eager"),
        ("gemma", "mlp", False, "label-smoothing", None, torch.bfloat16, "sdpa"),
        ("llama", "linear", True, "bt", None, torch.bfloat16, "sdpa"),
    ],
)
def test_round_trip_is_bit_identical(tmp_path: Path, family, kind, bias, name, reference, dtype, attn) -> None:
    lm = tiny_causal_lm(family, dtype=dtype, attn_implementation=attn)
    head = RewardHead(lm.config.hidden_size, kind=kind, hidden=16, bias=bias)
    model = trained(RegularizedRewardModel(lm, reward_head=head, objective=rmreg.objective(name), reference=reference))
    model.save_pretrained(tmp_path, tokenizer=TOK)
    saved = files(tmp_path)
    assert {"rmreg_config.json", "rmreg_manifest.json", "config.json", "model.safetensors"} <= saved
    assert not {Path(f).suffix for f in saved} & PICKLE_SUFFIXES
    assert ("reference/model.safetensors" in saved) == (reference == "copy")
    assert ("rmreg_extras/lm_head.safetensors" in saved) == (not lm.config.tie_word_embeddings)
    config = json.loads((tmp_path / "rmreg_config.json").read_text())
    assert config["objective"]["name"] == name and config["reward_head"]["kind"] == kind
    assert config["format_version"] == 2 and config["rmreg_version"] == rmreg.__version__

    loaded = RegularizedRewardModel.from_pretrained(tmp_path)
    assert not loaded.training
    assert loaded.causal_lm.dtype == dtype and loaded.reward_head.output_layer.weight.dtype == torch.float32
    assert loaded.reward_head.config() == head.config()
    assert loaded.causal_lm.config._attn_implementation == attn
    assert loaded.objective.config() == model.objective.config()
    assert loaded.causal_lm.state_dict().keys() == model.causal_lm.state_dict().keys()
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    assert torch.equal(loaded.score(*ARGS), model.score(*ARGS))
    assert torch.equal(loaded(**BATCH).loss, model(**BATCH).loss)
    if reference == "copy":
        for original, restored in zip(
            model.reference_logps(*ARGS, BATCH["labels"]), loaded.reference_logps(*ARGS, BATCH["labels"]), strict=True
        ):
            assert torch.equal(original, restored)


def test_tied_lm_head_stays_tied(tmp_path: Path) -> None:
    model = RegularizedRewardModel(tiny_causal_lm("gemma"), reward_head=RewardHead(32, kind="linear"))
    model.save_pretrained(tmp_path)
    loaded = RegularizedRewardModel.from_pretrained(tmp_path)
    embeddings = loaded.causal_lm.get_input_embeddings().weight
    assert loaded.causal_lm.get_output_embeddings().weight is embeddings


def test_scoring_only_model_round_trips(tmp_path: Path) -> None:
    model = RegularizedRewardModel(tiny_causal_lm("qwen2"), reward_head=RewardHead(32, hidden=8)).eval()
    model.save_pretrained(tmp_path)
    loaded = RegularizedRewardModel.from_pretrained(tmp_path)
    assert loaded.objective is None
    assert torch.equal(loaded.score(*ARGS), model.score(*ARGS))


def test_sharded_weights_round_trip(tmp_path: Path) -> None:
    from rmreg.model import checkpoint

    model = trained(RegularizedRewardModel(tiny_causal_lm("llama"), objective=rmreg.objective("bt")))
    checkpoint.save(checkpoint.Parts.of(model), tmp_path, max_shard_size=20_000)
    shards = sorted(name for name in files(tmp_path) if name.startswith("model-"))
    assert len(shards) > 1 and "model.safetensors.index.json" in files(tmp_path)
    assert torch.equal(RegularizedRewardModel.from_pretrained(tmp_path).score(*ARGS), model.score(*ARGS))


def test_saving_into_a_directory_that_exists_keeps_foreign_entries(tmp_path: Path) -> None:
    """As Trainer's final save_model(output_dir) does: checkpoint-*/ folders and logs stay, the model is replaced."""
    first = RegularizedRewardModel(tiny_causal_lm("llama"), reward_head=RewardHead(32, hidden=8), objective=None)
    first.save_pretrained(tmp_path, tokenizer=TOK)
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-5" / "model.safetensors").write_bytes(b"another checkpoint's")
    (tmp_path / "trainer_state.json").write_text("{}")
    second = RegularizedRewardModel(tiny_causal_lm("gemma", seed=1), reward_head=RewardHead(32, kind="linear")).eval()
    second.save_pretrained(tmp_path)
    assert (tmp_path / "checkpoint-5" / "model.safetensors").read_bytes() == b"another checkpoint's"
    assert (tmp_path / "trainer_state.json").read_text() == "{}"
    assert not (tmp_path / "tokenizer.json").exists()  # the first checkpoint's files are gone, all of them
    assert not (tmp_path / "rmreg_extras").exists()  # (gemma ties its LM head; llama had an untied one)
    assert torch.equal(RegularizedRewardModel.from_pretrained(tmp_path).score(*ARGS), second.score(*ARGS))


def test_saving_over_a_checkpoint_replaces_it_whole(tmp_path: Path) -> None:
    target = tmp_path / "run"
    RegularizedRewardModel(tiny_causal_lm("llama")).save_pretrained(target, tokenizer=TOK)
    model = RegularizedRewardModel(tiny_causal_lm("qwen2", seed=3), reward_head=RewardHead(32, kind="linear")).eval()
    model.save_pretrained(target)
    assert "tokenizer.json" not in files(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging or old copy left beside it
    assert torch.equal(RegularizedRewardModel.from_pretrained(target).score(*ARGS), model.score(*ARGS))


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an rmreg checkpoint"):
        RegularizedRewardModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no such directory"):
        RegularizedRewardModel.from_pretrained(tmp_path / "absent")
    tiny_causal_lm().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="it is a transformers checkpoint"):
        RegularizedRewardModel.from_pretrained(tmp_path)


def test_finding_earlier_checkpoints(tmp_path: Path) -> None:
    assert find_checkpoints(tmp_path / "absent") == [] and not is_checkpoint(tmp_path)
    model = RegularizedRewardModel(tiny_causal_lm())
    model.save_pretrained(tmp_path / "bt-seed0")
    (tmp_path / "notes").mkdir()
    assert find_checkpoints(tmp_path) == [tmp_path / "bt-seed0"]
    model.save_pretrained(tmp_path)
    assert find_checkpoints(tmp_path) == [tmp_path, tmp_path / "bt-seed0"]


def write_format_1(directory: Path, model: RegularizedRewardModel, *, peft: bool = False) -> None:
    """What rmreg 0.1.0.dev0 wrote before the manifest (format 1), file for file."""
    model.causal_lm.save_pretrained(directory / "backbone")
    head = model.reward_head.config()
    del head["bias"]  # format 1 had no such field: every head had an output bias
    state = {name: tensor.contiguous() for name, tensor in model.reward_head.state_dict().items()}
    save_file(state, str(directory / "reward_head.safetensors"), metadata={"format": "pt"})
    config = {
        "format_version": 1,
        "layout": model.layout,
        "reward_head": head,
        "objective": None if model.objective is None else model.objective.config(),
        "reference": model.reference_mode,
        "peft": peft,
        "lm_head_trainable": model.lm_head_trainable,
        "attn_implementation": model.causal_lm.config._attn_implementation,
    }
    (directory / "rmreg_config.json").write_text(json.dumps(config))


def test_format_1_checkpoints_load_unverified_with_an_output_bias(tmp_path: Path) -> None:
    lm = tiny_causal_lm("llama")
    head = RewardHead(32, hidden=8, bias=True)
    model = trained(RegularizedRewardModel(lm, reward_head=head, objective=rmreg.objective("grm-sft")))
    write_format_1(tmp_path, model)
    with pytest.raises(ValueError, match=r"format 1 has no manifest.*verify=False.*written by an rmreg release before"):
        RegularizedRewardModel.from_pretrained(tmp_path)
    loaded = RegularizedRewardModel.from_pretrained(tmp_path, verify=False)
    assert loaded.reward_head.bias and loaded.reward_head.output_layer.bias is not None
    assert torch.equal(loaded.score(*ARGS), model.score(*ARGS))
    loaded.save_pretrained(tmp_path / "upgraded")  # saving again writes the current format
    assert json.loads((tmp_path / "upgraded" / "rmreg_config.json").read_text())["format_version"] == 2
    assert torch.equal(RegularizedRewardModel.from_pretrained(tmp_path / "upgraded").score(*ARGS), model.score(*ARGS))


def test_format_1_head_without_bias_tensor_is_refused(tmp_path: Path) -> None:
    """A format-1 config means an output bias: a head file without one does not fit it."""
    model = RegularizedRewardModel(tiny_causal_lm("llama"), reward_head=RewardHead(32, hidden=8, bias=False))
    write_format_1(tmp_path, model)
    with pytest.raises(ValueError, match=r"reward_head.safetensors: the reward head's tensors do not fit .*missing"):
        RegularizedRewardModel.from_pretrained(tmp_path, verify=False)


def test_format_1_peft_checkpoint_loads_unverified(tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    lm = peft.get_peft_model(tiny_causal_lm("llama"), config)
    head = RewardHead(32, hidden=16, bias=True)
    model = RegularizedRewardModel(lm, reward_head=head, objective=rmreg.objective("grm-dpo"), reference="adapters")
    write_format_1(tmp_path, model.eval(), peft=True)
    loaded = RegularizedRewardModel.from_pretrained(tmp_path, base_model=tiny_causal_lm("llama"), verify=False)
    assert loaded.reward_head.bias and loaded.reference_mode == "adapters"
    assert torch.equal(loaded.score(*ARGS), model.score(*ARGS))
