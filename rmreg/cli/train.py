"""``rmreg train``: train reward models with one or more objectives, save them, and report their accuracy.

With no arguments it runs offline on the built-in task (see :mod:`rmreg.cli.builtin`): it pre-trains the tiny
LM once (cached), trains reward models with Bradley–Terry and with GRM over several seeds, and prints pair
accuracy in the shape of the paper's Table 1, in-distribution and on shifted splits.
"""

import argparse
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

import rmreg
from rmreg.cli import builtin, report
from rmreg.cli.datafiles import encode_pairs, read_pairs
from rmreg.cli.errors import CLIError
from rmreg.cli.models import build_reward_model, load_tokenizer, quiet_transformers
from rmreg.cli.options import positive_float, positive_int, require
from rmreg.data import PairCollator
from rmreg.objectives import PRESETS, Objective
from rmreg.objectives import objective as named_objective
from rmreg.training import TrainingConfig, evaluate, train

__all__ = ["add_parser", "run"]

USER_ALPHA, USER_LEARNING_RATE, MAX_LENGTH = 0.01, 1e-5, 1024
DESCRIPTION = (
    "Train reward models with one or more objectives, save them, and report their pair accuracy. With no "
    "arguments: offline, on the built-in synthetic task, pre-train a tiny LM once (cached), train reward models "
    "with Bradley–Terry and GRM over several seeds, and print accuracy in-distribution and on shifted splits."
)


def add_parser(subparsers: Any) -> None:
    """Register ``train`` and its options."""
    parser = subparsers.add_parser(
        "train",
        help="train reward models (default: offline comparison of bt and grm-sft on the built-in task)",
        description=DESCRIPTION,
    )
    source = parser.add_argument_group("model and data")
    source.add_argument(
        "--model",
        metavar="DIR",
        help="causal LM directory (save_pretrained, with tokenizer); "
        "default: the built-in tiny LM, pre-trained once and cached in $RMREG_CACHE or ~/.cache/rmreg",
    )
    source.add_argument(
        "--data",
        metavar="FILE",
        help="preference data: .jsonl, .json, .csv, .parquet or a saved "
        "datasets directory, in TRL's standard or conversational format; default: the built-in task",
    )
    source.add_argument(
        "--eval-data",
        metavar="FILE",
        action="append",
        default=[],
        help="evaluation data (repeatable); default with --data: the training data",
    )
    objective = parser.add_argument_group("objective")
    objective.add_argument(
        "--objective",
        action="append",
        metavar="NAME",
        help=f"one of {', '.join(PRESETS)}; repeat or comma-separate to compare several "
        f"(default: {','.join(builtin.OBJECTIVES)} on the built-in task, grm-sft with --data)",
    )
    objective.add_argument(
        "--alpha",
        type=float,
        help=f"GRM regularizer weight (default: paper's {USER_ALPHA}; "
        f"{builtin.ALPHA} on the built-in task's short responses)",
    )
    objective.add_argument("--beta", type=float, default=0.1, help="GRM β (default: 0.1)")
    objective.add_argument("--head", choices=("mlp", "linear"), default="mlp", help="reward head (default: mlp)")
    objective.add_argument("--lora", action="store_true", help="train LoRA adapters (r 32, α 64) on the attention")
    loop = parser.add_argument_group("training")
    loop.add_argument("--epochs", type=positive_int, default=2, help="default: 2")
    loop.add_argument(
        "--lr",
        type=positive_float,
        help=f"learning rate (default: {USER_LEARNING_RATE}; {builtin.LEARNING_RATE} for the built-in tiny LM)",
    )
    loop.add_argument("--batch-size", type=positive_int, default=32, help="pairs per forward pass (default: 32)")
    loop.add_argument("--gradient-accumulation-steps", type=positive_int, default=1, help="default: 1")
    loop.add_argument(
        "--max-length",
        type=positive_int,
        default=MAX_LENGTH,
        help=f"tokens per row; longer pairs lose tokens at the prompt's start (default: {MAX_LENGTH})",
    )
    loop.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    loop.add_argument(
        "--seeds",
        type=positive_int,
        help=f"seeds per objective (default: {builtin.SEEDS} on the built-in task, else 1)",
    )
    loop.add_argument("--output-dir", metavar="DIR", default="rmreg-output", help="default: ./rmreg-output")
    loop.add_argument("--threads", type=positive_int, help="torch CPU threads (default: 1 for the built-in tiny LM)")
    loop.add_argument("--no-progress", action="store_true", help="no progress bars")
    task = parser.add_argument_group("built-in task")
    task.add_argument(
        "--train-pairs", type=positive_int, default=builtin.TRAIN_PAIRS, help=f"default: {builtin.TRAIN_PAIRS}"
    )
    task.add_argument(
        "--test-pairs",
        type=positive_int,
        default=builtin.TEST_PAIRS,
        help=f"pairs per test split (default: {builtin.TEST_PAIRS})",
    )
    task.add_argument(
        "--pretrain-steps",
        type=positive_int,
        default=builtin.PRETRAIN_STEPS,
        help=f"pre-training steps of the built-in LM (default: {builtin.PRETRAIN_STEPS})",
    )
    parser.set_defaults(run=run)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Every choice of a command, resolved from the options."""

    objectives: dict[str, Objective]  # by preset name
    labels: dict[str, str]  # preset name -> row label (with α for GRM objectives)
    alpha: float
    seeds: list[int]
    config: TrainingConfig


@dataclasses.dataclass(frozen=True)
class _Setup:
    """The model directory, tokenizer and data every run of a command shares."""

    model_dir: Path
    tokenizer: Any
    collator: PairCollator
    examples: list[dict[str, Any]]
    eval_sets: dict[str, list[dict[str, Any]]]


def _objective_names(values: Sequence[str] | None, default: Sequence[str]) -> list[str]:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()] if values else default
    for name in names:
        if name not in PRESETS:
            raise CLIError(f"unknown objective {name!r}; choose from {', '.join(PRESETS)} (see 'rmreg train --help')")
    return list(dict.fromkeys(names))


def _plan(args: argparse.Namespace, builtin_data: bool, builtin_model: bool) -> _Plan:
    names = _objective_names(args.objective, builtin.OBJECTIVES if builtin_data else ["grm-sft"])
    alpha = args.alpha if args.alpha is not None else (builtin.ALPHA if builtin_data else USER_ALPHA)
    objectives = {}
    for name in names:
        try:
            objectives[name] = named_objective(name, alpha=alpha, beta=args.beta)
        except ValueError as error:
            raise CLIError(f"{error} (options --alpha, --beta)") from None
    labels = {name: f"{name} (α={alpha:g})" if len(made.terms) > 1 else name for name, made in objectives.items()}
    config = TrainingConfig(
        epochs=args.epochs,
        learning_rate=args.lr or (builtin.LEARNING_RATE if builtin_model else USER_LEARNING_RATE),
        batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        seed=args.seed,
        progress=not args.no_progress,
    )
    seeds = args.seeds or (builtin.SEEDS if builtin_data else 1)
    return _Plan(objectives, labels, alpha, list(range(args.seed, args.seed + seeds)), config)


def _pretrain_progress(args: argparse.Namespace) -> Any:
    """A progress callback for pre-training, whose bar appears only if pre-training runs (not on a cache hit)."""
    from tqdm.auto import tqdm

    bars: list[Any] = []

    def progress(step: int, loss: float) -> None:
        if not bars:
            description = "pre-training the built-in LM (once, then cached)"
            bars.append(tqdm(total=args.pretrain_steps, desc=description, disable=args.no_progress))
        bars[0].update()
        bars[0].set_postfix(loss=f"{loss:.3f}")
        if step == args.pretrain_steps:
            bars[0].close()

    return progress


def _builtin_lm(args: argparse.Namespace, state: Any) -> tuple[Path, dict[str, Any]]:
    """The built-in LM's directory and record; the main process pre-trains it (if not cached) before the others."""
    with state.main_process_first():
        progress = _pretrain_progress(args) if state.is_main_process else None
        model_dir, record = builtin.builtin_lm(args.pretrain_steps, progress)
    origin = "loaded from" if record["from_cache"] else "saved to"
    _say(
        state,
        f"built-in LM: {record['parameters']:,} parameters, {args.pretrain_steps} pre-training steps, {origin} "
        f"{model_dir}",
    )
    return model_dir, record


