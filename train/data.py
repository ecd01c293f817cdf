"""Datasets and the data loader of the training package.

* :func:`load_rows` reads ``.jsonl`` / ``.csv`` / ``.txt`` files into a list of dicts; :func:`tokenize_rows` turns
  them into classification features.
* :class:`TokenFileDataset` serves a pre-tokenized flat token stream (``.npy`` or raw ``.bin``) through a memmap;
  :class:`ArrayDataset` serves the rows of equal-length arrays (e.g. :func:`pack_sequences` output). Any object
  with ``__len__`` and ``__getitem__`` returning a feature dict is a dataset, a plain list of dicts and a
  ``datasets.Dataset`` included; a re-iterable without ``__len__`` (``datasets.IterableDataset``) is a stream.
* :class:`DataLoader` (map-style) and :class:`StreamingDataLoader` (streams) yield host-local batches in a
  deterministic, resumable order.

The collators live in :mod:`train.collators` and are re-exported here.
"""
from __future__ import annotations

import csv
import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from train.collators import (
    IGNORE_INDEX,
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    default_data_collator,
    pack_sequences,
)

__all__ = [
    "IGNORE_INDEX",
    "ArrayDataset",
    "DataCollatorForLanguageModeling",
    "DataCollatorWithPadding",
    "DataLoader",
    "StreamingDataLoader",
    "TokenFileDataset",
    "default_data_collator",
    "is_streamed",
    "load_rows",
    "pack_sequences",
    "tokenize_rows",
]

SUPPORTED_TEXT_FORMATS = (".jsonl", ".csv", ".txt")
SUPPORTED_TOKEN_FORMATS = (".npy", ".bin")


# --------------------------------------------------------------------------------------------------------------------
# reading text datasets
# --------------------------------------------------------------------------------------------------------------------


def _check_fields(row: Any, required: Sequence[str], where: str) -> dict:
    """``row`` must be a dict holding every required field; ``where`` is ``path:line`` for the error."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__} {row!r:.60}")
    for field in required:
        if field not in row:
            raise ValueError(f"{where}: row has no field '{field}' (fields: {sorted(row)})")
    return row


def iter_jsonl(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` of each JSON object of a ``.jsonl`` file, read a line at a time (blank lines skipped);
    every row must hold the ``required`` fields. Errors name ``path:line``."""
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_number}: malformed JSON: {err.msg} (column {err.colno})") from None
            yield line_number, _check_fields(row, required, f"{path}:{line_number}")


def _read_csv(path: Path, required: Sequence[str]) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty CSV file, expected a header row")
        for field in required:
            if field not in header:
                raise ValueError(f"{path}:1: the header has no column '{field}' (columns: {header})")
        for values in reader:
            if not values:  # blank line
                continue
            if len(values) != len(header):
                raise ValueError(
                    f"{path}:{reader.line_num}: expected {len(header)} columns (as in the header) but found "
                    f"{len(values)}"
                )
            rows.append(dict(zip(header, values)))
    return rows


