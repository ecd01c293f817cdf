"""Data collators: turn a list of feature dicts into one batch of numpy arrays.

Every collator is called as ``collator(features, rng=None)``: ``features`` is a list of dicts (one per row, python
lists or numpy arrays as values) and ``rng`` a ``numpy.random.Generator``. Collators that draw random numbers
(MLM masking) take all their randomness from ``rng`` and refuse to run without one, so a resumed run reproduces a
batch exactly (the :class:`~train.data.DataLoader` derives ``rng`` from ``(seed, epoch, batch)``).

Outputs are numpy arrays with a leading batch axis: ``int32`` ids, masks and integer labels, ``float32`` float
labels. The trainer places them on devices.

Also here: :func:`pack_sequences`, which packs tokenized documents into fixed-length rows for causal-LM
pretraining (document ids in ``attention_mask``), and :func:`default_data_collator`, which stacks rows that already
have equal shapes (packed rows, :class:`~train.data.TokenFileDataset` items).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "IGNORE_INDEX",
    "DataCollatorForLanguageModeling",
    "DataCollatorWithPadding",
    "default_data_collator",
    "pack_sequences",
]

#: Label value that the losses ignore (as in Hugging Face / PyTorch cross-entropy).
IGNORE_INDEX = -100

_PADDING_CHOICES = ("longest", "max_length")
# Keys padded like ids, with their fill value (None -> the tokenizer's pad token id).
_PADDED_KEYS = {"input_ids": None, "attention_mask": 0, "token_type_ids": 0, "special_tokens_mask": 1}
# Label columns passed on as ``labels`` (as Hugging Face's collators do).
_LABEL_ALIASES = ("label", "label_ids")


# --------------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------------


def _check_features(features: Any, who: str) -> list[Mapping]:
    """A non-empty list of dicts, or a clear error naming the collator and the bad item."""
    if not isinstance(features, (list, tuple)) or len(features) == 0:
        got = f"{type(features).__name__} {features!r:.80}"
        raise ValueError(f"{who} needs a non-empty list of feature dicts, got {got}")
    for index, feature in enumerate(features):
        if not isinstance(feature, Mapping):
            raise TypeError(f"{who}: feature {index} is a {type(feature).__name__}, not a dict of model inputs")
        if "input_ids" not in feature:
            raise KeyError(f"{who}: feature {index} has no 'input_ids' (keys: {sorted(feature)})")
    return list(features)


def _int_row(feature: Mapping, key: str, index: int) -> np.ndarray:
    """``feature[key]`` as a 1-D integer array, or an error naming the feature index and the key."""
    value = np.asarray(feature[key])
    if value.ndim != 1 or not (value.size == 0 or np.issubdtype(value.dtype, np.integer) or value.dtype == bool):
        raise ValueError(
            f"feature {index}: '{key}' must be a flat list of integers, got shape {value.shape} dtype {value.dtype}"
        )
    return value.astype(np.int64)


def _target_length(lengths: Sequence[int], padding: str, max_length: int | None, multiple: int | None) -> int:
    """The padded length of a batch whose rows have ``lengths``."""
    longest = max(lengths)
    if padding == "max_length":
        if longest > max_length:
            row = int(np.argmax(lengths))
            raise ValueError(
                f"feature {row} has {longest} tokens, more than max_length={max_length}; truncate when tokenizing"
            )
        longest = max_length
    if multiple:
        longest = -(-longest // multiple) * multiple
    return longest


def _pad_rows(rows: Sequence[np.ndarray], fill: int, length: int, side: str) -> np.ndarray:
    """Pad 1-D rows with ``fill`` to ``length`` on ``side``; returns int32 [B, length]."""
    out = np.full((len(rows), length), fill, np.int32)  # [B, T]
    for i, row in enumerate(rows):
        if side == "left":
            out[i, length - len(row):] = row
        else:
            out[i, : len(row)] = row
    return out


def _pad_inputs(features: list[Mapping], tokenizer, padding: str, max_length, multiple) -> dict[str, np.ndarray]:
    """Pad input_ids / attention_mask / token_type_ids / special_tokens_mask of every feature to one length.

    attention_mask is built (1 per token) when the features have none.
    """
    ids = [_int_row(f, "input_ids", i) for i, f in enumerate(features)]
    lengths = [len(row) for row in ids]
    length = _target_length(lengths, padding, max_length, multiple)
    side = getattr(tokenizer, "padding_side", "right")
    pad_id = tokenizer.pad_token_id
    if pad_id is None and any(n < length for n in lengths):
        raise ValueError(
            "The tokenizer has no pad token, but this batch needs padding; set tokenizer.pad_token "
            "(e.g. tokenizer.pad_token = tokenizer.eos_token)."
        )
    batch = {"input_ids": _pad_rows(ids, pad_id if pad_id is not None else 0, length, side)}
    for key, fill in _PADDED_KEYS.items():
        if key == "input_ids":
            continue
        present = [key in f for f in features]
        if not any(present) and key != "attention_mask":
            continue
        if any(present) and not all(present):
            missing = present.index(False)
            raise KeyError(f"feature {missing} has no '{key}' but other features of the batch do")
        rows = [_int_row(f, key, i) if key in f else np.ones(len(ids[i]), np.int64) for i, f in enumerate(features)]
        for i, row in enumerate(rows):
            if len(row) != lengths[i]:
                raise ValueError(f"feature {i}: '{key}' has {len(row)} entries but 'input_ids' has {lengths[i]}")
        batch[key] = _pad_rows(rows, fill, length, side)
    return batch


def _stack_values(values: list, key: str) -> np.ndarray:
    """Stack per-row values (scalars or equal-length lists): ints/bools -> int32, floats -> float32."""
    try:
        array = np.asarray(values)
    except ValueError as err:  # ragged nesting
        raise ValueError(f"Cannot stack '{key}': its rows have different shapes ({err})") from None
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int32)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    raise ValueError(
        f"Cannot stack '{key}': expected numbers, got values of dtype {array.dtype} (e.g. {values[0]!r:.40})"
    )


def _check_padding(padding, max_length, pad_to_multiple_of) -> str:
    if padding is True:
        padding = "longest"
    if padding not in _PADDING_CHOICES:
        raise ValueError(f"padding={padding!r} is not supported; use one of {list(_PADDING_CHOICES)}")
    if padding == "max_length" and (not isinstance(max_length, int) or max_length <= 0):
        raise ValueError(f"padding='max_length' needs a positive integer max_length, got max_length={max_length!r}")
    if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of <= 0):
        raise ValueError(f"pad_to_multiple_of must be a positive integer or None, got {pad_to_multiple_of!r}")
    return padding


# --------------------------------------------------------------------------------------------------------------------
# collators
# --------------------------------------------------------------------------------------------------------------------


def _rename_labels(batch: dict) -> dict:
    """``label`` or ``label_ids`` -> ``labels``; two label columns in one batch are an error."""
    present = [k for k in ("labels", *_LABEL_ALIASES) if k in batch]
    if len(present) > 1:
        raise ValueError(f"The features have several label columns {present}; keep one of them")
    if present and present[0] != "labels":
        batch["labels"] = batch.pop(present[0])
    return batch


def default_data_collator(features: list[Mapping], rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Stack features whose values already have equal shapes; a ``label`` or ``label_ids`` key is renamed ``labels``.

    Integers -> int32, floats -> float32. ``rng`` is accepted (and unused) so that this fits the loader's
    ``collate_fn(features, rng=...)`` call.
    """
    if not isinstance(features, (list, tuple)) or len(features) == 0:
        raise ValueError(f"default_data_collator needs a non-empty list of feature dicts, got {features!r:.80}")
    keys = list(features[0])
    for index, feature in enumerate(features):
        if not isinstance(feature, Mapping) or list(feature) != keys:
            got = sorted(feature) if isinstance(feature, Mapping) else type(feature).__name__
            raise ValueError(f"feature {index} has keys {got}, but feature 0 has {sorted(keys)}")
    return _rename_labels({key: _stack_values([f[key] for f in features], key) for key in keys})


