"""The pipeline machinery shared by every task: preprocess -> batched jitted forward -> postprocess.

How a task plugs in
-------------------
A task is one module in this package with one :class:`Pipeline` subclass, and one entry in
``SUPPORTED_TASKS`` (``pipelines/__init__.py``) naming that class, the Auto class its model must come
from and its default checkpoint. The subclass defines four methods, with Hugging Face's names:

* ``_sanitize_parameters(**kwargs) -> (preprocess_params, forward_params, postprocess_params)``: split the
  keyword arguments given to ``pipeline(...)`` or to a call, check them, and raise a clear error for bad ones.
* ``preprocess(item, **preprocess_params) -> dict``: one input to the model inputs of ONE example: token
  arrays shaped ``[1, T]`` (``input_ids``, ``attention_mask``, ``token_type_ids``, ``special_tokens_mask``,
  ``offset_mapping`` [1, T, 2], ``p_mask``: see ``PAD_VALUES``), other arrays with a leading axis of 1, and
  any Python values the postprocess needs (strings, flags). A :class:`ChunkPipeline` yields several such
  dicts per input (one per candidate label, per window...), the last with ``"is_last": True``.
* ``_forward(batch, **forward_params) -> dict``: run the model on a padded batch (``self.run_model(batch)``
  passes the entries the model takes, placed on the mesh when there is one); return a dict of arrays with
  the batch on axis 0 (and any Python values of the batch passed through). Outputs with a token axis at 1 must be named in the class attribute ``token_outputs``
  (``("logits",)`` for per-token heads), so that each example gets back exactly its own tokens.
* ``postprocess(outputs, **postprocess_params)``: the outputs of ONE example (arrays ``[1, ...]``, token
  axes cut back to the example's own length, like Hugging Face's unbatched run) -> the user-facing result
  (HF's dicts and lists). A :class:`ChunkPipeline` gets the list of its chunks' outputs.

Batching and compilation
------------------------
Examples are taken in order, ``batch_size`` at a time (a lazily consumed stream: a generator in, an
iterator out); a list longer than one batch is batched shortest first (``sorts_by_length``; results come
back in input order), so a batch's padding is small. Each batch is padded, on the tokenizer's ``padding_side``, to the length bucket of its
longest example (``generation.buckets.bucket_size`` with half steps: 16, 24, 32, 48, 64 ..., capped at the model's
``max_position_embeddings``), and to ``batch_size`` rows (extra rows repeat the first example and are
dropped), so a long run compiles the jitted forward once per bucket. With left padding, models that take
``position_ids`` get positions counted from each example's first token, so padding never changes a result.
A model without ``pad_token_id`` (decoders: their sequence classifiers read the last position) is padded on
the left whatever the tokenizer's side.
With ``mesh=`` (a ``jax.sharding.Mesh``) the params are replicated over the mesh and each batch is split
over its ``data`` axis (all axes when it has none): data-parallel inference. The mesh's axes are used as
``AxisType.Auto`` (as the library's own meshes are), also when it was made with explicit axes (the default
of ``jax.make_mesh`` in recent JAX).
"""
from __future__ import annotations

import collections.abc
import warnings
from typing import Any, Iterable, Iterator

import jax
import numpy as np

from transformers_jax.generation.buckets import MIN_BUCKET, bucket_size

# Token arrays that a batch pads along axis 1, and the value their padding takes (None: the tokenizer's pad id).
PAD_VALUES: dict[str, int | None] = {
    "input_ids": None,
    "attention_mask": 0,
    "token_type_ids": 0,
    "position_ids": 0,
    "special_tokens_mask": 1,
    "p_mask": 1,
    "offset_mapping": 0,
}
PROGRESS_BAR_MIN_ITEMS = 256  # inputs of known length at least this long show a tqdm bar by default


class PipelineException(ValueError):
    """An input a pipeline cannot handle (as HF's ``PipelineException``: ``task``, ``model``, ``reason``)."""

    def __init__(self, task: str, model: str, reason: str):
        super().__init__(reason)
        self.task = task
        self.model = model


