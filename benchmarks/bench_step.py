"""Training-step benchmark: one SGD step of ``rmreg.RegularizedRewardModel`` per objective and LM-head provider.

A causal LM with random weights (default: a tiny Llama, hidden 256, 4 layers, 4 heads, MLP 1024, vocabulary
128,000, untied LM head) reads a batch of P pairs of T-token rows (random token ids; prompt = the first half,
response = the second half) and takes one step: forward, backward, ``torch.optim.SGD`` step. Objectives:

* ``bt``: Bradley–Terry only (the LM head is not used; the baseline of every ratio);
* ``sft``: ``rmreg.objective("grm-sft")`` (chosen rows' log-probs);
* ``dpo-noref``: ``rmreg.objective("grm-dpo-noref")`` (chosen and rejected rows);
* ``dpo``: ``rmreg.objective("grm-dpo")`` with reference log-probs precomputed and passed with the batch;
* ``dpo-copy``: the same with ``reference="copy"``: a frozen copy of the LM scores every batch (no autograd).

Providers of the summed response log-probs (the model is the same; only ``rmreg.model.causal_lm.response_logprobs``,
through which the model gets them, is swapped for the step):

* ``rmreg``: the model as it is: GRM's SFT/DPO regularizers fused into the LM-head pass
  (:func:`rmreg.ops.fused_logprob_loss` through :mod:`rmreg.model.fused_regularizers`, two passes over the
  vocabulary: no weight-sized buffer for any number of pairs, nothing recomputed in the backward pass);
* ``rmreg-1pass``: the same with ``model.fused_passes = 1`` (one pass, pair by pair: one weight-sized buffer,
  three LM-head matmuls instead of four);
* ``sequence``: the model's generic path (``model.fuse_regularizers = False``): summed log-probs from
  :func:`rmreg.ops.sequence_linear_logprobs` (per-sequence buffers capped at 3, later sequences recompute);
* the providers below also run the generic path, with ``response_logprobs`` swapped:
* ``chunked``: :func:`rmreg.ops.linear_logprobs` (per-token, recompute in the backward pass), per-row sum;
* ``torch``: ``torch.nn.functional.linear_cross_entropy(reduction="none")`` with ``batch_chunk_size`` = rmreg's
  chunk (torch ≥ 2.13), per-row sum;
* ``naive``: "lean naive": logits only for the response tokens of the rows the term needs, fp32
  ``log_softmax``, ``gather``, per-row sum;
* ``official``: official-code style: logits and fp32 ``log_softmax`` for every position of every row,
  ``gather``, masked per-row sum, then the rows the term needs.

LM head ``trainable`` (the regularizer's gradient reaches it) or ``frozen`` (``lm_head_trainable=False``).
Every case runs in its own process; see ``_harness.py`` for how time and extra peak memory are measured.
Ratios: time / the Bradley–Terry step, time / the lean naive step of the same objective and head, extra
peak memory minus the Bradley–Terry step's. Writes ``bench_step.csv``, ``bench_step.md`` and (with
matplotlib) ``bench_step.png``.

Usage::

    python benchmarks/bench_step.py --quick                         # smoke run, under a minute
    python benchmarks/bench_step.py --threads 1                     # tiny Llama, all cases, CPU
    python benchmarks/bench_step.py --preset gemma-2b --device cuda --dtype bfloat16   # see gpu_step.sh
"""

import argparse
import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from unittest import mock

import _harness
import torch
import torch.nn.functional as F
import transformers

import rmreg
from rmreg import ops
from rmreg.data import IGNORE_INDEX
from rmreg.model import RegularizedRewardModel
from rmreg.model import causal_lm as _backbone

OBJECTIVES = {"bt": "bt", "sft": "grm-sft", "dpo-noref": "grm-dpo-noref", "dpo": "grm-dpo", "dpo-copy": "grm-dpo"}
PROVIDERS = ("rmreg", "rmreg-1pass", "sequence", "chunked", "torch", "naive", "official")
HEADS = ("trainable", "frozen")
PRESETS = {  # model shapes; "gemma-2b" is Gemma-2B's (tied head, multi-query attention) with random weights
    "tiny-llama": {"family": "llama", "hidden": 256, "layers": 4, "heads": 4, "kv_heads": 4, "mlp": 1024},
    "gemma-2b": {"family": "gemma", "hidden": 2048, "layers": 18, "heads": 8, "kv_heads": 1, "mlp": 16384},
    "quick": {"family": "llama", "hidden": 32, "layers": 1, "heads": 2, "kv_heads": 2, "mlp": 64},
}


