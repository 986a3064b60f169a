"""The steps of ``rmreg train``, in the order the command runs them (see :mod:`rmreg.cli.train`)."""

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import rmreg
from rmreg import reporting
from rmreg.cli import train_data
from rmreg.cli import train_report as report
from rmreg.cli.errors import CLIError
from rmreg.cli.output_dir import METRICS, RunDirectory
from rmreg.cli.train import USER_ALPHA, USER_LEARNING_RATE
from rmreg.cli.train_data import Rows
from rmreg.data import GroupCollator, PairCollator, TruncationStats
from rmreg.data.examples import encode_pairs
from rmreg.data.files import DataFile
from rmreg.objectives import BEYOND_PAIRS_PRESETS, PRESETS, Objective
from rmreg.objectives import objective as named_objective
from rmreg.pretrained import build_reward_model, load_config, load_tokenizer, quiet_transformers, resolve_max_length
from rmreg.task import runs as builtin
from rmreg.task.best_of_n import Candidates, powers_of_two
from rmreg.training import TrainingConfig, evaluate, train

__all__ = ["run"]

_EVAL_BATCH = 256


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
    """The model directory, tokenizer and encoded data every run of a command shares."""

    model_dir: Path
    tokenizer: Any
    collator: PairCollator
    examples: list[dict[str, Any]]
    groups: GroupCollator | None  # --graded: the ranking objectives' collator, over ``rankings``
    rankings: list[dict[str, Any]]
    attributes: int  # rating attributes per response (1 without rating columns)
    eval_sets: dict[str, list[dict[str, Any]]]
    truncation: dict[str, dict[str, Any]]  # split -> counts


def _objective_names(values: Sequence[str] | None, default: Sequence[str]) -> list[str]:
    if not values:
        return list(default)
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    known = (*PRESETS, *BEYOND_PAIRS_PRESETS)
    if not names:
        raise CLIError(f"--objective {' '.join(values)!r} names no objective; pass one of {', '.join(PRESETS)}")
    for name in names:
        if name not in known:
            raise CLIError(f"unknown objective {name!r}; choose from {', '.join(known)} (see 'rmreg train --help')")
    return list(dict.fromkeys(names))


def _plan(args: argparse.Namespace, builtin_data: bool, builtin_model: bool) -> _Plan:
    if args.graded and not builtin_data:
        raise CLIError("--graded trains on the built-in task's graded variant; leave out --data")
    default = builtin.GRADED_OBJECTIVES if args.graded else builtin.OBJECTIVES if builtin_data else ["grm-sft"]
    names = _objective_names(args.objective, default)
    alpha = args.alpha if args.alpha is not None else (builtin.ALPHA if builtin_data else USER_ALPHA)
    objectives = {}
    for name in names:
        try:
            objectives[name] = named_objective(name, alpha=alpha, beta=args.beta)
        except ValueError as error:
            raise CLIError(f"{error} (options --alpha, --beta)") from None
    labels = {name: f"{name} (α={alpha:g})" if len(made.terms) > 1 else name for name, made in objectives.items()}
    ranking = [name for name, made in objectives.items() if made.needs.groups]
    if ranking and not args.graded:
        raise CLIError(f"{', '.join(ranking)} trains on ranked completions: add --graded (the built-in graded task)")
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


def _process_state() -> Any:
    """Accelerate's process state, created as ``Accelerator`` creates it (which then shares it): with
    ``ACCELERATE_USE_CPU=true`` under ``torchrun``, a group of CPU processes."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def _say(state: Any, message: str) -> None:
    if state.is_main_process:
        print(message, flush=True)


def _builtin_lm(args: argparse.Namespace, state: Any) -> tuple[Path, dict[str, Any]]:
    """The built-in LM's directory and record; the main process pre-trains it (if not cached) before the others."""
    from tqdm.auto import tqdm

    bars: list[Any] = []

    def progress(step: int, loss: float) -> None:  # a bar only if pre-training runs (not on a cache hit)
        if not bars:
            description = "pre-training the built-in LM (once, then cached)"
            bars.append(tqdm(total=args.pretrain_steps, desc=description, disable=args.no_progress))
        bars[0].update()
        bars[0].set_postfix(loss=f"{loss:.3f}")
        if step == args.pretrain_steps:
            bars[0].close()

    with state.main_process_first():
        model_dir, record = builtin.builtin_lm(args.pretrain_steps, progress if state.is_main_process else None)
    origin = "loaded from" if record["from_cache"] else "saved to"
    _say(
        state,
        f"built-in LM: {record['parameters']:,} parameters, {args.pretrain_steps} pre-training steps, {origin} "
        f"{model_dir}",
    )
    return model_dir, record


