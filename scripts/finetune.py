#!/usr/bin/env python
"""`transformers-jax finetune` from a source checkout (the code is train/finetune.py); --help for its options."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.finetune import main  # noqa: E402

if __name__ == "__main__":
    main()
