"""Bad checkpoints never load silently: interrupted saves, flipped bytes, truncated, edited and missing files."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
import transformers.modeling_utils  # noqa: F401 - binds safetensors' real save_file before a test patches it

import rmreg
from rmreg.data import PairCollator
from rmreg.heads import RewardHead
from rmreg.model import RegularizedRewardModel, atomic
from rmreg.model.manifest import write_manifest
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

TOK = tiny_tokenizer()
BATCH = PairCollator(TOK)(toy_pairs(3))
ARGS = (BATCH["input_ids"], BATCH["attention_mask"])


def model_for(seed: int = 0, kind: str = "mlp") -> RegularizedRewardModel:
    """An untied Llama (so there is an LM-head file too) with a head of its own seed."""
    torch.manual_seed(seed)
    head = RewardHead(32, kind=kind, hidden=16)
    return RegularizedRewardModel(tiny_causal_lm("llama", seed=seed), reward_head=head, objective=rmreg.objective("bt"))


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, RegularizedRewardModel]:
    model = model_for().eval()
    model.save_pretrained(tmp_path / "ckpt", tokenizer=TOK)
    return tmp_path / "ckpt", model


def load(directory: Path, **kwargs) -> RegularizedRewardModel:
    return RegularizedRewardModel.from_pretrained(directory, **kwargs)


def consistent(directory: Path) -> None:
    """Rewrite the manifest, as if the bad contents had been saved so (a buggy or newer writer): then the
    loader's own checks must find the problem."""
    write_manifest(directory, writer="9.9.9")


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


class WriterFails:
    """Replaces safetensors' save_file: the first ``allowed`` files are written, then the writer raises."""

    def __init__(self, allowed: int = 1) -> None:
        self.allowed, self.calls = allowed, 0
        self.real = safetensors.torch.save_file

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls > self.allowed:
            raise OSError("No space left on device")
        return self.real(*args, **kwargs)


def test_interrupted_save_into_a_fresh_directory_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    writer = WriterFails()
    monkeypatch.setattr(safetensors.torch, "save_file", writer)
    with pytest.raises(OSError, match="No space left"):
        model_for().save_pretrained(tmp_path / "ckpt", tokenizer=TOK)
    assert writer.calls == 2  # model.safetensors written, the LM head's file failed
    assert list(tmp_path.iterdir()) == []  # neither the target nor a staging directory
    with pytest.raises(ValueError, match="no such directory"):
        load(tmp_path / "ckpt")


def test_interrupted_save_over_a_checkpoint_leaves_the_old_one(saved, monkeypatch) -> None:
    directory, old = saved
    before = {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}
    monkeypatch.setattr(safetensors.torch, "save_file", WriterFails())
    with pytest.raises(OSError, match="No space left"):
        model_for(seed=1).save_pretrained(directory)
    assert {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()} == before
    assert sorted(path.name for path in directory.parent.iterdir()) == ["ckpt"]
    assert torch.equal(load(directory).score(*ARGS), old.score(*ARGS))


def test_a_rename_that_fails_puts_the_old_checkpoint_back(saved, monkeypatch) -> None:
    directory, old = saved
    calls = []

    def replace(source, destination):
        calls.append(Path(source).name)
        if len(calls) == 2:  # the old checkpoint was moved aside; moving the new one in fails
            raise OSError("interrupted")
        os.rename(source, destination)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError, match="interrupted"):
        model_for(seed=1).save_pretrained(directory)
    assert torch.equal(load(directory).score(*ARGS), old.score(*ARGS))


def test_in_place_save_interrupted_before_the_manifest_does_not_load(saved, monkeypatch) -> None:
    """Next to entries of its own (a Trainer's), a checkpoint is updated in place, its manifest moved in last."""
    directory, _ = saved
    (directory / "checkpoint-3").mkdir()
    real = os.replace

    def replace(source, destination):
        if Path(destination).name == "rmreg_manifest.json":
            raise OSError("killed")
        real(source, destination)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError, match="killed"):
        model_for(seed=1).save_pretrained(directory)
    assert (directory / "checkpoint-3").is_dir() and (directory / "model.safetensors").is_file()
    with pytest.raises(ValueError, match=r"no rmreg_manifest.json, so the save that wrote it did not finish"):
        load(directory)
    with pytest.raises(ValueError, match="did not finish"):
        load(directory, verify=False)


