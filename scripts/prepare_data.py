#!/usr/bin/env python
"""`transformers-jax prepare-data` from a source checkout (the code is train/prepare_data.py); --help for its
options."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.prepare_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