class DataCollatorWithPadding:
    """Pad a batch of tokenized features (classification fine-tuning), like HF's ``DataCollatorWithPadding``.

    Pads ``input_ids`` (with the tokenizer's pad id, on ``tokenizer.padding_side``), ``attention_mask`` (built when
    absent), ``token_type_ids`` and ``special_tokens_mask`` when present. ``labels`` (or ``label`` / ``label_ids``,
    renamed as HF does) are stacked: ints -> int32 [B], floats -> float32 [B], equal-length lists -> [B, K]. Other
    keys are stacked as arrays too. No truncation: rows longer than ``max_length`` with ``padding='max_length'`` are
    errors.

    Args:
        tokenizer: gives ``pad_token_id`` and ``padding_side``.
        padding: ``'longest'`` (or ``True``) pads to the longest row; ``'max_length'`` to ``max_length``.
        max_length: the padded length for ``'max_length'``.
        pad_to_multiple_of: round the padded length up to a multiple of this (static shapes for XLA).
    """

    def __init__(self, tokenizer, padding: str | bool = "longest", max_length: int | None = None,
                 pad_to_multiple_of: int | None = None):
        self.tokenizer = tokenizer
        self.padding = _check_padding(padding, max_length, pad_to_multiple_of)
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[Mapping], rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """Collate ``features`` into {"input_ids": [B, T], "attention_mask": [B, T], ..., "labels": [B] or [B, K]}."""
        features = _check_features(features, type(self).__name__)
        batch = _pad_inputs(features, self.tokenizer, self.padding, self.max_length, self.pad_to_multiple_of)
        for key in features[0]:
            if key in batch:
                continue
            missing = [i for i, f in enumerate(features) if key not in f]
            if missing:
                raise KeyError(f"feature {missing[0]} has no '{key}' but feature 0 has it")
            batch[key] = _stack_values([f[key] for f in features], key)
        return _rename_labels(batch)