class KeyDataset(collections.abc.Sequence):
    """One column of a dataset (``KeyDataset(dataset, "text")``), item by item, as HF's ``KeyDataset``:
    pass it to a pipeline to stream the column's values through it."""

    def __init__(self, dataset, key: str):
        self.dataset = dataset
        self.key = key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i][self.key]


def _is_single(inputs) -> bool:
    """A single example (a text, a text pair dict, ...) rather than a collection of them."""
    return isinstance(inputs, (str, bytes, dict)) or not isinstance(inputs, collections.abc.Iterable)


class Pipeline:
    """Base class of the task pipelines; see the module docstring for what a task defines.

    Args:
        model: a model object of this library (``BertForSequenceClassification``...).
        tokenizer: the tokenizer that encodes the inputs (a :class:`PreTrainedTokenizerFast`).
        task: the task name the pipeline was built for.
        batch_size: examples per forward pass (default 1); can be overridden per call.
        mesh: a ``jax.sharding.Mesh`` for data-parallel inference (params replicated, batches split).
        min_bucket: the smallest length bucket (default 16).
        kwargs: task parameters (``top_k=...``), defaults for every call.
    """

    token_outputs: tuple[str, ...] = ()  # forward outputs with a token axis at 1 (see the module docstring)
    # A list input longer than one batch is batched in order of length (results in input order), so each
    # batch pads to the bucket of similar lengths; off for pipelines that batch their own way.
    sorts_by_length: bool = True
    default_input_names = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, model, tokenizer=None, task: str = "", batch_size: int | None = None, mesh=None,
                 min_bucket: int = MIN_BUCKET, **kwargs):
        self.model = model
        self.tokenizer = tokenizer
        self.task = task
        self.mesh = _auto_axes(mesh) if mesh is not None else None
        self.min_bucket = min_bucket
        self._batch_size = _check_batch_size(batch_size) if batch_size is not None else None
        self.call_count = 0
        self._params = model.params
        if mesh is not None:
            from jax.sharding import NamedSharding, PartitionSpec

            self._params = jax.device_put(model.params, NamedSharding(self.mesh, PartitionSpec()))
        self._preprocess_params, self._forward_params, self._postprocess_params = self._sanitize_parameters(**kwargs)

    # ------------------------------------------------------------------ what a task defines
    def _sanitize_parameters(self, **kwargs) -> tuple[dict, dict, dict]:
        raise NotImplementedError(f"{type(self).__name__} must define _sanitize_parameters")

    def preprocess(self, inputs, **preprocess_params) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define preprocess")

    def _forward(self, model_inputs: dict, **forward_params) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define _forward")

    def postprocess(self, model_outputs: dict, **postprocess_params):
        raise NotImplementedError(f"{type(self).__name__} must define postprocess")

    # ------------------------------------------------------------------ calling
    def __call__(self, inputs, *args, batch_size: int | None = None, progress_bar: bool | None = None,
                 num_workers: int | None = None, **kwargs):
        """Run the pipeline on one input (-> one result), a list (-> a list of results), or any other
        iterable such as a generator, a ``datasets`` column or a :class:`KeyDataset` (-> an iterator that
        consumes the input lazily, batch by batch).

        ``batch_size`` overrides the pipeline's: every forward pass has that many rows (a single input, or the
        last batch, is completed with filler rows), so one program per length bucket serves every call.
        ``progress_bar`` shows a tqdm bar (default: for inputs of known length with at least
        ``PROGRESS_BAR_MIN_ITEMS`` items). ``num_workers`` is accepted for compatibility and ignored
        (preprocessing runs in the calling thread). Other keyword arguments are the task's.
        """
        if args:
            raise TypeError(f"{type(self).__name__}() takes one positional input, got {1 + len(args)}: pass the "
                            "other arguments by keyword")
        batch_size = _check_batch_size(batch_size if batch_size is not None else self._batch_size or 1)
        preprocess_params, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        params = ({**self._preprocess_params, **preprocess_params}, {**self._forward_params, **forward_params},
                  {**self._postprocess_params, **postprocess_params})
        self.call_count += 1
        if _is_single(inputs):
            return next(self._run([inputs], batch_size, *params, progress_bar=False))
        if isinstance(inputs, (list, tuple)):
            if self.sorts_by_length and 1 < batch_size < len(inputs):
                return self._run_sorted(inputs, batch_size, *params, progress_bar=progress_bar)
            return list(self._run(inputs, batch_size, *params, progress_bar=progress_bar))
        return self._run(inputs, batch_size, *params, progress_bar=progress_bar)

    def _progress(self, total: int | None, progress_bar: bool | None):
        """A tqdm bar over ``total`` examples when asked (by default: a known total of at least
        ``PROGRESS_BAR_MIN_ITEMS``), else None."""
        show = progress_bar if progress_bar is not None else (total is not None and total >= PROGRESS_BAR_MIN_ITEMS)
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=self.task or type(self).__name__, unit="example")

    def _run_sorted(self, inputs, batch_size: int, preprocess_params: dict, forward_params: dict,
                    postprocess_params: dict, progress_bar: bool | None = None) -> list:
        """A list's results in input order, its examples batched shortest first: every batch holds
        examples of similar length, so little of it is padding (the inputs are in memory anyway)."""
        examples = [self.preprocess(item, **preprocess_params) for item in inputs]

        def length(i):
            ids = examples[i].get("input_ids")
            return ids.shape[1] if isinstance(ids, np.ndarray) and ids.ndim >= 2 else 0

        order = sorted(range(len(examples)), key=length)
        results: list = [None] * len(examples)
        bar = self._progress(len(examples), progress_bar)
        try:
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                outputs = self.forward([examples[i] for i in rows], rows=batch_size, **forward_params)
                for i, output in zip(rows, outputs):
                    results[i] = self.postprocess(output, **postprocess_params)
                if bar is not None:
                    bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()
        return results

    def _run(self, inputs: Iterable, batch_size: int, preprocess_params: dict, forward_params: dict,
             postprocess_params: dict, progress_bar: bool | None = None) -> Iterator:
        """Results one by one, reading ``inputs`` only as far as the batches need."""
        bar = self._progress(len(inputs) if isinstance(inputs, collections.abc.Sized) else None, progress_bar)
        try:
            examples = self._examples(inputs, preprocess_params)
            pending: list = []  # a ChunkPipeline's chunks of the example not finished yet
            for batch in _batches(examples, batch_size):
                for outputs in self.forward(batch, rows=batch_size, **forward_params):
                    result = self._finish(outputs, postprocess_params, pending)
                    if result is not _PENDING:
                        if bar is not None:
                            bar.update(1)
                        yield result
        finally:
            if bar is not None:
                bar.close()

    def _examples(self, inputs: Iterable, preprocess_params: dict) -> Iterator[dict]:
        for item in inputs:
            yield self.preprocess(item, **preprocess_params)

    def _finish(self, outputs: dict, postprocess_params: dict, pending: list):
        return self.postprocess(outputs, **postprocess_params)

    # ------------------------------------------------------------------ batching
    def forward(self, examples: list[dict], rows: int | None = None, **forward_params) -> list[dict]:
        """Pad ``examples`` (outputs of ``preprocess``) into one batch, run ``_forward`` on it, and split its
        outputs back into one dict per example, each cut back to its own tokens."""
        rows = _round_up(max(rows or 1, len(examples)), self._data_parallel_size())
        batch, lengths, padded = self.collate(examples, rows)
        outputs = self._forward(batch, **forward_params)
        outputs = {k: (np.asarray(v) if isinstance(v, jax.Array) else v) for k, v in outputs.items()}
        return self._split(outputs, lengths, padded, rows)

    def collate(self, examples: list[dict], rows: int) -> tuple[dict, list[int], int]:
        """One batch of ``rows`` rows (>= the number of examples) from ``examples``.

        Token arrays (``PAD_VALUES``) are padded to the length bucket of the longest example on the
        tokenizer's padding side; other arrays are concatenated; Python values become lists.
        Returns (batch, each example's token count, the padded length).
        """
        keys = list(examples[0])
        for example in examples[1:]:
            if list(example) != keys:
                raise ValueError(f"examples of one batch have different keys: {keys} and {list(example)}")
        token_keys = [k for k in keys if k in PAD_VALUES and isinstance(examples[0][k], np.ndarray)]
        lengths = [int(example[token_keys[0]].shape[1]) for example in examples] if token_keys else [0] * len(examples)
        padded = self._bucket(max(lengths)) if token_keys else 0
        left = self._padding_side() == "left"
        batch = {}
        for key in keys:
            values = [example[key] for example in examples]
            if key in token_keys:
                fill = PAD_VALUES[key]
                if fill is None:
                    fill = self._pad_token_id()
                values = [_pad_tokens(np.asarray(v), padded, fill, left) for v in values]
            if isinstance(values[0], np.ndarray):
                shapes = {v.shape[1:] for v in values}
                if len(shapes) > 1:
                    raise ValueError(f"cannot batch {key!r}: the examples have shapes {sorted(shapes)}")
                array = np.concatenate(values)
                if rows > len(examples):  # filler rows repeat the first example; their outputs are dropped
                    array = np.concatenate([array, np.repeat(array[:1], rows - len(examples), axis=0)])
                batch[key] = array.astype(np.int32) if np.issubdtype(array.dtype, np.integer) else array
            else:
                batch[key] = values
        if left and "attention_mask" in batch and "position_ids" not in batch and self._model_takes("position_ids"):
            batch["position_ids"] = np.maximum(np.cumsum(batch["attention_mask"], axis=1) - 1, 0).astype(np.int32)
        return batch, lengths, padded

    def _split(self, outputs: dict, lengths: list[int], padded: int, rows: int) -> list[dict]:
        """One dict per example from the batched ``outputs``: rows picked, filler rows dropped, the token
        axis of ``token_outputs`` (and of the padded inputs passed through) cut back to the example's tokens."""
        count = len(lengths)
        left = self._padding_side() == "left"
        token_keys = set(PAD_VALUES) | set(self.token_outputs)
        out = []
        for i, length in enumerate(lengths):
            example = {}
            for key, value in outputs.items():
                if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == rows:
                    value = value[i:i + 1]
                    if key in token_keys and value.ndim >= 2 and value.shape[1] == padded:
                        value = value[:, padded - length:] if left else value[:, :length]
                elif isinstance(value, list) and len(value) == count:
                    value = value[i]
                example[key] = value
            out.append(example)
        return out

    def _bucket(self, length: int) -> int:
        limit = getattr(self.model.config, "max_position_embeddings", None)
        size = bucket_size(length, minimum=self.min_bucket, maximum=limit, half_steps=True)
        return max(size, length)  # beyond the model's limit: the model's own input check names the problem

    # ------------------------------------------------------------------ running the model
    def model_inputs(self, batch: dict) -> dict:
        """The entries of ``batch`` that the model's forward takes, placed on the mesh when there is one."""
        inputs = {k: v for k, v in batch.items() if self._model_takes(k) and isinstance(v, np.ndarray)}
        if self.mesh is not None:
            from jax.sharding import NamedSharding, PartitionSpec

            sharding = NamedSharding(self.mesh, PartitionSpec(self._data_axes()))
            inputs = {k: jax.device_put(v, sharding) for k, v in inputs.items()}
        return inputs

    def run_model(self, batch: dict, **kwargs):
        """``self.model`` on the model inputs of ``batch`` (with the pipeline's, possibly replicated, params)."""
        return self.model(**self.model_inputs(batch), params=self._params, **kwargs)

    def _model_takes(self, name: str) -> bool:
        names = getattr(type(self.model), "_input_names", None)
        return name in (names() if names is not None else self.default_input_names)

    def _data_axes(self) -> tuple[str, ...]:
        names = tuple(self.mesh.axis_names)
        return ("data",) if "data" in names else names

    def _data_parallel_size(self) -> int:
        if self.mesh is None:
            return 1
        return int(np.prod([self.mesh.shape[a] for a in self._data_axes()]))

    def _padding_side(self) -> str:
        """The tokenizer's padding side; but "left" for a model without ``pad_token_id`` that takes position ids.

        Such a model cannot tell padding from tokens by their id (a decoder's sequence classifier then reads
        the LAST position), so padding goes in front, where the attention mask hides it and the position ids
        (counted from each example's first token) keep it from shifting anything.
        """
        side = getattr(self.tokenizer, "padding_side", "right") or "right"
        if side == "right" and getattr(self.model.config, "pad_token_id", 0) is None and self._model_takes("position_ids"):
            return "left"
        return side

    def _pad_token_id(self) -> int:
        """The id that pads ``input_ids``: the tokenizer's pad token, else the model's ``pad_token_id``, else 0
        (padding is masked out by the attention mask, so the id itself is not read)."""
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(self.model.config, "pad_token_id", None)
        return 0 if pad is None else pad

    def save_pretrained(self, save_directory) -> None:
        """Save the model and the tokenizer into one directory (loadable by ``pipeline(task, model=dir)``)."""
        self.model.save_pretrained(save_directory)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={type(self.model).__name__})"


