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

Measurements: every case runs in its own process; CPU extra peak memory = the process's ``ru_maxrss`` at
the end minus its ``ru_maxrss`` once the inputs are built (what a baseline process building the same inputs
would report); CUDA: ``max_memory_allocated`` minus the memory after building the inputs. Time is the median
of ``--repeats`` runs after one warm-up (CUDA events on a GPU); the error is
against a float64 reference computed in the parent with :func:`rmreg.ops.linear_logprobs` (which the tests check
against the naive path to 1e-6); FLOP/s counts the LM-head matmuls a plain implementation needs
(2·N·V·H forward, 4·N·V·H backward with a trainable head, 2·N·V·H with a frozen one), so recomputation is not
counted as useful work. Writes ``bench_loss.csv``, ``bench_loss.md`` and (with matplotlib) ``bench_loss.png``.

Usage::

    python benchmarks/bench_loss.py --quick                      # smoke run, well under a minute
    python benchmarks/bench_loss.py                              # 2 pairs x 1024 tokens, H 256, V 128k
    python benchmarks/bench_loss.py --vocab 32000 128000 256000  # vocabulary sweep
"""

import argparse
import csv
import importlib.util
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F

import rmreg
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


@dataclass(frozen=True)
class Case:
    objective: str
    head: str
    provider: str


# --- inputs and losses --------------------------------------------------------------------------------------


def make_inputs(cfg: Config, dtype: torch.dtype = torch.float32) -> dict:
    """Deterministic inputs, generated in place so that no transient copy raises the process's peak memory."""
    gen = torch.Generator().manual_seed(0)
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


def _status_bytes(field: str) -> int | None:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in bytes; None off Linux."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    return next(int(line.split()[1]) * 1024 for line in text.splitlines() if line.startswith(field + ":"))


