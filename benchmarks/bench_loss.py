"""Loss-alone micro-benchmark: Bradley–Terry with and without GRM's regularizers, per LM-head provider.

Inputs stand for a batch of P pairs: the final hidden states of the 2·P responses (T tokens each, already
shifted, chosen rows first), the LM head weight [V, H] and a linear reward head read at each row's last token.
Each case computes ``(1 − α)·BT + α·regularizer`` and backpropagates into the hidden states, the reward head
and (for a trainable LM head) the LM head weight.

Providers of the regularizer's log-probs log π(y|x):

* ``naive``: logits only for the response tokens the term needs, fp32 ``log_softmax``, ``gather`` ("lean naive").
* ``official``: official-code style, logits and ``log_softmax`` for every row (chosen and rejected) even when
  the term needs only the chosen rows.
* ``chunked``: :func:`rmreg.ops.linear_logprobs` then a per-sequence sum.
* ``sequence``: :func:`rmreg.ops.sequence_linear_logprobs` (per-sequence buffers, capped at 3, then recompute).
* ``fused``: :func:`rmreg.ops.fused_logprob_loss`, the regularizer itself fused into the LM-head pass, in two
  passes over the vocabulary (every log-sum-exp, then every gradient): no weight-sized buffer for any number of
  pairs, four matmuls, none in the backward pass (the model's default); ``fused-1pass``: one pass, one pair
  (group) at a time, declaring ``sequence_weights`` (+1 chosen, −1 rejected): three matmuls and one weight-sized
  buffer; ``fused-groups``: one pass without the declaration (one buffer per sequence of a pair).
* ``torch``: ``torch.nn.functional.linear_cross_entropy(..., reduction="none", options=LinearCrossEntropyOptions())``
  (torch ≥ 2.13; its automatic chunk size); ``torch-chunk``: the same with ``batch_chunk_size`` = rmreg's chunk.
* ``liger`` / ``cce``: Liger-Kernel's fused linear cross-entropy and cut-cross-entropy, only when installed
  (their kernels need CUDA and Triton).

Precision: ``--dtype float32`` or ``bfloat16`` inputs, or ``--autocast`` (fp32 inputs under
``torch.autocast(bfloat16)``); ``--softcap C`` soft-caps the logits (Gemma 2) for rmreg's providers and the naive and
official ones. Measurements (``_harness.py``): every case runs in its own process; CPU extra
peak memory = the peak resident set minus the resident set once the inputs are built; CUDA:
``max_memory_allocated`` minus the memory after building the inputs. Time is the median of ``--repeats`` runs
after one warm-up (CUDA events on a GPU), pooled over ``--rounds`` interleaved rounds; a case whose warm-up
shows that the repeats would exceed ``--case-seconds`` runs fewer of them (the ``repeats`` column says how many).
The errors are against a float64 reference computed in a process of its own with
:func:`rmreg.ops.fused_logprob_loss` (tested equal to the naive path to 1e-6) on the same (rounded) inputs: loss
absolute, gradients max abs error / max abs value. FLOP/s counts the LM-head matmuls a plain implementation
needs (2·N·V·H forward, 4·N·V·H backward with a trainable head, 2·N·V·H with a frozen one), so recomputation is
not counted as useful work. Writes ``bench_loss.csv``, ``bench_loss.md`` and (with matplotlib) ``bench_loss.png``.

Usage::

    python benchmarks/bench_loss.py --quick                      # smoke run, well under a minute
    python benchmarks/bench_loss.py --threads 1                  # 8 pairs x 256 tokens, H 256, V 128k
    python benchmarks/bench_loss.py --pairs 2 8 16 --tokens 256 1024 --vocab 32000 128000 256000   # the sweep
    python benchmarks/bench_loss.py --device cuda --dtype bfloat16  # on a GPU
"""

import argparse
import importlib.util
import json
import os
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import _harness
import torch
import torch.nn.functional as F

from rmreg import functional, ops

ALPHA, BETA = 0.01, 0.1
OBJECTIVES = ("bt", "sft", "dpo-noref", "dpo")
HEADS = ("trainable", "frozen")


@dataclass(frozen=True)
class Config:
    pairs: int
    tokens: int
    hidden: int
    vocab: int
    device: str
    threads: int
    dtype: str = "float32"
    autocast: bool = False
    softcap: float | None = None