class ChunkPipeline(Pipeline):
    """A pipeline whose ``preprocess`` yields several model inputs per example (the last one carrying
    ``"is_last": True``) and whose ``postprocess`` receives the list of their outputs. The chunks of
    consecutive examples share batches."""

    sorts_by_length = False  # an input's chunks must stay together, in order

    def _examples(self, inputs: Iterable, preprocess_params: dict) -> Iterator[dict]:
        for item in inputs:
            chunks = 0
            for chunk in self.preprocess(item, **preprocess_params):
                chunks += 1
                yield chunk
            if not chunks:
                raise ValueError(f"{type(self).__name__}.preprocess produced nothing for the input {item!r}")

    def _finish(self, outputs: dict, postprocess_params: dict, pending: list):
        pending.append(outputs)
        if not outputs.get("is_last", True):
            return _PENDING
        chunks = list(pending)
        pending.clear()
        return self.postprocess(chunks, **postprocess_params)


_PENDING = object()  # a chunk whose example is not complete yet


def _auto_axes(mesh):
    """``mesh`` with every axis ``AxisType.Auto`` (as the library's meshes are): ``jit`` then derives the
    shardings inside the model from the placed batch, whichever axis types the caller's mesh had."""
    from jax.sharding import AxisType, Mesh

    if not hasattr(mesh, "axis_names") or not hasattr(mesh, "devices"):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if all(t == AxisType.Auto for t in getattr(mesh, "axis_types", ())):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def _batches(examples: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch = []
    for example in examples:
        batch.append(example)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _pad_tokens(array: np.ndarray, length: int, fill: int, left: bool) -> np.ndarray:
    """``array`` [1, T, ...] padded along axis 1 to ``length`` with ``fill``."""
    if array.ndim < 2 or array.shape[0] != 1:
        raise ValueError(f"token arrays from preprocess must have shape [1, T, ...], got {array.shape}")
    width = array.shape[1]
    pad = [(0, 0)] * array.ndim
    pad[1] = (length - width, 0) if left else (0, length - width)
    return np.pad(array, pad, constant_values=fill)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def check_top_k(top_k, allow_none: bool = False):
    """``top_k`` as a positive int (or None where allowed); a clear error otherwise."""
    if top_k is None and allow_none:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer{' or None' if allow_none else ''}, got {top_k!r}")
    return int(top_k)


def to_numpy_dict(output) -> dict[str, Any]:
    """A model output (a ModelOutput or dict) as an ordered dict of its non-None fields."""
    return {k: v for k, v in output.items() if v is not None}


def warn_deprecated(message: str) -> None:
    warnings.warn(message, FutureWarning, stacklevel=3)


__all__ = ["ChunkPipeline", "KeyDataset", "PAD_VALUES", "Pipeline", "PipelineException", "check_top_k"]
