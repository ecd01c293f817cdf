"""Packed token shards: the on-disk format that ``prepare_data`` writes, and reading it for training.

A shard directory holds ``shard-00000.bin``, ``shard-00001.bin``, ... (raw little-endian token ids, ``uint16`` when
the vocabulary fits, else ``uint32``; every shard ``shard_tokens`` long but the last) and ``index.json``: the format
and version, ``dtype``, ``vocab_size``, the tokenizer, the settings of the run, the sources and their fingerprints,
``num_tokens``, ``num_documents`` and ``shards`` (``file``, ``num_tokens``, ``sha256`` each). The shards concatenated
are one token stream: the documents in source order, each followed by EOS. ``index.json`` is written last, so a
directory with it is complete.

* :class:`ShardDataset` cuts the stream into rows of ``seq_len`` tokens (as :class:`~train.data.TokenFileDataset`
  does for one file), memory-mapping shards lazily; memory does not grow with the corpus (the index keeps one small
  record per shard, nothing per row).
* :func:`index_shuffle` is a keyed pseudo-random permutation of ``range(n)`` evaluated at given positions (a Feistel
  network with cycle walking), so an epoch's order is computed a batch at a time and never materialized.
* :class:`ShardLoader` is :class:`~train.data.DataLoader` with that order: same state dict ``{"epoch", "batch"}``
  (saved in the orbax checkpoint by the Trainer), same per-host rows.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from train.data import DataLoader

__all__ = ["FORMAT", "INDEX_FILE", "ShardDataset", "ShardLoader", "index_shuffle", "read_index", "shard_name",
           "token_dtype"]

FORMAT, VERSION = "transformers_jax.token_shards", 1
INDEX_FILE = "index.json"
TOKEN_DTYPES = ("uint16", "uint32")
FEISTEL_ROUNDS = 6


def shard_name(number: int) -> str:
    """File name of shard ``number``: ``shard-00012.bin``."""
    return f"shard-{number:05d}.bin"


def token_dtype(vocab_size: int, requested: str | None = None) -> np.dtype:
    """The dtype shards store ids in: ``requested`` ("uint16" or "uint32") after checking ``vocab_size`` ids fit
    it, else the smallest that fits."""
    if requested is None:
        requested = "uint16" if vocab_size <= 2 ** 16 else "uint32"
    if requested not in TOKEN_DTYPES:
        raise ValueError(f"dtype {requested!r} is not one of {TOKEN_DTYPES}")
    dtype = np.dtype(requested)
    if vocab_size - 1 > np.iinfo(dtype).max:
        raise ValueError(f"a vocabulary of {vocab_size} ids does not fit {requested} (largest id "
                         f"{np.iinfo(dtype).max}); use dtype uint32")
    return dtype


def sha256_file(path: Path, block: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in ``block``-byte pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while piece := handle.read(block):
            digest.update(piece)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------------------------
# the permutation
# --------------------------------------------------------------------------------------------------------------------


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer: a bijective uint64 -> uint64 hash (wrapping multiplies)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _feistel(x: np.ndarray, half: int, keys: np.ndarray) -> np.ndarray:
    """A balanced Feistel network on ``2 * half``-bit integers (uint64 [k]): a bijection of ``[0, 4**half)``."""
    mask = np.uint64((1 << half) - 1)
    left, right = x >> np.uint64(half), x & mask
    for key in keys:
        left, right = right, left ^ (_mix(right ^ key) & mask)
    return (left << np.uint64(half)) | right


def index_shuffle(positions, n: int, seed: int, epoch: int = 0) -> np.ndarray:
    """Entries ``positions`` of a pseudo-random permutation of ``range(n)`` keyed by ``(seed, epoch)``: int64 [k].

    The permutation is a Feistel network over the smallest ``[0, 4**h)`` holding ``n``, with cycle walking (an
    output ``>= n`` goes through the network again until it lands in range), so it is a bijection of
    ``range(n)`` computed for just the asked positions, in time and memory proportional to their number. The
    round keys come from ``np.random.SeedSequence([seed, 2, epoch])``; every host computes the same order.
    """
    positions = np.asarray(positions, np.int64).reshape(-1)  # [k]
    if n < 1:
        raise ValueError(f"index_shuffle needs n >= 1, got {n}")
    if positions.size and (positions.min() < 0 or positions.max() >= n):
        raise IndexError(f"positions must lie in [0, {n}), got [{positions.min()}, {positions.max()}]")
    half = max(1, (int(n - 1).bit_length() + 1) // 2)
    keys = np.random.SeedSequence([seed, 2, epoch]).generate_state(FEISTEL_ROUNDS, np.uint64)
    out = _feistel(positions.astype(np.uint64), half, keys)
    walking = np.flatnonzero(out >= n)
    while walking.size:  # at most 4 tries on average: the domain is < 4n
        out[walking] = _feistel(out[walking], half, keys)
        walking = walking[out[walking] >= n]
    return out.astype(np.int64)


# --------------------------------------------------------------------------------------------------------------------
# reading a shard directory
# --------------------------------------------------------------------------------------------------------------------


def read_index(directory: str | os.PathLike) -> dict:
    """``index.json`` of a shard directory, checked: format and version, dtype, the shard list, and each shard file
    present with the size its token count makes (a stat, not a read). Errors name the file."""
    directory = Path(directory)
    path = directory / INDEX_FILE
    if not directory.is_dir():
        raise FileNotFoundError(f"shard directory not found: {directory}")
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no {INDEX_FILE}: not a prepared shard directory, or prepare_data "
                                "has not finished there (run it again with the same arguments to resume)")
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON: {err.msg} (line {err.lineno})") from None
    for key in ("format", "version", "dtype", "vocab_size", "shard_tokens", "num_tokens", "shards"):
        if key not in index:
            raise ValueError(f"{path}: no '{key}' key")
    if index["format"] != FORMAT or index["version"] != VERSION:
        raise ValueError(f"{path}: format {index['format']!r} version {index['version']!r}; this reader knows "
                         f"{FORMAT!r} version {VERSION}")
    if index["dtype"] not in TOKEN_DTYPES:
        raise ValueError(f"{path}: dtype {index['dtype']!r} is not one of {TOKEN_DTYPES}")
    itemsize, shards = np.dtype(index["dtype"]).itemsize, index["shards"]
    if not shards:
        raise ValueError(f"{path}: lists no shards")
    for number, shard in enumerate(shards):
        file = directory / shard["file"]
        if not file.is_file():
            raise FileNotFoundError(f"{file}: shard listed in {path} is missing")
        size, expected = file.stat().st_size, shard["num_tokens"] * itemsize
        if size != expected:
            raise ValueError(f"{file}: {size} bytes, but {path} lists {shard['num_tokens']} {index['dtype']} tokens "
                             f"({expected} bytes): the shard is truncated or corrupted; prepare the data again")
        if number < len(shards) - 1 and shard["num_tokens"] != index["shard_tokens"]:
            raise ValueError(f"{file}: {shard['num_tokens']} tokens, but every shard but the last holds "
                             f"shard_tokens={index['shard_tokens']} ({path})")
    if sum(shard["num_tokens"] for shard in shards) != index["num_tokens"]:
        raise ValueError(f"{path}: the shards hold {sum(s['num_tokens'] for s in shards)} tokens, not num_tokens="
                         f"{index['num_tokens']}")
    return index


class ShardDataset:
    """The token stream of a shard directory as rows of ``seq_len`` tokens: item ``i`` is tokens
    ``[i*seq_len, (i+1)*seq_len)`` as ``{"input_ids", "labels"}`` (int32 [seq_len], labels equal to input_ids: the
    model shifts them), as :class:`~train.data.TokenFileDataset` gives for one file; a row may span two shards.
    ``len`` is ``floor(num_tokens / seq_len)``.

    Shards are memory-mapped when first read and at most ``max_open`` stay open (least recently used closed first).
    Reading a row touches only its bytes; ``bytes_read`` counts them. Memory is one small record per shard (the
    index), whatever the corpus size. :meth:`verify` checks every shard's sha256 against the index.
    """

    column_names = ["input_ids", "labels"]

    def __init__(self, directory: str | os.PathLike, seq_len: int, max_open: int = 64):
        if not isinstance(seq_len, (int, np.integer)) or seq_len <= 0:
            raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
        self.directory, self.seq_len, self.max_open = Path(directory), int(seq_len), max_open
        self.index = read_index(self.directory)
        self.dtype = np.dtype(self.index["dtype"])
        self.vocab_size, self.num_tokens = int(self.index["vocab_size"]), int(self.index["num_tokens"])
        self.shard_tokens = int(self.index["shard_tokens"])
        if self.num_tokens < self.seq_len:
            raise ValueError(f"{self.directory}: holds {self.num_tokens} tokens, fewer than one row of "
                             f"seq_len={self.seq_len}")
        self.bytes_read = 0
        self._open: OrderedDict[int, np.memmap] = OrderedDict()

    def __len__(self) -> int:
        return self.num_tokens // self.seq_len

    def _shard(self, number: int) -> np.memmap:
        """Shard ``number`` as a read-only memmap [its num_tokens]."""
        if number in self._open:
            self._open.move_to_end(number)
            return self._open[number]
        if len(self._open) >= self.max_open:
            self._open.popitem(last=False)
        tokens = np.memmap(self.directory / self.index["shards"][number]["file"], dtype=self.dtype, mode="r")
        self._open[number] = tokens
        return tokens

    def tokens(self, start: int, stop: int) -> np.ndarray:
        """Tokens ``[start, stop)`` of the stream (int32 [stop - start]), read from the one or more shards holding
        them."""
        pieces = []
        while start < stop:
            number, offset = divmod(start, self.shard_tokens)
            piece = self._shard(number)[offset:offset + stop - start]
            self.bytes_read += piece.nbytes
            pieces.append(piece)
            start += len(piece)
        return np.concatenate(pieces).astype(np.int32)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
        n, out = len(self), []
        for index in indices:
            if not -n <= index < n:
                raise IndexError(f"ShardDataset index {index} out of range for {n} rows")
            start = (int(index) % n) * self.seq_len
            row = self.tokens(start, start + self.seq_len)  # [seq_len]
            out.append({"input_ids": row, "labels": row.copy()})
        return out

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.__getitems__([index])[0]

    def verify(self) -> None:
        """Check every shard's sha256 against the index (reads the whole corpus); the error names the shard."""
        for shard in self.index["shards"]:
            file = self.directory / shard["file"]
            if sha256_file(file) != shard["sha256"]:
                raise ValueError(f"{file}: sha256 differs from {self.directory / INDEX_FILE}: the shard is corrupted")


class ShardLoader(DataLoader):
    """:class:`~train.data.DataLoader` whose epoch order is :func:`index_shuffle` (keyed by ``(seed, epoch)``),
    computed for each batch's positions only: memory does not grow with the dataset (the parent class holds a
    permutation of all rows). Without ``shuffle`` the order is ``0, 1, 2, ...``. Batching, per-host rows (only
    this host's rows are read with a row-wise collator), ``drop_last`` padding, and ``state_dict`` /
    ``load_state_dict`` (``{"epoch", "batch"}``) are the parent's. Works with any map-style dataset, made for
    :class:`ShardDataset`.
    """

    def epoch_order(self, epoch: int) -> np.ndarray:
        raise TypeError("ShardLoader computes its order a batch at a time (batch_order); it never holds a whole "
                        "epoch's order")

    def batch_order(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        """The dataset indices at ``positions`` of ``epoch``'s order (int64 [k])."""
        if not self.shuffle:
            return np.asarray(positions, np.int64)
        return index_shuffle(positions, self.num_rows, self.seed, epoch)