def _setup(args: argparse.Namespace, model_dir: Path, rows: Rows, eval_rows: dict[str, Rows], state: Any) -> _Setup:
    config = load_config(model_dir)
    max_length = resolve_max_length(config, args.max_length)
    tokenizer = load_tokenizer(model_dir)
    vocab_size = getattr(config, "vocab_size", None)
    truncation: dict[str, dict[str, Any]] = {}

    def encode(split: str, data: Rows, source: str) -> list[dict[str, Any]]:
        stats = TruncationStats()
        examples = encode_pairs(
            tokenizer,
            data,
            source,
            max_length=max_length,
            truncation=args.truncation,
            vocab_size=vocab_size,
            stats=stats,
        )
        truncation[split] = {**dataclasses.asdict(stats), "max_length": max_length, "policy": args.truncation}
        line = report.truncation_line(split, stats, max_length)
        if line:
            _say(state, line)
        return examples

    examples = encode("train", rows, args.data or "the built-in task")
    eval_sets = {
        name: examples if data is rows else encode(name, data, str(data.path) if isinstance(data, DataFile) else name)
        for name, data in eval_rows.items()
    }
    collator = PairCollator(tokenizer, max_length=max_length, truncation=args.truncation)
    groups = GroupCollator(tokenizer, max_length=max_length) if args.graded else None
    rankings = builtin.builtin_graded(args.train_pairs) if args.graded else []
    return _Setup(
        model_dir, tokenizer, collator, examples, groups, rankings, train_data.attributes(rows), eval_sets, truncation
    )


def _training_data(setup: _Setup, objective: Objective) -> tuple[list[dict[str, Any]], Any]:
    """The ranked groups and their collator for a ranking objective (``--graded``), else the pairs."""
    if objective.needs.groups:
        assert setup.groups is not None
        return setup.rankings, setup.groups
    return setup.examples, setup.collator


def _train_all(
    args: argparse.Namespace,
    plan: _Plan,
    setup: _Setup,
    state: Any,
    output: RunDirectory,
    candidates: Candidates | None = None,
) -> list[dict[str, Any]]:
    """Train one model per objective and seed, save each (main process) into the staging directory, run best-of-N
    with it on ``candidates`` (if any), and return their records (with the checkpoints' final paths)."""
    runs: list[dict[str, Any]] = []
    total = len(plan.objectives) * len(plan.seeds)
    for name, objective in plan.objectives.items():
        data, collator = _training_data(setup, objective)
        unit = "ranked groups" if objective.needs.groups else "pairs"
        for seed in plan.seeds:
            _say(
                state,
                f"[{len(runs) + 1}/{total}] {plan.labels[name]}, seed {seed}: {len(data)} {unit}, {args.epochs} epochs",
            )
            options = {"head": args.head, "lora": args.lora, "ensemble_heads": args.ensemble_heads}
            options["attributes"] = setup.attributes
            model = build_reward_model(setup.model_dir, objective, seed=seed, **options)
            started = time.perf_counter()
            # Evaluated once, after the last epoch (the numbers reported), not after every epoch.
            result = train(model, data, collator, dataclasses.replace(plan.config, seed=seed))
            final = {
                split: evaluate(result.model, pairs, setup.collator, batch_size=_EVAL_BATCH)
                for split, pairs in setup.eval_sets.items()
            }
            folder = name if len(plan.seeds) == 1 else f"{name}-seed{seed}"
            record = {
                "label": plan.labels[name],
                "objective": name,
                "seed": seed,
                "checkpoint": str(output.path / folder),
                "final": final,
                "evaluations": [{"epoch": plan.config.epochs, **final}],
                "history": result.history,
            }
            if state.is_main_process:
                assert output.staging is not None
                result.model.save_pretrained(output.staging / folder, tokenizer=setup.tokenizer)
                if candidates is not None:
                    record["best_of_n"] = _best_of_n(result.model, setup.tokenizer, candidates)
            record["seconds"] = round(time.perf_counter() - started, 2)
            scores = ", ".join(f"{split} {100 * m['reward_accuracy']:.1f}%" for split, m in final.items())
            _say(state, f"  {scores} ({record['seconds']:.0f}s)")
            runs.append(record)
    return runs


def _best_of_n(model: Any, tokenizer: Any, candidates: Candidates) -> dict[str, Any]:
    """The best-of-N curve of the policy's samples with ``model`` as the proxy."""
    ns = powers_of_two(candidates.gold.shape[1])
    return candidates.curve(lambda items: model.score_texts(tokenizer, items, batch_size=_EVAL_BATCH), ns)


