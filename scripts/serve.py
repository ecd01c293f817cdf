#!/usr/bin/env python
"""`transformers-jax serve` from a source checkout (the code is serving/cli.py); --help for its options."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.cli import serve_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(serve_main())
