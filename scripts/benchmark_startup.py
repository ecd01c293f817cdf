#!/usr/bin/env python
"""Server start-up with and without compiled programs on disk: seconds from launching
``transformers-jax serve`` until ``/health`` answers, first with an empty persistent compilation cache
(everything compiles), then again with the cache the first start filled.

    .venv/bin/python scripts/benchmark_startup.py [--config configs/serve_smollm2.yaml] [--warm-runs 2]

Each start runs in a fresh process, is stopped with SIGINT once healthy, and the next one begins after
it has exited. Run it alone: on two cores any other busy process spoils the numbers.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_once(config: Path, cache: Path, timeout: float = 1800.0) -> float:
    """Seconds until /health answers 200 for one fresh server process (then stopped)."""
    port = free_port()
    env = {**os.environ, "TRANSFORMERS_JAX_COMPILATION_CACHE": str(cache)}
    exe = Path(sys.executable).with_name("transformers-jax")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "transformers_jax_cli"]
    began = time.perf_counter()
    proc = subprocess.Popen([*command, "serve", "--config", str(config), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{proc.stderr.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - began
            except OSError:
                pass
            if time.perf_counter() - began > timeout:
                raise TimeoutError(f"not healthy after {timeout:.0f} s")
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "serve_smollm2.yaml")
    parser.add_argument("--warm-runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="startup-xla-") as cache:
        cold = start_once(args.config, Path(cache))
        files = sorted(Path(cache).iterdir())
        size = sum(f.stat().st_size for f in files) / 2**20
        warm = [start_once(args.config, Path(cache)) for _ in range(args.warm_runs)]
    print(f"{args.config.name}: first start (empty cache) {cold:.1f} s to a healthy /health; "
          f"cache {len(files)} programs, {size:.1f} MiB")
    print("second start (warm cache): " + ", ".join(f"{w:.1f} s" for w in warm))


if __name__ == "__main__":
    main()
