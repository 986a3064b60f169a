"""``rmreg eval``: pair accuracy on preference files, or a public reward benchmark with its official scoring.

``rmreg eval MODEL FILE...`` (or ``--model MODEL --data FILE``) prints the pair accuracy of the reward and of the
LM head's implicit reward; ``rmreg eval MODEL --benchmark NAME FILE...`` scores a benchmark's release files as
its official scripts do (:mod:`rmreg.evaluation`) and prints a table of subsets and sections with the headline,
``--json OUT`` writing the result and a bar chart beside it. MODEL is an rmreg checkpoint, a run directory of
``rmreg train`` that holds one, or a ``transformers`` sequence classifier directory.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

import rmreg
from rmreg.cli.errors import CLIError
from rmreg.cli.options import positive_int, require
from rmreg.data import PairCollator
from rmreg.data.examples import encode_pairs
from rmreg.data.files import read_pairs
from rmreg.evaluation import BENCHMARKS, BenchmarkResult, prepare_benchmark, reward_model_scorer
from rmreg.evaluation import sequence_classifier_scorer as classifier_scorer
from rmreg.evaluation.loading import load_rows
from rmreg.model.checkpoint import CONFIG_NAME
from rmreg.pretrained import load_reward_model, load_tokenizer, quiet_transformers
from rmreg.reporting import headless_pyplot
from rmreg.training import evaluate

__all__ = ["add_parser", "resolve_model", "run"]

_MODEL = (
    "an rmreg checkpoint (rmreg_config.json: 'rmreg train' or RegularizedRewardModel.save_pretrained), a run "
    "directory of 'rmreg train' holding one, or a transformers sequence classifier (save_pretrained, with tokenizer)"
)
_BENCHMARK_OPTIONS = {"single_game": "judgebench", "ties": "mt-bench"}


def add_parser(subparsers: Any) -> None:
    """Register ``eval`` and its options."""
    parser = subparsers.add_parser(
        "eval",
        help="pair accuracy of a reward model on data files, or a public reward benchmark (--benchmark)",
        description="Print the pair accuracy of a reward model on preference data files (of its reward, and of its "
        "LM head's implicit reward), or with --benchmark score a public reward benchmark from its local release "
        f"files with the official scoring ({', '.join(BENCHMARKS)}). MODEL: {_MODEL}.",
    )
    parser.add_argument("paths", metavar="MODEL FILE", nargs="*", help="the model directory, then data files")
    parser.add_argument("--model", metavar="DIR", help="the model directory (instead of the first positional)")
    parser.add_argument("--data", metavar="FILE", action="append", default=[], help="a data file (repeatable)")
    parser.add_argument(
        "--benchmark",
        nargs="+",
        metavar=("NAME", "FILE"),
        help=f"score a benchmark ({', '.join(BENCHMARKS)}) on its release files (.parquet, .json, .jsonl or a "
        "directory of them), with the official scoring",
    )
    parser.add_argument(
        "--json",
        metavar="OUT",
        help="with --benchmark: write the result to OUT and a bar chart to OUT with the suffix .png",
    )
    parser.add_argument(
        "--single-game",
        action="store_true",
        help="judgebench: judge the original order only, as "
        "run_judge.py --single_game (default: both orders, the script's default)",
    )
    parser.add_argument(
        "--ties",
        choices=("model_b", "drop"),
        help="mt-bench: a tie counts as a win of model B, as "
        "the GRM paper's code does (model_b, default), or is left out (drop, stricter)",
    )
    parser.add_argument(
        "--chat-template",
        action="store_true",
        help="with --benchmark: score (prompt, response) "
        "items as a user/assistant conversation through the tokenizer's chat template, as the official "
        "scripts do (default: as text, as rmreg trains on text pairs)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        help="pairs per forward pass (default: 64), or texts with --benchmark (default: 32)",
    )
    parser.add_argument("--max-length", type=positive_int, default=1024, help="tokens per row (default: 1024)")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run the model code of a classifier directory whose config names its own class (auto_map), as rmreg's "
        "export writes for heads other than a bias-free linear one",
    )
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def resolve_model(path: str | Path) -> tuple[str, Path]:
    """``("rmreg", checkpoint)``, ``("classifier", directory)`` or ``("remote-code classifier", directory)`` (a
    classifier whose model class is code in its directory, ``auto_map``) for a MODEL argument.

    A directory without a model of its own but with exactly one checkpoint among its subfolders (the output
    directory of ``rmreg train``) resolves to that checkpoint.

    Raises:
        CLIError: no such directory, a causal LM or other non-reward model, or a run directory with several
            checkpoints (they are listed).
    """
    path = Path(path)
    if not path.is_dir():
        raise CLIError(f"{path}: no such directory; pass {_MODEL}")
    if (path / CONFIG_NAME).is_file():
        return "rmreg", path
    if (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text())
        architectures = config.get("architectures") or []
        if "AutoModelForSequenceClassification" in (config.get("auto_map") or {}):
            return "remote-code classifier", path
        if any(name.endswith("ForSequenceClassification") for name in architectures):
            return "classifier", path
        held = ", ".join(architectures) or "a model without 'architectures'"
        raise CLIError(f"{path} holds {held} and no {CONFIG_NAME}, not a reward model; pass {_MODEL}")
    checkpoints = sorted(child for child in path.iterdir() if (child / CONFIG_NAME).is_file())
    if len(checkpoints) == 1:
        return "rmreg", checkpoints[0]
    if checkpoints:
        names = ", ".join(child.name for child in checkpoints)
        raise CLIError(f"{path} holds {len(checkpoints)} checkpoints ({names}); pass one, e.g. {checkpoints[0]}")
    raise CLIError(f"{path} has no {CONFIG_NAME} and no checkpoint in its subfolders; pass {_MODEL}")


def _model_and_files(args: argparse.Namespace) -> tuple[str, list[str]]:
    paths = list(args.paths)
    model = args.model or (paths.pop(0) if paths else None)
    files = [*paths, *(args.benchmark or [])[1:], *args.data]
    if model is None:
        raise CLIError(f"no model; pass MODEL ({_MODEL}) first, or --model DIR")
    if not files:
        raise CLIError("no data; pass FILE... after MODEL (or after --benchmark NAME), or --data FILE")
    for file in files:
        if not Path(file).exists():
            raise CLIError(f"{file}: no such file or directory; pass a data file (.jsonl, .json, .csv, .parquet)")
    return model, files


def _options(args: argparse.Namespace, name: str) -> dict[str, Any]:
    given = {"single_game": args.single_game or None, "ties": args.ties}
    for option, value in given.items():
        if value is not None and _BENCHMARK_OPTIONS[option] != name:
            flag = "--" + option.replace("_", "-")
            raise CLIError(f"{flag} applies to --benchmark {_BENCHMARK_OPTIONS[option]}, not {name or 'pair accuracy'}")
    return {option: value for option, value in given.items() if value is not None}


def _load(kind: str, path: Path, device: torch.device, trust_remote_code: bool = False) -> tuple[Any, Any]:
    if kind == "rmreg":
        model, tokenizer = load_reward_model(path)
        return model.to(device), tokenizer
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(path, what="the classifier's directory (tokenizer.save_pretrained(DIR))")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, KeyError) as error:
        raise CLIError(f"{path} does not load as a sequence classifier ({str(error).splitlines()[0]})") from None
    return model.to(device), tokenizer


def _pair_accuracy(args: argparse.Namespace, kind: str, path: Path, files: list[str], device: torch.device) -> int:
    rows = {file: read_pairs(file) for file in files}
    model, tokenizer = _load(kind, path, device, args.trust_remote_code)
    layout: Any = model.layout if kind == "rmreg" else "concat"
    collator = PairCollator(tokenizer, max_length=args.max_length, layout=layout)
    batch_size = args.batch_size or 64
    width = max(len("data"), *map(len, rows))
    print(f"{'data'.ljust(width)}  {'pairs':>6}  {'reward acc.':>11}  {'LM-head acc.':>12}")
    for file, pairs in rows.items():
        examples = encode_pairs(tokenizer, pairs, file)
        if kind == "rmreg":
            scores = evaluate(model, examples, collator, batch_size=batch_size)
            reward, lm = scores["reward_accuracy"], f"{100 * scores['lm_accuracy']:>11.1f}%"
        else:
            reward, lm = _classifier_accuracy(model, examples, collator, batch_size, device), f"{'n/a':>12}"
        print(f"{file.ljust(width)}  {len(examples):>6}  {100 * reward:>10.1f}%  {lm}")
    return 0


def _classifier_accuracy(
    model: Any, examples: list[Any], collator: Any, batch_size: int, device: torch.device
) -> float:
    """Pair accuracy of a sequence classifier: its logit on the chosen row > on the rejected row (concat layout)."""
    correct: list[bool] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = collator(examples[start : start + batch_size])
            logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
            rewards = logits.logits[:, 0]
            pairs = rewards.shape[0] // 2
            correct += (rewards[:pairs] > rewards[pairs:]).tolist()
    return sum(correct) / len(correct)


def _plot(result: BenchmarkResult, path: Path) -> bool:
    """A bar chart of the sections (or the subsets, where there are no sections) and the headline."""
    pyplot = headless_pyplot()
    if pyplot is None:
        return False
    values = dict(result.sections or result.subsets)
    names, heights = [*values, "score"], [100 * value for value in [*values.values(), result.score]]
    figure, axis = pyplot.subplots(figsize=(max(5.0, 0.5 * len(names) + 2), 4.5))
    bars = axis.bar(range(len(names)), heights, color=["C0"] * len(values) + ["C3"])
    axis.bar_label(bars, fmt="%.1f", fontsize=7)
    axis.set_xticks(
        range(len(names)), names, rotation=40 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center"
    )
    axis.set_ylim(0, max(100.0, *heights) * 1.08)
    axis.set_ylabel("score (%)")
    axis.set_title(f"{result.benchmark}: {100 * result.score:.2f}% ({result.examples} examples)")
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return True


def _write(args: argparse.Namespace, result: BenchmarkResult, record: dict[str, Any]) -> None:
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**record, **result.to_dict()}, indent=1, ensure_ascii=False) + "\n")
    chart = out.with_suffix(".png")
    plotted = _plot(result, chart)
    print(f"\nwrote {out} and " + (str(chart) if plotted else "no chart (matplotlib is not installed)"))


def _benchmark(args: argparse.Namespace, kind: str, path: Path, files: list[str], device: torch.device) -> int:
    name = args.benchmark[0]
    options = _options(args, name)
    try:
        plan = prepare_benchmark(name, [row for file in files for row in load_rows(file)], **options)
    except (ValueError, ImportError) as error:
        raise CLIError(" ".join(str(error).split())) from None
    model, tokenizer = _load(kind, path, device, args.trust_remote_code)
    make = reward_model_scorer if kind == "rmreg" else classifier_scorer
    scorer = make(model, tokenizer, max_length=args.max_length, chat_template=args.chat_template)
    from tqdm.auto import tqdm

    with tqdm(
        total=len(plan.items), desc=f"scoring {name}", unit="text", file=sys.stderr, disable=args.no_progress
    ) as bar:
        try:
            result = plan.run(scorer, batch_size=args.batch_size or 32, progress=bar.update)
        except ValueError as error:
            raise CLIError(f"cannot score {name}: {' '.join(str(error).split())}") from None
    print(f"{name}: {result.examples} examples from {', '.join(files)}; model {path} ({kind})")
    print(result.table())
    if args.json:
        record = {"rmreg_version": rmreg.__version__, "model": str(path), "model_kind": kind, "data": files}
        _write(args, result, {**record, "options": {**options, "chat_template": args.chat_template}})
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``rmreg eval``: a benchmark with ``--benchmark``, else pair accuracy per file."""
    require("transformers", "hf")
    quiet_transformers()
    name = args.benchmark[0] if args.benchmark else None
    if name is not None and name not in BENCHMARKS:
        raise CLIError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    if name is None and (args.json or args.chat_template):
        raise CLIError("--json and --chat-template apply with --benchmark NAME")
    model, files = _model_and_files(args)
    _options(args, name or "")
    kind, path = resolve_model(model)
    if kind == "remote-code classifier" and not args.trust_remote_code:
        raise CLIError(
            f"{path} holds a classifier whose model class is code in the directory; pass --trust-remote-code"
        )
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise CLIError(f"unknown --device {args.device!r}; pass e.g. cpu, cuda or cuda:1") from None
    if name is None:
        return _pair_accuracy(args, kind, path, files, device)
    require("tqdm", "cli")
    return _benchmark(args, kind, path, files, device)