class DataCollatorForLanguageModeling:
    """Language-modelling batches, like HF's ``DataCollatorForLanguageModeling``.

    Rows are padded to the longest (rounded up to ``pad_to_multiple_of``). Incoming ``labels`` are replaced.

    * ``mlm=True`` (BERT): each non-special, non-padding token is chosen with probability ``mlm_probability``; a
      chosen token becomes ``[MASK]`` with probability 0.8, a uniformly random id in ``[0, len(tokenizer))`` with
      0.1, and stays unchanged with 0.1. ``labels`` hold the original id at chosen positions and -100 elsewhere.
      Special tokens are the tokenizer's ``all_special_ids``, plus a feature's ``special_tokens_mask`` when given.
      Needs ``rng`` (a ``numpy.random.Generator``); the draws have a fixed shape per batch, so the same rng state
      and features give the same batch.
    * ``mlm=False`` (causal LM): ``labels`` = ``input_ids`` with -100 at padding (``attention_mask == 0``); the
      model shifts labels itself. No randomness.
    """

    def __init__(self, tokenizer, mlm: bool = True, mlm_probability: float = 0.15,
                 pad_to_multiple_of: int | None = None):
        if mlm and tokenizer.mask_token_id is None:
            raise ValueError(
                "mlm=True needs a tokenizer with a mask token (tokenizer.mask_token is None); "
                "use mlm=False for causal language modelling"
            )
        if not 0.0 < float(mlm_probability) < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability!r}")
        _check_padding("longest", None, pad_to_multiple_of)
        self.tokenizer = tokenizer
        self.mlm = mlm
        self.mlm_probability = float(mlm_probability)
        self.pad_to_multiple_of = pad_to_multiple_of
        self._special_ids = np.asarray(sorted(set(tokenizer.all_special_ids)), np.int64)

    def __call__(self, features: list[Mapping], rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """Collate ``features``; returns input_ids, attention_mask (, token_type_ids) and labels, all [B, T]."""
        features = _check_features(features, type(self).__name__)
        if self.mlm and not isinstance(rng, np.random.Generator):
            raise ValueError(
                "DataCollatorForLanguageModeling(mlm=True) draws random masks and needs rng=numpy.random.Generator "
                f"(got {type(rng).__name__}); the DataLoader passes one derived from (seed, epoch, batch)"
            )
        features = [{k: v for k, v in f.items() if k not in ("labels", *_LABEL_ALIASES)} for f in features]
        batch = _pad_inputs(features, self.tokenizer, "longest", None, self.pad_to_multiple_of)
        special = batch.pop("special_tokens_mask", None)
        if not self.mlm:
            batch["labels"] = np.where(batch["attention_mask"] == 0, IGNORE_INDEX, batch["input_ids"]).astype(np.int32)
            return batch
        ignore = np.isin(batch["input_ids"], self._special_ids) | (batch["attention_mask"] == 0)  # [B, T]
        if special is not None:
            ignore |= special.astype(bool)
        batch["input_ids"], batch["labels"] = self._mask(batch["input_ids"], ignore, rng)
        return batch

    def _mask(self, input_ids: np.ndarray, ignore: np.ndarray, rng: np.random.Generator):
        """BERT masking of ``input_ids`` [B, T] outside ``ignore`` [B, T]; returns (inputs, labels), int32 [B, T]."""
        shape = input_ids.shape
        chosen = (rng.random(shape) < self.mlm_probability) & ~ignore  # [B, T]
        roll = rng.random(shape)  # [B, T]: < 0.8 -> [MASK], [0.8, 0.9) -> random id, else unchanged
        random_ids = rng.integers(0, len(self.tokenizer), shape)  # [B, T]
        labels = np.where(chosen, input_ids, IGNORE_INDEX).astype(np.int32)
        inputs = np.where(chosen & (roll < 0.8), self.tokenizer.mask_token_id, input_ids)
        inputs = np.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, inputs)
        return inputs.astype(np.int32), labels


