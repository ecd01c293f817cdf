"""Files: choosing and reading checkpoint weights (safetensors, .bin, flax), atomic saves.

(Finding a checkpoint, locally or on the hub, is ``transformers_jax.hub_download``.)

safetensors is a simple format (an 8-byte little-endian header length, a JSON header, raw bytes),
so it is read here directly with numpy and ml_dtypes: that reads bfloat16 (which
``safetensors.numpy`` cannot) and lets a truncated file fail with a message that names it.
"""
from __future__ import annotations

import json
import mmap
import os
from pathlib import Path

import ml_dtypes
import numpy as np

from transformers_jax.file_utils import atomic_path, atomic_write, ensure_directory, staged_directory  # noqa: F401 (re-exported)

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PT_WEIGHTS_NAME = "pytorch_model.bin"
PT_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
FLAX_WEIGHTS_NAME = "flax_model.msgpack"
FLAX_WEIGHTS_INDEX_NAME = "flax_model.msgpack.index.json"

_ST_DTYPES = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file atomically (see :mod:`transformers_jax.file_utils`)."""
    atomic_write(path, text)


# ----------------------------------------------------------------------------- safetensors
def read_safetensors_header(path: Path) -> tuple[dict, int]:
    """Return (header dict, byte offset of the data section); checks the file is complete."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise ValueError(f"{path} is not a safetensors file (shorter than its 8-byte header length)")
        header_len = int.from_bytes(raw, "little")
        if header_len > size - 8:
            raise ValueError(f"{path} is truncated or not a safetensors file (header of {header_len} bytes)")
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{path} is not a safetensors file (its header is not JSON)") from None
    data_start = 8 + header_len
    end = max((info["data_offsets"][1] for k, info in header.items() if k != "__metadata__"), default=0)
    if data_start + end > size:
        raise ValueError(
            f"{path} is truncated: its header describes {data_start + end} bytes but the file has {size}"
        )
    return header, data_start


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every tensor of a safetensors file into numpy arrays (bfloat16 included)."""
    path = Path(path)
    header, data_start = read_safetensors_header(path)
    tensors = {}
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if path.stat().st_size else None
        try:
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                if info["dtype"] not in _ST_DTYPES:
                    raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
                dtype = _ST_DTYPES[info["dtype"]]
                begin, end = info["data_offsets"]
                shape = tuple(info["shape"])
                expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if end - begin != expected:
                    raise ValueError(f"{path}: tensor {name!r} has {end - begin} bytes, shape {shape} needs {expected}")
                buf = mm[data_start + begin : data_start + end]
                tensors[name] = np.frombuffer(buf, dtype=dtype).reshape(shape).copy()
        finally:
            if mm is not None:
                mm.close()
    return tensors


def save_safetensors(tensors: dict[str, np.ndarray], path: Path, metadata: dict | None = None) -> None:
    """Write numpy arrays as a safetensors file (keys sorted, 8-byte aligned header)."""
    header: dict = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    arrays = {}
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        if arr.dtype not in _ST_NAMES:
            raise ValueError(f"cannot save tensor {name!r} of dtype {arr.dtype} to safetensors")
        header[name] = {"dtype": _ST_NAMES[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        arrays[name] = arr
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as f:
        f.write(len(header_bytes).to_bytes(8, "little"))
        f.write(header_bytes)
        for name in sorted(arrays):
            f.write(arrays[name].tobytes())


def parse_size(size: int | str) -> int:
    """'5GB' / '500MB' / '10KB' / int -> bytes (decimal units, as Hugging Face)."""
    if isinstance(size, int):
        return size
    text = size.strip().upper()
    for unit, factor in (("GIB", 2**30), ("MIB", 2**20), ("KIB", 2**10), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3), ("B", 1)):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    raise ValueError(f"max_shard_size={size!r} is not a size such as '5GB' or an integer number of bytes")


def save_state_dict(state_dict: dict[str, np.ndarray], directory: Path, max_shard_size: int | str = "5GB") -> list[str]:
    """Write a state dict as model.safetensors, or as shards with an index above ``max_shard_size``."""
    return save_sharded(state_dict, directory, max_shard_size, SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, save_safetensors)


def save_sharded(tensors: dict[str, np.ndarray], directory: Path, max_shard_size: int | str, weights_name: str,
                 index_name: str, write_file) -> list[str]:
    """Write ``tensors`` (in sorted name order) with ``write_file(tensors, path)``: one file
    ``weights_name``, or shards ``<stem>-00001-of-0000N<suffix>`` of at most ``max_shard_size`` bytes
    (a larger tensor gets a shard of its own) and a JSON ``index_name`` mapping each name to its
    shard, as Hugging Face names them. Returns the names of the files written."""
    limit = parse_size(max_shard_size)
    shards: list[dict] = [{}]
    sizes = [0]
    for name in sorted(tensors):
        nbytes = tensors[name].nbytes
        if shards[-1] and sizes[-1] + nbytes > limit:
            shards.append({})
            sizes.append(0)
        shards[-1][name] = tensors[name]
        sizes[-1] += nbytes
    if len(shards) == 1:
        write_file(shards[0], directory / weights_name)
        return [weights_name]
    stem, suffix = weights_name.split(".", 1)
    names = [f"{stem}-{i + 1:05d}-of-{len(shards):05d}.{suffix}" for i in range(len(shards))]
    weight_map = {}
    for name, shard in zip(names, shards):
        write_file(shard, directory / name)
        weight_map.update({k: name for k in shard})
    index = {"metadata": {"total_size": sum(sizes)}, "weight_map": dict(sorted(weight_map.items()))}
    (directory / index_name).write_text(json.dumps(index, indent=2) + "\n")
    return names + [index_name]


def select_weights(has, where: str, use_safetensors: bool | None = None, from_flax: bool | None = None,
                   note: str = "") -> str:
    """The weights file ``from_pretrained`` reads (the index, for a sharded checkpoint); ``has(name)`` tells what exists.

    Safetensors by default; ``pytorch_model.bin`` only with ``use_safetensors=False`` (pickled weights need an
    explicit opt-in); ``flax_model.msgpack`` with ``from_flax=True``, or unasked (``from_flax=None``) when it is
    the only weights. Errors name ``where`` and end with ``note``.
    """
    if from_flax and use_safetensors is not None:
        raise ValueError("from_flax=True reads flax_model.msgpack: do not pass use_safetensors with it")
    if from_flax:
        candidates = (FLAX_WEIGHTS_INDEX_NAME, FLAX_WEIGHTS_NAME)
    elif use_safetensors is False:
        candidates = (PT_WEIGHTS_INDEX_NAME, PT_WEIGHTS_NAME)
    else:
        candidates = (SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME)
    for name in candidates:
        if has(name):
            return name
    if use_safetensors is None and not from_flax:
        if has(PT_WEIGHTS_NAME) or has(PT_WEIGHTS_INDEX_NAME):
            raise FileNotFoundError(
                f"{where} has {PT_WEIGHTS_NAME} but no {SAFE_WEIGHTS_NAME}; pickled weights are read only on "
                f"explicit opt-in: pass use_safetensors=False (loaded with torch.load(weights_only=True)){note}"
            )
        flax = [name for name in (FLAX_WEIGHTS_INDEX_NAME, FLAX_WEIGHTS_NAME) if has(name)]
        if flax and from_flax is None:
            return flax[0]
        if flax:
            raise FileNotFoundError(f"{where} has only Flax weights ({FLAX_WEIGHTS_NAME}); from_flax=False "
                                    f"refuses them: pass from_flax=True (or leave it unset) to load them{note}")
    raise FileNotFoundError(f"no weights in {where}: expected {candidates[1]} or {candidates[0]}{note}")


def load_state_dict(directory: Path, use_safetensors: bool | None = None) -> dict[str, np.ndarray]:
    """Read a checkpoint's PyTorch weights from ``directory``: safetensors (single or sharded), or .bin on request.

    ``use_safetensors=False`` is the explicit opt-in for ``pytorch_model.bin``; it is unpickled with
    ``torch.load(weights_only=True)``, which refuses arbitrary Python objects. (Flax weights need the
    model class to convert them: ``PreTrainedModel.from_pretrained`` reads those.)
    """
    name = select_weights(lambda n: (directory / n).is_file(), str(directory), use_safetensors, from_flax=False)
    load_one = load_safetensors if name.startswith(SAFE_WEIGHTS_NAME) else load_torch_bin
    if name.endswith(".index.json"):
        return _load_sharded(directory, directory / name, load_one)
    return load_one(directory / name)


def read_weight_map(index_path: Path) -> dict[str, str]:
    """The ``weight_map`` (tensor name -> shard file) of a sharded checkpoint's index."""
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{index_path} is not a valid index (it needs a 'weight_map' object)") from None
    if not isinstance(weight_map, dict):
        raise ValueError(f"{index_path} is not a valid index (it needs a 'weight_map' object)")
    return weight_map


def _load_sharded(directory: Path, index_path: Path, load_one) -> dict[str, np.ndarray]:
    weight_map = read_weight_map(index_path)
    state = {}
    for shard in sorted(set(weight_map.values())):
        if not (directory / shard).is_file():
            raise FileNotFoundError(f"{index_path} names shard {shard}, which is missing from {directory}")
        state.update(load_one(directory / shard))
    missing = sorted(set(weight_map) - set(state))
    if missing:
        raise ValueError(f"{index_path} lists {missing[0]!r} but no shard holds it")
    return state


def load_torch_bin(path: Path) -> dict[str, np.ndarray]:
    """Read a PyTorch .bin state dict with restricted unpickling (torch.load weights_only=True)."""
    try:
        import torch
    except ImportError:
        raise ImportError(f"reading {path} needs PyTorch (pip install torch==2.13.0)") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for name, tensor in state.items():
        if tensor.dtype == torch.bfloat16:
            out[name] = tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        else:
            out[name] = tensor.numpy()
    return out