def reset_peak() -> int:
    """Reset the peak resident set (Linux ``clear_refs`` 5) and return the current one, the baseline.

    Without the reset, ``ru_maxrss`` keeps the peak of the torch import, whose file-backed pages the kernel may
    evict later under memory pressure; the case's own allocations can then hide below that old peak.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_bytes("VmRSS")
    except OSError:  # not Linux: fall back to ru_maxrss
        return peak_bytes()


def peak_bytes() -> int:
    hwm = _status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    scale = 1 if platform.system() == "Darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def worker(cfg: Config, case: Case, repeats: int, reference: str) -> dict:
    """Run one case in this process and return its times, extra peak memory and errors."""
    torch.set_num_threads(cfg.threads)
    cuda = cfg.device == "cuda"
    inputs = make_inputs(cfg)
    params = leaves(inputs, case.head)
    for p in params:
        p.requires_grad_()
    baseline = reset_peak()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()

    def run():
        for p in params:
            p.grad = None
        value = loss(case, cfg, inputs)
        value.backward()
        return value

    times = []
    for i in range(repeats + 1):
        if cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            value = run()
            stop.record()
            torch.cuda.synchronize()
            elapsed = start.elapsed_time(stop) / 1e3
        else:
            tic = time.perf_counter()
            value = run()
            elapsed = time.perf_counter() - tic
        if i:  # the first run is the warm-up
            times.append(elapsed)
    result = {"times": times}
    result["extra_bytes"] = torch.cuda.max_memory_allocated() - before if cuda else peak_bytes() - baseline
    ref = torch.load(reference)
    result["loss_error"] = abs(value.item() - ref["loss"])
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


def spawn(cfg: Config, case: Case, repeats: int, reference: Path) -> dict:
    job = {"cfg": asdict(cfg), "case": asdict(case), "repeats": repeats, "reference": str(reference)}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"case {case} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    time_vs_naive: float
    extra_peak_gb: float
    extra_vs_weight_grad: float
    gflops: float
    loss_error: float
    hidden_grad_error: float
    weight_grad_error: float


def run_all(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for vocab in args.vocab:
        for tokens in args.tokens:
            cfg = Config(args.pairs, tokens, args.hidden, vocab, args.device, args.threads)
            weight_grad_bytes = 4 * vocab * args.hidden
            for objective in args.objectives:
                reference = out / f".ref-{vocab}-{tokens}-{objective}.pt"
                float64_reference(cfg, objective, reference)
                results = {}
                for head in args.heads:
                    providers = ["naive"] if objective == "bt" else args.providers
                    for provider in providers:
                        case = Case(objective, head, provider)
                        results[case] = spawn(cfg, case, args.repeats, reference)
                        print(f"V={vocab} T={tokens} {case}: {summary(results[case])}", flush=True)
                reference.unlink()
                for case, res in results.items():
                    rows.append(make_row(cfg, case, res, results, weight_grad_bytes))
    return rows


def summary(res: dict) -> str:
    return f"{statistics.median(res['times']):.3f} s, +{res['extra_bytes'] / 1e9:.3f} GB"


def make_row(cfg, case, res, results, weight_grad_bytes) -> Row:
    median = statistics.median(res["times"])
    quartiles = statistics.quantiles(res["times"], n=4) if len(res["times"]) > 1 else [median] * 3
    naive = results.get(Case(case.objective, case.head, "naive"))
    extra = res["extra_bytes"]
    return Row(
        vocab=cfg.vocab,
        tokens=cfg.tokens,
        objective=case.objective,
        head=case.head,
        provider="-" if case.objective == "bt" else case.provider,
        time_s=median,
        time_iqr_s=quartiles[2] - quartiles[0],
        time_vs_naive=median / statistics.median(naive["times"]) if naive else float("nan"),
        extra_peak_gb=extra / 1e9,
        extra_vs_weight_grad=extra / weight_grad_bytes,
        gflops=lm_flops(case, cfg) / median / 1e9,
        loss_error=res.get("loss_error", float("nan")),
        hidden_grad_error=res.get("hidden_grad_error", float("nan")),
        weight_grad_error=res.get("weight_grad_error", float("nan")),
    )


def header(args: argparse.Namespace) -> str:
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or 'cpu'}"
    return (
        f"rmreg {rmreg.__version__}, torch {torch.__version__}, device {args.device} ({device}), "
        f"{args.threads} threads, pairs {args.pairs}, hidden {args.hidden}, fp32, "
        f"median of {args.repeats} after 1 warm-up\n\ncommand: `{' '.join(['python', *sys.argv])}`"
    )


def write_outputs(rows: list[Row], args: argparse.Namespace) -> None:
    out = Path(args.out)
    names = [f.name for f in fields(Row)]
    with open(out / "bench_loss.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        writer.writerows([[getattr(r, n) for n in names] for r in rows])
    lines = [
        header(args),
        "",
        "| V | T | objective | LM head | provider | time (s) | IQR | × naive | extra peak (GB) | × dW |"
        " GFLOP/s | loss err | dh err | dW err |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.vocab} | {r.tokens} | {r.objective} | {r.head} | {r.provider} | {r.time_s:.3f} | "
            f"{r.time_iqr_s:.3f} | {r.time_vs_naive:.2f} | {r.extra_peak_gb:.3f} | {r.extra_vs_weight_grad:.1f} | "
            f"{r.gflops:.1f} | {r.loss_error:.1e} | {r.hidden_grad_error:.1e} | {r.weight_grad_error:.1e} |"
        )
    (out / "bench_loss.md").write_text("\n".join(lines) + "\n")
    if importlib.util.find_spec("matplotlib"):
        plot(rows, out / "bench_loss.png")


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(11, 4))
    for provider in dict.fromkeys(r.provider for r in rows if r.provider != "-"):
        picked = [r for r in rows if r.provider == provider]
        labels = [f"{r.objective}\n{r.head}\nV={r.vocab // 1000}k" for r in picked]
        ax_time.plot(labels, [r.time_s for r in picked], "o-", label=provider)
        ax_mem.plot(labels, [r.extra_peak_gb for r in picked], "o-", label=provider)
    ax_time.set_ylabel("time per step (s)")
    ax_mem.set_ylabel("extra peak memory (GB)")
    for ax in (ax_time, ax_mem):
        ax.set_yscale("log")
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


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
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.tokens, args.hidden, args.vocab, args.threads, args.repeats = [32], 32, [2000], 1, 5
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