def test_a_killed_save_leaves_a_staging_directory_that_the_next_save_removes(saved) -> None:
    directory, old = saved
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    leftover = directory.parent / f".ckpt.rmreg-staging-{socket.gethostname()}-{int(dead.stdout)}-0000"
    shutil.copytree(directory, leftover)
    alive = directory.parent / f".ckpt.rmreg-staging-{socket.gethostname()}-{os.getpid()}-1111"
    alive.mkdir()
    assert torch.equal(load(directory).score(*ARGS), old.score(*ARGS))  # the leftover does not disturb loading
    old.save_pretrained(directory)
    assert not leftover.exists() and alive.exists()  # a running process's staging directory is left alone


def flip_bytes(path: Path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")  # safetensors: u64 header length, JSON header, tensor data
    for i in range(header + 16, header + 16 + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_tensor_bytes_are_named(saved) -> None:
    directory, _ = saved
    flip_bytes(directory / "model.safetensors")
    with pytest.raises(ValueError, match=r"model.safetensors does not match its SHA-256") as error:
        load(directory)
    one_line(error)
    load(directory, verify=False)  # the opt-out skips the digests (sizes still match): for huge checkpoints only


def test_truncated_file_is_named_in_one_line(saved) -> None:
    directory, _ = saved
    path = directory / "model.safetensors"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 2])
    for verify in (True, False):
        with pytest.raises(ValueError, match=rf"model.safetensors is {size // 2} bytes but was saved with {size}"):
            load(directory, verify=verify)
    consistent(directory)
    with pytest.raises(ValueError, match=r"model.safetensors is not a readable safetensors file") as error:
        load(directory)
    one_line(error)


def edit_json(path: Path, **changes) -> None:
    content = json.loads(path.read_text())
    content.update(changes)
    path.write_text(json.dumps(content))


def edit_backbone_config(directory: Path, **changes) -> None:
    """Edit the backbone's fields in config.json: the config itself (native) or its backbone_config."""
    path = directory / "config.json"
    config = json.loads(path.read_text())
    (config["backbone_config"] if config["model_type"] == "rmreg_reward_model" else config).update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("kind", ["linear", "mlp"])  # the native and the remote-code form
def test_edited_layer_count_is_refused(tmp_path: Path, kind: str) -> None:
    model_for(kind=kind).save_pretrained(tmp_path)
    edit_backbone_config(tmp_path, num_hidden_layers=1)
    with pytest.raises(ValueError, match=r"config.json is \d+ bytes but was saved with"):
        load(tmp_path)
    consistent(tmp_path)
    with pytest.raises(ValueError, match=r"do not fit the model its config describes.*tensors the model does not use"):
        load(tmp_path)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_edited_width_is_refused(tmp_path: Path, kind: str) -> None:
    model_for(kind=kind).save_pretrained(tmp_path)
    edit_backbone_config(tmp_path, intermediate_size=48)
    consistent(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"of another shape \['model.layers.0.mlp.down_proj.weight( \(files \(32, 64\), config \(32, 48\)\))?'",
    ) as error:
        load(tmp_path)
    one_line(error)


def test_edited_head_config_is_refused(saved) -> None:
    directory, _ = saved
    config = json.loads((directory / "rmreg_config.json").read_text())
    config["reward_head"]["bias"] = True
    (directory / "rmreg_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"rmreg_config.json does not match its SHA-256|rmreg_config.json is"):
        load(directory)
    consistent(directory)
    with pytest.raises(ValueError, match=r"config.json: its reward_head .* disagrees with rmreg_config.json"):
        load(directory)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format_version": 99}, r"format_version 99 is not one this rmreg reads .* written by rmreg 9.9.9"),
        ({"format_version": "2"}, "format_version '2' is not one this rmreg reads"),
        ({"layout": "zigzag"}, r"field 'layout' is 'zigzag', expected one of \['concat', 'interleaved'\]"),
        ({"peft": 1}, "field 'peft' is 1, expected true or false"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"reference": "adapters"}, "reference 'adapters' needs a PEFT checkpoint"),
        (
            {"objective": {"name": "x", "terms": [{"type": "nope", "weight": 1, "name": "n", "params": {}}]}},
            "unknown term type 'nope'",
        ),
        ({"objective": {"terms": "bt"}}, "objective:"),
        ({"backbone": {"classifier": "native"}}, "missing field backbone.'classifier_reason'"),
    ],
)
def test_config_fields_are_checked_and_the_writer_named(saved, changes, message) -> None:
    directory, _ = saved
    edit_json(directory / "rmreg_config.json", rmreg_version="9.9.9", **changes)
    consistent(directory)
    with pytest.raises(ValueError, match=message) as error:
        load(directory)
    assert "rmreg_config.json" in one_line(error) and "9.9.9" in str(error.value)