@dataclass(frozen=True)
class Case:
    objective: str
    head: str
    provider: str


# --- inputs and losses --------------------------------------------------------------------------------------


def make_inputs(cfg: Config) -> dict:
    """Deterministic inputs, generated in place so that no transient copy raises the process's peak memory."""
    gen = torch.Generator().manual_seed(0)
    dtype = getattr(torch, cfg.dtype)
    rows = 2 * cfg.pairs
    hidden = torch.empty(rows * cfg.tokens, cfg.hidden, dtype=dtype).normal_(generator=gen)
    weight = torch.empty(cfg.vocab, cfg.hidden, dtype=dtype).normal_(std=2 / cfg.hidden**0.5, generator=gen)
    targets = torch.randint(0, cfg.vocab, (rows * cfg.tokens,), generator=gen)
    reward_head = torch.empty(cfg.hidden, dtype=dtype).normal_(std=cfg.hidden**-0.5, generator=gen)
    ref_logps = torch.empty(rows, dtype=torch.float32).normal_(-3.0 * cfg.tokens, 10.0, generator=gen)
    tensors = {"hidden": hidden, "weight": weight, "targets": targets, "reward_head": reward_head}
    tensors = {k: v.to(cfg.device) for k, v in tensors.items()}
    tensors["ref_logps"] = ref_logps.to(cfg.device)
    return tensors


def logps_rows(objective: str, pairs: int) -> int:
    """How many rows (from the first) the objective's regularizer needs: chosen only, or all."""
    return {"bt": 0, "sft": pairs, "dpo-noref": 2 * pairs, "dpo": 2 * pairs}[objective]


def regularizer(objective: str, pairs: int, ref: torch.Tensor):
    """α · the objective's regularizer as a function of the summed log-probs of its rows (chosen first)."""

    def loss_fn(logps: torch.Tensor) -> torch.Tensor:
        logps = logps.to(ref.dtype)
        if objective == "sft":
            return ALPHA * functional.sft_regularizer(logps, beta=BETA)
        chosen, rejected = logps[:pairs], logps[pairs:]
        if objective == "dpo-noref":
            return ALPHA * functional.dpo_regularizer(chosen, rejected, beta=BETA)
        return ALPHA * functional.dpo_regularizer(chosen, rejected, ref[:pairs], ref[pairs:], beta=BETA)

    return loss_fn


def chunk_rows(inputs: dict) -> int:
    return ops.auto_chunk_size(*inputs["weight"].shape)


def _torch_options(chunk: int | None):
    if chunk is None:
        return torch.nn.LinearCrossEntropyOptions()
    return torch.nn.LinearCrossEntropyOptions(chunking_method=None, batch_chunk_size=chunk)


def token_logps(provider: str, hidden, weight, targets, chunk: int, softcap: float | None):
    """Per-token log-probs [n] of a per-token provider (only rmreg's providers take a soft-cap)."""
    if provider == "naive":
        return ops.linear_logprobs_naive(hidden, weight, targets, softcap=softcap)
    if provider == "chunked":
        return ops.linear_logprobs(hidden, weight, targets, softcap=softcap)
    if provider in ("torch", "torch-chunk"):
        options = _torch_options(chunk if provider == "torch-chunk" else None)
        return -F.linear_cross_entropy(hidden, weight, targets, reduction="none", ignore_index=-100, options=options)
    if provider == "liger":
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

        return -LigerFusedLinearCrossEntropyLoss(reduction="none")(weight, hidden, targets)
    if provider == "cce":
        from cut_cross_entropy import linear_cross_entropy

        return -linear_cross_entropy(hidden, weight, targets, reduction="none")
    raise ValueError(provider)


