"""Reading GGUF files (llama.cpp's format): metadata, tensors dequantized through the ``gguf`` package.

A GGUF file holds a model's hyper-parameters and tokenizer as metadata under llama.cpp's key names,
and its weights as (often quantized) tensors under llama.cpp's tensor names. :func:`read_gguf` turns
them into what a Hugging Face checkpoint would hold, through the file architecture's entry in
:mod:`transformers_jax.gguf.architectures`:

    ckpt = read_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")
    ckpt.config        # a config.json-style dict for LlamaForCausalLM
    ckpt.state_dict    # float32 numpy arrays under Hugging Face PyTorch names and layouts

Reading and dequantizing are cached per (path, modification time, size) within a process, so a
second load of the same file is immediate; the cached arrays are shared and therefore read-only.
This package never builds tokenizers: ``transformers_jax.tokenization`` reads the ``tokenizer.*``
metadata through :func:`read_gguf_metadata`.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from transformers_jax.gguf.architectures import architecture_for

GGUF_MAGIC = b"GGUF"


@dataclasses.dataclass
class GGUFCheckpoint:
    """What a GGUF file holds, in Hugging Face terms.

    Attributes:
        path: the file read.
        config: a ``config.json``-style dict for the architecture's Hugging Face class.
        state_dict: float32 arrays under Hugging Face PyTorch names and layouts (``[out, in]``
            for linear weights); read-only, as they are shared with the in-process cache.
        tokenizer_metadata: the file's ``tokenizer.*`` metadata, keys without the ``tokenizer.`` prefix.
    """

    path: Path
    config: dict
    state_dict: dict[str, np.ndarray]
    tokenizer_metadata: dict


def tokenizer_metadata(metadata: dict) -> dict:
    """The ``tokenizer.*`` entries of ``metadata``, keys without the ``tokenizer.`` prefix."""
    return {k[len("tokenizer."):]: v for k, v in metadata.items() if k.startswith("tokenizer.")}


# ----------------------------------------------------------------------------------------------
# The file
# ----------------------------------------------------------------------------------------------
def _file_key(path) -> tuple[str, int, int]:
    """(resolved path, mtime, size): the cache key, after checking the file is there and is GGUF."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ValueError(f"{path} is not a GGUF file: it starts with {magic!r}, not {GGUF_MAGIC!r}")
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


@dataclasses.dataclass(frozen=True)
class _RawFile:
    metadata: dict  # every key-value pair, as plain Python values
    tensors: tuple  # (name, GGMLQuantizationType, raw data memory-mapped from the file)


@functools.lru_cache(maxsize=2)
def _read_raw(path: str, mtime_ns: int, size: int) -> _RawFile:
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except Exception as err:  # truncated or corrupt files fail deep inside the reader
        raise ValueError(f"cannot read GGUF file {path}: {err}") from err
    metadata = {name: field.contents() for name, field in reader.fields.items()}
    tensors = tuple((t.name, t.tensor_type, t.data) for t in reader.tensors)
    return _RawFile(metadata, tensors)


def read_gguf_metadata(path: str | os.PathLike) -> dict:
    """Every metadata key-value pair of a GGUF file as plain Python values (no tensor is read).

    The dict is shared with the in-process cache: do not change it.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not GGUF, or cannot be parsed.
    """
    return _read_raw(*_file_key(path)).metadata


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------
def _dequantize(data: np.ndarray, qtype) -> np.ndarray:
    import gguf

    weights = gguf.quants.dequantize(data, qtype)
    # Unquantized tensors come back as views of the memory-mapped file: copy those.
    copy_needed = qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
    return np.array(weights, dtype=np.float32, copy=copy_needed or None)


@functools.lru_cache(maxsize=2)
def _checkpoint(path: str, mtime_ns: int, size: int) -> GGUFCheckpoint:
    raw = _read_raw(path, mtime_ns, size)
    arch = architecture_for(raw.metadata, path)
    names = {name for name, _, _ in raw.tensors}
    config = arch.hf_config(raw.metadata, names, path)

    def convert(tensor):
        name, qtype, data = tensor
        weights = arch.fix_tensor(name, _dequantize(data, qtype), config)
        weights.setflags(write=False)
        return arch.hf_tensors(name, weights, config, path)  # one pair, or one per expert

    tensors = []
    for tensor in raw.tensors:
        name, qtype, data = tensor
        read_config = arch.config_tensor(name)
        if read_config is not None:  # config stored as a tensor (Phi-3's LongRoPE factors)
            read_config(config, _dequantize(data, qtype))
        elif name not in arch.ignored_tensors:
            tensors.append(tensor)
    for name, _, _ in tensors:  # fail on an unknown or missing tensor before the slow part
        arch.hf_tensor_name(name, path)
    arch.check_tensor_groups(names, path)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        state_dict = dict(pair for pairs in pool.map(convert, tensors) for pair in pairs)
    return GGUFCheckpoint(Path(path), config, state_dict, tokenizer_metadata(raw.metadata))


def read_gguf(path: str | os.PathLike) -> GGUFCheckpoint:
    """Read a GGUF file into a Hugging Face-style config and state dict.

    Every tensor is dequantized to float32 and renamed to its Hugging Face PyTorch name; the
    architecture's layout fix-ups are applied (for llama, llama.cpp's q/k row permutation is undone),
    so the arrays match what ``transformers`` loads from the same file. ``lm_head.weight`` is present
    only when the file has its own output matrix (else ``config["tie_word_embeddings"]`` is true).

    Results are cached per (path, modification time), so a repeated call is cheap; the arrays are
    shared with the cache and read-only (copy one before changing it in place).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not GGUF, or its architecture is not supported (the message names the
            file, its architecture and the supported ones), or it holds a tensor the model has no
            place for, or lacks one of a mixture-of-experts block's tensors (the message names it), or
            stacks another number of experts than its metadata says.
        KeyError: a metadata key the config needs is missing (the message names key and file).
    """
    cached = _checkpoint(*_file_key(path))
    return GGUFCheckpoint(
        cached.path, copy.deepcopy(cached.config), dict(cached.state_dict), dict(cached.tokenizer_metadata)
    )
