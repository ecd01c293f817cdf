"""``transformers-jax env``: what a bug report needs: versions, the JAX backend and devices, the CPU, settings."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib import metadata

PACKAGES = ("transformers_jax", "jax", "jaxlib", "numpy", "optax", "orbax-checkpoint", "flax", "tokenizers",
            "huggingface_hub", "gguf", "ml_dtypes", "aiohttp", "datasets", "torch", "transformers")
SETTINGS = ("JAX_PLATFORMS", "XLA_FLAGS", "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
            "HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
            "TRANSFORMERS_JAX_COMPILATION_CACHE")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> dict:
    info = {"machine": platform.machine(), "model": platform.processor() or "unknown"}
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return info
    lines = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    lines = {k.strip(): v.strip() for k, v in lines.items()}
    flags = set(lines.get("flags", "").split())
    info["model"] = lines.get("model name", info["model"])
    info["vector extensions"] = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "none"
    info["cores"] = os.cpu_count()
    return info


def collect() -> dict:
    """Everything the command prints, as a dict."""
    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "cpu": _cpu(),
        "settings": {name: os.environ[name] for name in SETTINGS if name in os.environ},
    }
    from transformers_jax.compilation_cache import host_fingerprint, resolve_cache_dir

    cache = resolve_cache_dir()
    report["compilation cache"] = str(cache) if cache is not None else "off"
    report["host fingerprint"] = host_fingerprint()
    try:
        import jax

        devices = jax.devices()
        report["jax"] = {
            "backend": jax.default_backend(),
            "devices": len(devices),
            "device kinds": sorted({d.device_kind for d in devices}),
            "local devices": jax.local_device_count(),
            "processes": jax.process_count(),
            "process index": jax.process_index(),
        }
    except Exception as err:  # noqa: BLE001 - a broken backend is exactly what a bug report must show
        report["jax"] = {"error": f"{type(err).__name__}: {err}"}
    return report


def _lines(report: dict, indent: str = "") -> list[str]:
    out = []
    for key, value in report.items():
        if isinstance(value, dict):
            out.append(f"{indent}{key}:" if value else f"{indent}{key}: none")
            out.extend(_lines(value, indent + "  "))
        else:
            out.append(f"{indent}{key}: {', '.join(value) if isinstance(value, list) else value}")
    return out


def main(argv=None) -> int:
    """Print the environment report (``--json`` for JSON)."""
    parser = argparse.ArgumentParser(prog="transformers-jax env", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    report = collect()
    print(json.dumps(report, indent=2) if args.json else "\n".join(_lines(report)))
    return 0
