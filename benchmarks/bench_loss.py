"""Loss-alone micro-benchmark: Bradley–Terry with and without GRM's regularizers, per LM-head provider.

Inputs stand for a batch of P pairs: the final hidden states of the 2·P responses (T tokens each, already
shifted, chosen rows first), the LM head weight [V, H] and a linear reward head read at each row's last token.
Each case computes ``(1 − α)·BT + α·regularizer`` and backpropagates into the hidden states, the reward head
and (for a trainable LM head) the LM head weight.

Providers of the summed log-probs log π(y|x):

* ``naive``: logits only for the response tokens the term needs, fp32 ``log_softmax``, ``gather`` ("lean naive").
* ``official``: official-code style, logits and ``log_softmax`` for every row (chosen and rejected) even when
  the term needs only the chosen rows.
* ``chunked``: :func:`rmreg.ops.linear_logprobs` then a per-sequence sum.
* ``fused``: :func:`rmreg.ops.sequence_linear_logprobs`.
* ``torch``: ``torch.nn.functional.linear_cross_entropy`` with chunking options (torch versions that have it).
* ``liger`` / ``cce``: Liger-Kernel's fused linear cross-entropy and cut-cross-entropy, only when installed
  (optional, never required; their GPU kernels need CUDA).

Measurements (``_harness.py``): every case runs in its own process; CPU extra peak memory = the peak resident
set minus the resident set once the inputs are built; CUDA: ``max_memory_allocated`` minus the memory after
building the inputs. Time is the median of ``--repeats`` runs after one warm-up (CUDA events on a GPU), pooled
over ``--rounds`` interleaved rounds. The error is against a float64 reference computed in the parent with
:func:`rmreg.ops.linear_logprobs` (which the tests check against the naive path to 1e-6) on the same (rounded)
inputs; FLOP/s counts the LM-head matmuls a plain implementation needs (2·N·V·H forward, 4·N·V·H backward with
a trainable head, 2·N·V·H with a frozen one), so recomputation is not counted as useful work. Writes
``bench_loss.csv``, ``bench_loss.md`` and (with matplotlib) ``bench_loss.png``.

Usage::

    python benchmarks/bench_loss.py --quick                      # smoke run, well under a minute
    python benchmarks/bench_loss.py                              # 2 pairs x 1024 tokens, H 256, V 128k
    python benchmarks/bench_loss.py --vocab 32000 128000 256000  # vocabulary sweep
    python benchmarks/bench_loss.py --device cuda --dtype bfloat16  # on a GPU
"""

import argparse
import importlib.util
import json
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


def summed_logps(provider: str, inputs: dict, rows: int, tokens: int, total_rows: int):
    """Summed log-probs [rows] of the first ``rows`` sequences, as the provider computes them."""
    n = rows * tokens
    hidden, weight, targets = inputs["hidden"], inputs["weight"], inputs["targets"]
    sequence_ids = torch.arange(rows, device=hidden.device).repeat_interleave(tokens)
    if provider == "fused":
        return ops.sequence_linear_logprobs(hidden[:n], weight, targets[:n], sequence_ids, num_sequences=rows)
    if provider == "official":  # logits for every row, then keep the rows the term needs
        logits = F.linear(hidden.view(total_rows, tokens, -1), weight).float()
        token_logps = logits.log_softmax(-1).gather(-1, targets.view(total_rows, tokens, 1)).squeeze(-1)
        return token_logps.sum(-1)[:rows]
    token_logps = PROVIDERS[provider](hidden[:n], weight, targets[:n])
    return token_logps.view(rows, tokens).sum(-1)


def _torch_chunked(hidden, weight, targets):
    options = torch.nn.LinearCrossEntropyOptions()
    return -F.linear_cross_entropy(hidden, weight, targets, reduction="none", ignore_index=-100, options=options)


def _liger(hidden, weight, targets):
    from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

    return -LigerFusedLinearCrossEntropyLoss(reduction="none")(weight, hidden, targets)


