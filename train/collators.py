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

Sequence-to-sequence: :class:`DataCollatorForSeq2Seq` (fine-tuning: pads inputs and labels, builds
``decoder_input_ids`` as the model does) and :class:`DataCollatorForT5MLM` (T5's span-corruption pretraining
objective, with :func:`compute_input_and_target_lengths`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "IGNORE_INDEX",
    "DataCollatorForLanguageModeling",
    "DataCollatorForSeq2Seq",
    "DataCollatorForT5MLM",
    "DataCollatorWithPadding",
    "compute_input_and_target_lengths",
    "default_data_collator",
    "group_texts",
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


# Row i of the batch is feature i stacked, whatever the other rows: a loader may collate just its host's rows.
default_data_collator.rowwise = True


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

    Rows are padded to the longest (rounded up to ``pad_to_multiple_of``), or to exactly ``max_length`` when it is
    given (a longer row is then an error: truncate when tokenizing). Incoming ``labels`` are replaced.

    * ``mlm=True`` (BERT): each non-special, non-padding token is chosen with probability ``mlm_probability``; a
      chosen token becomes ``[MASK]`` with probability 0.8, a uniformly random id in ``[0, len(tokenizer))`` with
      0.1, and stays unchanged with 0.1. ``labels`` hold the original id at chosen positions and -100 elsewhere.
      Special tokens are the tokenizer's ``all_special_ids``, plus a feature's ``special_tokens_mask`` when given.
      Needs ``rng`` (a ``numpy.random.Generator``); the draws have a fixed shape per batch, so the same rng state
      and features give the same batch.
    * ``mlm=False`` (causal LM): ``labels`` = ``input_ids`` with -100 at padding (``attention_mask == 0``); the
      model shifts labels itself. No randomness.

    :attr:`rowwise` is True for ``mlm=False`` with ``max_length``: each row then depends on its feature alone and
    every batch has the same width, so a multi-host loader collates just its own rows (see
    :class:`~train.data.DataLoader`).
    """

    def __init__(self, tokenizer, mlm: bool = True, mlm_probability: float = 0.15,
                 pad_to_multiple_of: int | None = None, max_length: int | None = None):
        if mlm and tokenizer.mask_token_id is None:
            raise ValueError(
                "mlm=True needs a tokenizer with a mask token (tokenizer.mask_token is None); "
                "use mlm=False for causal language modelling"
            )
        if not 0.0 < float(mlm_probability) < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability!r}")
        self.padding = _check_padding("longest" if max_length is None else "max_length", max_length,
                                      pad_to_multiple_of)
        self.tokenizer = tokenizer
        self.mlm = mlm
        self.mlm_probability = float(mlm_probability)
        self.pad_to_multiple_of = pad_to_multiple_of
        self.max_length = max_length
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
        batch = _pad_inputs(features, self.tokenizer, self.padding, self.max_length, self.pad_to_multiple_of)
        special = batch.pop("special_tokens_mask", None)
        if not self.mlm:
            batch["labels"] = np.where(batch["attention_mask"] == 0, IGNORE_INDEX, batch["input_ids"]).astype(np.int32)
            return batch
        ignore = np.isin(batch["input_ids"], self._special_ids) | (batch["attention_mask"] == 0)  # [B, T]
        if special is not None:
            ignore |= special.astype(bool)
        batch["input_ids"], batch["labels"] = self._mask(batch["input_ids"], ignore, rng)
        return batch

    @property
    def rowwise(self) -> bool:
        """Whether row i of a batch depends on feature i alone and the batch's width on nothing (causal LM padded
        to ``max_length``); MLM draws its masks for the whole batch from one ``rng``."""
        return not self.mlm and self.max_length is not None

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
# sequence to sequence
# --------------------------------------------------------------------------------------------------------------------


def _model_config(model):
    """The config a collator reads decoder settings from: ``model.config``, or ``model`` when it is a config."""
    if model is None:
        return None
    return getattr(model, "config", model)


def _decoder_inputs_from_labels(config, labels: np.ndarray, who: str) -> np.ndarray | None:
    """``decoder_input_ids`` [B, T] int32 built from ``labels`` [B, T] by the config's own rule (the rule its model's
    forward applies: BART's shift right behind ``decoder_start_token_id``, mBART's wrap of the last token); None
    when the config has no such rule (a decoder-only model, as Hugging Face's collator skips it)."""
    build = getattr(config, "decoder_inputs_from_labels", None)
    if config is None or build is None:
        return None
    import jax

    try:
        with jax.default_device(jax.devices("cpu")[0]):  # a few integers: no trip to an accelerator
            decoder_input_ids = build(np.asarray(labels))
    except ValueError as err:
        raise ValueError(f"{who}: cannot build decoder_input_ids from the labels: {err}") from None
    return np.asarray(decoder_input_ids).astype(np.int32)


class DataCollatorForSeq2Seq:
    """Pad a batch of sequence-to-sequence features, like Hugging Face's ``DataCollatorForSeq2Seq``.

    Inputs (``input_ids``, ``attention_mask`` (built when absent), ``token_type_ids``, ``special_tokens_mask``) are
    padded with the tokenizer's rules (its ``pad_token_id``, on ``tokenizer.padding_side``). ``labels`` (or
    ``label``) are padded with ``label_pad_token_id`` on the same side, to their own longest row (or to
    ``max_length`` with ``padding='max_length'``, rounded up to ``pad_to_multiple_of``). When ``model`` (a model or
    its config) is given and has a rule for it, ``decoder_input_ids`` are built from the padded labels exactly as
    the model's forward builds them (``config.decoder_inputs_from_labels``): label smoothing, which scores the
    logits itself, needs them in the batch in Hugging Face, and they are what the decoder reads here too. Other
    keys are stacked. Arrays are numpy, ``int32`` for ids and labels.

    Args:
        tokenizer: gives ``pad_token_id`` and ``padding_side``.
        model: a model or config whose ``decoder_inputs_from_labels`` builds ``decoder_input_ids``; None: no
            decoder inputs (the model builds them from ``labels`` itself).
        padding: ``True`` / ``'longest'``, ``'max_length'``, or ``False`` / ``'do_not_pad'`` (every row must then
            have the same length: arrays cannot be ragged).
        max_length: the padded length for ``'max_length'`` (inputs and labels).
        pad_to_multiple_of: round padded lengths up to a multiple of this.
        label_pad_token_id: the label of padding positions (-100: ignored by the loss).
        return_tensors: ``'np'`` (the only kind here: the trainer places numpy batches on devices).
    """

    def __init__(self, tokenizer, model=None, padding: bool | str = True, max_length: int | None = None,
                 pad_to_multiple_of: int | None = None, label_pad_token_id: int = IGNORE_INDEX,
                 return_tensors: str = "np"):
        if return_tensors != "np":
            raise ValueError(f"DataCollatorForSeq2Seq: return_tensors={return_tensors!r} is not supported; batches "
                             "here are numpy arrays (return_tensors='np')")
        if not isinstance(label_pad_token_id, (int, np.integer)) or isinstance(label_pad_token_id, bool):
            raise ValueError(f"DataCollatorForSeq2Seq: label_pad_token_id must be an integer, got {label_pad_token_id!r}")
        self.tokenizer = tokenizer
        self.model = model
        self.config = _model_config(model)
        self.pad_rows = padding not in (False, "do_not_pad")
        self.padding = _check_padding(padding, max_length, pad_to_multiple_of) if self.pad_rows else "do_not_pad"
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.label_pad_token_id = int(label_pad_token_id)
        self.return_tensors = return_tensors

    def _padded_length(self, lengths: list[int], what: str) -> int:
        if not self.pad_rows:
            if len(set(lengths)) > 1:
                row = next(i for i, n in enumerate(lengths) if n != lengths[0])
                raise ValueError(f"DataCollatorForSeq2Seq(padding=False): {what} of feature {row} has {lengths[row]} "
                                 f"tokens but feature 0 has {lengths[0]}; rows of a batch must have equal lengths "
                                 "without padding (use padding=True)")
            return lengths[0]
        if self.padding == "max_length" and max(lengths) > self.max_length:
            row = int(np.argmax(lengths))
            raise ValueError(f"DataCollatorForSeq2Seq: {what} of feature {row} has {lengths[row]} tokens, more than "
                             f"max_length={self.max_length}; truncate when tokenizing")
        return _target_length(lengths, self.padding, self.max_length, self.pad_to_multiple_of)

    def __call__(self, features: list[Mapping], rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """Collate ``features`` into {"input_ids": [B, T], "attention_mask": [B, T], ..., "labels": [B, L],
        "decoder_input_ids": [B, L] (with a model)}."""
        who = type(self).__name__
        features = _check_features(features, who)
        label_name = "label" if "label" in features[0] else "labels"
        labels = [f.get(label_name) for f in features] if label_name in features[0] else None
        if labels is not None and all(label is None for label in labels):
            labels = None
        if labels is not None and any(label is None for label in labels):
            missing = next(i for i, label in enumerate(labels) if label is None)
            raise KeyError(f"{who}: feature {missing} has no '{label_name}' but feature 0 has them")
        inputs = [{k: v for k, v in f.items() if k != label_name} for f in features]

        if self.pad_rows:
            batch = _pad_inputs(inputs, self.tokenizer, self.padding, self.max_length, self.pad_to_multiple_of)
        else:
            self._padded_length([len(f["input_ids"]) for f in inputs], "input_ids")
            batch = _pad_inputs(inputs, self.tokenizer, "longest", None, None)  # equal rows: nothing to pad
        for key in inputs[0]:
            if key in batch:
                continue
            missing = [i for i, f in enumerate(inputs) if key not in f]
            if missing:
                raise KeyError(f"{who}: feature {missing[0]} has no '{key}' but feature 0 has it")
            batch[key] = _stack_values([f[key] for f in inputs], key)

        if labels is None:
            return batch
        rows = [_int_row(f, label_name, i) for i, f in enumerate(features)]
        length = self._padded_length([len(row) for row in rows], label_name)
        side = getattr(self.tokenizer, "padding_side", "right")
        batch["labels"] = _pad_rows(rows, self.label_pad_token_id, length, side)
        decoder_input_ids = _decoder_inputs_from_labels(self.config, batch["labels"], who)
        if decoder_input_ids is not None:
            batch["decoder_input_ids"] = decoder_input_ids
        return batch


def compute_input_and_target_lengths(inputs_length: int, noise_density: float,
                                     mean_noise_span_length: float) -> tuple[int, int]:
    """``(tokens_length, targets_length)`` of T5 span corruption without padding (T5's ``random_spans_helper``, as
    Hugging Face's Flax example ``run_t5_mlm_flax.py`` computes them).

    ``tokens_length`` is the longest raw row whose corrupted input (non-noise tokens, one sentinel per noise span,
    EOS) still fits ``inputs_length``; ``targets_length`` the length of its targets (noise tokens, one sentinel per
    span, EOS). With ``round`` as Python's (half to even):

        noise = round(tokens * noise_density); spans = round(noise / mean_noise_span_length)
        inputs = tokens - noise + spans + 1;   targets = noise + spans + 1

    At ``noise_density == 0.5`` one token less is taken when the targets would come out longer than the inputs.
    """
    if not isinstance(inputs_length, (int, np.integer)) or inputs_length < 2:
        raise ValueError(f"inputs_length must be an integer >= 2, got {inputs_length!r}")
    if not 0.0 < float(noise_density) < 1.0:
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density!r}")
    if not float(mean_noise_span_length) >= 1.0:
        raise ValueError(f"mean_noise_span_length must be >= 1, got {mean_noise_span_length!r}")

    def lengths(tokens: int) -> tuple[int, int]:
        noise = int(round(tokens * noise_density))
        spans = int(round(noise / mean_noise_span_length))
        return tokens - noise + spans + 1, noise + spans + 1

    tokens = int(inputs_length)
    while lengths(tokens + 1)[0] <= inputs_length:
        tokens += 1
    inputs, targets = lengths(tokens)
    if noise_density == 0.5 and targets > inputs:
        tokens -= 1
        targets -= 1
    return tokens, targets


class DataCollatorForT5MLM:
    """T5's span-corruption pretraining batches (Hugging Face's Flax ``FlaxDataCollatorForT5MLM``).

    Each feature's ``input_ids`` must hold exactly :attr:`tokens_length` tokens (documents concatenated and cut into
    rows of that length, as ``group_texts`` does; ``train.pretrain`` does it for ``objective: span_corruption``);
    other keys are dropped. Per row, ``round(tokens_length * noise_density)`` tokens are noise, in
    ``round(noise / mean_noise_span_length)`` spans; the spans and the non-noise runs between them have uniformly
    random lengths (every split equally likely), starting with a non-noise run. Then:

    * ``input_ids`` [B, input_length]: the non-noise tokens, each noise span replaced by one sentinel, then EOS;
    * ``labels`` [B, target_length]: each non-noise run replaced by one sentinel, the noise tokens, then EOS;
    * ``decoder_input_ids`` [B, target_length] when ``model`` (a model or its config) is given: the labels shifted
      by the model's own rule.

    Sentinels count down from the tokenizer's last id: the k-th span (k = 1, 2, ...) is ``len(tokenizer) - k``
    (T5's ``<extra_id_0>``, ``<extra_id_1>``, ...), the same id for a span in the inputs and its run in the targets.
    So splicing each input sentinel's target tokens back in gives the original row. Lengths come from
    :func:`compute_input_and_target_lengths`; the batch has no padding and no ``attention_mask``. All randomness is
    drawn from ``rng`` (a ``numpy.random.Generator``; the DataLoader passes one per batch).
    """

    def __init__(self, tokenizer, noise_density: float = 0.15, mean_noise_span_length: float = 3.0,
                 input_length: int = 512, model=None):
        if tokenizer.eos_token_id is None:
            raise ValueError("DataCollatorForT5MLM appends EOS to inputs and targets, but the tokenizer has no "
                             "eos_token_id")
        self.tokenizer = tokenizer
        self.noise_density = float(noise_density)
        self.mean_noise_span_length = float(mean_noise_span_length)
        self.input_length = int(input_length)
        self.tokens_length, self.target_length = compute_input_and_target_lengths(
            input_length, self.noise_density, self.mean_noise_span_length)
        self.config = _model_config(model)
        self.first_sentinel = len(tokenizer) - 1
        noise, spans = self.noise_counts(self.tokens_length)
        made = (self.tokens_length - noise + spans + 1, noise + spans + 1)
        if made != (self.input_length, self.target_length):
            # rows too short for the formula: it rounds the noise (or its spans) to none where the mask keeps one
            raise ValueError(f"DataCollatorForT5MLM: input_length={input_length} with noise_density={noise_density} "
                             f"and mean_noise_span_length={mean_noise_span_length} gives {self.tokens_length}-token "
                             f"rows whose {spans} noise span(s) corrupt to {made[0]} input and {made[1]} target "
                             f"tokens, not the {self.input_length} and {self.target_length} the lengths formula "
                             "computes; use a longer input_length")
        if spans > self.first_sentinel:
            raise ValueError(f"DataCollatorForT5MLM: the tokenizer's {len(tokenizer)} ids leave no room for "
                             f"{spans} sentinels")

    def noise_counts(self, length: int) -> tuple[int, int]:
        """(noise tokens, noise spans) of a row of ``length`` tokens: ``round(length * noise_density)`` and
        ``round(noise / mean_noise_span_length)``, each at least 1 (and at most what leaves every run non-empty)."""
        noise = min(max(int(np.round(length * self.noise_density)), 1), length - 1)
        spans = max(int(np.round(noise / self.mean_noise_span_length)), 1)
        return noise, min(spans, noise, length - noise)

    def noise_mask(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """bool [length]: which tokens of a row are noise (T5's ``random_spans_noise_mask``)."""
        noise, spans = self.noise_counts(length)

        def run_lengths(items: int) -> np.ndarray:  # a uniformly random split of `items` into `spans` runs
            cuts = rng.permutation(np.arange(items - 1) < spans - 1)
            return np.bincount(np.cumsum(np.concatenate([[False], cuts])), minlength=spans)

        interleaved = np.stack([run_lengths(length - noise), run_lengths(noise)], axis=1).reshape(-1)
        starts = np.zeros(length, np.int64)
        starts[np.cumsum(interleaved)[:-1]] = 1
        return np.cumsum(starts) % 2 == 1

    def _corrupt(self, ids: np.ndarray, drop: np.ndarray) -> np.ndarray:
        """``ids`` with each run of ``drop`` replaced by the next sentinel (counting down), then EOS."""
        starts = drop & ~np.concatenate([[False], drop[:-1]])
        sentinels = self.first_sentinel + 1 - np.cumsum(starts)
        kept = np.where(starts, sentinels, ids)[~drop | starts]
        return np.append(kept, self.tokenizer.eos_token_id)

    def __call__(self, features: list[Mapping], rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """Corrupt ``features``; returns ``input_ids``, ``labels`` (and ``decoder_input_ids``), int32."""
        who = type(self).__name__
        features = _check_features(features, who)
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"{who} draws random spans and needs rng=numpy.random.Generator (got "
                             f"{type(rng).__name__}); the DataLoader passes one derived from (seed, epoch, batch)")
        inputs, targets = [], []
        for index, feature in enumerate(features):
            ids = _int_row(feature, "input_ids", index)
            if len(ids) != self.tokens_length:
                raise ValueError(f"{who}: feature {index} has {len(ids)} input_ids; span corruption to "
                                 f"input_length={self.input_length} needs rows of exactly tokens_length="
                                 f"{self.tokens_length} tokens (concatenate the documents and cut them into rows "
                                 "of that length)")
            noise = self.noise_mask(len(ids), rng)
            inputs.append(self._corrupt(ids, noise))
            targets.append(self._corrupt(ids, ~noise))
        batch = {"input_ids": np.stack(inputs).astype(np.int32), "labels": np.stack(targets).astype(np.int32)}
        for key, expected in (("input_ids", self.input_length), ("labels", self.target_length)):
            if batch[key].shape[1] != expected:  # the lengths formula and the mask disagree: a bug, never data
                raise AssertionError(f"{who}: {key} came out {batch[key].shape[1]} long, expected {expected}")
        decoder_input_ids = _decoder_inputs_from_labels(self.config, batch["labels"], who)
        if decoder_input_ids is not None:
            batch["decoder_input_ids"] = decoder_input_ids
        return batch


def group_texts(token_lists: Iterable[Sequence[int]], length: int) -> np.ndarray:
    """All documents concatenated and cut into rows of ``length`` tokens, the remainder dropped (Hugging Face's
    ``group_texts``); int32 [rows, length]. Fewer than ``length`` tokens in all is an error."""
    if not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    tokens = np.concatenate([np.asarray(t, np.int64).reshape(-1) for t in token_lists] or [np.zeros(0, np.int64)])
    rows = len(tokens) // length
    if rows == 0:
        raise ValueError(f"the documents hold {len(tokens)} tokens in all, fewer than one row of {length}")
    return tokens[: rows * length].reshape(rows, length).astype(np.int32)


# --------------------------------------------------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------------------------------------------------


def _check_documents(token_lists: Iterable) -> list[np.ndarray]:
    """Each document as a 1-D array, or an error naming the first one that is not a flat list of token ids."""
    documents = []
    for index, tokens in enumerate(token_lists):
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not (tokens.size == 0 or np.issubdtype(tokens.dtype, np.integer)):
            raise ValueError(
                f"document {index} must be a flat list of token ids, got shape {tokens.shape} dtype {tokens.dtype}"
            )
        documents.append(tokens)
    return documents


def _first_fit(chunk_lengths: Sequence[int], seq_len: int) -> np.ndarray:
    """The row of each chunk: every chunk, in order, goes into the first row with room for it (a new row when none
    has). int64 [chunks]."""
    rows = np.empty(len(chunk_lengths), np.int64)  # [C]
    free: list[int] = []  # free slots per row
    open_rows: list[int] = []  # rows that still have room, in creation order
    for index, length in enumerate(chunk_lengths):
        target = next((r for r in open_rows if free[r] >= length), None)
        if target is None:
            target = len(free)
            free.append(seq_len)
            open_rows.append(target)
        rows[index] = target
        free[target] -= length
        if free[target] == 0:
            open_rows.remove(target)
    return rows


@dataclasses.dataclass(frozen=True)
class PackingLayout:
    """Where :func:`pack_sequences` puts every piece of every document, computed from the documents' lengths alone
    (:func:`packing_layout`), so that any row can be built from just the documents it holds.

    Chunks are listed row by row, in placement order within a row: chunk ``c`` is tokens ``start[c]:stop[c]`` of
    document ``doc[c]`` followed by EOS (when the layout was made with ``eos=True``); row ``r`` holds chunks
    ``row_starts[r]:row_starts[r + 1]``.
    """

    seq_len: int
    eos: bool
    doc: np.ndarray  # int64 [C]
    start: np.ndarray  # int64 [C]
    stop: np.ndarray  # int64 [C]
    row_starts: np.ndarray  # int64 [R + 1]

    @property
    def num_rows(self) -> int:
        return len(self.row_starts) - 1

    def documents(self, rows: Sequence[int]) -> np.ndarray:
        """The documents (sorted, unique) that rows ``rows`` hold pieces of."""
        pieces = [self.doc[self.row_starts[r]:self.row_starts[r + 1]] for r in rows]
        return np.unique(np.concatenate(pieces)) if pieces else np.zeros(0, np.int64)

    def fill(self, rows: Sequence[int], tokens: Mapping[int, np.ndarray], pad_token_id: int,
             eos_token_id: int | None) -> dict[str, np.ndarray]:
        """Rows ``rows`` of the packed arrays (see :func:`pack_sequences`), int32 [len(rows), seq_len] each;
        ``tokens[d]`` holds the ids of document ``d`` (without EOS) for every document of those rows."""
        if self.eos and eos_token_id is None:
            raise ValueError("this layout appends EOS to every document; pass eos_token_id")
        shape = (len(rows), self.seq_len)
        input_ids = np.full(shape, pad_token_id, np.int32)  # [B, L]
        doc_ids = np.zeros(shape, np.int32)  # [B, L]
        position_ids = np.zeros(shape, np.int32)  # [B, L]
        labels = np.full(shape, IGNORE_INDEX, np.int32)  # [B, L]
        full = {}  # document -> its ids with EOS
        for i, r in enumerate(rows):
            at = 0
            for number, c in enumerate(range(self.row_starts[r], self.row_starts[r + 1]), start=1):
                d = int(self.doc[c])
                if d not in full:
                    full[d] = np.append(tokens[d], eos_token_id) if self.eos else np.asarray(tokens[d])
                chunk = full[d][self.start[c]:self.stop[c]]
                end = at + len(chunk)
                input_ids[i, at:end] = chunk
                doc_ids[i, at:end] = number
                position_ids[i, at:end] = np.arange(len(chunk))
                labels[i, at + 1:end] = chunk[1:]
                at = end
        return {"input_ids": input_ids, "attention_mask": doc_ids, "position_ids": position_ids, "labels": labels}


def packing_layout(lengths: Sequence[int], seq_len: int, eos: bool = True) -> PackingLayout:
    """The :class:`PackingLayout` of :func:`pack_sequences` for documents of ``lengths`` tokens (without EOS; add
    one each when ``eos``). Empty documents are dropped; each document (+ EOS) is cut into chunks of at most
    ``seq_len`` tokens, placed greedily first-fit, in order."""
    if not isinstance(seq_len, (int, np.integer)) or isinstance(seq_len, bool) or seq_len <= 0:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    lengths = np.asarray(lengths, np.int64).reshape(-1)  # [N]
    if len(lengths) and lengths.min() < 0:
        raise ValueError(f"document lengths must be non-negative, got {int(lengths.min())}")
    docs, starts, stops = [], [], []
    for d in np.flatnonzero(lengths):
        total = int(lengths[d]) + bool(eos)
        for at in range(0, total, seq_len):
            docs.append(d)
            starts.append(at)
            stops.append(min(at + seq_len, total))
    docs, starts, stops = (np.asarray(x, np.int64) for x in (docs, starts, stops))  # [C] each
    rows = _first_fit((stops - starts).tolist(), int(seq_len))  # [C]
    order = np.argsort(rows, kind="stable")  # row by row, placement order within a row
    counts = np.bincount(rows, minlength=int(rows.max()) + 1 if len(rows) else 0)
    row_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return PackingLayout(int(seq_len), bool(eos), docs[order], starts[order], stops[order], row_starts)


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
    The layout depends only on the documents' lengths (:func:`packing_layout`); :class:`train.corpus.PackedDataset`
    builds the same rows one batch at a time from documents tokenized on demand.
    """
    if not isinstance(seq_len, (int, np.integer)) or seq_len <= 0:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    if not isinstance(pad_token_id, (int, np.integer)):
        raise ValueError(f"pad_token_id must be an integer token id, got {pad_token_id!r}")
    documents = _check_documents(token_lists)
    layout = packing_layout([len(d) for d in documents], seq_len, eos=eos_token_id is not None)
    return layout.fill(range(layout.num_rows), documents, pad_token_id, eos_token_id)