# --------------------------------------------------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------------------------------------------------


def _document_chunks(token_lists: Iterable, seq_len: int, eos_token_id: int | None) -> list[np.ndarray]:
    """Each document (+ EOS), cut into pieces of at most ``seq_len`` tokens; empty documents are dropped."""
    chunks = []
    for index, tokens in enumerate(token_lists):
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not (tokens.size == 0 or np.issubdtype(tokens.dtype, np.integer)):
            raise ValueError(
                f"document {index} must be a flat list of token ids, got shape {tokens.shape} dtype {tokens.dtype}"
            )
        if tokens.size == 0:
            continue
        if eos_token_id is not None:
            tokens = np.append(tokens, eos_token_id)
        chunks.extend(tokens[start:start + seq_len] for start in range(0, len(tokens), seq_len))
    return chunks


def _first_fit(chunks: list[np.ndarray], seq_len: int) -> list[list[np.ndarray]]:
    """Place each chunk, in order, into the first row with room for it (a new row when none has)."""
    rows: list[list[np.ndarray]] = []
    free: list[int] = []  # free slots per row
    open_rows: list[int] = []  # rows that still have room, in creation order
    for chunk in chunks:
        target = next((r for r in open_rows if free[r] >= len(chunk)), None)
        if target is None:
            target = len(rows)
            rows.append([])
            free.append(seq_len)
            open_rows.append(target)
        rows[target].append(chunk)
        free[target] -= len(chunk)
        if free[target] == 0:
            open_rows.remove(target)
    return rows


def pack_sequences(token_lists: Iterable[Sequence[int]], seq_len: int, pad_token_id: int,
                   eos_token_id: int | None = None) -> dict[str, np.ndarray]:
    """Pack tokenized documents into rows of exactly ``seq_len`` tokens for causal-LM training.

    Each document (followed by ``eos_token_id`` when given; empty documents are dropped) is cut into chunks of at
    most ``seq_len`` tokens, so a long document continues over several rows. Chunks are placed in order, each in
    the first row with room for it (greedy first-fit; deterministic); the rest of a row is padding.

    Returns int32 arrays, each [rows, seq_len]:

    * ``input_ids``: the tokens, ``pad_token_id`` on padding.
    * ``attention_mask``: the document id of each token within its row, 1, 2, ... in row order (every chunk counts
      as its own document); 0 on padding. The models' attention lets a token see only its own document.
    * ``position_ids``: restart at 0 at every chunk (0 on padding).
    * ``labels``: ``input_ids`` with -100 on padding and on the first token of every chunk. The loss shifts labels,
      so a chunk's first token would be predicted from the previous document's last token; like HF's
      ``DataCollatorWithFlattening`` (which puts its separator there) that target is dropped. For the row's first
      token this changes nothing, as no position predicts it.

    Use :class:`~train.data.ArrayDataset` to feed the result to the DataLoader with :func:`default_data_collator`.
    """
    if not isinstance(seq_len, (int, np.integer)) or seq_len <= 0:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    if not isinstance(pad_token_id, (int, np.integer)):
        raise ValueError(f"pad_token_id must be an integer token id, got {pad_token_id!r}")
    rows = _first_fit(_document_chunks(token_lists, seq_len, eos_token_id), seq_len)
    shape = (len(rows), seq_len)
    input_ids = np.full(shape, pad_token_id, np.int32)  # [R, L]
    doc_ids = np.zeros(shape, np.int32)  # [R, L]
    position_ids = np.zeros(shape, np.int32)  # [R, L]
    labels = np.full(shape, IGNORE_INDEX, np.int32)  # [R, L]
    for r, chunks in enumerate(rows):
        start = 0
        for doc, chunk in enumerate(chunks, start=1):
            end = start + len(chunk)
            input_ids[r, start:end] = chunk
            doc_ids[r, start:end] = doc
            position_ids[r, start:end] = np.arange(len(chunk))
            labels[r, start + 1:end] = chunk[1:]
            start = end
    return {"input_ids": input_ids, "attention_mask": doc_ids, "position_ids": position_ids, "labels": labels}