def test_missing_config_field_is_named(saved) -> None:
    directory, _ = saved
    config = json.loads((directory / "rmreg_config.json").read_text())
    del config["layout"]
    (directory / "rmreg_config.json").write_text(json.dumps(config))
    consistent(directory)
    with pytest.raises(
        ValueError, match=rf"missing field 'layout'; the checkpoint was written by rmreg {rmreg.__version__}"
    ):
        load(directory)


@pytest.mark.parametrize("name", ["model.safetensors", "rmreg_extras/lm_head.safetensors", "config.json"])
def test_missing_files_are_named(saved, name: str) -> None:
    directory, _ = saved
    (directory / name).unlink()
    with pytest.raises(ValueError, match=rf"{name} is missing \(listed in rmreg_manifest.json"):
        load(directory)
    consistent(directory)  # even when nothing lists it any more
    with pytest.raises(ValueError, match=rf"{name} is missing"):
        load(directory)


def test_missing_manifest_does_not_load(saved) -> None:
    directory, _ = saved
    (directory / "rmreg_manifest.json").unlink()
    with pytest.raises(ValueError, match=r"no rmreg_manifest.json"):
        load(directory)


def test_a_file_left_by_another_save_is_refused(saved) -> None:
    directory, _ = saved
    shutil.copy(directory / "model.safetensors", directory / "model-00001-of-00002.safetensors")
    with pytest.raises(ValueError, match=r"model-00001-of-00002.safetensors is not part of the checkpoint"):
        load(directory)


def rewrite_tensors(path: Path, change) -> None:
    tensors = safetensors.torch.load_file(str(path))
    safetensors.torch.save_file(change(tensors), str(path), metadata={"format": "pt"})


def test_renamed_tensor_is_refused(saved) -> None:
    directory, _ = saved
    name = "model.layers.0.mlp.up_proj.weight"
    rewrite_tensors(
        directory / "model.safetensors",
        lambda t: {("model.layers.0.mlp.upproj.weight" if k == name else k): v for k, v in t.items()},
    )
    consistent(directory)
    with pytest.raises(ValueError, match=r"parameters absent from the files \['model.layers.0.mlp.up_proj.weight'\]"):
        load(directory)


def test_head_tensor_missing_or_reshaped_is_refused(saved) -> None:
    directory, _ = saved
    rewrite_tensors(
        directory / "model.safetensors", lambda t: {k: v for k, v in t.items() if k != "score.layers.3.weight"}
    )
    consistent(directory)
    with pytest.raises(
        ValueError, match=r"the reward head's tensors do not fit its config: missing \['layers.3.weight'\]"
    ):
        load(directory)


def test_stray_tensor_is_refused(saved) -> None:
    directory, _ = saved
    rewrite_tensors(directory / "model.safetensors", lambda t: {**t, "value_head.weight": torch.zeros(1)})
    consistent(directory)
    with pytest.raises(ValueError, match=r"neither the decoder's nor the head's: \['value_head.weight'\]"):
        load(directory)


@pytest.mark.parametrize("name", ["config.json", "rmreg_config.json", "model.safetensors.index.json"])
def test_unreadable_json_is_named_in_one_line(saved, name: str) -> None:
    directory, _ = saved
    (directory / name).write_text("{not json")
    consistent(directory)
    with pytest.raises(ValueError, match=rf"{name}.*(unreadable|not a readable)") as error:
        load(directory)
    one_line(error)


def test_damaged_reference_model_is_named(tmp_path: Path) -> None:
    model = RegularizedRewardModel(tiny_causal_lm("qwen2"), objective=rmreg.objective("grm-dpo"), reference="copy")
    model.save_pretrained(tmp_path)
    path = tmp_path / "reference" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-8] + bytes(8))
    with pytest.raises(ValueError, match=r"reference/model.safetensors does not match its SHA-256"):
        load(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    consistent(tmp_path)
    with pytest.raises(ValueError, match=r"reference: does not load as a causal LM") as error:
        load(tmp_path)
    one_line(error)
    shutil.rmtree(tmp_path / "reference")
    consistent(tmp_path)
    with pytest.raises(ValueError, match=r"reference: does not load as a causal LM"):
        load(tmp_path)
