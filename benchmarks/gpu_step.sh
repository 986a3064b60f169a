#!/usr/bin/env bash
# GPU benchmarks at a Gemma-2B-like shape (hidden 2048, vocab 256,000, bf16, random weights), on one CUDA GPU:
#   1. the GPU test tier (tests/ops/test_gpu.py: the ops' bf16 gradients against fp32, both matmul modes);
#   2. the loss alone, 8 pairs × 256 and 1024 response tokens, bf16 weights: naive, rmreg chunked, sequence,
#      fused (two passes, the default) and fused-1pass (one pass, one weight-sized buffer), torch's
#      linear_cross_entropy (auto and rmreg's chunk), Liger-Kernel when installed;
#   3. the same under torch.autocast(bfloat16) with fp32 weights, and with Gemma 2's logit soft-cap (30);
#   4. the training step through RegularizedRewardModel (Gemma architecture, 18 layers, tied head), 4 pairs ×
#      1024 tokens: BT, SFT, DPO reference-free, DPO with precomputed reference; rmreg (two passes),
#      rmreg-1pass, sequence, torch, naive.
# Times are CUDA-event medians, memory max_memory_allocated minus the memory after building. Results go to
# benchmarks/results/gpu/ (loss-bf16/, loss-autocast/, loss-softcap/, step/). Never run here (no GPU was lent to
# the task that wrote it): an estimate of 15–25 minutes on one H100/H200. STEP_ARGS / LOSS_ARGS add options,
# e.g. LOSS_ARGS="--rounds 2". Install Liger-Kernel first (pip install liger-kernel) to include it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/gpu
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$out/gpu.txt"
python -m pytest tests/ops/test_gpu.py -q -p no:cacheprovider | tee "$out/test_gpu.txt"
shape=(--device cuda --pairs 8 --tokens 256 1024 --hidden 2048 --vocab 256000 --heads trainable frozen
       --objectives bt sft dpo-noref --repeats 5)
rmreg_providers=(naive chunked sequence fused fused-1pass)
peers=(torch torch-chunk)
if python -c "import liger_kernel" 2>/dev/null; then peers+=(liger); else echo "Liger-Kernel not installed: skipped"; fi
python benchmarks/bench_loss.py "${shape[@]}" --dtype bfloat16 --providers "${rmreg_providers[@]}" fused-groups \
    "${peers[@]}" --out "$out/loss-bf16" ${LOSS_ARGS:-}
python benchmarks/bench_loss.py "${shape[@]}" --autocast --providers "${rmreg_providers[@]}" torch-chunk \
    --out "$out/loss-autocast" ${LOSS_ARGS:-}
python benchmarks/bench_loss.py "${shape[@]}" --dtype bfloat16 --softcap 30 --providers "${rmreg_providers[@]}" \
    --out "$out/loss-softcap" ${LOSS_ARGS:-}
python benchmarks/bench_step.py --device cuda --preset gemma-2b --dtype bfloat16 --pairs 4 \
    --objectives bt sft dpo-noref dpo --heads trainable frozen --providers rmreg rmreg-1pass sequence torch naive \
    --repeats 5 --out "$out/step" ${STEP_ARGS:-}
