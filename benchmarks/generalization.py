"""A miniature of the paper's Tables 1–2 and Figure 2 on rmreg's built-in task.

Yang et al., "Regularizing Hidden States Enables Learning Generalizable Reward Model for LLMs", NeurIPS 2024,
https://arxiv.org/abs/2406.10216. Reward models start from the task's tiny pre-trained LM (``rmreg train``'s
built-in model) and train with rmreg's Accelerate loop, with Bradley–Terry, margin, label smoothing, an ensemble
of Bradley–Terry models (mean reward), GRM with the DPO regularizer (reference: a frozen copy of the pre-trained
LM), DPO without reference and SFT, on a small and a large training set, over several seeds:

* **Tables 1–2**: pair accuracy (mean ± std over seeds) in distribution (``test``) and on the shifted splits
  (``test_long``, ``test_marker_flip``, ``test_length_flip``, and their mean), with the LM head's own accuracy
  (implicit reward) beside it; then the same on the large set with 25% of the labels flipped, and an ablation
  on the small set (α, learning rate, head, frozen backbone) to see which condition GRM's effect needs.
* **Figure 2**: best-of-N over-optimization. The pre-trained LM is the policy: N responses per prompt, picked by
  each proxy reward model (trained on clean labels, and on 25% flipped labels), scored by the task's gold reward,
  against KL = log N − (N − 1)/N for N = 1 … 256 (see ``_generalization_bon.py``).

α is scaled for the task's short responses as ``rmreg train`` does (:data:`rmreg.task.runs.ALPHA`): the SFT
regularizer's pull grows with the number of response tokens (its gradient sums the per-token gradients), and
the task's responses have 15–50 tokens against the paper's hundreds. β = 0.1 as in the paper.

Writes ``generalization.md`` (tables), ``generalization_runs.csv`` (one row per run and split),
``generalization_bon.csv`` (one row per proxy, seed and N) and ``generalization_bon.png`` to ``--out``.

Usage::

    python benchmarks/generalization.py            # the full study, about 20 minutes on 1 thread
    python benchmarks/generalization.py --quick    # smoke run at toy scale, well under a minute
"""

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _generalization_bon as bon
import _generalization_report as reports
import torch

import rmreg
from rmreg.data import PairCollator
from rmreg.data.examples import encode_pairs
from rmreg.objectives import objective as named_objective
from rmreg.pretrained import build_reward_model, load_causal_lm, load_tokenizer, quiet_transformers
from rmreg.task import SPLITS
from rmreg.task import runs as builtin
from rmreg.task.best_of_n import powers_of_two
from rmreg.training import TrainingConfig, evaluate, train

OBJECTIVES = ("bt", "margin", "label-smoothing", "ensemble", "grm-dpo", "grm-dpo-noref", "grm-sft")
ENSEMBLE_SIZE = 3
TESTS = tuple(name for name in SPLITS if name != "train")
SHIFTED_MEAN = "shifted_mean"
BETA = 0.1
FLIP_FRACTION = 0.25
BON_PROMPT_SEED = 1  # prompts for best-of-N differ from the training prompts' stream


