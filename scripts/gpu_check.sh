#!/usr/bin/env bash
# One-GPU check (H100/H200), about 8 minutes: writes gpu_check.md with
#  1. the bf16 ~1.2B Llama train step (batch 8 x 2048): ours vs HF PyTorch on the same GPU, tokens/s and MFU
#     against the datasheet peak (scripts/benchmark_train.py --gpu-1b);
#  2. greedy generate of the same 1.2B Llama at batch 1 and 8, bf16, ours vs HF on the same GPU, and batch-1 decode as a fraction of
#     the HBM bandwidth XLA reaches on this GPU, with the bytes each token must read (weights + KV cache)
#     (scripts/benchmark_generate.py --gpu);
#  3. the same model's batch-1 decode step op by op (scripts/profile_decode.py --gpu): the bytes of weights a step
#     reads over the bandwidth XLA's own matrix-vector product reaches on those shapes on this GPU, and the
#     measured step as a fraction of that ceiling (the accounting docs/benchmarks.md uses on CPU).
# Needs jax with CUDA (pip install "jax[cuda12]") and a CUDA build of torch in the environment that runs it:
#     python -m venv .venv-gpu && .venv-gpu/bin/pip install -e . "jax[cuda12]" torch transformers accelerate
#     PYTHON=.venv-gpu/bin/python scripts/gpu_check.sh
# Not yet run on a GPU (no GPU was lent to the sessions that wrote it); the two benchmarks run on CPU as they are.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-gpu_check.md}
{
  echo "# GPU check, $(date -u +%F)"
  echo
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
  echo
  echo "## bf16 1.2B Llama train step"
  timeout 300 "$PYTHON" scripts/benchmark_train.py --gpu-1b --steps 5 --warmup 2 || echo "train benchmark failed (exit $?)"
  echo
  echo "## generate, bf16 Llama 1.2B"
  timeout 240 "$PYTHON" scripts/benchmark_generate.py --gpu --model llama-1b --repeats 5 || echo "generate benchmark failed (exit $?)"
  echo
  echo "## batch-1 decode against the matrix-vector ceiling, bf16 Llama 1.2B"
  timeout 120 "$PYTHON" scripts/profile_decode.py --gpu --model llama-1b --repeats 5 || echo "decode profile failed (exit $?)"
} 2>&1 | tee "$OUT"
