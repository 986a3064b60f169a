"""Training across processes: the Accelerate example on 1 and 2 CPU processes (DDP over gloo), FSDP2, configs.

Two processes with the same global batch must follow one process's trajectory: the same losses and, after the
run, the same parameters within ``rtol=1e-4, atol=1e-5`` (float32; the all-reduce sums in another order, measured
differences are about 3e-7). The runs use SGD, whose step is linear in the gradient, so a gradient averaged or
scaled wrongly across processes or accumulation steps would show (Adam's step is scale-invariant and, once the toy
loss saturates, chaotic in the last bits). This module is also the FSDP2 worker that ``torchrun`` starts.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import rmreg
from rmreg.data import PairCollator
from rmreg.model import RegularizedRewardModel
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "examples" / "accelerate_loop.py"
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
COMPARABLE = ["--head-dropout", "0", "--optimizer", "sgd", "--lr", "0.3", "--steps", "8", "--batch-size", "8"]


_TEARDOWN_ABORT = "terminate called without an active exception"


def launch(script: Path, *args: str, processes: int, timeout: int = 900) -> None:
    """Run ``script`` in ``processes`` CPU processes (torchrun with ACCELERATE_USE_CPU for a real gloo group)."""
    launcher = [sys.executable] if processes == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += [] if processes == 1 else ["--nproc_per_node", str(processes)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    for attempt in range(2):
        done = subprocess.run([*launcher, str(script), *args], env=env, capture_output=True, text=True, timeout=timeout)
        # gloo's teardown on a loaded machine: a rank can abort in destroy_process_group after all its work is done
        # (every rank waited for the others first). That is torch's, not the script's; run once more, then fail.
        if done.returncode == 0 or _TEARDOWN_ABORT not in done.stdout + done.stderr or attempt == 1:
            break
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def run_example(directory: Path, *args: str, processes: int) -> tuple[dict[str, Any], RegularizedRewardModel]:
    launch(EXAMPLE, *args, "--output-dir", str(directory), "--metrics", f"{directory}.json", processes=processes)
    return json.loads(Path(f"{directory}.json").read_text()), RegularizedRewardModel.from_pretrained(directory)


def assert_learned(metrics: dict[str, Any]) -> None:
    losses = metrics["losses"]
    assert sum(losses[-3:]) < sum(losses[:3]) / 2, losses
    assert metrics["held_out_accuracy"] > 0.75


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["bt", "grm-sft"])
def test_two_processes_reach_the_parameters_of_one(tmp_path: Path, objective: str) -> None:
    args = [*COMPARABLE, "--objective", objective, "--accumulation", "2"]
    one, one_model = run_example(tmp_path / "one", *args, processes=1)
    two, two_model = run_example(tmp_path / "two", *args, processes=2)
    assert (one["num_processes"], two["num_processes"]) == (1, 2)
    assert two["distributed_type"] == "DistributedType.MULTI_CPU"
    torch.testing.assert_close(torch.tensor(two["losses"]), torch.tensor(one["losses"]), **TOLERANCE)
    assert_learned(one)
    assert_learned(two)
    expected, got = one_model.state_dict(), two_model.state_dict()
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, **TOLERANCE, msg=lambda m, name=name: f"{name}: {m}")
    # Bradley–Terry alone leaves the untied LM head without gradient (frozen, so DDP never waits for it).
    initial_head = tiny_causal_lm("llama").lm_head.weight
    assert torch.equal(expected["causal_lm.lm_head.weight"], initial_head) == (objective == "bt")


# ---- FSDP2 (fully_shard) over gloo ------------------------------------------------------------------------------

FSDP_STEPS, GLOBAL_BATCH = 5, 8
FSDP_LAYOUTS = ("layers+root", "norm+head")


def build(objective: str) -> RegularizedRewardModel:
    torch.manual_seed(0)
    head = rmreg.RewardHead(32, dropout=0.0)
    return RegularizedRewardModel(
        tiny_causal_lm("llama"), reward_head=head, objective=rmreg.objective(objective, alpha=0.1)
    )


def train(model: RegularizedRewardModel, batches: list[list[dict[str, Any]]]) -> None:
    collate = PairCollator(tiny_tokenizer())
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.3)
    for pairs in batches:
        model(**collate(pairs)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def shard(model: RegularizedRewardModel, layout: str) -> None:
    """FSDP2 units as Accelerate makes them from ``fsdp.yaml`` ("layers+root"), or as it makes them for a bare causal
    LM, whose final norm and LM head form one unit ("norm+head")."""
    from torch.distributed.fsdp import fully_shard

    lm = model.causal_lm
    for layer in lm.model.layers:
        fully_shard(layer)
    if layout == "norm+head":  # what Accelerate does for a bare causal LM: its "tail" unit, unsharded after forward
        fully_shard([lm.model.norm, lm.lm_head], reshard_after_forward=False)
    fully_shard(model)


def fsdp2_worker(out: Path) -> None:
    """Under ``torchrun``: train FSDP2-sharded on each process's half of the global batch; rank 0 compares."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    pairs, local = toy_pairs(FSDP_STEPS * GLOBAL_BATCH, seed=0), GLOBAL_BATCH // world
    result: dict[str, Any] = {"world_size": world}
    for objective in ("bt", "grm-sft"):
        for layout in FSDP_LAYOUTS:
            model = build(objective)
            shard(model, layout)
            starts = [step * GLOBAL_BATCH + rank * local for step in range(FSDP_STEPS)]
            train(model, [pairs[start : start + local] for start in starts])
            state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            if rank == 0:
                reference, initial = build(objective), build(objective).state_dict()
                train(reference, [pairs[step * GLOBAL_BATCH : (step + 1) * GLOBAL_BATCH] for step in range(FSDP_STEPS)])
                expected = reference.state_dict()
                assert state.keys() == expected.keys()
                result[f"{objective}/{layout}"] = {
                    "difference": max((state[name] - value).abs().max().item() for name, value in expected.items()),
                    "moved": max((expected[name] - initial[name]).abs().max().item() for name in initial),
                }
    if rank == 0:
        out.write_text(json.dumps(result))
    dist.destroy_process_group()