def _cce(hidden, weight, targets):
    from cut_cross_entropy import linear_cross_entropy

    return -linear_cross_entropy(hidden, weight, targets, reduction="none")


PROVIDERS = {
    "naive": ops.linear_logprobs_naive,
    "official": None,  # handled in summed_logps: it works on whole rows
    "chunked": ops.linear_logprobs,
    "fused": None,  # handled in summed_logps: it returns sums directly
    "torch": _torch_chunked,
    "liger": _liger,
    "cce": _cce,
}


def available_providers(device: str) -> list[str]:
    names = ["naive", "official", "chunked", "fused"]
    if hasattr(torch.nn, "LinearCrossEntropyOptions"):
        names.append("torch")
    if device == "cuda" and importlib.util.find_spec("liger_kernel"):
        names.append("liger")
    if importlib.util.find_spec("cut_cross_entropy"):
        names.append("cce")
    return names


def loss(case: Case, cfg: Config, inputs: dict):
    """(1 − α)·BT + α·regularizer for one batch; BT alone for ``bt``."""
    rows = 2 * cfg.pairs
    last = inputs["hidden"].view(rows, cfg.tokens, -1)[:, -1]
    rewards = last @ inputs["reward_head"]
    bt = functional.bradley_terry_loss(rewards[: cfg.pairs].float(), rewards[cfg.pairs :].float())
    needed = logps_rows(case.objective, cfg.pairs)
    if needed == 0:
        return bt
    logps = summed_logps(case.provider, inputs, needed, cfg.tokens, rows)
    chosen, rejected = logps[: cfg.pairs], logps[cfg.pairs :]
    if case.objective == "sft":
        reg = functional.sft_regularizer(chosen, beta=BETA)
    elif case.objective == "dpo-noref":
        reg = functional.dpo_regularizer(chosen, rejected, beta=BETA)
    else:
        ref = inputs["ref_logps"]
        reg = functional.dpo_regularizer(chosen, rejected, ref[: cfg.pairs], ref[cfg.pairs :], beta=BETA)
    return (1 - ALPHA) * bt + ALPHA * reg


def leaves(inputs: dict, head: str) -> list[torch.Tensor]:
    """The tensors that get a gradient: hidden states, reward head, and the LM head unless it is frozen."""
    names = ["hidden", "reward_head"] + (["weight"] if head == "trainable" else [])
    return [inputs[n] for n in names]


def lm_flops(case: Case, cfg: Config) -> float:
    n = logps_rows(case.objective, cfg.pairs) * cfg.tokens
    return (2 + (4 if case.head == "trainable" else 2)) * n * cfg.vocab * cfg.hidden


# --- one case per process -----------------------------------------------------------------------------------


def worker(cfg: Config, case: Case, repeats: int, reference: str) -> dict:
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
        value = loss(case, cfg, inputs)
        value.backward()
        values.append(value.item())

    result = {**meter.times(run, repeats), "extra_bytes": meter.extra_bytes()}
    ref = torch.load(reference)
    result["loss_error"] = abs(values[-1] - ref["loss"])
    for name in ("hidden", "weight"):
        got, expected = inputs[name].grad, ref[name]
        if got is not None and expected is not None:  # no LM-head gradient: frozen head or BT alone
            error = (got.double().cpu() - expected).abs().max() / expected.abs().max()
            result[f"{name}_grad_error"] = error.item()
    return result


def float64_reference(cfg: Config, objective: str, path: Path) -> None:
    """Loss and gradients in float64 (chunked path; checked against the naive path in the tests)."""
    inputs = {k: v.cpu() for k, v in make_inputs(cfg).items()}
    inputs = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    for p in leaves(inputs, "trainable"):
        p.requires_grad_()
    value = loss(Case(objective, "trainable", "chunked"), cfg, inputs)
    value.backward()
    torch.save({"loss": value.item(), "hidden": inputs["hidden"].grad, "weight": inputs["weight"].grad}, path)


# --- driver -------------------------------------------------------------------------------------------------


@dataclass
class Row:
    vocab: int
    tokens: int
    objective: str
    head: str
    provider: str
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