def iter_txt(path: Path) -> Iterator[str]:
    """The documents of a ``.txt`` file: one per non-empty line (line end removed), read a line at a time."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line.rstrip("\r\n")


def load_rows(path: str | os.PathLike, text_field: str = "text", required_fields: Sequence[str] = ()) -> list[dict]:
    """Read a text dataset file into a list of row dicts.

    Formats, by extension: ``.jsonl`` (one JSON object per line; blank lines skipped), ``.csv`` (a header row, then
    one row per line; values stay strings), ``.txt`` (one document per non-empty line, as ``{text_field: line}``).
    Every row must hold ``text_field`` and each of ``required_fields`` (e.g. the label column).

    Raises:
        FileNotFoundError: the file does not exist (the message names the path).
        ValueError: unknown extension (lists the supported ones); malformed JSON, a line that is not a JSON object,
            a missing field, or a CSV row with the wrong number of columns (each names ``path:line``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_TEXT_FORMATS:
        raise ValueError(f"{path}: unsupported extension {suffix!r}; supported: {', '.join(SUPPORTED_TEXT_FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"Dataset file not found: {path}")
    required = [text_field, *[f for f in required_fields if f != text_field]]
    if suffix == ".jsonl":
        return [row for _, row in iter_jsonl(path, required)]
    if suffix == ".csv":
        return _read_csv(path, required)
    return [{text_field: text} for text in iter_txt(path)]


def _label_value(value: Any, index: int, field: str, label2id: Mapping | None) -> int | float | list:
    """One row's label: an int, a float, a list of them, or a string mapped through ``label2id``."""
    if isinstance(value, str):
        if label2id is None:
            raise ValueError(f"row {index}: label {value!r} in '{field}' is a string; pass label2id to map it")
        if value not in label2id:
            raise ValueError(f"row {index}: unknown label {value!r} in '{field}'; label2id knows {sorted(label2id)}")
        return int(label2id[value])
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, np.generic):
        value = value.item()
    numbers = (int, float, np.integer, np.floating)
    if isinstance(value, (int, float)) or (isinstance(value, list) and all(isinstance(v, numbers) for v in value)):
        return value
    raise ValueError(f"row {index}: label {value!r:.40} in '{field}' is not an int, float, list of numbers or string")


def tokenize_rows(rows: Sequence[Mapping], tokenizer, text_field: str = "text", text_pair_field: str | None = None,
                  label_field: str | None = None, max_length: int | None = None,
                  label2id: Mapping[str, int] | None = None) -> list[dict]:
    """Tokenize rows for sequence classification; returns one feature dict (python lists / ints) per row.

    Each feature has ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer gives them),
    unpadded and truncated to ``max_length`` (default: the tokenizer's ``model_max_length``), plus ``labels`` when
    ``label_field`` is given: ints and floats as they are, strings mapped through ``label2id``.

    Raises ``ValueError`` naming the row index and field for a missing field, a non-string text, a string label
    without ``label2id``, or a label that ``label2id`` does not know.
    """
    fields = [f for f in (text_field, text_pair_field) if f is not None]
    for index, row in enumerate(rows):
        for field in fields + ([label_field] if label_field else []):
            if field not in row:
                raise ValueError(f"row {index} has no field '{field}' (fields: {sorted(row)})")
        for field in fields:
            if not isinstance(row[field], str):
                raise ValueError(f"row {index}: '{field}' must be a string, got {type(row[field]).__name__}")
    if not rows:
        return []
    texts = [row[text_field] for row in rows]
    pairs = [row[text_pair_field] for row in rows] if text_pair_field else None
    encoded = tokenizer(texts, text_pair=pairs, truncation=True, max_length=max_length)
    features = [{key: list(values[i]) for key, values in encoded.items()} for i in range(len(rows))]
    if label_field:
        for index, (row, feature) in enumerate(zip(rows, features)):
            feature["labels"] = _label_value(row[label_field], index, label_field, label2id)
    return features


# --------------------------------------------------------------------------------------------------------------------
# array-backed datasets
# --------------------------------------------------------------------------------------------------------------------


class ArrayDataset:
    """Rows of a dict of arrays with a common leading axis: item i is ``{key: array[i]}``.

    Made for :func:`pack_sequences` output; collate its items with :func:`default_data_collator`.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array")
        self.arrays = {key: np.asarray(value) for key, value in arrays.items()}
        lengths = {key: value.shape[0] if value.ndim else None for key, value in self.arrays.items()}
        if len(set(lengths.values())) != 1 or None in lengths.values():
            raise ValueError(f"ArrayDataset arrays need one common leading length, got {lengths}")
        self._length = next(iter(lengths.values()))
        self.column_names = list(self.arrays)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not -self._length <= index < self._length:
            raise IndexError(f"ArrayDataset index {index} out of range for {self._length} rows")
        return {key: value[index] for key, value in self.arrays.items()}


class TokenFileDataset:
    """A pre-tokenized corpus stored as one flat token stream, read lazily through a memmap.

    ``.npy`` files are opened with ``np.load(mmap_mode="r")``; raw ``.bin`` files need ``dtype`` (e.g.
    ``np.uint16``). Item ``i`` is ``tokens[i*seq_len:(i+1)*seq_len]`` as ``{"input_ids", "labels"}`` (int32 [seq_len],
    labels equal to input_ids: the model shifts them). ``len`` is ``floor(n_tokens / seq_len)``; a shorter tail is
    left out. Reading item ``i`` touches only its ``seq_len`` tokens of the file; ``bytes_read`` counts the bytes
    of the items read so far (what a host of a multi-host run reads: its own rows only, see :class:`DataLoader`).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an unknown extension, a ``.bin`` without
    ``dtype``, an array that is not 1-D or not integer, or a file with fewer than ``seq_len`` tokens.
    """

    def __init__(self, path: str | os.PathLike, seq_len: int, dtype: Any = None):
        path = Path(path)
        if not isinstance(seq_len, (int, np.integer)) or seq_len <= 0:
            raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_TOKEN_FORMATS:
            supported = ", ".join(SUPPORTED_TOKEN_FORMATS)
            raise ValueError(f"{path}: unsupported extension {suffix!r}; supported: {supported}")
        if not path.is_file():
            raise FileNotFoundError(f"Token file not found: {path}")
        self.path, self.seq_len = path, int(seq_len)
        self.tokens = self._open(path, suffix, dtype)  # [N]
        if self.tokens.ndim != 1:
            raise ValueError(f"{path}: expected a flat 1-D token stream, got an array of shape {self.tokens.shape}")
        if not np.issubdtype(self.tokens.dtype, np.integer):
            raise ValueError(f"{path}: token ids must be integers, got dtype {self.tokens.dtype}")
        if len(self.tokens) < self.seq_len:
            raise ValueError(f"{path}: holds {len(self.tokens)} tokens, fewer than one row of seq_len={self.seq_len}")
        self.bytes_read = 0

    column_names = ["input_ids", "labels"]

    @staticmethod
    def _open(path: Path, suffix: str, dtype: Any) -> np.ndarray:
        if suffix == ".npy":
            return np.load(path, mmap_mode="r")
        if dtype is None:
            raise ValueError(f"{path}: a raw .bin token file needs dtype= (e.g. np.uint16 or np.int32)")
        dtype = np.dtype(dtype)
        size = path.stat().st_size
        if size % dtype.itemsize:
            raise ValueError(f"{path}: {size} bytes is not a whole number of {dtype} tokens ({dtype.itemsize} bytes)")
        if size == 0:
            return np.zeros(0, dtype)  # np.memmap refuses empty files
        return np.memmap(path, dtype=dtype, mode="r")

    def __len__(self) -> int:
        return len(self.tokens) // self.seq_len

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"TokenFileDataset index {index} out of range for {n} rows")
        index %= n
        stored = self.tokens[index * self.seq_len:(index + 1) * self.seq_len]  # [seq_len], a view of the file
        self.bytes_read += stored.nbytes
        row = np.asarray(stored, np.int32)  # [seq_len]
        return {"input_ids": row, "labels": row.copy()}


# --------------------------------------------------------------------------------------------------------------------
# loader
# --------------------------------------------------------------------------------------------------------------------


def _check_loader_args(global_batch_size, seed, process_index, process_count) -> tuple[int, int]:
    """Validate the loader arguments; returns (process_index, process_count), read from JAX when None."""
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    for name, value in (("global_batch_size", global_batch_size), ("process_count", process_count)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(process_index, (int, np.integer)) or not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index!r} must be in [0, process_count={process_count})")
    if global_batch_size % process_count:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by process_count={process_count}; "
            "every host needs the same number of rows"
        )
    return process_index, process_count


def _check_position(state: Mapping[str, int]) -> tuple[int, int]:
    """``(epoch, batch)`` of a loader state dict, or an error naming the bad key."""
    for key in ("epoch", "batch"):
        if key not in state:
            raise KeyError(f"DataLoader state has no '{key}' (got keys {sorted(state)})")
        if not isinstance(state[key], (int, np.integer)) or state[key] < 0:
            raise ValueError(f"DataLoader state '{key}' must be a non-negative integer, got {state[key]!r}")
    return int(state["epoch"]), int(state["batch"])


class _HostBatcher:
    """What both loaders share: arguments, the position ``(epoch, batch)``, and making this host's rows of a global
    batch (see :class:`DataLoader` for the rules). ``rows_read`` counts the dataset rows this host has read."""

    def __init__(self, dataset, global_batch_size: int, collate_fn: Callable, seed: int, drop_last: bool,
                 process_index: int | None, process_count: int | None):
        process_index, process_count = _check_loader_args(global_batch_size, seed, process_index, process_count)
        self.dataset, self.collate_fn = dataset, collate_fn
        self.global_batch_size, self.seed, self.drop_last = global_batch_size, seed, drop_last
        self.process_index, self.process_count = process_index, process_count
        self.local_batch_size = global_batch_size // process_count
        self.rowwise = bool(getattr(collate_fn, "rowwise", False))
        self.rows_read = 0
        self._epoch, self._batch = 0, 0

    def host_rows(self) -> slice:
        """This host's positions in a global batch: ``[p*G/P, (p+1)*G/P)``."""
        lo = self.process_index * self.local_batch_size
        return slice(lo, lo + self.local_batch_size)

    def _collate(self, rows: list, valid: np.ndarray, epoch: int, batch: int) -> dict[str, np.ndarray]:
        """``collate_fn`` over ``rows`` (with the batch's rng), checked to give one row per feature; ``_valid``
        added when ``drop_last`` is off."""
        collated = self.collate_fn(rows, rng=np.random.default_rng([self.seed, 1, epoch, batch]))
        out = {}
        for key, value in collated.items():
            value = np.asarray(value)
            if value.ndim == 0 or value.shape[0] != len(rows):
                whole = "this host's rows" if len(rows) != self.global_batch_size else "the global batch"
                raise ValueError(
                    f"collate_fn returned '{key}' with shape {value.shape}; expected {whole} ({len(rows)} rows) on "
                    "axis 0"
                )
            out[key] = value
        if not self.drop_last:
            out["_valid"] = valid
        return out

    def _host_batch(self, rows: list, epoch: int, batch: int) -> dict[str, np.ndarray]:
        """This host's part of the global batch ``rows`` (padded to G by repeating its first row when ``drop_last``
        is off): its own rows collated when the collator is row-wise, else the whole batch collated and sliced."""
        G = self.global_batch_size
        valid = np.arange(G) < len(rows)  # [G]
        rows = list(rows) + [rows[0]] * (G - len(rows))
        mine = self.host_rows()
        if self.rowwise:
            return self._collate(rows[mine], valid[mine], epoch, batch)
        return {key: value[mine] for key, value in self._collate(rows, valid, epoch, batch).items()}

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "batch"}`` of the NEXT batch that iteration will produce."""
        return {"epoch": self._epoch, "batch": self._batch}


class DataLoader(_HostBatcher):
    """Deterministic, resumable, multi-host batching of a map-style dataset.

    A map-style dataset has ``__len__`` and ``__getitem__(int)`` returning a feature dict: a list of dicts, an
    :class:`ArrayDataset`, a :class:`TokenFileDataset`, a ``datasets.Dataset`` (in any ``with_format``). When the
    dataset has ``__getitems__(indices)`` (``datasets.Dataset`` does), a batch's rows are read with one call.

    Order: epoch ``e`` visits the rows in ``np.random.default_rng([seed, 0, e]).permutation(n)`` (``arange(n)``
    without shuffling); every host computes the same order. Global batch ``b`` is ``order[b*G:(b+1)*G]``, and host
    ``p`` of ``P`` gets rows ``[p*G/P, (p+1)*G/P)`` of it, so the hosts' batches together are the single-host batch.

    Collation: ``collate_fn(features, rng=np.random.default_rng([seed, 1, e, b]))``. A row-wise collator (its
    ``rowwise`` attribute is true: row i of its output depends on feature i alone, without randomness, and the
    output's shape on nothing but the number of rows; :func:`default_data_collator`, and causal-LM
    ``DataCollatorForLanguageModeling`` with ``max_length``) gets only the host's rows, which are the only rows the
    host reads from the dataset (a :class:`TokenFileDataset` reads only their bytes). Any other collator runs on
    the WHOLE global batch on every host, and then the host's rows are sliced out, so random masking of a row,
    and the padded length, do not depend on the number of hosts (all hosts get the same shapes). Either way a batch
    is reproduced exactly after a resume whatever came before. ``collate_fn`` must accept the ``rng`` keyword and
    return arrays with the batch on axis 0. ``rows_read`` counts the rows this host has read.

    ``drop_last=True`` (training) drops the last partial batch. ``drop_last=False`` (eval) pads it up to ``G`` rows
    by repeating its first row, and every batch then carries ``"_valid"``: bool [G/P], False on those padding rows
    (leave them out of metrics), so shapes stay static.

    Iterating (``for batch in loader``) continues from :meth:`state_dict` and runs on through the following epochs
    forever; :meth:`iter_epoch` gives one epoch's batches (for eval) without touching the state.
    """

    def __init__(self, dataset, global_batch_size: int, collate_fn: Callable, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True, process_index: int | None = None, process_count: int | None = None):
        super().__init__(dataset, global_batch_size, collate_fn, seed, drop_last, process_index, process_count)
        n = len(dataset)
        if n == 0:
            raise ValueError("The dataset is empty")
        if drop_last and n < global_batch_size:
            raise ValueError(
                f"The dataset has {n} rows, fewer than one global batch of global_batch_size={global_batch_size} "
                "(with drop_last=True no batch would be produced)"
            )
        self.shuffle = shuffle
        self.num_rows = n
        self.batches_per_epoch = n // global_batch_size if drop_last else -(-n // global_batch_size)
        self._order_cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.batches_per_epoch

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The row order of ``epoch``: int64 [n], the same on every host."""
        if self._order_cache is None or self._order_cache[0] != epoch:
            order = np.arange(self.num_rows)
            if self.shuffle:
                order = np.random.default_rng([self.seed, 0, epoch]).permutation(self.num_rows)
            self._order_cache = (epoch, order)
        return self._order_cache[1]

    def batch_order(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        """The dataset indices at ``positions`` (int64 [k]) of ``epoch``'s row order (int64 [k]). Here a slice of
        :meth:`epoch_order`; a subclass may compute them without the whole order (``train.shards.ShardLoader``)."""
        return self.epoch_order(epoch)[positions]

    def global_indices(self, epoch: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Dataset indices of global batch ``batch`` of ``epoch`` ([G]) and which of them are real rows ([G] bool)."""
        if not 0 <= batch < self.batches_per_epoch:
            raise IndexError(f"batch {batch} out of range: an epoch has {self.batches_per_epoch} batches")
        G = self.global_batch_size
        indices = self.batch_order(epoch, np.arange(batch * G, min((batch + 1) * G, self.num_rows)))  # [<=G]
        valid = np.ones(G, bool)  # [G]
        if len(indices) < G:
            valid[len(indices):] = False
            indices = np.concatenate([indices, np.full(G - len(indices), indices[0])])
        return indices, valid

    def _read(self, indices: np.ndarray) -> list:
        """Dataset rows ``indices`` (each distinct row read once; one ``__getitems__`` call when the dataset has
        it)."""
        distinct, where = np.unique(indices, return_inverse=True)
        distinct = [int(i) for i in distinct]
        if hasattr(self.dataset, "__getitems__"):
            rows = self.dataset.__getitems__(distinct)
        else:
            rows = [self.dataset[i] for i in distinct]
        self.rows_read += len(distinct)
        return [rows[i] for i in where.reshape(-1)]

    def load_batch(self, epoch: int, batch: int) -> dict[str, np.ndarray]:
        """This host's part of global batch ``batch`` of ``epoch`` (collated as described in the class doc)."""
        indices, valid = self.global_indices(epoch, batch)
        if self.rowwise:  # read and collate only this host's rows
            mine = self.host_rows()
            return self._collate(self._read(indices[mine]), valid[mine], epoch, batch)
        return self._host_batch(self._read(indices[valid]), epoch, batch)

    def iter_epoch(self, epoch: int = 0):
        """Yield every batch of one ``epoch`` in order (for eval); the loader's state is left alone."""
        for batch in range(self.batches_per_epoch):
            yield self.load_batch(epoch, batch)

    def __iter__(self):
        """Yield host-local batches from the current state onwards, across epochs, forever."""
        while True:
            epoch, batch = self._epoch, self._batch
            out = self.load_batch(epoch, batch)
            self._epoch, self._batch = (epoch + 1, 0) if batch + 1 == self.batches_per_epoch else (epoch, batch + 1)
            yield out

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue exactly at ``state`` (from :meth:`state_dict`): the next batch is (epoch, batch)."""
        epoch, batch = _check_position(state)
        if batch >= self.batches_per_epoch:
            raise ValueError(
                f"DataLoader state batch={batch} is out of range: an epoch has {self.batches_per_epoch} "
                "batches (was the dataset or global_batch_size changed?)"
            )
        self._epoch, self._batch = epoch, batch


def is_streamed(dataset) -> bool:
    """True for a dataset that is read as a stream: iterable, without ``__len__`` (``datasets.IterableDataset``)."""
    return not hasattr(dataset, "__len__") and hasattr(dataset, "__iter__")


class StreamingDataLoader(_HostBatcher):
    """Deterministic, resumable, multi-host batching of a dataset read as a stream (``datasets.IterableDataset``
    with or without ``streaming=True``, or any re-iterable of feature dicts without ``__len__``).

    Epoch ``e`` is one pass over ``iter(dataset)``; global batch ``b`` of it is rows ``[b*G, (b+1)*G)`` of that pass,
    in the stream's own order (a stream shuffles itself: ``dataset.shuffle(seed=..., buffer_size=...)``). For
    training (``drop_last=True``) the loader calls ``dataset.set_epoch(e)`` before each pass when the dataset has it,
    as Hugging Face's Trainer does, so a shuffled stream is reshuffled every epoch; a pass's last partial batch is
    dropped. Every host reads every row (a stream cannot skip rows unread) and collates as :class:`DataLoader`
    does (only its own rows with a row-wise collator, else the whole global batch; same ``rng`` per ``(seed, epoch,
    batch)``, same host slicing, same ``_valid`` padding with ``drop_last=False``), so a stream gives the batches
    of a map-style dataset holding the same rows in the same order.

    Resuming at ``(epoch, batch)`` re-opens pass ``epoch`` and skips its first ``batch * G`` rows (reading them: a
    stream cannot seek). Iteration looks one batch ahead, so the state after a pass's last full batch is already
    ``(epoch + 1, 0)``. The number of batches per epoch is unknown (``batches_per_epoch`` is None); ``num_rows`` is
    the row count of the last :meth:`iter_epoch` pass.
    """

    batches_per_epoch = None  # unknown
    num_rows = None  # counted by iter_epoch

    def __init__(self, dataset, global_batch_size: int, collate_fn: Callable, seed: int = 0, drop_last: bool = True,
                 process_index: int | None = None, process_count: int | None = None):
        super().__init__(dataset, global_batch_size, collate_fn, seed, drop_last, process_index, process_count)
        if not hasattr(dataset, "__iter__"):
            raise TypeError(f"A streamed dataset must be iterable, got {type(dataset).__name__}")
        if iter(dataset) is dataset:
            raise ValueError(
                f"The dataset is a one-shot iterator ({type(dataset).__name__}); every epoch and every resume reads "
                "it again, so pass a re-iterable dataset (e.g. datasets.IterableDataset or a list)"
            )

    def _open(self, epoch: int, skip: int):
        """An iterator over pass ``epoch``, after its first ``skip`` rows; None when the pass has fewer rows."""
        if self.drop_last and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        rows = iter(self.dataset)
        skipped = sum(1 for _ in itertools.islice(rows, skip))
        self.rows_read += skipped
        return rows if skipped == skip else None

    def _take(self, rows) -> list:
        chunk = list(itertools.islice(rows, self.global_batch_size))
        self.rows_read += len(chunk)
        return chunk

    def _first_chunk(self, epoch: int, batch: int):
        """(rows iterator, first full global batch) of pass ``epoch`` from batch ``batch``, or an error."""
        G = self.global_batch_size
        rows = self._open(epoch, batch * G)
        chunk = self._take(rows) if rows is not None else []
        if len(chunk) < G:
            if batch:
                raise ValueError(
                    f"The streamed dataset ends before batch {batch} of epoch {epoch} (global batch {G} rows); was "
                    "the dataset or global_batch_size changed since the checkpoint?"
                )
            raise ValueError(
                f"The streamed dataset yielded {len(chunk)} rows in epoch {epoch}, fewer than one global batch of "
                f"global_batch_size={G} (with drop_last=True no batch would be produced)"
            )
        return rows, chunk

    def load_batch(self, epoch: int, batch: int) -> dict[str, np.ndarray]:
        """This host's part of global batch ``batch`` of ``epoch`` (reads the pass from its start)."""
        return self._host_batch(self._first_chunk(epoch, batch)[1], epoch, batch)

    def iter_epoch(self, epoch: int = 0):
        """Yield every batch of one pass (for eval): the last partial one dropped, or padded with ``_valid`` when
        ``drop_last`` is off. The loader's state is left alone."""
        rows, batch, count = iter(self.dataset), 0, 0
        while True:
            chunk = self._take(rows)
            count += len(chunk)
            if not chunk or (self.drop_last and len(chunk) < self.global_batch_size):
                break
            yield self._host_batch(chunk, epoch, batch)
            batch += 1
        self.num_rows = count
        if batch == 0 and not chunk:
            raise ValueError("The streamed dataset is empty")
        if batch == 0:
            raise ValueError(f"The streamed dataset yielded {len(chunk)} rows, fewer than one global batch of "
                             f"global_batch_size={self.global_batch_size} (with drop_last=True no batch is produced)")

    def __iter__(self):
        """Yield host-local full batches from the current state onwards, across passes, forever (training)."""
        if not self.drop_last:
            raise ValueError("endless iteration drops partial batches; use iter_epoch() with drop_last=False")
        epoch, batch = self._epoch, self._batch
        rows, chunk = self._first_chunk(epoch, batch)
        while True:
            following = self._take(rows)
            out = self._host_batch(chunk, epoch, batch)
            if len(following) < self.global_batch_size:  # chunk ends the pass; the partial tail is dropped
                epoch, batch = epoch + 1, 0
                rows, following = self._first_chunk(epoch, 0)
            else:
                batch += 1
            self._epoch, self._batch = epoch, batch
            yield out
            chunk = following

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue at ``state`` (from :meth:`state_dict`); checked when iteration reaches it."""
        self._epoch, self._batch = _check_position(state)