def _read_data(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The training rows and evaluation rows by split name, read (and checked) before any model work."""
    if args.data is None:
        return builtin.builtin_splits(args.train_pairs, args.test_pairs)
    rows, eval_rows = read_pairs(args.data), {}
    for path in args.eval_data:
        name = Path(path).stem
        eval_rows[name if name not in eval_rows else f"{name}-{len(eval_rows)}"] = read_pairs(path)
    return rows, eval_rows or {"train": rows}


def _setup(args: argparse.Namespace, model_dir: Path, rows: list[dict[str, Any]], eval_rows: dict[str, Any]) -> _Setup:
    tokenizer = load_tokenizer(model_dir)
    examples = encode_pairs(tokenizer, rows, args.data or "the built-in task")
    eval_sets = {name: encode_pairs(tokenizer, split, name) for name, split in eval_rows.items()}
    return _Setup(model_dir, tokenizer, PairCollator(tokenizer, max_length=args.max_length), examples, eval_sets)


def _check_columns(plan: _Plan, rows: Sequence[Mapping[str, Any]]) -> None:
    for name, objective in plan.objectives.items():
        if objective.needs.margin and not all(row.get("margin") is not None for row in rows):
            raise CLIError(f"objective {name!r} needs a 'margin' column in every training row; add one or pick another")


def _process_state() -> Any:
    """Accelerate's process state, created as ``Accelerator`` creates it (which then shares it): with
    ``ACCELERATE_USE_CPU=true`` under ``torchrun``, a group of CPU processes."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def _say(state: Any, message: str) -> None:
    if state.is_main_process:
        print(message, flush=True)


def _train_all(args: argparse.Namespace, plan: _Plan, setup: _Setup, state: Any) -> list[dict[str, Any]]:
    """Train one model per objective and seed, save each (main process), and return their records."""
    output, runs = Path(args.output_dir), []
    total = len(plan.objectives) * len(plan.seeds)
    for name, objective in plan.objectives.items():
        for seed in plan.seeds:
            _say(
                state,
                f"[{len(runs) + 1}/{total}] {plan.labels[name]}, seed {seed}: {len(setup.examples)} pairs, "
                f"{args.epochs} epochs",
            )
            model = build_reward_model(setup.model_dir, objective, head=args.head, lora=args.lora, seed=seed)
            config = dataclasses.replace(plan.config, seed=seed)
            result = train(model, setup.examples, setup.collator, config, eval_sets=setup.eval_sets)
            checkpoint = output / (name if len(plan.seeds) == 1 else f"{name}-seed{seed}")
            if state.is_main_process:
                result.model.save_pretrained(checkpoint, tokenizer=setup.tokenizer)
            scores = ", ".join(f"{split} {100 * m['reward_accuracy']:.1f}%" for split, m in result.final.items())
            _say(state, f"  {scores} ({result.seconds:.0f}s)")
            runs.append(
                {
                    "label": plan.labels[name],
                    "objective": name,
                    "seed": seed,
                    "checkpoint": str(checkpoint),
                    "seconds": result.seconds,
                    "final": result.final,
                    "evaluations": result.evaluations,
                    "history": result.history,
                }
            )
    return runs


def _base_lm_accuracy(setup: _Setup) -> dict[str, float]:
    """The LM head's implicit-reward accuracy before any fine-tuning (the reward head is untrained)."""
    model = build_reward_model(setup.model_dir, named_objective("bt"), head="linear", lora=False, seed=0)
    return {name: evaluate(model, pairs, setup.collator)["lm_accuracy"] for name, pairs in setup.eval_sets.items()}


def _print_tables(summary: Mapping[str, Any], base_lm: Mapping[str, float], builtin_data: bool) -> None:
    seeds = max(stats["reward_accuracy"]["n"] for splits in summary.values() for stats in splits.values())
    spread = f", mean ± std over {seeds} seeds" if seeds > 1 else ""
    print(f"\nPair accuracy (%) of the reward model{spread}")
    print(report.accuracy_table(summary, "reward_accuracy"))
    print(f"\nPair accuracy (%) of the LM head's implicit reward (summed response log-prob){spread}")
    print(report.accuracy_table(summary, "lm_accuracy", extra_rows={"base LM (before training)": base_lm}))
    if builtin_data:
        print(builtin.DESCRIPTION)


def _write_outputs(args: argparse.Namespace, plan: _Plan, setup: _Setup, results: dict[str, Any]) -> None:
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    metrics = {
        "rmreg_version": rmreg.__version__,
        "model": str(setup.model_dir),
        "data": args.data or f"built-in task ({args.train_pairs} training pairs, {args.test_pairs} per test split)",
        "eval_data": list(setup.eval_sets),
        "alpha": plan.alpha,
        "beta": args.beta,
        "head": args.head,
        "lora": args.lora,
        "max_length": args.max_length,
        "training": dataclasses.asdict(plan.config),
        "seeds": plan.seeds,
        **results,
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n")
    plot = output / "training_curves.png"
    plotted = report.plot_curves(results["runs"], plot)
    print(
        f"\nwrote {output / 'metrics.json'}, "
        + (str(plot) if plotted else "no plot (matplotlib is not installed: pip install 'rmreg[cli]')")
        + f" and {len(results['runs'])} checkpoint(s) under {output}/ in {results['seconds']:.0f}s"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``rmreg train``; see :func:`add_parser` for the options."""
    require("transformers", "hf")
    require("accelerate", "accelerate")
    quiet_transformers()
    start = time.perf_counter()
    builtin_model, builtin_data = args.model is None, args.data is None
    plan = _plan(args, builtin_data, builtin_model)
    if args.threads or builtin_model:
        torch.set_num_threads(args.threads or 1)  # a tiny model gains nothing from more threads
    rows, eval_rows = _read_data(args)
    _check_columns(plan, rows)
    state = _process_state()
    model_dir, pretrained = _builtin_lm(args, state) if builtin_model else (Path(args.model), None)
    setup = _setup(args, model_dir, rows, eval_rows)
    if builtin_data and any(len(objective.terms) > 1 for objective in plan.objectives.values()):
        _say(state, builtin.ALPHA_NOTE if args.alpha is None else f"α = {plan.alpha} (set by --alpha)")
    runs = _train_all(args, plan, setup, state)
    if not state.is_main_process:
        return 0
    summary = report.summarize(runs)
    base_lm = _base_lm_accuracy(setup)
    _print_tables(summary, base_lm, builtin_data)
    results = {"pretrained_lm": pretrained, "summary": summary, "base_lm_accuracy": base_lm, "runs": runs}
    _write_outputs(args, plan, setup, {**results, "seconds": round(time.perf_counter() - start, 1)})
    return 0
