"""A plain Accelerate training loop for a regularized reward model, with gradient accumulation.

The same script runs on one process, on several CPU processes (DDP over gloo) and, with a config file from
``examples/configs/``, on GPUs with DDP, FSDP or DeepSpeed::

    python examples/accelerate_loop.py
    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 examples/accelerate_loop.py
    accelerate launch --config_file examples/configs/ddp.yaml examples/accelerate_loop.py

``--batch-size`` is the global batch (pairs per optimizer step): each process takes
``batch_size / (processes × accumulation)`` pairs per micro-batch, so every launch follows the same trajectory.
Check the world size the script prints: on a machine without GPU, ``accelerate launch --cpu --num_processes 2``
starts a single process, and ``torchrun`` without ``ACCELERATE_USE_CPU=true`` starts unconnected ones.

The model is a tiny Llama built in code and the pairs are generated (:func:`rmreg.testing.toy_pairs`); swap in
your own causal LM, tokenizer and preference data.
"""

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

import rmreg
from rmreg.data import PairCollator
from rmreg.model import RegularizedRewardModel
from rmreg.testing import tiny_causal_lm, tiny_tokenizer, toy_pairs

OPTIMIZERS = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def build_model(args: argparse.Namespace) -> RegularizedRewardModel:
    """A tiny Llama with the paper's reward head; a DPO regularizer compares against a frozen copy."""
    set_seed(args.seed)
    objective = rmreg.objective(args.objective, alpha=args.alpha)
    reference = "copy" if objective.needs.reference_logps else None
    lm = tiny_causal_lm("llama", seed=args.seed)
    head = rmreg.RewardHead(lm.config.hidden_size, dropout=args.head_dropout)
    return RegularizedRewardModel(lm, reward_head=head, objective=objective, reference=reference)


def held_out_accuracy(accelerator: Accelerator, model: torch.nn.Module, pairs: DataLoader) -> float:
    """Fraction of held-out pairs whose chosen response gets the higher reward, over all processes."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in pairs:
            output = model(**batch)
            chosen, rejected = accelerator.gather_for_metrics((output.chosen_rewards, output.rejected_rewards))
            correct += int((chosen > rejected).sum())
            total += chosen.numel()
    model.train()
    return correct / total


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objective", default="grm-sft", choices=rmreg.PRESETS)
    parser.add_argument("--alpha", type=float, default=0.01, help="regularizer weight α")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch: pairs per optimizer step")
    parser.add_argument("--accumulation", type=int, default=2, help="gradient accumulation steps")
    parser.add_argument("--optimizer", default="adamw", choices=sorted(OPTIMIZERS))
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-grad-norm", type=float, default=5.0, help="the paper's gradient clipping")
    parser.add_argument("--head-dropout", type=float, default=0.1, help="0 makes runs comparable across launches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, help="write the trained model (RegularizedRewardModel format)")
    parser.add_argument("--metrics", type=Path, help="write losses, accuracy and world size as JSON")
    args = parser.parse_args(argv)

    accelerator = Accelerator(gradient_accumulation_steps=args.accumulation)
    micro_batch, rest = divmod(args.batch_size, accelerator.num_processes * args.accumulation)
    if rest or not micro_batch:
        parser.error(
            f"--batch-size must be a multiple of processes × accumulation ({accelerator.num_processes} × "
            f"{args.accumulation})"
        )
    accelerator.print(
        f"{accelerator.num_processes} process(es), {accelerator.distributed_type}, "
        f"micro-batch {micro_batch} pairs × {args.accumulation} accumulation steps"
    )

    tokenizer = tiny_tokenizer()
    collate = PairCollator(tokenizer)
    model = build_model(args)
    optimizer = OPTIMIZERS[args.optimizer]([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    train = DataLoader(
        toy_pairs(args.steps * args.batch_size, seed=args.seed),
        batch_size=micro_batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(args.seed),
        collate_fn=collate,
    )
    held_out = DataLoader(toy_pairs(64, seed=args.seed + 1), batch_size=16, collate_fn=collate)
    model, optimizer, train, held_out = accelerator.prepare(model, optimizer, train, held_out)

    accuracy_before = held_out_accuracy(accelerator, model, held_out)
    losses, step_loss = [], torch.zeros((), device=accelerator.device)
    for batch in train:
        with accelerator.accumulate(model):
            output = model(**batch)
            accelerator.backward(output.loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
        step_loss += output.loss.detach() / args.accumulation
        if accelerator.sync_gradients:  # one optimizer step done: log the loss of the global batch
            losses.append(accelerator.reduce(step_loss, "mean").item())
            step_loss.zero_()
            if len(losses) % 10 == 0:
                terms = "  ".join(f"{name}={value:.3f}" for name, value in output.terms.items())
                accelerator.print(f"step {len(losses):3d}  loss={losses[-1]:.4f}  {terms}")
    accuracy = held_out_accuracy(accelerator, model, held_out)
    accelerator.print(f"held-out pair accuracy {accuracy_before:.2f} -> {accuracy:.2f}")

    # A full copy of the weights, gathered from whatever sharding (FSDP, ZeRO-3) the launch used.
    state = accelerator.get_state_dict(model)
    if args.output_dir and accelerator.is_main_process:
        trained = build_model(args)
        trained.load_state_dict(state)
        trained.save_pretrained(args.output_dir, tokenizer=tokenizer)
    metrics = {
        "num_processes": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
        "losses": losses,
        "held_out_accuracy": accuracy,
    }
    if args.metrics and accelerator.is_main_process:
        args.metrics.write_text(json.dumps(metrics))
    # Leave together: a rank that tears the process group down while another still writes can abort (seen on gloo).
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics


if __name__ == "__main__":
    main()