@dataclass(frozen=True)
class Config:
    preset: str
    vocab: int
    tokens: int
    pairs: int
    dtype: str
    device: str
    threads: int


@dataclass(frozen=True)
class Case:
    objective: str
    head: str
    provider: str


# --- model, batch and providers -----------------------------------------------------------------------------


def build_lm(cfg: Config) -> torch.nn.Module:
    """The preset's causal LM with random weights (seeded), in ``cfg.dtype`` on ``cfg.device``."""
    shape = PRESETS[cfg.preset]
    common = {
        "vocab_size": cfg.vocab,
        "hidden_size": shape["hidden"],
        "intermediate_size": shape["mlp"],
        "num_hidden_layers": shape["layers"],
        "num_attention_heads": shape["heads"],
        "num_key_value_heads": shape["kv_heads"],
        "max_position_embeddings": cfg.tokens,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    if shape["family"] == "gemma":
        config = transformers.GemmaConfig(**common, head_dim=shape["hidden"] // shape["heads"])
        model_class = transformers.GemmaForCausalLM
    else:
        config = transformers.LlamaConfig(**common, tie_word_embeddings=False)
        model_class = transformers.LlamaForCausalLM
    torch.manual_seed(0)
    with torch.device(cfg.device):
        return model_class(config).to(getattr(torch, cfg.dtype))


def make_batch(cfg: Config) -> dict:
    """P pairs (chosen rows first) of random tokens; labels on the second half (the response)."""
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, cfg.vocab, (2 * cfg.pairs, cfg.tokens), generator=gen)
    labels = input_ids.clone()
    labels[:, : cfg.tokens // 2] = IGNORE_INDEX
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    return {k: v.to(cfg.device) for k, v in batch.items()}


def lean_naive_logprobs(hidden, labels, rows, head):
    """Summed log-probs of ``rows``: logits for their response tokens only, fp32 log_softmax, gather."""
    row_of_token, position = (labels[rows, 1:] != IGNORE_INDEX).nonzero(as_tuple=True)
    source = rows[row_of_token]
    logits = F.linear(hidden[source, position].to(head.weight.dtype), head.weight, head.bias).float()
    token_logps = logits.log_softmax(-1).gather(-1, labels[source, position + 1, None]).squeeze(-1)
    return token_logps.new_zeros(len(rows)).index_add(0, row_of_token, token_logps)


def official_logprobs(hidden, labels, rows, head):
    """Summed log-probs of ``rows``, official-code style: logits and log_softmax for every position of every row."""
    logits = F.linear(hidden.to(head.weight.dtype), head.weight, head.bias).float()[:, :-1]
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    token_logps = logits.log_softmax(-1).gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
    return (token_logps * mask).sum(-1)[rows]


def torch_logprobs(hidden, labels, rows, head):
    """Summed log-probs of ``rows`` through torch's chunked ``linear_cross_entropy`` (rmreg's chunk size)."""
    row_of_token, position = (labels[rows, 1:] != IGNORE_INDEX).nonzero(as_tuple=True)
    source = rows[row_of_token]
    chunk = ops.auto_chunk_size(*head.weight.shape)
    options = torch.nn.LinearCrossEntropyOptions(chunking_method=None, batch_chunk_size=chunk)
    inputs = hidden[source, position].to(head.weight.dtype)
    token_logps = -F.linear_cross_entropy(
        inputs, head.weight, labels[source, position + 1], linear_bias=head.bias, reduction="none", options=options
    )
    return token_logps.float().new_zeros(len(rows)).index_add(0, row_of_token, token_logps.float())


def chunked_logprobs(hidden, labels, rows, head):
    """Summed log-probs of ``rows`` through rmreg's per-token chunked op (:func:`rmreg.ops.linear_logprobs`)."""
    row_of_token, position = (labels[rows, 1:] != IGNORE_INDEX).nonzero(as_tuple=True)
    source = rows[row_of_token]
    token_logps = head.logprobs(hidden[source, position], labels[source, position + 1])
    return token_logps.new_zeros(len(rows)).index_add(0, row_of_token, token_logps)


def provider(name: str):
    """Context in which the model computes its response log-probs with the named provider."""
    replacements = {
        "naive": lean_naive_logprobs,
        "official": official_logprobs,
        "torch": torch_logprobs,
        "chunked": chunked_logprobs,
    }
    replacement = replacements.get(name)
    return nullcontext() if replacement is None else mock.patch.object(_backbone, "response_logprobs", replacement)


def build_case(cfg: Config, case: Case) -> tuple[RegularizedRewardModel, dict]:
    """The reward model for the case and its batch (with reference log-probs for ``dpo``)."""
    lm = build_lm(cfg)
    model = RegularizedRewardModel(
        lm,
        objective=rmreg.objective(OBJECTIVES[case.objective]),
        reference="copy" if case.objective in ("dpo", "dpo-copy") else None,
        lm_head_trainable=case.head == "trainable",
    ).to(cfg.device)
    model.fuse_regularizers = case.provider.startswith("rmreg")  # every other provider swaps the generic path's op
    model.fused_passes = 1 if case.provider == "rmreg-1pass" else 2
    batch = make_batch(cfg)
    if case.objective == "dpo":  # precomputed once, passed with the batch; the copy is not used in the step
        batch["ref_chosen_logps"], batch["ref_rejected_logps"] = model.reference_logps(**batch)
        model.reference_model = None
    return model, batch


# --- one case per process -----------------------------------------------------------------------------------


def worker(cfg: Config, case: Case, repeats: int, case_seconds: float) -> dict:
    """Build the case in this process, then time SGD steps and measure their extra peak memory."""
    torch.set_num_threads(cfg.threads)
    model, batch = build_case(cfg, case)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    meter = _harness.Meter(cfg.device)
    losses = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        with provider(case.provider):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    return {**meter.times(step, repeats, budget_s=case_seconds), "extra_bytes": meter.extra_bytes(), "loss": losses[0]}


# --- driver -------------------------------------------------------------------------------------------------


@dataclass
class Row:
    preset: str
    vocab: int
    tokens: int
    objective: str
    head: str
    provider: str
    repeats: int
    time_s: float
    time_iqr_s: float
    cpu_s: float
    time_vs_bt: float
    time_vs_naive: float
    extra_peak_gb: float
    extra_over_bt_gb: float
    extra_over_bt_vs_weight_grad: float
    loss: float
    load: float


COLUMNS = {
    "objective": "objective",
    "head": "LM head",
    "provider": "provider",
    "repeats": "n",
    "time_s": "wall (s)",
    "time_iqr_s": "IQR",
    "cpu_s": "CPU (s)",
    "time_vs_bt": "× BT",
    "time_vs_naive": "× lean naive",
    "extra_peak_gb": "extra peak (GB)",
    "extra_over_bt_gb": "over BT (GB)",
    "extra_over_bt_vs_weight_grad": "over BT (× dW)",
    "loss": "loss (1st step)",
    "load": "load",
}


QUICK_CASES = [  # every provider, both heads, a reference copy; few processes
    Case("bt", "-", "-"),
    Case("sft", "trainable", "rmreg"),
    Case("sft", "trainable", "naive"),
    Case("sft", "trainable", "sequence"),
    Case("dpo-copy", "frozen", "official"),
    Case("dpo-copy", "frozen", "rmreg"),
]


def cases_for(args: argparse.Namespace) -> list[Case]:
    if args.quick:
        return QUICK_CASES
    cases = []
    for objective in args.objectives:
        if objective == "bt":
            cases.append(Case("bt", "-", "-"))
            continue
        cases += [Case(objective, head, p) for head in args.heads for p in args.providers]
    return cases


def make_rows(cfg: Config, results: dict[Case, dict]) -> list[Row]:
    bt = results.get(Case("bt", "-", "-"))
    clock = _harness.clock(cfg.device)
    weight_grad = 4 * cfg.vocab * PRESETS[cfg.preset]["hidden"]  # dW: the LM head's weight gradient in fp32
    rows = []
    for case, res in results.items():
        time_s = _harness.median(res[clock])
        naive = results.get(Case(case.objective, case.head, "naive"))
        rows.append(
            Row(
                preset=cfg.preset,
                vocab=cfg.vocab,
                tokens=cfg.tokens,
                objective=case.objective,
                head=case.head,
                provider=case.provider,
                repeats=len(res["times"]),
                time_s=_harness.median(res["times"]),
                time_iqr_s=_harness.iqr(res["times"]),
                cpu_s=_harness.median(res["cpu_times"]),
                time_vs_bt=time_s / _harness.median(bt[clock]) if bt else float("nan"),
                time_vs_naive=time_s / _harness.median(naive[clock]) if naive else float("nan"),
                extra_peak_gb=res["extra_bytes"] / 1e9,
                extra_over_bt_gb=(res["extra_bytes"] - bt["extra_bytes"]) / 1e9 if bt else float("nan"),
                extra_over_bt_vs_weight_grad=(res["extra_bytes"] - bt["extra_bytes"]) / weight_grad
                if bt
                else float("nan"),
                loss=res["loss"],
                load=res["load"],
            )
        )
    return rows


def write_outputs(rows: list[Row], args: argparse.Namespace, cfg: Config) -> None:
    out = Path(args.out)
    shape = PRESETS[cfg.preset]
    details = (
        f"{cfg.preset} ({shape['family']}, hidden {shape['hidden']}, {shape['layers']} layers, vocab {cfg.vocab}), "
        f"{cfg.pairs} pairs × {cfg.tokens} tokens (prompt = first half), {cfg.dtype}, SGD"
    )
    head = _harness.header(cfg.device, cfg.threads, details, args.repeats, args.rounds)
    _harness.write_reports(rows, out, "bench_step", head, COLUMNS)
    if _harness.have_matplotlib():
        groups = list(dict.fromkeys(f"{r.objective} {r.head}" for r in rows if r.objective != "bt"))
        picked = {(f"{r.objective} {r.head}", r.provider): r for r in rows}
        providers = list(dict.fromkeys(r.provider for r in rows if r.objective != "bt"))
        panels = [
            (
                label,
                {
                    p: [getattr(picked[g, p], name) if (g, p) in picked else float("nan") for g in groups]
                    for p in providers
                },
            )
            for label, name in (
                ("step time / Bradley–Terry step", "time_vs_bt"),
                ("extra peak over the Bradley–Terry step / dW", "extra_over_bt_vs_weight_grad"),
            )
        ]
        _harness.bar_plot(out / "bench_step.png", groups, panels)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and few cases: a smoke run")
    parser.add_argument("--preset", choices=PRESETS, default="tiny-llama")
    parser.add_argument("--vocab", type=int, default=None, help="default: 128,000 (256,000 for gemma-2b)")
    parser.add_argument("--tokens", type=int, default=None, help="tokens per row; default 512 (1024 for gemma-2b)")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=list(OBJECTIVES))
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS))
    parser.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--case-seconds", type=float, default=150.0, help="fewer repeats when a case is slower")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of all cases (times pooled)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    gemma = args.preset == "gemma-2b"
    args.vocab = args.vocab or (256_000 if gemma else 128_000)
    args.tokens = args.tokens or (1024 if gemma else 512)
    if args.quick:
        args.preset, args.vocab, args.tokens, args.threads, args.repeats, args.rounds = "quick", 2000, 64, 1, 2, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(worker(Config(**job["cfg"]), Case(**job["case"]), job["repeats"], job["budget"])))
        return
    cfg = Config(args.preset, args.vocab, args.tokens, args.pairs, args.dtype, args.device, args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    job = {"cfg": asdict(cfg), "repeats": args.repeats, "budget": args.case_seconds}
    results = _harness.run_rounds(
        cases_for(args),
        args.rounds,
        lambda case: _harness.spawn(__file__, {**job, "case": asdict(case)}),
        lambda case, res: print(
            f"{case}: {_harness.median(res['times']):.3f} s (CPU {_harness.median(res['cpu_times']):.3f} s), "
            f"+{res['extra_bytes'] / 1e9:.3f} GB, load {res['load']:.1f}",
            flush=True,
        ),
    )
    write_outputs(make_rows(cfg, results), args, cfg)
    print((Path(args.out) / "bench_step.md").read_text())


if __name__ == "__main__":
    main()