def run_all(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for vocab in args.vocab:
        for tokens in args.tokens:
            cfg = Config(args.pairs, tokens, args.hidden, vocab, args.device, args.threads, args.dtype)
            for objective in args.objectives:
                reference = out / f".ref-{vocab}-{tokens}-{objective}.pt"
                float64_reference(cfg, objective, reference)
                providers = ["naive"] if objective == "bt" else args.providers
                cases = [Case(objective, head, provider) for head in args.heads for provider in providers]
                job = {"cfg": asdict(cfg), "repeats": args.repeats, "reference": str(reference)}
                results = _harness.run_rounds(
                    cases,
                    args.rounds,
                    lambda case, job=job: _harness.spawn(__file__, {**job, "case": asdict(case)}),
                    lambda case, res, cfg=cfg: print(
                        f"V={cfg.vocab} T={cfg.tokens} {case}: {summary(res)}", flush=True
                    ),
                )
                reference.unlink()
                rows += [make_row(cfg, case, res, results) for case, res in results.items()]
    return rows


def summary(res: dict) -> str:
    return (
        f"{_harness.median(res['times']):.3f} s (CPU {_harness.median(res['cpu_times']):.3f} s), "
        f"+{res['extra_bytes'] / 1e9:.3f} GB, load {res['load']:.1f}"
    )


def make_row(cfg: Config, case: Case, res: dict, results: dict) -> Row:
    clock = _harness.clock(cfg.device)
    median = _harness.median(res[clock])
    naive = results.get(Case(case.objective, case.head, "naive"))
    extra = res["extra_bytes"]
    return Row(
        vocab=cfg.vocab,
        tokens=cfg.tokens,
        objective=case.objective,
        head=case.head,
        provider="-" if case.objective == "bt" else case.provider,
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
    "vocab": "V",
    "tokens": "T",
    "objective": "objective",
    "head": "LM head",
    "provider": "provider",
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
    details = f"pairs {args.pairs}, hidden {args.hidden}, {args.dtype}"
    head = _harness.header(args.device, args.threads, details, args.repeats, args.rounds)
    _harness.write_reports(rows, out, "bench_loss", head, COLUMNS)
    if _harness.have_matplotlib():
        groups = list(dict.fromkeys(f"{r.objective} {r.head} V={r.vocab // 1000}k T={r.tokens}" for r in rows))
        providers = list(dict.fromkeys(r.provider for r in rows if r.provider != "-"))
        picked = {(f"{r.objective} {r.head} V={r.vocab // 1000}k T={r.tokens}", r.provider): r for r in rows}
        panels = [
            (
                label,
                {
                    p: [getattr(picked[g, p], name) if (g, p) in picked else float("nan") for g in groups]
                    for p in providers
                },
            )
            for label, name in (("time / naive", "time_vs_naive"), ("extra peak memory (GB)", "extra_peak_gb"))
        ]
        _harness.bar_plot(out / "bench_loss.png", groups, panels)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few cases: a smoke run")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--tokens", type=int, nargs="+", default=[1024], help="response tokens per row")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, nargs="+", default=[128_000])
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=["bt", "sft", "dpo-noref"])
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS))
    parser.add_argument("--providers", nargs="+", default=None, help="default: all available")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of all cases (times pooled)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="inputs' dtype")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.tokens, args.hidden, args.vocab, args.threads, args.repeats, args.rounds = [32], 32, [2000], 1, 5, 1
        args.objectives, args.heads = ["dpo-noref"], ["trainable"]
        args.providers = args.providers or ["naive", "chunked", "fused"]
    args.providers = args.providers or available_providers(args.device)
    unknown = set(args.providers) - set(available_providers(args.device))
    if unknown:
        parser.error(f"providers not available here: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(worker(Config(**job["cfg"]), Case(**job["case"]), job["repeats"], job["reference"])))
        return
    rows = run_all(args)
    write_outputs(rows, args)
    print((Path(args.out) / "bench_loss.md").read_text())


if __name__ == "__main__":
    main()