@dataclasses.dataclass(frozen=True)
class Run:
    """One reward model to train; runs are memoized on this key, so tables and best-of-N share models."""

    objective: str
    train_pairs: int
    seed: int
    flip: float = 0.0
    alpha: float = builtin.ALPHA
    learning_rate: float = builtin.LEARNING_RATE
    head: str = "mlp"
    frozen_backbone: bool = False


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of the study: objectives (rows) trained from ``base`` (with each seed) and ``changes``."""

    title: str
    base: Run
    objectives: Sequence[str]
    suffix: str = ""
    changes: tuple[tuple[str, Any], ...] = ()


class Study:
    """The pre-trained LM, the task's data, and the memoized reward models of one study."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.task = dataclasses.replace(builtin.TASK, pretraining_decay=args.pretraining_decay)
        self.model_dir, self.pretrained = builtin.builtin_lm(args.pretrain_steps, task=self.task)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.collator = PairCollator(self.tokenizer)
        self.tests = {name: self.task.split(name, args.test_pairs, seed=0) for name in TESTS}
        self.encoded_tests = {name: self.encode(pairs) for name, pairs in self.tests.items()}
        self._train_sets: dict[tuple[int, float], list[dict[str, Any]]] = {}
        self._models: dict[Run, rmreg.RegularizedRewardModel] = {}

    def encode(self, pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return encode_pairs(self.tokenizer, pairs, "the built-in task")

    def train_set(self, pairs: int, flip: float) -> list[dict[str, Any]]:
        key = (pairs, flip)
        if key not in self._train_sets:
            self._train_sets[key] = self.encode(self.task.split("train", pairs, seed=0, flip_fraction=flip))
        return self._train_sets[key]

    def model(self, run: Run) -> rmreg.RegularizedRewardModel:
        """The reward model of ``run``, trained on first use."""
        if run not in self._models:
            objective = named_objective(run.objective, alpha=run.alpha, beta=BETA)
            model = build_reward_model(self.model_dir, objective, head=run.head, lora=False, seed=run.seed)
            model.causal_lm.requires_grad_(not run.frozen_backbone)
            config = TrainingConfig(
                epochs=self.args.epochs, learning_rate=run.learning_rate, seed=run.seed, progress=False
            )
            self._models[run] = train(model, self.train_set(run.train_pairs, run.flip), self.collator, config).model
        return self._models[run]

    def proxy(self, objective: str, run: Run) -> list[rmreg.RegularizedRewardModel]:
        """The models whose mean reward is the proxy: ``ENSEMBLE_SIZE`` Bradley–Terry seeds for the ensemble."""
        if objective == "ensemble":
            seeds = [run.seed + 100 * k for k in range(ENSEMBLE_SIZE)]
            return [self.model(dataclasses.replace(run, objective="bt", seed=seed)) for seed in seeds]
        return [self.model(dataclasses.replace(run, objective=objective))]

    def scores(self, members: Sequence[rmreg.RegularizedRewardModel], items: list[tuple[str, str]]) -> torch.Tensor:
        """Mean reward of the members for ``(prompt, response)`` items."""
        return torch.stack([m.score_texts(self.tokenizer, items, batch_size=256) for m in members]).mean(0)

    def accuracy(self, members: Sequence[rmreg.RegularizedRewardModel]) -> dict[str, dict[str, float]]:
        """Pair accuracy per test split (and the shifted splits' mean): reward and, for one model, LM head."""
        final = {}
        for name, pairs in self.tests.items():
            if len(members) == 1:
                final[name] = evaluate(members[0], self.encoded_tests[name], self.collator, batch_size=256)
                del final[name]["pairs"]
            else:
                chosen = self.scores(members, [(p["prompt"], p["chosen"]) for p in pairs])
                rejected = self.scores(members, [(p["prompt"], p["rejected"]) for p in pairs])
                final[name] = {"reward_accuracy": (chosen > rejected).float().mean().item()}
        shifted = [final[name] for name in TESTS if name != "test"]
        final[SHIFTED_MEAN] = {key: sum(s[key] for s in shifted) / len(shifted) for key in final["test"]}
        return final

    def base_lm_accuracy(self) -> dict[str, float]:
        """The pre-trained LM's implicit-reward accuracy (before any reward-model training)."""
        model = build_reward_model(self.model_dir, named_objective("bt"), head="linear", lora=False, seed=0)
        values = {n: evaluate(model, pairs, self.collator)["lm_accuracy"] for n, pairs in self.encoded_tests.items()}
        return {**values, SHIFTED_MEAN: sum(values[n] for n in TESTS if n != "test") / (len(TESTS) - 1)}


def tables(args: argparse.Namespace) -> list[Table]:
    """The study's tables: small and large clean sets, the large set with flipped labels, the ablation."""
    small, large = (Run("bt", pairs, seed=0) for pairs in args.train_pairs)
    noisy = dataclasses.replace(large, flip=FLIP_FRACTION)
    ablation = [
        ("α = 0.01 (the paper's, unscaled)", ("grm-sft",), (("alpha", 0.01),)),
        ("α = 0.5", ("grm-sft", "grm-dpo"), (("alpha", 0.5),)),
        ("lr = 1e-4 (gentler fine-tuning)", ("bt", "grm-sft"), (("learning_rate", 1e-4),)),
        ("lr = 3e-3 (more aggressive)", ("bt", "grm-sft"), (("learning_rate", 3e-3),)),
        ("linear head", ("bt", "grm-sft"), (("head", "linear"),)),
        ("frozen backbone (head only)", ("bt",), (("frozen_backbone", True),)),
    ]
    return [
        Table(f"{small.train_pairs} training pairs (small)", small, OBJECTIVES),
        Table(f"{large.train_pairs} training pairs (large)", large, OBJECTIVES),
        Table(f"{large.train_pairs} training pairs, {FLIP_FRACTION:.0%} of labels flipped", noisy, OBJECTIVES),
        *(
            Table(f"ablation on {small.train_pairs} pairs: {title}", small, names, f", {title}", changes)
            for title, names, changes in ([] if args.no_ablation else ablation)
        ),
    ]


def accuracy_runs(study: Study, table: Table) -> list[dict[str, Any]]:
    """Train (or reuse) the table's models over the seeds and record their accuracy."""
    runs = []
    for objective in table.objectives:
        for seed in study.args.seeds:
            started = time.perf_counter()
            base = dataclasses.replace(table.base, seed=seed, **dict(table.changes))
            final = study.accuracy(study.proxy(objective, base))
            runs.append({"table": table.title, "label": objective + table.suffix, "seed": seed, "final": final})
            print(
                f"  {objective + table.suffix}, seed {seed}: " + _scores(final),
                f"({time.perf_counter() - started:.0f}s)",
                flush=True,
            )
    return runs


def _scores(final: dict[str, dict[str, float]]) -> str:
    return ", ".join(f"{name} {100 * m['reward_accuracy']:.1f}" for name, m in final.items())


def best_of_n_curves(study: Study, ns: Sequence[int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Best-of-N with every proxy (``--bon-train-pairs`` pairs), clean and with flipped labels: curves, CSV rows."""
    args = study.args
    policy = load_causal_lm(study.model_dir).eval()
    prompts = study.task.prompts(args.bon_prompts, seed=BON_PROMPT_SEED)
    started = time.perf_counter()
    responses = bon.sample_responses(
        policy, study.tokenizer, prompts, args.bon_samples, max_new_tokens=args.max_new_tokens, seed=0
    )
    items = [(prompt, response) for prompt, group in zip(prompts, responses, strict=True) for response in group]
    gold = torch.tensor([study.task.gold_reward(p, r) for p, r in items]).view(len(prompts), -1)
    print(f"sampled {len(items)} responses in {time.perf_counter() - started:.0f}s; gold reward {gold.mean():.3f}")
    curves: dict[str, Any] = {}
    rows = []
    for condition, flip in (("clean labels", 0.0), (f"{FLIP_FRACTION:.0%} labels flipped", FLIP_FRACTION)):
        for objective in args.bon_objectives:
            for seed in args.seeds:
                members = study.proxy(objective, Run("bt", args.bon_train_pairs, seed=seed, flip=flip))
                proxy = bon.standardize(study.scores(members, items)).view(len(prompts), -1)
                curve = bon.best_of_n(proxy, gold, ns)
                for kind in ("gold", "proxy"):
                    curves.setdefault(condition, {}).setdefault(objective, {}).setdefault(kind, []).append(curve[kind])
                rows += [
                    {"condition": condition, "objective": objective, "seed": seed, "n": n, "kl": bon.bon_kl(n),
                     "gold": g, "proxy": p}
                    for n, g, p in zip(ns, curve["gold"], curve["proxy"], strict=True)
                ]  # fmt: skip
    return curves, rows


def header(args: argparse.Namespace, study: Study, seconds: float) -> str:
    pretrained = study.pretrained
    return (
        f"rmreg {rmreg.__version__}, torch {torch.__version__}, CPU, {torch.get_num_threads()} thread(s); "
        f"{seconds:.0f}s in all\n\ncommand: `{' '.join(['python', *sys.argv])}`\n\n"
        f"Built-in LM: {pretrained['parameters']:,} parameters, {pretrained['steps']} pre-training steps "
        f"(held-out loss {pretrained['eval_loss_before']:.2f} → {pretrained['eval_loss_after']:.2f} nats/token). "
        f"Reward models: full fine-tuning, {args.epochs} epochs, lr {builtin.LEARNING_RATE:g}, batch 32, MLP head, "
        f"α = {builtin.ALPHA} (the paper's 0.01 × 10 for the task's short responses), β = {BETA}, label smoothing "
        f"ε = 0.1, ensemble = mean reward of {ENSEMBLE_SIZE} Bradley–Terry seeds; seeds {args.seeds}; "
        f"{args.test_pairs} pairs per test split. {builtin.DESCRIPTION}; shifted_mean = mean of the three shifted "
        f"splits. Best-of-N: {args.bon_prompts} prompts × {args.bon_samples} samples of the LM (temperature 1, at "
        f"most {args.max_new_tokens} new tokens), proxies trained on {args.bon_train_pairs} pairs; pre-training "
        f"decay {args.pretraining_decay} (PreferenceTask.pretraining_decay)."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy scale, for the smoke test")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="output directory")
    parser.add_argument("--train-pairs", type=int, nargs=2, default=[256, 1024], metavar=("SMALL", "LARGE"))
    parser.add_argument("--test-pairs", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per objective (default: 3)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pretrain-steps", type=int, default=builtin.PRETRAIN_STEPS)
    parser.add_argument("--bon-prompts", type=int, default=16, help="prompts for best-of-N (default: 16)")
    parser.add_argument("--bon-samples", type=int, default=256, help="policy samples per prompt = largest N")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--no-ablation", action="store_true", help="skip the ablation tables")
    parser.add_argument("--bon-only", action="store_true", help="only best-of-N (no accuracy tables)")
    parser.add_argument("--prefix", default="generalization", help="output file names: PREFIX.md, PREFIX_bon.csv, …")
    parser.add_argument("--bon-train-pairs", type=int, help="training pairs of the best-of-N proxies (default: LARGE)")
    parser.add_argument(
        "--bon-objectives", nargs="+", choices=OBJECTIVES, default=list(OBJECTIVES), help="best-of-N proxies"
    )
    parser.add_argument(
        "--pretraining-decay",
        type=float,
        default=0.0,
        help="PreferenceTask.pretraining_decay of the LM (the policy): long pre-training responses are worse",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.train_pairs, args.test_pairs, args.seeds, args.epochs = [16, 32], 8, 1, 1
        args.pretrain_steps, args.bon_prompts, args.bon_samples, args.max_new_tokens = 20, 2, 8, 24
        args.bon_train_pairs = None
    args.bon_train_pairs = args.bon_train_pairs or args.train_pairs[-1]
    args.seeds = list(range(args.seeds))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)  # a tiny model gains nothing from more threads; other jobs share the cores
    quiet_transformers()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.perf_counter()
    study = Study(args)
    base_lm = study.base_lm_accuracy()
    sections = []
    for table in [] if args.bon_only else tables(args):
        print(f"\n## {table.title}", flush=True)
        runs = accuracy_runs(study, table)
        text = reports.text_tables(runs, base_lm)
        print(text, flush=True)
        sections.append((table.title, text, runs))
    args.out.mkdir(parents=True, exist_ok=True)  # the accuracy runs first, in case best-of-N fails
    prefix = args.prefix
    if sections:
        rows = [row for _, _, runs in sections for row in reports.run_rows(runs)]
        reports.write_csv(args.out / f"{prefix}_runs.csv", rows)
    ns = powers_of_two(args.bon_samples)
    print("\n## best-of-N", flush=True)
    curves, bon_rows = best_of_n_curves(study, ns)
    summary = reports.bon_table(bon_rows, ns) + "\n\n" + reports.bon_verdicts(curves, ns)
    print(summary)
    reports.write_csv(args.out / f"{prefix}_bon.csv", bon_rows)
    plot = f"{prefix}_bon.png"
    plotted = bon.plot_best_of_n(curves, ns, args.out / plot)
    seconds = time.perf_counter() - started
    head = header(args, study, seconds)
    reports.write_report(args.out / f"{prefix}.md", head, sections, summary, plot if plotted else None)
    print(f"\nwrote {args.out}/{prefix}.md, _runs.csv, _bon.csv" + (", _bon.png" if plotted else ""))
    print(f"{seconds:.0f}s in all")


if __name__ == "__main__":
    main()
