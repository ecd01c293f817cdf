#!/usr/bin/env python
"""Compile a pretraining recipe's train step for a TPU slice on this CPU host (needs libtpu) and report
memory, FLOPs, collectives and a roofline per chip; the code is train/aot.py.

    JAX_PLATFORMS=cpu python scripts/aot_compile.py --config configs/llama3_8b_v5p.yaml --topology v5p-128
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.aot import main  # noqa: E402

if __name__ == "__main__":
    main()
