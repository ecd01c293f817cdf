"""JAX's persistent compilation cache: compiled programs kept on disk, so a second start skips XLA.

The command-line tools (``transformers-jax serve|chat|generate|finetune|pretrain`` and the scripts)
turn it on by default; library users call :func:`enable_compilation_cache` themselves. Where the
cache lives, in order: the ``cache_dir`` argument, ``$TRANSFORMERS_JAX_COMPILATION_CACHE``, else
``$XDG_CACHE_HOME/transformers_jax/xla`` (``~/.cache/...``). Setting the variable to ``0``, ``off``,
``false`` or ``none`` turns the cache off (the tools' ``--no-compilation-cache`` flag does the same).

Programs compiled for the CPU use the host's instruction set (AVX-512 here, AVX2 there), which
JAX's cache key does not include, so the default folder gets one sub-folder per CPU model and
feature set: a home directory shared between different machines never hands one of them code it
cannot run.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
from pathlib import Path

logger = logging.getLogger("transformers_jax")

ENV_VAR = "TRANSFORMERS_JAX_COMPILATION_CACHE"
_OFF = {"0", "off", "false", "no", "none"}
# Programs that compile faster than this are not worth a disk round trip.
MIN_COMPILE_SECONDS = 0.1


def host_fingerprint() -> str:
    """A short, stable name for this host's CPU model and instruction-set features."""
    text = platform.machine()
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = platform.processor()
    for key in ("model name", "flags", "Features", "CPU part"):
        line = next((ln for ln in info.splitlines() if ln.startswith(key)), "")
        text += "|" + line.split(":", 1)[-1].strip()
    return f"{platform.machine()}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/transformers_jax/xla/<host fingerprint>`` (``~/.cache`` without XDG)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "transformers_jax" / "xla" / host_fingerprint()


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder the cache would use, or None when it is switched off by the environment."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    setting = os.environ.get(ENV_VAR)
    if setting is not None:
        return None if setting.strip().lower() in _OFF else Path(setting).expanduser()
    return default_cache_dir()


def enable_compilation_cache(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache; returns its folder (None: switched off).

    Call it before the programs to be cached are compiled. Every program that takes longer than
    ``MIN_COMPILE_SECONDS`` to compile is written; a later process with the same program, JAX
    version and XLA flags loads it instead of compiling.
    """
    import jax

    path = resolve_cache_dir(cache_dir)
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create the compilation cache folder {path}: {err.strerror}; set {ENV_VAR} "
                      f"to another folder, or to 'off'") from None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    logger.info("persistent compilation cache: %s", path)
    return path


def add_arguments(parser) -> None:
    """``--compilation-cache DIR`` and ``--no-compilation-cache`` on a command-line tool's parser."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--compilation-cache", metavar="DIR", dest="compilation_cache", default=None,
                       help=f"keep compiled programs in DIR (default: ${ENV_VAR}, else ~/.cache/transformers_jax/xla)")
    group.add_argument("--no-compilation-cache", dest="compilation_cache", action="store_const", const="off",
                       help="compile everything afresh, keep nothing on disk")


def configure_from_args(args) -> Path | None:
    """Turn the cache on as the tool's flags (else the environment, else the default) say; returns its folder."""
    setting = getattr(args, "compilation_cache", None)
    if setting == "off":
        return None
    return enable_compilation_cache(setting)


__all__ = ["ENV_VAR", "add_arguments", "configure_from_args", "default_cache_dir", "enable_compilation_cache",
           "host_fingerprint", "resolve_cache_dir"]