def regularizer_loss(provider: str, inputs: dict, objective: str, cfg: Config):
    """α · regularizer for one batch, with the named provider of the log-probs."""
    rows, total_rows = logps_rows(objective, cfg.pairs), 2 * cfg.pairs
    n = rows * cfg.tokens
    hidden, weight, targets = inputs["hidden"][:n], inputs["weight"], inputs["targets"][:n]
    loss_fn = regularizer(objective, cfg.pairs, inputs["ref_logps"])
    sequence_ids = torch.arange(rows, device=hidden.device).repeat_interleave(cfg.tokens)
    if provider.startswith("fused"):
        one_pass = {}
        if provider != "fused":  # one pass, pair p in group p: chosen row p (and rejected row P + p)
            one_pass["group_ids"] = torch.arange(rows) % cfg.pairs
        if provider == "fused-1pass":  # GRM's regularizers read a pair only through log π_c − log π_r (SFT: log π_c)
            one_pass["sequence_weights"] = torch.where(torch.arange(rows) < cfg.pairs, 1.0, -1.0)
        return ops.fused_logprob_loss(
            hidden, weight, targets, sequence_ids, loss_fn, num_sequences=rows, softcap=cfg.softcap, **one_pass
        )[0]
    if provider == "sequence":
        sums = ops.sequence_linear_logprobs(
            hidden, weight, targets, sequence_ids, num_sequences=rows, softcap=cfg.softcap
        )
        return loss_fn(sums)
    if provider == "official":  # logits for every row, then keep the rows the term needs
        all_hidden = inputs["hidden"].view(total_rows, cfg.tokens, -1)
        logits = F.linear(all_hidden, weight).float()
        logits = logits if cfg.softcap is None else cfg.softcap * torch.tanh(logits / cfg.softcap)
        logps = logits.log_softmax(-1).gather(-1, inputs["targets"].view(total_rows, cfg.tokens, 1)).squeeze(-1)
        return loss_fn(logps.sum(-1)[:rows])
    logps = token_logps(provider, hidden, weight, targets, chunk_rows(inputs), cfg.softcap)
    return loss_fn(logps.view(rows, -1).sum(-1))


def loss(case: Case, cfg: Config, inputs: dict):
    """(1 − α)·BT + α·regularizer for one batch; BT alone for ``bt``."""
    rows = 2 * cfg.pairs
    last = inputs["hidden"].view(rows, cfg.tokens, -1)[:, -1]
    rewards = last @ inputs["reward_head"]
    bt = functional.bradley_terry_loss(rewards[: cfg.pairs].float(), rewards[cfg.pairs :].float())
    if logps_rows(case.objective, cfg.pairs) == 0:
        return bt
    return (1 - ALPHA) * bt.to(inputs["ref_logps"].dtype) + regularizer_loss(case.provider, inputs, case.objective, cfg)


def available_providers(device: str) -> list[str]:
    names = ["naive", "official", "chunked", "sequence", "fused", "fused-1pass", "fused-groups"]
    if hasattr(torch.nn, "LinearCrossEntropyOptions"):
        names += ["torch", "torch-chunk"]
    if device == "cuda" and importlib.util.find_spec("liger_kernel"):
        names.append("liger")
    if importlib.util.find_spec("cut_cross_entropy"):
        names.append("cce")
    return names


def leaves(inputs: dict, head: str) -> list[torch.Tensor]:
    """The tensors that get a gradient: hidden states, reward head, and the LM head unless it is frozen."""
    names = ["hidden", "reward_head"] + (["weight"] if head == "trainable" else [])
    return [inputs[n] for n in names]


def lm_flops(case: Case, cfg: Config) -> float:
    n = logps_rows(case.objective, cfg.pairs) * cfg.tokens
    return (2 + (4 if case.head == "trainable" else 2)) * n * cfg.vocab * cfg.hidden


# --- one case per process -----------------------------------------------------------------------------------


def precision(cfg: Config):
    return torch.autocast(cfg.device, dtype=torch.bfloat16) if cfg.autocast else nullcontext()


def worker(cfg: Config, case: Case, repeats: int, reference: str, case_seconds: float) -> dict:
    """Run one case in this process and return its times, extra peak memory and errors."""
    torch.set_num_threads(cfg.threads)
    inputs = make_inputs(cfg)
    params = leaves(inputs, case.head)
    for p in params:
        p.requires_grad_()
    meter = _harness.Meter(cfg.device)
    values = []

    def run():
        for p in params:
            p.grad = None
        with precision(cfg):
            value = loss(case, cfg, inputs)
        value.backward()
        values.append(value.item())

    result = {**meter.times(run, repeats, budget_s=case_seconds), "extra_bytes": meter.extra_bytes()}
    ref = torch.load(reference)
    result["loss_error"] = abs(values[-1] - ref["loss"])
    for name in ("hidden", "weight"):
        got, expected = inputs[name].grad, ref[name]
        if got is not None and expected is not None:  # no LM-head gradient: frozen head or BT alone
            error = (got.double().cpu() - expected).abs().max() / expected.abs().max()
            result[f"{name}_grad_error"] = error.item()
    return result


