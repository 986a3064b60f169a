#!/usr/bin/env bash
# GPU benchmarks at a Gemma-2B-like shape (hidden 2048, 18 layers, vocab 256,000, 1024 tokens, bf16, random
# weights): the training step through RegularizedRewardModel, then the loss alone. Needs one CUDA GPU with
# ~40 GB free (the official-style cases materialize [4, 1024, 256k] fp32 logits). Results go to
# benchmarks/results/gpu/ (bench_step.*, bench_loss.*). About 10 minutes on one H100 (estimate: no GPU was at
# hand when this was written); STEP_ARGS / LOSS_ARGS add options, e.g. STEP_ARGS="--rounds 2".
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/gpu
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$out/gpu.txt"
python benchmarks/bench_step.py --device cuda --preset gemma-2b --dtype bfloat16 \
    --objectives bt sft dpo-noref dpo --heads trainable frozen --providers rmreg naive official \
    --repeats 5 --out "$out" ${STEP_ARGS:-}
python benchmarks/bench_loss.py --device cuda --dtype bfloat16 --pairs 2 --tokens 1024 --hidden 2048 --vocab 256000 \
    --objectives bt sft dpo-noref --providers naive official chunked fused --repeats 5 --out "$out" ${LOSS_ARGS:-}