@pytest.mark.slow
def test_fsdp2_sharded_training_matches_one_process(tmp_path: Path) -> None:
    out = tmp_path / "fsdp2.json"
    launch(Path(__file__), "--fsdp2-worker", str(out), processes=2)
    result = json.loads(out.read_text())
    assert result.pop("world_size") == 2
    assert sorted(result) == sorted(f"{o}/{layout}" for o in ("bt", "grm-sft") for layout in FSDP_LAYOUTS)
    for run, numbers in result.items():
        assert numbers["moved"] > 1e-2, run  # training did move the weights
        assert numbers["difference"] < TOLERANCE["atol"], (run, numbers)


# ---- configuration files ---------------------------------------------------------------------------------------


def test_config_files_load_in_accelerate() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    configs = {
        path.stem: load_config_from_file(str(path)) for path in (REPO_ROOT / "examples" / "configs").glob("*.yaml")
    }
    kinds = {name: str(config.distributed_type) for name, config in configs.items()}
    assert kinds == {
        "ddp": "DistributedType.MULTI_GPU",
        "fsdp": "DistributedType.FSDP",
        "deepspeed_zero2": "DistributedType.DEEPSPEED",
        "deepspeed_zero3": "DistributedType.DEEPSPEED",
    }
    assert [configs[f"deepspeed_zero{stage}"].deepspeed_config["zero_stage"] for stage in (2, 3)] == [2, 3]


def test_fsdp_config_makes_the_decoder_layers_units_and_leaves_the_lm_head_in_the_root() -> None:
    """The units Accelerate's FSDP2 preparation would make of a RegularizedRewardModel from ``fsdp.yaml``."""
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy, get_module_children_bottom_up

    config = load_config_from_file(str(REPO_ROOT / "examples" / "configs" / "fsdp.yaml")).fsdp_config
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=config["fsdp_version"],
        auto_wrap_policy=config["fsdp_auto_wrap_policy"],
        transformer_cls_names_to_wrap=config["fsdp_transformer_layer_cls_to_wrap"],
    )
    model = RegularizedRewardModel(tiny_causal_lm("llama"))
    plugin.set_auto_wrap_policy(model)
    wraps = fsdp2_prepare_auto_wrap_policy(plugin, model)
    units = [module for module in get_module_children_bottom_up(model)[:-1] if wraps(module)]
    assert units == list(model.causal_lm.model.layers)
    # Accelerate gives the LM head a unit (with the final norm) only to models with get_output_embeddings: here it
    # stays in the root unit. The FSDP2 test above trains both layouts.
    assert not hasattr(model, "get_output_embeddings")


if __name__ == "__main__" and sys.argv[1:2] == ["--fsdp2-worker"]:
    fsdp2_worker(Path(sys.argv[2]))


SHARDED_HEAD_ALONE = """
import torch, torch.distributed as dist
from torch.distributed.fsdp import fully_shard
import rmreg
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

dist.init_process_group("gloo", init_method="file://{store}", rank=0, world_size=1)
lm = tiny_causal_lm("llama", tie_word_embeddings=False)
model = rmreg.RegularizedRewardModel(lm, objective=rmreg.objective("grm-sft"))
fully_shard(model.causal_lm.lm_head)  # the LM head as a unit of its own: nothing unshards it before it is read
fully_shard(model)
try:
    model(**rmreg.PairCollator(tiny_tokenizer())(toy_pairs(2)))
except ValueError as error:
    print("ValueError:", error)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_an_lm_head_sharded_as_its_own_unit_is_a_clear_error(tmp_path: Path) -> None:
    code = SHARDED_HEAD_ALONE.format(store=tmp_path / "store")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert "ValueError: the LM head's weight is sharded when the regularizer reads it" in done.stdout, done.stderr