def reference_worker(cfg: Config, objective: str, path: str) -> dict:
    """Loss and gradients in float64 on the same (rounded) inputs, through the two-pass fused path, on
    the benchmark's device (float64 matmuls on a GPU are slow but far faster than on its host's CPU)."""
    torch.set_num_threads(cfg.threads)
    inputs = {k: v.double() if v.is_floating_point() else v for k, v in make_inputs(cfg).items()}  # on cfg.device
    for p in leaves(inputs, "trainable"):
        p.requires_grad_()
    provider = "fused" if objective != "bt" else "naive"
    value = loss(Case(objective, "trainable", provider), cfg, inputs)
    value.backward()
    grads = {name: None if inputs[name].grad is None else inputs[name].grad.cpu() for name in ("hidden", "weight")}
    torch.save({"loss": value.item(), **grads}, path)
    return {}


# --- driver -------------------------------------------------------------------------------------------------


@dataclass
class Row:
    pairs: int
    tokens: int
    vocab: int
    precision: str
    objective: str
    head: str
    provider: str
    repeats: int
    time_s: float
    time_iqr_s: float
    cpu_s: float
    time_vs_naive: float
    extra_peak_gb: float
    extra_vs_weight_grad: float
    gflops: float
    loss_error: float
    hidden_grad_error: float
    weight_grad_error: float
    load: float


def precision_name(cfg: Config) -> str:
    return "autocast-bf16" if cfg.autocast else cfg.dtype


