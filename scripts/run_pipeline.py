#!/usr/bin/env python
"""`transformers-jax pipeline` from a source checkout (the code is serving/pipeline_batch.py); --help for its options.

    python scripts/run_pipeline.py --task text-classification --model DIR --input in.jsonl --output out.jsonl \
        [--batch-size 8] [--set top_k=2] [--kwargs '{"function_to_apply": "sigmoid"}']
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.pipeline_batch import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
