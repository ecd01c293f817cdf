"""What a tokenizer call returns, and how its inputs are padded and truncated.

* :class:`BatchEncoding` -- the dict returned by a tokenizer call (``enc.input_ids``, ``enc.word_ids(0)``...), with
  tensor conversion: ``return_tensors='np'`` gives ``int64`` arrays (what HF returns, numpy's default for Python
  ints), ``'jax'`` gives ``int32`` ``jax.Array``s (JAX's default integer type without x64), ``'pt'`` torch tensors.
* :class:`PaddingMixin` -- HF's padding / truncation strategy resolution, the backend's padding and truncation
  settings for a call, and :meth:`~PaddingMixin.pad` for already-encoded inputs.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tokenizers import Encoding

#: ``model_max_length`` of a tokenizer without a known limit (same value as HF).
VERY_LARGE_INTEGER = int(1e30)
#: Above this, ``model_max_length`` is treated as "no limit" (same value as HF).
LARGE_INTEGER = int(1e20)

_PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
_TRUNCATION_STRATEGIES = ("only_first", "only_second", "longest_first", "do_not_truncate")
_TENSOR_TYPES = ("np", "jax", "pt")


def _to_tensor(key: str, value: Any, tensor_type: str):
    """Convert one BatchEncoding entry (nested lists of ints) to an array of ``tensor_type``."""
    if tensor_type == "np":
        if isinstance(value, np.ndarray):
            return value
    elif tensor_type == "jax":
        import jax

        if isinstance(value, jax.Array):
            return value
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple, np.ndarray)):
        lengths = {len(v) for v in value}
        if len(lengths) > 1:
            raise ValueError(
                f"Unable to create a tensor for `{key}`: the sequences in this batch have different lengths "
                f"({sorted(lengths)}). Pass `padding=True` (and `truncation=True` for inputs longer than the model "
                "accepts) to get sequences of equal length, or leave `return_tensors=None` to get Python lists."
            )
    try:
        array = np.asarray(value)
    except ValueError as err:  # inhomogeneous nesting
        raise ValueError(f"Unable to create a tensor for `{key}` from a nested list of uneven shape.") from err
    if array.size == 0:
        array = array.astype(np.int64)
    if array.dtype == object:
        raise ValueError(f"Unable to create a tensor for `{key}`: its values are not rectangular integers.")
    if tensor_type == "np":
        return array
    if tensor_type == "jax":
        import jax.numpy as jnp

        if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
            array = array.astype(np.int32)
        return jnp.asarray(array)
    if tensor_type == "pt":
        import torch

        return torch.from_numpy(np.ascontiguousarray(array))
    raise ValueError(f"Unknown return_tensors={tensor_type!r}; use one of {list(_TENSOR_TYPES)} or None.")


class BatchEncoding(dict):
    """Output of a tokenizer call: a ``dict`` of model inputs with HF's extras.

    Keys are ``input_ids``, ``attention_mask`` and, depending on the tokenizer and call, ``token_type_ids``,
    ``special_tokens_mask``, ``offset_mapping``, ``length``, ``overflow_to_sample_mapping``. Values can be read as
    items (``enc["input_ids"]``) or attributes (``enc.input_ids``). ``enc[i]`` with an integer gives the
    ``tokenizers.Encoding`` of batch item ``i``; ``enc[a:b]`` slices every value.

    Args:
        data: the mapping of names to lists / arrays.
        encoding: the ``tokenizers.Encoding`` objects the data was built from (one per batch item), or ``None``.
        tensor_type: ``None``, ``'np'``, ``'jax'`` or ``'pt'``; converts the values on construction.
        n_sequences: number of sequences (1 or 2) behind each item; taken from the encodings when not given.
    """

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        encoding: Encoding | Sequence[Encoding] | None = None,
        tensor_type: str | None = None,
        n_sequences: int | None = None,
    ):
        super().__init__(data or {})
        if isinstance(encoding, Encoding):
            encoding = [encoding]
        self._encodings = list(encoding) if encoding is not None else None
        if n_sequences is None and self._encodings:
            n_sequences = self._encodings[0].n_sequences
        self._n_sequences = n_sequences
        self.convert_to_tensors(tensor_type)

    def __getitem__(self, item):
        """A value by name, the ``tokenizers.Encoding`` of a batch index, or a slice of every value."""
        if isinstance(item, str):
            return dict.__getitem__(self, item)
        if isinstance(item, slice):
            return {key: value[item] for key, value in self.items()}
        if isinstance(item, (int, np.integer)) and self._encodings is not None:
            return self._encodings[item]
        raise KeyError(
            f"Invalid key {item!r}: use a string (a value by name), an integer (the tokenizers.Encoding of a batch "
            "item, only for tokenizer outputs) or a slice."
        )

    def __getattr__(self, item: str):
        if item.startswith("__") and item.endswith("__"):
            raise AttributeError(item)
        try:
            return dict.__getitem__(self, item)
        except KeyError:
            raise AttributeError(f"BatchEncoding has no key or attribute {item!r}") from None

    def __reduce__(self):
        return (self.__class__, (dict(self), self._encodings, None, self._n_sequences))

    def __repr__(self) -> str:
        return f"BatchEncoding({dict.__repr__(self)})"

    @property
    def encodings(self) -> list[Encoding] | None:
        """The ``tokenizers.Encoding`` of each batch item (``None`` when the data was not built by a tokenizer)."""
        return self._encodings

    @property
    def n_sequences(self) -> int | None:
        """1 for single sequences, 2 for pairs, ``None`` when unknown."""
        return self._n_sequences

    @property
    def is_fast(self) -> bool:
        """Whether ``tokenizers.Encoding`` objects are attached (always the case for tokenizer outputs)."""
        return self._encodings is not None

    def _encoding(self, batch_index: int) -> Encoding:
        if not self._encodings:
            raise ValueError("This BatchEncoding carries no tokenizers.Encoding (it was not built by a tokenizer).")
        return self._encodings[batch_index]

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The token strings of batch item ``batch_index``."""
        return self._encoding(batch_index).tokens

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of item ``batch_index``, the index of the word it comes from (``None`` for specials)."""
        return self._encoding(batch_index).word_ids

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token, 0 or 1 for the sequence of a pair it belongs to (``None`` for added special tokens)."""
        return self._encoding(batch_index).sequence_ids

    def _batch_and_index(self, batch_or_index: int, index: int | None) -> tuple[int, int]:
        if index is None:
            if self._encodings is not None and len(self._encodings) > 1:
                raise ValueError("Pass (batch_index, index) when the batch holds more than one item.")
            return 0, batch_or_index
        return batch_or_index, index

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        """The word index of a token (``(token_index)`` for one item, ``(batch_index, token_index)`` otherwise)."""
        batch_index, token_index = self._batch_and_index(batch_or_token_index, token_index)
        return self._encoding(batch_index).token_to_word(token_index)

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None) -> tuple[int, int] | None:
        """The (start, end) character span of a token in its original text."""
        batch_index, token_index = self._batch_and_index(batch_or_token_index, token_index)
        return self._encoding(batch_index).token_to_chars(token_index)

    def char_to_token(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        """The index of the token covering a character of sequence ``sequence_index``."""
        batch_index, char_index = self._batch_and_index(batch_or_char_index, char_index)
        return self._encoding(batch_index).char_to_token(char_index, sequence_index)

    def convert_to_tensors(self, tensor_type: str | None = None) -> BatchEncoding:
        """Convert every value in place to ``tensor_type`` arrays ('np' int64, 'jax' int32, 'pt'); returns self.

        Raises ``ValueError`` for a ragged batch (HF would build a numpy object array instead).
        """
        if tensor_type is None:
            return self
        tensor_type = str(getattr(tensor_type, "value", tensor_type))
        if tensor_type not in _TENSOR_TYPES:
            raise ValueError(f"Unknown return_tensors={tensor_type!r}; use one of {list(_TENSOR_TYPES)} or None.")
        for key in list(self.keys()):
            dict.__setitem__(self, key, _to_tensor(key, dict.__getitem__(self, key), tensor_type))
        return self



def _is_valid_text_input(value: Any) -> bool:
    """HF's check: str, list[str], list[list[str]], or list of (list[str], list[str]) pairs."""
    if isinstance(value, str):
        return True
    if not isinstance(value, (list, tuple)):
        return False
    if len(value) == 0 or isinstance(value[0], str):
        return True
    if isinstance(value[0], (list, tuple)):
        inner = value[0]
        if len(inner) == 0 or isinstance(inner[0], str):
            return True
        if isinstance(inner[0], (list, tuple)):
            return len(inner[0]) == 0 or isinstance(inner[0][0], str)
    return False


def _to_python(value: Any) -> Any:
    """numpy / jax / torch arrays (and numpy scalars) to Python lists / ints; other values unchanged."""
    if isinstance(value, (list, tuple)):
        return [_to_python(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    return value


def _strategy_name(kind: str, value: Any, if_true: str, if_off: str, allowed: tuple[str, ...]) -> str:
    """A padding or truncation argument (``True``, ``False``/``None``, a name or an enum) as a strategy name."""
    if value is True:
        value = if_true
    elif value is False or value is None:
        value = if_off
    value = str(getattr(value, "value", value))
    if value not in allowed:
        raise ValueError(f"{value!r} is not a valid {kind} strategy, please select one of {list(allowed)}")
    return value


class PaddingMixin:
    """Padding and truncation for :class:`~transformers_jax.tokenization.PreTrainedTokenizerFast`.

    Uses the tokenizer's ``_tokenizer`` (the ``tokenizers.Tokenizer``), ``model_max_length``, ``padding_side``,
    ``truncation_side``, ``model_input_names``, ``pad_token`` / ``pad_token_id`` and ``pad_token_type_id``.
    """

    def _strategies(self, padding, truncation, max_length, pad_to_multiple_of, verbose=True):
        """Resolve padding/truncation arguments to (padding, truncation, max_length) like HF."""
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"
        if padding is True:
            if verbose and max_length is not None and truncation in (None, False, "do_not_truncate"):
                warnings.warn(
                    "`max_length` is ignored when `padding`=`True` and there is no truncation strategy. "
                    "To pad to max length, use `padding='max_length'`."
                )
        padding = _strategy_name("padding", padding, "longest", "do_not_pad", _PADDING_STRATEGIES)
        truncation = _strategy_name(
            "truncation", truncation, "longest_first", "do_not_truncate", _TRUNCATION_STRATEGIES
        )
        if max_length is None:
            if padding == "max_length":
                if self.model_max_length > LARGE_INTEGER:
                    padding = "do_not_pad"  # no known limit: HF silently does not pad
                else:
                    max_length = self.model_max_length
            if truncation != "do_not_truncate":
                if self.model_max_length > LARGE_INTEGER:
                    truncation = "do_not_truncate"  # no known limit: HF silently does not truncate
                else:
                    max_length = self.model_max_length
        if padding != "do_not_pad" and (self.pad_token is None or self.pad_token_id is None or self.pad_token_id < 0):
            raise ValueError(
                "Asking to pad but the tokenizer does not have a padding token. Set one, e.g. "
                "`tokenizer.pad_token = tokenizer.eos_token`, or add one with "
                "`tokenizer.add_special_tokens({'pad_token': '[PAD]'})`."
            )
        if (
            truncation != "do_not_truncate"
            and padding != "do_not_pad"
            and pad_to_multiple_of is not None
            and max_length is not None
            and max_length % pad_to_multiple_of != 0
        ):
            raise ValueError(
                "Truncation and padding are both activated but "
                f"truncation length ({max_length}) is not a multiple of pad_to_multiple_of ({pad_to_multiple_of})."
            )
        return padding, truncation, max_length

    def _configure_backend(self, padding, truncation, max_length, stride, pad_to_multiple_of, padding_side) -> None:
        if truncation == "do_not_truncate":
            if self._tokenizer.truncation is not None:
                self._tokenizer.no_truncation()
        else:
            self._tokenizer.enable_truncation(
                max_length=max_length, stride=stride, strategy=truncation, direction=self.truncation_side
            )
        if padding == "do_not_pad":
            if self._tokenizer.padding is not None:
                self._tokenizer.no_padding()
        else:
            side = padding_side if padding_side is not None else self.padding_side
            if side not in ("right", "left"):
                raise ValueError(f"padding_side should be 'right' or 'left', got {side!r}")
            self._tokenizer.enable_padding(
                direction=side,
                pad_id=self.pad_token_id,
                pad_type_id=self.pad_token_type_id,
                pad_token=self.pad_token,
                length=max_length if padding == "max_length" else None,
                pad_to_multiple_of=pad_to_multiple_of,
            )

    def pad(
        self,
        encoded_inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
    ) -> BatchEncoding:
        """Pad already-encoded inputs (a dict of lists, or a list of dicts as a data collator receives them)."""
        if isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and isinstance(encoded_inputs[0], Mapping):
            encoded_inputs = {key: [example[key] for example in encoded_inputs] for key in encoded_inputs[0].keys()}
        encoded_inputs = {key: _to_python(value) for key, value in dict(encoded_inputs).items()}
        main = self.model_input_names[0]
        if main not in encoded_inputs:
            raise ValueError(f"pad() needs `{main}` in the inputs, got {list(encoded_inputs)}")
        padding, _, max_length = self._strategies(padding, None, max_length, None, verbose=False)
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        side = padding_side if padding_side is not None else self.padding_side
        required = encoded_inputs[main]
        batched = bool(required) and isinstance(required[0], (list, tuple))
        rows = [
            {key: list(value[i]) for key, value in encoded_inputs.items()} for i in range(len(required))
        ] if batched else [{key: list(value) for key, value in encoded_inputs.items()}]
        if padding == "longest":
            max_length = max((len(row[main]) for row in rows), default=0)
        out: dict[str, list] = {}
        for row in rows:
            length = len(row[main])
            target = max_length
            if target is not None and pad_to_multiple_of is not None and target % pad_to_multiple_of != 0:
                target = (target // pad_to_multiple_of + 1) * pad_to_multiple_of
            if return_attention_mask and "attention_mask" not in row:
                row["attention_mask"] = [1] * length
            if padding != "do_not_pad" and target is not None and length < target:
                extra = target - length
                fills = {
                    main: self.pad_token_id,
                    "attention_mask": 0,
                    "token_type_ids": self.pad_token_type_id,
                    "special_tokens_mask": 1,
                }
                for key, fill in fills.items():
                    if key in row and (key != "attention_mask" or return_attention_mask):
                        pad = [fill] * extra
                        row[key] = row[key] + pad if side == "right" else pad + row[key]
            for key, value in row.items():
                out.setdefault(key, []).append(value)
        if not batched:
            out = {key: value[0] for key, value in out.items()}
            return BatchEncoding(out, tensor_type=return_tensors)
        return BatchEncoding(out, tensor_type=return_tensors)