def _candidates(args: argparse.Namespace, state: Any) -> Candidates | None:
    """The built-in LM's samples for best-of-N (main process; ``None`` when switched off)."""
    if not (args.bon_prompts and args.bon_samples) or not state.is_main_process:
        return None
    started = time.perf_counter()
    candidates = builtin.best_of_n_candidates(args.pretrain_steps, args.bon_prompts, args.bon_samples)
    _say(
        state,
        f"best-of-N: sampled {args.bon_samples} responses to each of {args.bon_prompts} prompts from the built-in LM "
        f"(the policy; mean gold reward {candidates.gold.mean():+.3f}) in {time.perf_counter() - started:.0f}s",
    )
    return candidates


def _base_lm_accuracy(setup: _Setup) -> dict[str, float]:
    """The LM head's implicit-reward accuracy before any fine-tuning (the reward head is untrained)."""
    model = build_reward_model(setup.model_dir, named_objective("bt"), head="linear", lora=False, seed=0)
    return {name: evaluate(model, pairs, setup.collator)["lm_accuracy"] for name, pairs in setup.eval_sets.items()}


def _write_outputs(
    args: argparse.Namespace, plan: _Plan, setup: _Setup, results: dict[str, Any], output: RunDirectory
) -> None:
    assert output.staging is not None
    metrics = {
        "rmreg_version": rmreg.__version__,
        "model": str(setup.model_dir),
        "data": args.data or f"built-in task ({args.train_pairs} training pairs, {args.test_pairs} per test split)",
        "eval_data": list(setup.eval_sets),
        "alpha": plan.alpha,
        "beta": args.beta,
        "head": args.head,
        "lora": args.lora,
        "max_length": setup.collator.max_length,
        "truncation": setup.truncation,
        "training": dataclasses.asdict(plan.config),
        "seeds": plan.seeds,
        **results,
    }
    (output.staging / METRICS).write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n")
    data = "the built-in task" if args.data is None else Path(args.data).name
    title = (
        f"rmreg train: {' vs '.join(plan.labels.values())} on {data}, {len(setup.examples)} training pairs, "
        f"{len(plan.seeds)} seed(s)"
    )
    plotted = reporting.plot_curves(results["runs"], output.staging / "training_curves.png", title=title)
    output.commit()
    plot = output.path / "training_curves.png"
    print(
        f"\nwrote {output.path / METRICS}, "
        + (str(plot) if plotted else "no plot (matplotlib is not installed: pip install 'rmreg[cli]')")
        + f" and {len(results['runs'])} checkpoint(s) under {output.path}/ in {results['seconds']:.0f}s"
    )


def run(args: argparse.Namespace, start: float) -> int:
    """Run ``rmreg train`` with its positionals merged into ``args``; every check comes before the model work."""
    quiet_transformers()
    builtin_model, builtin_data = args.model is None, args.data is None
    plan = _plan(args, builtin_data, builtin_model)
    output = RunDirectory(args.output_dir, overwrite=args.overwrite)
    if args.threads or builtin_model:
        torch.set_num_threads(args.threads or 1)  # a tiny model gains nothing from more threads
    rows, eval_rows = train_data.read_data(args)
    train_data.check_columns(plan.objectives, rows)
    state = _process_state()
    model_dir, pretrained = _builtin_lm(args, state) if builtin_model else (Path(args.model), None)
    setup = _setup(args, model_dir, rows, eval_rows, state)
    if builtin_data and any(len(objective.terms) > 1 for objective in plan.objectives.values()):
        _say(state, builtin.ALPHA_NOTE if args.alpha is None else f"α = {plan.alpha} (set by --alpha)")
    if state.is_main_process:
        output.start()
    try:
        candidates = _candidates(args, state) if builtin_data and builtin_model else None
        runs = _train_all(args, plan, setup, state, output, candidates)
        if not state.is_main_process:
            return 0
        summary = reporting.summarize(runs)
        base_lm = _base_lm_accuracy(setup)
        report.print_tables(summary, base_lm, builtin_data)
        verdicts = report.print_verdicts(runs, builtin_data)
        results = {
            "pretrained_lm": pretrained,
            "summary": summary,
            "base_lm_accuracy": base_lm,
            "paired_differences": report.paired_records(runs),
            "verdicts": verdicts,
            "runs": runs,
        }
        _write_outputs(args, plan, setup, {**results, "seconds": round(time.perf_counter() - start, 1)}, output)
    finally:
        output.discard()
    return 0