def run_all(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for pairs in args.pairs:
        for vocab in args.vocab:
            for tokens in args.tokens:
                cfg = Config(
                    pairs,
                    tokens,
                    args.hidden,
                    vocab,
                    args.device,
                    args.threads,
                    args.dtype,
                    args.autocast,
                    args.softcap,
                )
                for objective in args.objectives:
                    rows += run_objective(args, cfg, objective, out)
    return rows


def run_objective(args: argparse.Namespace, cfg: Config, objective: str, out: Path) -> list[Row]:
    reference = out / f".ref-{cfg.pairs}-{cfg.vocab}-{cfg.tokens}-{objective}-{os.getpid()}.pt"
    _harness.spawn(__file__, {"reference": str(reference), "cfg": asdict(cfg), "objective": objective})
    providers = ["naive"] if objective == "bt" else args.providers
    cases = [Case(objective, head, provider) for head in args.heads for provider in providers]
    job = {"cfg": asdict(cfg), "repeats": args.repeats, "reference": str(reference), "budget": args.case_seconds}
    results = _harness.run_rounds(
        cases,
        args.rounds,
        lambda case: _harness.spawn(__file__, {**job, "case": asdict(case)}),
        lambda case, res: print(f"P={cfg.pairs} V={cfg.vocab} T={cfg.tokens} {case}: {summary(res)}", flush=True),
    )
    reference.unlink()
    return [make_row(cfg, case, res, results) for case, res in results.items()]


def summary(res: dict) -> str:
    return (
        f"{_harness.median(res['times']):.3f} s (CPU {_harness.median(res['cpu_times']):.3f} s, "
        f"{len(res['times'])} repeats), +{res['extra_bytes'] / 1e9:.3f} GB, load {res['load']:.1f}"
    )


def make_row(cfg: Config, case: Case, res: dict, results: dict) -> Row:
    clock = _harness.clock(cfg.device)
    median = _harness.median(res[clock])
    naive = results.get(Case(case.objective, case.head, "naive"))
    extra = res["extra_bytes"]
    return Row(
        pairs=cfg.pairs,
        tokens=cfg.tokens,
        vocab=cfg.vocab,
        precision=precision_name(cfg),
        objective=case.objective,
        head=case.head,
        provider="-" if case.objective == "bt" else case.provider,
        repeats=len(res["times"]),
        time_s=_harness.median(res["times"]),
        time_iqr_s=_harness.iqr(res["times"]),
        cpu_s=_harness.median(res["cpu_times"]),
        time_vs_naive=median / _harness.median(naive[clock]) if naive else float("nan"),
        extra_peak_gb=extra / 1e9,
        extra_vs_weight_grad=extra / (4 * cfg.vocab * cfg.hidden),
        gflops=lm_flops(case, cfg) / median / 1e9,
        loss_error=res.get("loss_error", float("nan")),
        hidden_grad_error=res.get("hidden_grad_error", float("nan")),
        weight_grad_error=res.get("weight_grad_error", float("nan")),
        load=res["load"],
    )


COLUMNS = {
    "pairs": "P",
    "tokens": "T",
    "vocab": "V",
    "precision": "precision",
    "objective": "objective",
    "head": "LM head",
    "provider": "provider",
    "repeats": "n",
    "time_s": "wall (s)",
    "time_iqr_s": "IQR",
    "cpu_s": "CPU (s)",
    "time_vs_naive": "× naive",
    "extra_peak_gb": "extra peak (GB)",
    "extra_vs_weight_grad": "× dW",
    "gflops": "GFLOP/s",
    "loss_error": "loss err",
    "hidden_grad_error": "dh err",
    "weight_grad_error": "dW err",
    "load": "load",
}


def write_outputs(rows: list[Row], args: argparse.Namespace) -> None:
    out = Path(args.out)
    details = f"hidden {args.hidden}, {precision_name(Config(0, 0, 0, 0, '', 0, args.dtype, args.autocast))}"
    details += "" if args.softcap is None else f", logit soft-cap {args.softcap}"
    head = _harness.header(args.device, args.threads, details, args.repeats, args.rounds)
    _harness.write_reports(rows, out, "bench_loss", head, COLUMNS)
    if _harness.have_matplotlib():
        label = "{r.objective} {r.head} P={r.pairs} T={r.tokens} V={v}k"
        groups = list(dict.fromkeys(label.format(r=r, v=r.vocab // 1000) for r in rows if r.provider != "-"))
        providers = list(dict.fromkeys(r.provider for r in rows if r.provider != "-"))
        picked = {(label.format(r=r, v=r.vocab // 1000), r.provider): r for r in rows}
        panels = [
            (
                title,
                {
                    p: [getattr(picked[g, p], name) if (g, p) in picked else float("nan") for g in groups]
                    for p in providers
                },
            )
            for title, name in (("time / naive", "time_vs_naive"), ("extra peak memory / dW", "extra_vs_weight_grad"))
        ]
        _harness.bar_plot(out / "bench_loss.png", groups, panels)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few cases: a smoke run")
    parser.add_argument("--pairs", type=int, nargs="+", default=[8])
    parser.add_argument("--tokens", type=int, nargs="+", default=[256], help="response tokens per row")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, nargs="+", default=[128_000])
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=["bt", "sft", "dpo-noref"])
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=["trainable"])
    parser.add_argument("--providers", nargs="+", default=None, help="default: all available")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--case-seconds", type=float, default=150.0, help="fewer repeats past this (see --help)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of all cases (times pooled)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="inputs' dtype")
    parser.add_argument("--autocast", action="store_true", help="fp32 inputs under torch.autocast(bfloat16)")
    parser.add_argument("--softcap", type=float, default=None, help="logit soft-cap (Gemma 2: 30); rmreg and naive")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.tokens, args.hidden, args.vocab, args.threads = [2], [32], 32, [2000], 1
        args.repeats, args.rounds, args.objectives, args.heads = 5, 1, ["dpo-noref"], ["trainable"]
        args.providers = args.providers or ["naive", "chunked", "fused"]
    args.providers = args.providers or available_providers(args.device)
    unknown = set(args.providers) - set(available_providers(args.device))
    if unknown:
        parser.error(f"providers not available here: {sorted(unknown)}")
    if args.softcap is not None and set(args.providers) & {"torch", "torch-chunk", "liger", "cce"}:
        parser.error("--softcap: torch's, Liger's and CCE's fused cross-entropies have no logit soft-cap")
    if args.autocast and args.dtype != "float32":
        parser.error("--autocast takes fp32 inputs (--dtype float32)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        cfg = Config(**job["cfg"])
        if "case" not in job:
            print(json.dumps(reference_worker(cfg, job["objective"], job["reference"])))
            return
        print(json.dumps(worker(cfg, Case(**job["case"]), job["repeats"], job["reference"], job["budget"])))
        return
    rows = run_all(args)
    write_outputs(rows, args)
    print((Path(args.out) / "bench_loss.md").read_text())


if __name__ == "__main__":
    main()
