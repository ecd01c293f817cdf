"""Tokenizers with Hugging Face transformers' user experience, backed by the Rust ``tokenizers`` library.

The public classes mirror ``transformers``' fast tokenizers:

* :class:`BatchEncoding` -- the dict returned by a tokenizer call (``enc.input_ids``, ``enc.word_ids(0)``...).
* :class:`PreTrainedTokenizerFast` -- a wrapper over a ``tokenizers.Tokenizer`` with HF's calling conventions:
  padding / truncation strategies, pairs, batches, pre-split words, ``return_tensors`` ('np', 'jax', 'pt'),
  decoding, special and added tokens, chat templates and ``save_pretrained`` / ``from_pretrained``.
* :class:`AutoTokenizer` -- ``AutoTokenizer.from_pretrained`` delegating to :class:`PreTrainedTokenizerFast`.

Observable behaviour (ids, masks, token type ids, offsets, decoded strings, padding and truncation results)
follows ``transformers`` v5 on the same files. Known, deliberate differences are listed in the docstrings:
ragged batches with ``return_tensors`` raise a ``ValueError`` (HF builds object arrays), ``apply_chat_template``
defaults to ``return_dict=False`` (HF v5 defaults to ``True``), and ``save_pretrained`` raises on a path that is a
file (HF logs an error and returns ``None``).

Tensor dtypes: ``return_tensors='np'`` gives ``int64`` arrays (what HF returns, numpy's default for Python ints);
``return_tensors='jax'`` gives ``int32`` ``jax.Array``s (JAX's default integer type without x64).
"""
from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import re
import tempfile
import typing
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import AddedToken, Encoding, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, WordPiece

logger = logging.getLogger(__name__)

__all__ = ["AutoTokenizer", "BatchEncoding", "PreTrainedTokenizerFast", "VERY_LARGE_INTEGER"]

#: ``model_max_length`` of a tokenizer without a known limit (same value as HF).
VERY_LARGE_INTEGER = int(1e30)
#: Above this, ``model_max_length`` is treated as "no limit" (same value as HF).
LARGE_INTEGER = int(1e20)

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
LEGACY_CHAT_TEMPLATE_FILE = "chat_template.json"
CHAT_TEMPLATE_DIR = "additional_chat_templates"
BERT_VOCAB_FILE = "vocab.txt"
BPE_VOCAB_FILE = "vocab.json"
BPE_MERGES_FILE = "merges.txt"

SPECIAL_TOKENS_ATTRIBUTES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)

# HF tokenizer classes whose ``model_input_names`` include ``token_type_ids`` (transformers v5).
_CLASSES_WITH_TOKEN_TYPE_IDS = {
    "BertTokenizer",
    "CanineTokenizer",
    "DPRQuestionEncoderTokenizer",
    "DebertaTokenizer",
    "DebertaV2Tokenizer",
    "FNetTokenizer",
    "LayoutLMv2Tokenizer",
    "LxmertTokenizer",
    "MarkupLMTokenizer",
    "MobileBertTokenizer",
    "TapasTokenizer",
}
# Default special tokens of the HF classes whose vocabulary-file formats we can build.
_CLASS_DEFAULT_SPECIAL_TOKENS = {
    "BertTokenizer": {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    },
    "GPT2Tokenizer": {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
    "RobertaTokenizer": {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    },
}
# Byte-level BPE classes that wrap sequences as ``<s> A </s></s> B </s>`` (RobertaProcessing).
_ROBERTA_LIKE_CLASSES = {"RobertaTokenizer", "BartTokenizer", "LongformerTokenizer", "LEDTokenizer", "MvpTokenizer"}

_PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
_TRUNCATION_STRATEGIES = ("only_first", "only_second", "longest_first", "do_not_truncate")
_TENSOR_TYPES = ("np", "jax", "pt")


def _base_class_name(name: str | None) -> str | None:
    """``'BertTokenizerFast'`` -> ``'BertTokenizer'`` (HF's fast and slow names share behaviour in v5)."""
    if name is None:
        return None
    return name[:-4] if name.endswith("Fast") else name


# --------------------------------------------------------------------------------------------------------------------
# BatchEncoding
# --------------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------------
# Chat templates
# --------------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _compile_chat_template(template: str):
    """Compile a chat template in a sandboxed jinja2 environment configured like HF's."""
    try:
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as err:  # pragma: no cover - jinja2 is a dependency
        raise ImportError("apply_chat_template needs jinja2: pip install jinja2") from err

    class GenerationBlock(jinja2.ext.Extension):
        """Accept HF's ``{% generation %}...{% endgeneration %}`` blocks and render their body unchanged."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

        def _render_body(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # Unlike jinja's own filter: no HTML escaping, and the json.dumps options are exposed.
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    class TemplateDict:
        """``dict(...)`` for templates without exposing the real type."""

        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        """``namespace(...)`` that refuses underscore-prefixed attribute names."""

        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            TemplateNamespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"Chat templates cannot set underscore-prefixed attributes on a namespace (got {name!r})."
                )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env.from_string(template)


def _plain_data(value: Any) -> Any:
    """Rebuild template inputs from plain JSON-like types so the sandbox never sees rich objects."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain_data(k): _plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain_data(v) for v in value)
    if isinstance(value, np.generic):
        return _plain_data(value.item())
    if callable(getattr(value, "model_dump", None)):
        return _plain_data(value.model_dump())
    return f"<{type(value).__name__}>"


_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object"}


def _type_to_schema(hint: Any) -> dict:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is type(None):
        return {"type": "null"}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        schemas = [_type_to_schema(a) for a in args]
        types = [s["type"] for s in schemas if "type" in s and isinstance(s["type"], str)]
        if len(types) == len(schemas):
            non_null = [t for t in types if t != "null"]
            out = {"type": non_null[0] if len(non_null) == 1 else non_null}
            if "null" in types:
                out["nullable"] = True
            return out
        return {}
    if origin is typing.Literal:
        return {"type": _JSON_TYPES.get(type(args[0]), "string"), "enum": list(args)}
    if origin in (list, tuple, set):
        out = {"type": "array"}
        if origin is list and args:
            out["items"] = _type_to_schema(args[0])
        return out
    if origin is dict:
        return {"type": "object"}
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    return {}


def _function_to_json_schema(func) -> dict:
    """A JSON schema for a tool function from its type hints and Google-style docstring.

    Every argument needs a type hint; argument descriptions come from the docstring's ``Args:`` section.
    """
    doc = inspect.getdoc(func) or ""
    parts = re.split(r"\n\s*(?:Args|Arguments|Returns|Raises):\s*\n", doc, maxsplit=1)
    description = parts[0].strip()
    arg_docs: dict[str, str] = {}
    args_block = re.search(r"\n?\s*(?:Args|Arguments):\s*\n(.*?)(?:\n\s*(?:Returns|Raises):|\Z)", doc, re.S)
    if args_block:
        current = None
        for line in args_block.group(1).splitlines():
            match = re.match(r"\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)", line)
            if match:
                current = match.group(1)
                arg_docs[current] = match.group(2).strip()
            elif current and line.strip():
                arg_docs[current] += " " + line.strip()
    hints = typing.get_type_hints(func)
    properties, required = {}, []
    for name, param in inspect.signature(func).parameters.items():
        if name not in hints:
            raise TypeError(f"Tool {func.__name__!r}: argument {name!r} needs a type hint to build its schema.")
        schema = _type_to_schema(hints[name])
        if name in arg_docs:
            schema["description"] = arg_docs[name]
        properties[name] = schema
        if param.default is inspect.Parameter.empty:
            required.append(name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    function = {"name": func.__name__, "description": description, "parameters": parameters}
    return {"type": "function", "function": function}


_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


def _render_chat(
    conversations: list[list[dict]],
    template: str,
    *,
    tools=None,
    documents=None,
    add_generation_prompt: bool = False,
    continue_final_message: bool | str = False,
    **template_kwargs,
) -> list[str]:
    """Render each conversation with ``template`` the way HF's ``render_jinja_template`` does."""
    compiled = _compile_chat_template(template)
    tool_schemas = None
    if tools is not None:
        tool_schemas = []
        for tool in tools:
            if isinstance(tool, dict):
                tool_schemas.append(tool)
            elif inspect.isfunction(tool) or inspect.ismethod(tool):
                tool_schemas.append(_function_to_json_schema(tool))
            else:
                raise ValueError("Tools should be JSON schemas (dicts) or functions with type hints and a docstring.")
    if documents is not None and not all(isinstance(d, dict) for d in documents):
        raise TypeError("Documents should be a list of dicts with 'title' and 'text' keys!")
    tool_schemas = _plain_data(tool_schemas)
    documents = _plain_data(documents)
    template_kwargs = _plain_data(template_kwargs)

    rendered = []
    for chat in conversations:
        chat = _plain_data(list(getattr(chat, "messages", chat)))
        for message in chat:
            if not isinstance(message, dict):
                raise TypeError(f"Chat messages should be dicts, but got {message!r}.")
        aliased = []
        for message in chat:
            reasoning = next((message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None)
            if reasoning is not None:
                message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
            aliased.append(message)
        chat = aliased
        final_message = None
        if continue_final_message:
            field = continue_final_message if isinstance(continue_final_message, str) else "content"
            final_message = chat[-1].get(field)
            if final_message is None:
                raise ValueError(f'continue_final_message is set but the final message has no "{field}" to continue!')
            fields = [field]
            if field in _REASONING_FIELDS:
                fields = [f for f in _REASONING_FIELDS if chat[-1].get(f) == final_message]
            if not any(f in template for f in fields):
                raise ValueError(
                    f'continue_final_message is set to "{field}" but this is not an accepted field in the chat_template'
                )
            if isinstance(final_message, (list, tuple)):
                for block in reversed(final_message):
                    if "text" in block:
                        final_message = block["text"]
                        block["text"] = block["text"] + _CONTINUE_TAG
                        break
                else:
                    raise ValueError("continue_final_message is set but the final message has no text to continue!")
            else:
                for f in fields:
                    chat[-1][f] = chat[-1][f] + _CONTINUE_TAG
        text = compiled.render(
            messages=chat,
            tools=tool_schemas,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            **template_kwargs,
        )
        if continue_final_message:
            if final_message.strip() not in text or _CONTINUE_TAG.strip() not in text:
                raise ValueError(
                    "continue_final_message is set but the final message does not appear in the rendered chat; "
                    "the chat template removes part of it.\n"
                    f"Final message: {final_message.strip()}\nRendered chat:\n{text}"
                )
            loc = text.rindex(_CONTINUE_TAG.strip())
            text = text[:loc] if text[loc : loc + len(_CONTINUE_TAG)] == _CONTINUE_TAG else text[:loc].rstrip()
        rendered.append(text)
    return rendered


# --------------------------------------------------------------------------------------------------------------------
# Loading helpers
# --------------------------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _as_added_token(value: Any, *, special: bool | None = None) -> Any:
    """Turn a serialized AddedToken (``{"content": ..., ...}``, maybe with ``__type``) into an ``AddedToken``."""
    if isinstance(value, dict) and "content" in value:
        fields = {k: v for k, v in value.items() if k != "__type"}
        if special is not None:
            fields["special"] = special
        allowed = {"content", "single_word", "lstrip", "rstrip", "normalized", "special"}
        return AddedToken(**{k: v for k, v in fields.items() if k in allowed})
    return value


def _token_to_dict(token: AddedToken) -> dict:
    return {
        "content": token.content,
        "lstrip": token.lstrip,
        "normalized": token.normalized,
        "rstrip": token.rstrip,
        "single_word": token.single_word,
        "special": token.special,
    }


TOKENIZER_FILES = (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, ADDED_TOKENS_FILE, BERT_VOCAB_FILE,
                   BPE_VOCAB_FILE, BPE_MERGES_FILE, CHAT_TEMPLATE_FILE, LEGACY_CHAT_TEMPLATE_FILE)


def _resolve_location(path_or_hub_id: str | os.PathLike, hub_kwargs: dict) -> tuple[Path, str]:
    """(local path, name for messages): a ``tokenizer.json`` file, or a folder with the tokenizer files.

    A hub repo's tokenizer files (those of :data:`TOKENIZER_FILES` and ``additional_chat_templates/*.jinja`` that
    it has) are downloaded into the Hugging Face cache; nothing else is.
    """
    from transformers_jax import hub_download

    path = Path(path_or_hub_id).expanduser()
    if path.is_file():
        return path, str(path)
    files = hub_download.open_source(path_or_hub_id, **hub_kwargs)
    templates = [f"{CHAT_TEMPLATE_DIR}/{name}" for name in files.listdir(CHAT_TEMPLATE_DIR) if name.endswith(".jinja")]
    return hub_download.fetch_existing(files, [*TOKENIZER_FILES, *templates]), files.describe()


def _bert_backend(vocab_file: Path, config: dict, unk_token: str) -> Tokenizer:
    """A BERT WordPiece tokenizer built from ``vocab.txt`` like HF's ``BertTokenizer`` does."""
    backend = Tokenizer(WordPiece.from_file(str(vocab_file), unk_token=unk_token))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=config.get("tokenize_chinese_chars", True),
        strip_accents=config.get("strip_accents"),
        lowercase=config.get("do_lower_case", True),
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    return backend


def _byte_level_bpe_backend(vocab_file: Path, merges_file: Path, config: dict) -> Tokenizer:
    """A GPT-2 style byte-level BPE tokenizer from ``vocab.json`` + ``merges.txt`` (HF ``GPT2Tokenizer``)."""
    model = BPE.from_file(
        str(vocab_file),
        str(merges_file),
        dropout=None,
        continuing_subword_prefix="",
        end_of_word_suffix="",
        fuse_unk=False,
    )
    backend = Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=bool(config.get("add_prefix_space", False)))
    backend.decoder = decoders.ByteLevel()
    return backend


# --------------------------------------------------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------------------------------------------------


def _special_token_property(name: str):
    def getter(self):
        value = self._special_tokens.get(name)
        return None if value is None else str(value)

    def setter(self, value):
        if value is not None and not isinstance(value, (str, AddedToken)):
            raise ValueError(f"{name} must be a str, a tokenizers.AddedToken or None, got {type(value).__name__}")
        self._special_tokens[name] = value

    return property(getter, setter, doc=f"The {name.replace('_', ' ')} as a string (``None`` if not set).")


def _special_token_id_property(name: str):
    def getter(self):
        value = self._special_tokens.get(name)
        return None if value is None else self.convert_tokens_to_ids(str(value))

    def setter(self, value):
        self._special_tokens[name] = None if value is None else self.convert_ids_to_tokens(int(value))

    return property(getter, setter, doc=f"The id of the {name.replace('_', ' ')} (``None`` if not set).")


class PreTrainedTokenizerFast:
    """A Hugging Face style tokenizer wrapping a ``tokenizers.Tokenizer``.

    Args:
        tokenizer_object: the ``tokenizers.Tokenizer`` to wrap (deep-copied, as HF does).
        tokenizer_file: path of a ``tokenizer.json`` to load when no ``tokenizer_object`` is given.
        bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token: the special tokens
            (``str`` or ``tokenizers.AddedToken``). Tokens missing from the backend are added to it as special
            tokens, as HF does.
        additional_special_tokens: extra special tokens (HF v5 calls them ``extra_special_tokens``).
        model_max_length: the longest input the model accepts; ``None`` means no limit (``VERY_LARGE_INTEGER``).
        padding_side, truncation_side: ``'right'`` or ``'left'``.
        chat_template: a jinja template string, or a dict of named templates.
        model_input_names: the keys returned by default (``token_type_ids`` is returned only if listed).
        add_bos_token, add_eos_token: when either is given (or the backend has no post-processor) the post-processor
            is rebuilt as HF does, wrapping sequences in ``bos``/``eos``.
        name_or_path: where the tokenizer came from (informational).
        **extra_init_kwargs: other HF ``tokenizer_config.json`` entries. Understood here:
            ``clean_up_tokenization_spaces``, ``split_special_tokens``, ``added_tokens_decoder``,
            ``extra_special_tokens`` (list, or dict of model-specific named tokens) and ``*_token`` strings
            (model-specific special tokens such as ``image_token``). Everything is kept in ``init_kwargs`` and
            written back by :meth:`save_pretrained`.
    """

    SPECIAL_TOKENS_ATTRIBUTES = SPECIAL_TOKENS_ATTRIBUTES

    bos_token = _special_token_property("bos_token")
    eos_token = _special_token_property("eos_token")
    unk_token = _special_token_property("unk_token")
    sep_token = _special_token_property("sep_token")
    pad_token = _special_token_property("pad_token")
    cls_token = _special_token_property("cls_token")
    mask_token = _special_token_property("mask_token")
    bos_token_id = _special_token_id_property("bos_token")
    eos_token_id = _special_token_id_property("eos_token")
    unk_token_id = _special_token_id_property("unk_token")
    sep_token_id = _special_token_id_property("sep_token")
    pad_token_id = _special_token_id_property("pad_token")
    cls_token_id = _special_token_id_property("cls_token")
    mask_token_id = _special_token_id_property("mask_token")

    def __init__(
        self,
        tokenizer_object: Tokenizer | None = None,
        tokenizer_file: str | os.PathLike | None = None,
        *,
        bos_token: str | AddedToken | None = None,
        eos_token: str | AddedToken | None = None,
        unk_token: str | AddedToken | None = None,
        sep_token: str | AddedToken | None = None,
        pad_token: str | AddedToken | None = None,
        cls_token: str | AddedToken | None = None,
        mask_token: str | AddedToken | None = None,
        additional_special_tokens: Sequence[str | AddedToken] | None = None,
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        chat_template: str | dict | list | None = None,
        model_input_names: Sequence[str] | None = None,
        add_bos_token: bool | None = None,
        add_eos_token: bool | None = None,
        name_or_path: str = "",
        **extra_init_kwargs,
    ):
        copy_object = extra_init_kwargs.pop("_copy_tokenizer_object", True)
        if tokenizer_object is not None:
            if not isinstance(tokenizer_object, Tokenizer):
                raise TypeError(
                    f"tokenizer_object must be a tokenizers.Tokenizer, got {type(tokenizer_object).__name__}"
                )
            backend = copy.deepcopy(tokenizer_object) if copy_object else tokenizer_object
        elif tokenizer_file is not None:
            if not os.path.isfile(tokenizer_file):
                raise FileNotFoundError(f"tokenizer_file {str(tokenizer_file)!r} does not exist.")
            backend = Tokenizer.from_file(str(tokenizer_file))
        else:
            raise ValueError("PreTrainedTokenizerFast needs a `tokenizer_object` or a `tokenizer_file`.")
        self._tokenizer: Tokenizer = backend

        named = {
            "bos_token": bos_token,
            "eos_token": eos_token,
            "unk_token": unk_token,
            "sep_token": sep_token,
            "pad_token": pad_token,
            "cls_token": cls_token,
            "mask_token": mask_token,
        }
        for key, value in named.items():
            if value is not None and not isinstance(value, (str, AddedToken)):
                raise TypeError(f"{key} has to be a str or a tokenizers.AddedToken, got {type(value).__name__}")
        # The backend's own padding settings name its pad token (HF uses it when none is configured).
        if named["pad_token"] is None and backend.padding is not None:
            named["pad_token"] = backend.padding.get("pad_token")

        extra_tokens = extra_init_kwargs.pop("extra_special_tokens", None)
        model_specific: dict[str, str | AddedToken] = {}
        for key in list(extra_init_kwargs):
            value = extra_init_kwargs[key]
            if key.endswith("_token") and isinstance(value, (str, AddedToken)):
                model_specific[key] = extra_init_kwargs.pop(key)
        if isinstance(extra_tokens, dict):
            model_specific.update(extra_tokens)
            extra_tokens = None
        if additional_special_tokens is None:
            additional_special_tokens = extra_tokens
        self._special_tokens: dict[str, str | AddedToken | None] = dict(named)
        self._model_specific_tokens: list[str] = list(model_specific)
        self._special_tokens.update(model_specific)
        self._extra_special_tokens: list[str | AddedToken] = list(additional_special_tokens or [])

        self.name_or_path = str(name_or_path)
        self.model_max_length = int(model_max_length) if model_max_length is not None else VERY_LARGE_INTEGER
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side should be 'right' or 'left', got {padding_side!r}")
        if truncation_side not in ("right", "left"):
            raise ValueError(f"truncation_side should be 'right' or 'left', got {truncation_side!r}")
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.model_input_names = list(model_input_names) if model_input_names else ["input_ids", "attention_mask"]
        if isinstance(chat_template, (list, tuple)):
            chat_template = {t["name"]: t["template"] for t in chat_template}
        self.chat_template = chat_template
        self.clean_up_tokenization_spaces = bool(extra_init_kwargs.pop("clean_up_tokenization_spaces", False))
        self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output = bool(
            extra_init_kwargs.pop("clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", False)
        )
        self.split_special_tokens = bool(extra_init_kwargs.pop("split_special_tokens", False))
        added_tokens_decoder = extra_init_kwargs.pop("added_tokens_decoder", None) or {}
        self._pad_token_type_id = 0
        self._warned_too_long = False
        self.init_kwargs = dict(extra_init_kwargs)

        self._register_special_tokens(added_tokens_decoder)
        self._tokenizer.encode_special_tokens = self.split_special_tokens

        explicit_bos_eos = add_bos_token is not None or add_eos_token is not None
        self._add_bos_token = bool(add_bos_token)
        self._add_eos_token = bool(add_eos_token)
        if explicit_bos_eos or self._tokenizer.post_processor is None:
            self.update_post_processor()

    # -- construction helpers ----------------------------------------------------------------------------------------

    def _register_special_tokens(self, added_tokens_decoder: Mapping[Any, Any]) -> None:
        """Add configured added tokens and special tokens missing from the backend (HF's ``__init__`` logic)."""
        present = {repr(token) for token in self._tokenizer.get_added_tokens_decoder().values()}
        decoder = {int(index): _as_added_token(token) for index, token in added_tokens_decoder.items()}
        to_add: list[str | AddedToken] = [
            token for _, token in sorted(decoder.items(), key=lambda item: item[0]) if repr(token) not in present
        ]
        encoder = {t.content for t in self._tokenizer.get_added_tokens_decoder().values()}
        encoder.update(str(t) for t in to_add)
        for value in list(self._special_tokens.values()) + list(self._extra_special_tokens):
            if value is None:
                continue
            if str(value) not in encoder and value not in to_add:
                to_add.append(value)
                encoder.add(str(value))
        if not to_add:
            return
        named = {str(v) for v in self._special_tokens.values() if v is not None}
        tokens = []
        for token in to_add:
            if isinstance(token, str):
                token = AddedToken(token, special=True)
            elif isinstance(token, AddedToken) and not token.special and str(token) in named:
                token.special = True
            tokens.append(token)
        self._tokenizer.add_tokens(tokens)

    def update_post_processor(self) -> None:
        """Rebuild the post-processor from ``add_bos_token`` / ``add_eos_token`` (HF's TemplateProcessing)."""
        bos, eos = self.bos_token, self.eos_token
        if bos is None:
            self._add_bos_token = False
        if eos is None:
            self._add_eos_token = False
        add_bos, add_eos = self._add_bos_token, self._add_eos_token
        single = f"{(bos + ':0 ') if add_bos else ''}$A:0{(' ' + eos + ':0') if add_eos else ''}"
        pair = f"{single}{(' ' + bos + ':1') if add_bos else ''} $B:1{(' ' + eos + ':1') if add_eos else ''}"
        special = []
        if add_bos:
            special.append((bos, self.bos_token_id))
        if add_eos:
            special.append((eos, self.eos_token_id))
        self._tokenizer.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)

    @property
    def add_bos_token(self) -> bool:
        """Whether the post-processor prepends ``bos_token`` (setting it rebuilds the post-processor)."""
        return self._add_bos_token

    @add_bos_token.setter
    def add_bos_token(self, value: bool) -> None:
        self._add_bos_token = bool(value)
        self.update_post_processor()

    @property
    def add_eos_token(self) -> bool:
        """Whether the post-processor appends ``eos_token`` (setting it rebuilds the post-processor)."""
        return self._add_eos_token

    @add_eos_token.setter
    def add_eos_token(self, value: bool) -> None:
        self._add_eos_token = bool(value)
        self.update_post_processor()

    # -- loading -----------------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | os.PathLike,
        gguf_file: str | None = None,
        **kwargs,
    ) -> PreTrainedTokenizerFast:
        """Load a tokenizer from a directory, a ``tokenizer.json`` file, or a hub repo id (downloaded into the HF cache).

        Files, in order of preference: ``tokenizer.json``; else ``vocab.txt`` (BERT WordPiece); else ``vocab.json``
        + ``merges.txt`` (GPT-2 style byte-level BPE; RoBERTa-style wrapping when ``tokenizer_class`` says so).
        ``tokenizer_config.json``, ``special_tokens_map.json``, ``added_tokens.json``, ``chat_template.jinja``,
        ``additional_chat_templates/*.jinja`` and ``chat_template.json`` are read when present. ``kwargs`` override
        the configuration (e.g. ``padding_side="left"``, ``pad_token="<pad>"``).

        With ``gguf_file`` (or a path to a ``.gguf`` file) the tokenizer is read from the GGUF metadata by
        ``transformers_jax.gguf_utils.load_gguf_tokenizer``. The hub keywords ``revision``, ``token``,
        ``cache_dir``, ``local_files_only``, ``force_download`` and ``subfolder`` are those of
        :func:`transformers_jax.hub_download.open_source`.
        """
        from transformers_jax.hub_download import gguf_location, pop_hub_kwargs

        hub_kwargs = pop_hub_kwargs(kwargs)
        gguf_path = gguf_location(path_or_hub_id, gguf_file, **hub_kwargs)
        if gguf_path is not None:
            from transformers_jax.gguf_utils import load_gguf_tokenizer

            tokenizer = load_gguf_tokenizer(gguf_path)
            for key, value in kwargs.items():
                setattr(tokenizer, key, value)
            return tokenizer

        location, label = _resolve_location(path_or_hub_id, hub_kwargs)
        if location.is_file():
            if location.suffix != ".json":
                raise ValueError(
                    f"{str(location)!r} is a file; pass a directory with tokenizer files, a tokenizer.json file or "
                    "a .gguf file."
                )
            directory, tokenizer_json = location.parent, location
            has_config = False
        else:
            directory, tokenizer_json = location, location / TOKENIZER_FILE
            has_config = True

        config: dict[str, Any] = {}
        if has_config and (directory / TOKENIZER_CONFIG_FILE).is_file():
            config = dict(_read_json(directory / TOKENIZER_CONFIG_FILE))
        tokenizer_class = _base_class_name(config.pop("tokenizer_class", None))
        for key in ("init_inputs", "auto_map", "name_or_path", "tokenizer_file", "vocab_file", "merges_file",
                    "special_tokens_map_file", "backend", "files_loaded", "is_local", "local_files_only"):
            config.pop(key, None)

        # Chat templates: the .jinja files win over the config entry; chat_template.json is a last resort.
        templates: dict[str, str] = {}
        if has_config and (directory / CHAT_TEMPLATE_FILE).is_file():
            templates["default"] = (directory / CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")
        if has_config and (directory / CHAT_TEMPLATE_DIR).is_dir():
            for file in sorted((directory / CHAT_TEMPLATE_DIR).glob("*.jinja")):
                templates[file.name[: -len(".jinja")]] = file.read_text(encoding="utf-8")
        if len(templates) == 1 and "default" in templates:
            config["chat_template"] = templates["default"]
        elif templates:
            config["chat_template"] = templates
        elif config.get("chat_template") is None and has_config and (directory / LEGACY_CHAT_TEMPLATE_FILE).is_file():
            legacy = _read_json(directory / LEGACY_CHAT_TEMPLATE_FILE)
            config["chat_template"] = legacy.get("chat_template") if isinstance(legacy, dict) else legacy

        config.update(kwargs)
        if "max_len" in config and "model_max_length" not in config:
            config["model_max_length"] = config.pop("max_len")
        config.pop("max_len", None)
        if "additional_special_tokens" in config and not config.get("extra_special_tokens"):
            config["extra_special_tokens"] = config.pop("additional_special_tokens")
        config.pop("additional_special_tokens", None)

        # Special tokens and added tokens, as HF's _from_pretrained resolves them.
        added_tokens_decoder: dict[int, AddedToken] = {}
        added_tokens_map: dict[str, AddedToken] = {}
        use_json = tokenizer_json.is_file()
        if "added_tokens_decoder" in config:
            for index, token in config["added_tokens_decoder"].items():
                token = _as_added_token(token)
                if not isinstance(token, AddedToken):
                    raise TypeError(f"added_tokens_decoder[{index!r}] in {TOKENIZER_CONFIG_FILE} is not a token dict")
                added_tokens_decoder[int(index)] = token
                added_tokens_map[str(token)] = token
        else:
            special_map_file = directory / SPECIAL_TOKENS_MAP_FILE
            if has_config and special_map_file.is_file():
                for key, value in _read_json(special_map_file).items():
                    if kwargs.get(key):
                        continue
                    if key in ("additional_special_tokens", "extra_special_tokens") and isinstance(value, list):
                        existing = list(config.get("extra_special_tokens") or [])
                        for token in value:
                            token = _as_added_token(token, special=True)
                            if token not in existing:
                                existing.append(token)
                        config["extra_special_tokens"] = existing
                    else:
                        config[key] = _as_added_token(value, special=True)
            added_file = directory / ADDED_TOKENS_FILE
            if has_config and added_file.is_file():
                specials = {str(config[k]) for k in SPECIAL_TOKENS_ATTRIBUTES if config.get(k)}
                specials.update(str(t) for t in (config.get("extra_special_tokens") or []))
                for content, index in _read_json(added_file).items():
                    is_special = content in specials
                    token = AddedToken(content, normalized=not is_special, special=is_special)
                    added_tokens_decoder[int(index)] = token
                    added_tokens_map[content] = token
        config["added_tokens_decoder"] = added_tokens_decoder
        for key, value in list(config.items()):
            if key != "added_tokens_decoder":
                config[key] = _as_added_token(value) if isinstance(value, dict) else value
        if isinstance(config.get("extra_special_tokens"), list):
            config["extra_special_tokens"] = [_as_added_token(t) for t in config["extra_special_tokens"]]
        for key in SPECIAL_TOKENS_ATTRIBUTES:
            if config.get(key) is not None and added_tokens_map:
                config[key] = added_tokens_map.get(str(config[key]), config[key])
        if tokenizer_class in _CLASS_DEFAULT_SPECIAL_TOKENS:
            for key, default in _CLASS_DEFAULT_SPECIAL_TOKENS[tokenizer_class].items():
                if key not in config:
                    config[key] = default
        if "model_input_names" not in config and tokenizer_class in _CLASSES_WITH_TOKEN_TYPE_IDS:
            config["model_input_names"] = ["input_ids", "token_type_ids", "attention_mask"]

        # The backend.
        post_fix = None
        if use_json:
            backend = Tokenizer.from_file(str(tokenizer_json))
            # HF reads the bos/eos wrapping from tokenizer.json's post-processor, not from these flags.
            config.pop("add_bos_token", None)
            config.pop("add_eos_token", None)
        elif (directory / BERT_VOCAB_FILE).is_file():
            unk = str(config.get("unk_token") or "[UNK]")
            backend = _bert_backend(directory / BERT_VOCAB_FILE, config, unk)
            for key, default in _CLASS_DEFAULT_SPECIAL_TOKENS["BertTokenizer"].items():
                config.setdefault(key, default)
            config.setdefault("model_input_names", ["input_ids", "token_type_ids", "attention_mask"])
            config.pop("add_bos_token", None)
            config.pop("add_eos_token", None)
            post_fix = "bert"
        elif (directory / BPE_VOCAB_FILE).is_file() and (directory / BPE_MERGES_FILE).is_file():
            backend = _byte_level_bpe_backend(directory / BPE_VOCAB_FILE, directory / BPE_MERGES_FILE, config)
            if tokenizer_class in _ROBERTA_LIKE_CLASSES:
                for key, default in _CLASS_DEFAULT_SPECIAL_TOKENS["RobertaTokenizer"].items():
                    config.setdefault(key, default)
                post_fix = "roberta"
            else:
                for key, default in _CLASS_DEFAULT_SPECIAL_TOKENS["GPT2Tokenizer"].items():
                    config.setdefault(key, default)
        else:
            looked_for = [TOKENIZER_FILE, BERT_VOCAB_FILE, f"{BPE_VOCAB_FILE} + {BPE_MERGES_FILE}"]
            raise FileNotFoundError(
                f"No tokenizer files found in {label}: looked for {', '.join(looked_for)} "
                f"(or pass gguf_file=... for a GGUF checkpoint)."
            )

        # Settings baked into tokenizer.json's padding (HF uses them as defaults).
        if backend.padding is not None:
            config.setdefault("padding_side", backend.padding.get("direction", "right"))
        if config.get("padding_side") is None:
            config.pop("padding_side", None)
        if config.get("truncation_side") is None:
            config.pop("truncation_side", None)

        config["name_or_path"] = str(path_or_hub_id)
        tokenizer = cls(tokenizer_object=backend, _copy_tokenizer_object=False, **config)

        if post_fix == "bert":
            cls_token, sep_token = tokenizer.cls_token, tokenizer.sep_token
            tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
                single=f"{cls_token}:0 $A:0 {sep_token}:0",
                pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
                special_tokens=[(cls_token, tokenizer.cls_token_id), (sep_token, tokenizer.sep_token_id)],
            )
        elif post_fix == "roberta":
            tokenizer._tokenizer.post_processor = processors.RobertaProcessing(
                (tokenizer.sep_token, tokenizer.sep_token_id),
                (tokenizer.cls_token, tokenizer.cls_token_id),
                trim_offsets=bool(config.get("trim_offsets", True)),
                add_prefix_space=bool(config.get("add_prefix_space", False)),
            )
        return tokenizer

    # -- vocabulary --------------------------------------------------------------------------------------------------

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The wrapped ``tokenizers.Tokenizer``."""
        return self._tokenizer

    @property
    def is_fast(self) -> bool:
        """Always ``True`` (HF compatibility)."""
        return True

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        """Size of the full vocabulary, added tokens included (use it for ``resize_token_embeddings``)."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def __bool__(self) -> bool:
        return True

    def get_vocab(self) -> dict[str, int]:
        """The full vocabulary (added tokens included) as ``{token: id}``."""
        return self._tokenizer.get_vocab(with_added_tokens=True)

    @property
    def vocab(self) -> dict[str, int]:
        """Same as :meth:`get_vocab`."""
        return self.get_vocab()

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """The added tokens as ``{id: AddedToken}``."""
        return self._tokenizer.get_added_tokens_decoder()

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """The added tokens as ``{content: id}``, sorted by id."""
        return {tok.content: index for index, tok in sorted(self.added_tokens_decoder.items())}

    def get_added_vocab(self) -> dict[str, int]:
        """Same as :attr:`added_tokens_encoder`."""
        return self.added_tokens_encoder

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int] | None:
        """Token string(s) to id(s); unknown tokens map to ``unk_token_id``."""
        if tokens is None:
            return None
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(token) for token in tokens]

    def _token_to_id(self, token: str) -> int | None:
        index = self._tokenizer.token_to_id(token)
        if index is None:
            unk = self._special_tokens.get("unk_token")
            return None if unk is None else self._tokenizer.token_to_id(str(unk))
        return index

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Id(s) to token string(s); ``skip_special_tokens`` drops the ids in :attr:`all_special_ids`."""
        if isinstance(ids, (int, np.integer)):
            return self._tokenizer.id_to_token(int(ids))
        ids = _to_python(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tokenizer.id_to_token(int(i)) for i in ids if int(i) not in skip]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Join tokens into text with the backend's decoder (plain spaces when it has none)."""
        decoder = self._tokenizer.decoder
        return decoder.decode(list(tokens)) if decoder is not None else " ".join(tokens)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many special tokens the post-processor adds to a single sequence or a pair."""
        return self._tokenizer.num_special_tokens_to_add(pair)

    @property
    def max_len_single_sentence(self) -> int:
        """``model_max_length`` minus the special tokens added to a single sequence."""
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        """``model_max_length`` minus the special tokens added to a pair."""
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    # -- special tokens ----------------------------------------------------------------------------------------------

    def __getattr__(self, name: str):
        # Model-specific special tokens (e.g. ``image_token`` / ``image_token_id``) from the configuration.
        if name.startswith("__"):
            raise AttributeError(name)
        specific = self.__dict__.get("_model_specific_tokens", ())
        base = name[: -len("_id")] if name.endswith("_id") else name
        if base in specific:
            value = self.__dict__["_special_tokens"].get(base)
            if value is None:
                return None
            return self.convert_tokens_to_ids(str(value)) if base != name else str(value)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def additional_special_tokens(self) -> list[str]:
        """Extra special tokens beyond the named ones (HF v5: ``extra_special_tokens``)."""
        return [str(t) for t in self._extra_special_tokens]

    @additional_special_tokens.setter
    def additional_special_tokens(self, value: Sequence[str | AddedToken] | None) -> None:
        if value is not None and not isinstance(value, (list, tuple)):
            raise ValueError(f"additional_special_tokens must be a list or tuple, got {type(value).__name__}")
        self._extra_special_tokens = list(value or [])

    extra_special_tokens = additional_special_tokens

    @property
    def additional_special_tokens_ids(self) -> list[int]:
        """Ids of :attr:`additional_special_tokens`."""
        return self.convert_tokens_to_ids(self.additional_special_tokens)

    extra_special_tokens_ids = additional_special_tokens_ids

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """The set named special tokens (and model-specific ones) as ``{attribute: token}`` (HF v5 semantics)."""
        names = list(SPECIAL_TOKENS_ATTRIBUTES) + self._model_specific_tokens
        return {name: str(self._special_tokens[name]) for name in names if self._special_tokens.get(name) is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        """All special tokens (named first, then extra ones), deduplicated, as strings."""
        seen: dict[str, None] = {}
        for token in list(self.special_tokens_map.values()) + self.additional_special_tokens:
            seen.setdefault(token)
        return list(seen)

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of :attr:`all_special_tokens`."""
        return self.convert_tokens_to_ids(self.all_special_tokens)

    @property
    def pad_token_type_id(self) -> int:
        """Token type id used for padding positions (0)."""
        return self._pad_token_type_id

    def get_special_tokens_mask(
        self, token_ids_0: Sequence[int], token_ids_1: Sequence[int] | None = None, already_has_special_tokens=False
    ) -> list[int]:
        """1 for special tokens and 0 otherwise, for ids that already contain the special tokens."""
        if not already_has_special_tokens:
            raise NotImplementedError(
                "get_special_tokens_mask needs already_has_special_tokens=True for this tokenizer (as in HF); "
                "for raw sequences call the tokenizer with return_special_tokens_mask=True instead."
            )
        if token_ids_1 is not None:
            raise ValueError("Do not pass a second sequence when the ids already contain the special tokens.")
        special = set(self.all_special_ids)
        return [1 if int(i) in special else 0 for i in _to_python(token_ids_0)]

    def add_tokens(
        self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False
    ) -> int:
        """Add tokens to the vocabulary (tokens already present are skipped); returns how many were added.

        Resize the model's embeddings to ``len(tokenizer)`` afterwards.
        """
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        for token in new_tokens:
            if not isinstance(token, (str, AddedToken)):
                raise TypeError(f"Tokens must be str or tokenizers.AddedToken, got {type(token).__name__}")
        if special_tokens:
            return self._tokenizer.add_special_tokens(list(new_tokens))
        return self._tokenizer.add_tokens(list(new_tokens))

    def add_special_tokens(
        self, special_tokens_dict: Mapping[str, Any], replace_additional_special_tokens: bool = True
    ) -> int:
        """Set named special tokens (``{"pad_token": "<pad>", "additional_special_tokens": [...]}``) and add any
        that are missing from the vocabulary; returns the number of tokens added.

        ``additional_special_tokens`` (or ``extra_special_tokens``) replaces the current list unless
        ``replace_additional_special_tokens=False``, in which case new ones are appended.
        """
        if not special_tokens_dict:
            return 0
        special_tokens_dict = dict(special_tokens_dict)
        if "additional_special_tokens" in special_tokens_dict and not special_tokens_dict.get("extra_special_tokens"):
            special_tokens_dict["extra_special_tokens"] = special_tokens_dict.pop("additional_special_tokens")
        special_tokens_dict.pop("additional_special_tokens", None)
        allowed = set(SPECIAL_TOKENS_ATTRIBUTES) | {"extra_special_tokens"}
        to_add: list[AddedToken] = []
        for key, value in special_tokens_dict.items():
            if key not in allowed:
                raise ValueError(f"Key {key!r} is not a special token attribute; valid keys are {sorted(allowed)}.")
            if key == "extra_special_tokens":
                if not isinstance(value, (list, tuple)) or not all(isinstance(t, (str, AddedToken)) for t in value):
                    raise ValueError(f"Tokens {value!r} for {key} should all be str or AddedToken instances")
                current = self.additional_special_tokens
                new = [
                    AddedToken(t, rstrip=False, lstrip=False, normalized=False, special=True)
                    if isinstance(t, str)
                    else t
                    for t in value
                    if replace_additional_special_tokens or str(t) not in current
                ]
                if replace_additional_special_tokens and new:
                    self._extra_special_tokens = list(new)
                else:
                    self._extra_special_tokens.extend(new)
                to_add.extend(new)
            else:
                if not isinstance(value, (str, AddedToken)):
                    raise ValueError(f"Token {value!r} for {key} should be a str or an AddedToken instance")
                if isinstance(value, str):
                    value = AddedToken(value, rstrip=False, lstrip=False, normalized=False, special=True)
                self._special_tokens[key] = value
                to_add.append(value)
        return self.add_tokens(to_add, special_tokens=True)

    # -- encoding ----------------------------------------------------------------------------------------------------

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
            padding = "longest"
        elif padding is False or padding is None:
            padding = "do_not_pad"
        padding = str(getattr(padding, "value", padding))
        if padding not in _PADDING_STRATEGIES:
            raise ValueError(
                f"{padding!r} is not a valid padding strategy, please select one of {list(_PADDING_STRATEGIES)}"
            )
        if truncation is True:
            truncation = "longest_first"
        elif truncation is False or truncation is None:
            truncation = "do_not_truncate"
        truncation = str(getattr(truncation, "value", truncation))
        if truncation not in _TRUNCATION_STRATEGIES:
            raise ValueError(
                f"{truncation!r} is not a valid truncation strategy, please select one of "
                f"{list(_TRUNCATION_STRATEGIES)}"
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

    def __call__(
        self,
        text: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        text_pair: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_offsets_mapping: bool = False,
        return_special_tokens_mask: bool = False,
        return_length: bool = False,
        padding_side: str | None = None,
        split_special_tokens: bool | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Tokenize a text, a pair, a batch of texts or of pairs, or pre-split words (``is_split_into_words``).

        Args:
            text: ``str``; ``list[str]`` (a batch, or one pre-split sequence with ``is_split_into_words``);
                ``list[list[str]]`` (a batch of pre-split sequences); a batch may also hold ``(a, b)`` pairs.
            text_pair: the second sequence(s), shaped like ``text``.
            add_special_tokens: apply the post-processor (``[CLS] ... [SEP]``, bos/eos...).
            padding: ``True``/``'longest'`` (to the longest in the batch), ``'max_length'`` (to ``max_length`` or
                ``model_max_length``), ``False``/``'do_not_pad'``.
            truncation: ``True``/``'longest_first'``, ``'only_first'``, ``'only_second'``, ``False``/
                ``'do_not_truncate'``. ``None`` means no truncation unless ``max_length`` is given without padding.
            max_length: length limit for truncation and ``'max_length'`` padding; defaults to ``model_max_length``
                when one of those is requested (nothing happens when that is unlimited, as in HF).
            stride: overlap between overflowing windows (with ``return_overflowing_tokens``).
            pad_to_multiple_of: round padded lengths up to a multiple of this.
            return_tensors: ``None`` (lists; un-batched input gives flat lists), ``'np'`` (int64), ``'jax'``
                (int32) or ``'pt'``. Ragged batches without padding raise ``ValueError``.
            return_token_type_ids, return_attention_mask: default to whether the name is in ``model_input_names``.
            return_overflowing_tokens: also return the truncated-away windows as extra rows, with
                ``overflow_to_sample_mapping``.
            return_offsets_mapping: character ``(start, end)`` per token.
            return_special_tokens_mask: 1 for special (and padding) tokens.
            return_length: the length of each encoded sequence.
            padding_side: override the tokenizer's ``padding_side`` for this call.
            split_special_tokens: tokenize special tokens in the text as plain text.
        """
        if text is None:
            raise ValueError("You need to specify `text` to tokenize.")
        padding, truncation, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of, verbose)

        for value in (text, text_pair):
            if value is not None and not _is_valid_text_input(value):
                raise ValueError(
                    "text input must be of type `str` (single example), `list[str]` (batch or single pretokenized "
                    "example) or `list[list[str]]` (batch of pretokenized examples) or `list[tuple[list[str], "
                    "list[str]]]` (batch of pretokenized sequence pairs)."
                )
        if is_split_into_words:
            is_batched = isinstance(text, (list, tuple)) and bool(text) and isinstance(text[0], (list, tuple))
        else:
            is_batched = isinstance(text, (list, tuple))
        if is_batched:
            if isinstance(text_pair, str):
                raise TypeError(
                    "when tokenizing batches of text, `text_pair` must be a list or tuple with the same length as "
                    "`text`."
                )
            if text_pair is not None and len(text) != len(text_pair):
                raise ValueError(
                    f"batch length of `text`: {len(text)} does not match batch length of `text_pair`: "
                    f"{len(text_pair)}."
                )
            inputs = list(zip(text, text_pair)) if text_pair is not None else list(text)
        else:
            inputs = [(text, text_pair)] if text_pair else [text]

        self._configure_backend(padding, truncation, max_length, stride, pad_to_multiple_of, padding_side)
        split = self.split_special_tokens if split_special_tokens is None else split_special_tokens
        if self._tokenizer.encode_special_tokens != split:
            self._tokenizer.encode_special_tokens = split
        encodings = self._tokenizer.encode_batch(
            inputs, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
        )

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        data: dict[str, list] = {"input_ids": []}
        if return_token_type_ids:
            data["token_type_ids"] = []
        if return_attention_mask:
            data["attention_mask"] = []
        if return_special_tokens_mask:
            data["special_tokens_mask"] = []
        if return_offsets_mapping:
            data["offset_mapping"] = []
        if return_length:
            data["length"] = []
        flat: list[Encoding] = []
        sample_mapping: list[int] = []
        for sample, encoding in enumerate(encodings):
            rows = [encoding] + list(encoding.overflowing) if return_overflowing_tokens else [encoding]
            for row in rows:
                flat.append(row)
                sample_mapping.append(sample)
                data["input_ids"].append(row.ids)
                if return_token_type_ids:
                    data["token_type_ids"].append(row.type_ids)
                if return_attention_mask:
                    data["attention_mask"].append(row.attention_mask)
                if return_special_tokens_mask:
                    data["special_tokens_mask"].append(row.special_tokens_mask)
                if return_offsets_mapping:
                    data["offset_mapping"].append(row.offsets)
                if return_length:
                    data["length"].append(len(row.ids))
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = sample_mapping
        if max_length is None and verbose:
            for ids in data["input_ids"]:
                self._warn_if_too_long(ids)

        if not is_batched and return_tensors is None and not return_overflowing_tokens:
            data = {k: (v[0] if v and isinstance(v[0], list) else v) for k, v in data.items()}
            return BatchEncoding(data, flat)
        return BatchEncoding(data, flat, tensor_type=return_tensors)

    def _warn_if_too_long(self, ids: Sequence[int]) -> None:
        if len(ids) > self.model_max_length and self.model_max_length != 0 and not self._warned_too_long:
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this model "
                f"({len(ids)} > {self.model_max_length}). Running this sequence through the model will result in "
                "indexing errors"
            )
            self._warned_too_long = True

    def encode(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        **kwargs,
    ) -> list[int]:
        """Token ids of ``text`` (and ``text_pair``); same arguments as :meth:`__call__`."""
        return self(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            padding_side=padding_side,
            return_tensors=return_tensors,
            **kwargs,
        )["input_ids"]

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs) -> list[str]:
        """The token strings of ``text`` (without special tokens unless ``add_special_tokens``)."""
        return self(text, pair, add_special_tokens=add_special_tokens, **kwargs).tokens()

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

    # -- decoding ----------------------------------------------------------------------------------------------------

    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs,
    ) -> str | list[str]:
        """Ids (int, list, numpy/jax/torch array) to text; a batch (list of lists, 2-D array) gives a list."""
        if kwargs:
            kwargs.pop("use_source_tokenizer", None)
            if kwargs:
                raise TypeError(f"decode() got unexpected keyword arguments {sorted(kwargs)}")
        if isinstance(token_ids, Mapping):
            token_ids = token_ids["input_ids"]
        token_ids = _to_python(token_ids)
        if isinstance(token_ids, (list, tuple)) and token_ids and isinstance(token_ids[0], (list, tuple)):
            return [self._decode(seq, skip_special_tokens, clean_up_tokenization_spaces) for seq in token_ids]
        return self._decode(token_ids, skip_special_tokens, clean_up_tokenization_spaces)

    def _decode(self, token_ids, skip_special_tokens: bool, clean_up_tokenization_spaces: bool | None) -> str:
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        text = self._tokenizer.decode([int(i) for i in token_ids], skip_special_tokens=skip_special_tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces:
            is_bpe = type(self._tokenizer.model).__name__ == "BPE"
            # HF v5 skips this WordPiece-era cleanup for BPE models (it deletes real spaces before punctuation).
            if not is_bpe or self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output:
                text = self.clean_up_tokenization(text)
        return text

    def batch_decode(
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs,
    ) -> list[str]:
        """Decode a batch of id sequences to a list of strings."""
        result = self.decode(
            sequences,
            skip_special_tokens=skip_special_tokens,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            **kwargs,
        )
        return [result] if isinstance(result, str) else result

    @staticmethod
    def clean_up_tokenization(text: str) -> str:
        """Remove spaces before punctuation and contractions (BERT-era detokenization)."""
        return (
            text.replace(" .", ".")
            .replace(" ?", "?")
            .replace(" !", "!")
            .replace(" ,", ",")
            .replace(" ' ", "'")
            .replace(" n't", "n't")
            .replace(" 'm", "'m")
            .replace(" 's", "'s")
            .replace(" 've", "'ve")
            .replace(" 're", "'re")
        )

    # -- chat templates ----------------------------------------------------------------------------------------------

    def get_chat_template(self, chat_template: str | None = None, tools: list | None = None) -> str:
        """The template string to use: ``chat_template`` (a template or a template name) or the tokenizer's own."""
        if isinstance(self.chat_template, dict):
            templates = self.chat_template
            if chat_template is not None and chat_template in templates:
                return templates[chat_template]
            if chat_template is None:
                if tools is not None and "tool_use" in templates:
                    return templates["tool_use"]
                if "default" in templates:
                    return templates["default"]
                raise ValueError(
                    "This tokenizer has several chat templates and none is named 'default'; pass `chat_template=` "
                    f"with one of {sorted(templates)}."
                )
            return chat_template
        if chat_template is None:
            if self.chat_template is None:
                raise ValueError(
                    "Cannot use chat template functions because tokenizer.chat_template is not set and no template "
                    "argument was passed."
                )
            return self.chat_template
        return chat_template

    def apply_chat_template(
        self,
        conversation: Sequence[Mapping[str, Any]] | Sequence[Sequence[Mapping[str, Any]]],
        tokenize: bool = True,
        add_generation_prompt: bool = False,
        return_tensors: str | None = None,
        return_dict: bool = False,
        tools: list | None = None,
        chat_template: str | None = None,
        continue_final_message: bool | str = False,
        documents: list[dict] | None = None,
        padding: bool | str = False,
        truncation: bool = False,
        max_length: int | None = None,
        tokenizer_kwargs: dict | None = None,
        **kwargs,
    ):
        """Render a conversation (list of ``{"role", "content"}`` dicts) or a batch of them with the chat template.

        Rendering matches HF: a sandboxed jinja2 environment with ``trim_blocks``/``lstrip_blocks``, the
        ``raise_exception`` and ``strftime_now`` globals, a non-escaping ``tojson`` filter, and the special tokens
        (``bos_token``, ``eos_token``...) plus ``**kwargs`` as template variables. Message keys whose value is
        ``None`` are dropped first.

        Returns the rendered string(s) when ``tokenize=False``; otherwise the ids (``add_special_tokens=False``,
        like HF), or the whole :class:`BatchEncoding` with ``return_dict=True``. Note: ``return_dict`` defaults to
        ``False`` here, while HF v5 defaults it to ``True``.
        """
        template = self.get_chat_template(chat_template, tools)
        if isinstance(conversation, (list, tuple)) and len(conversation) == 0:
            raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
        first = conversation[0]
        if isinstance(first, (list, tuple)) or hasattr(first, "messages"):
            conversations, is_batched = list(conversation), True
        else:
            conversations, is_batched = [conversation], False
        conversations = [
            [{k: v for k, v in message.items() if v is not None} for message in getattr(chat, "messages", chat)]
            for chat in conversations
        ]
        if continue_final_message and add_generation_prompt:
            raise ValueError(
                "continue_final_message and add_generation_prompt are not compatible: use continue_final_message to "
                "continue the final message, add_generation_prompt to start a new assistant message."
            )
        template_kwargs = {**self.special_tokens_map, **kwargs}
        rendered = _render_chat(
            conversations,
            template,
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            **template_kwargs,
        )
        if not is_batched:
            rendered = rendered[0]
        if not tokenize:
            return rendered
        out = self(
            rendered,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            add_special_tokens=False,
            return_tensors=return_tensors,
            **(tokenizer_kwargs or {}),
        )
        return out if return_dict else out["input_ids"]

    # -- saving ------------------------------------------------------------------------------------------------------

    def _config_for_saving(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for key, value in self.init_kwargs.items():
            if isinstance(value, AddedToken):
                value = {"__type": "AddedToken", **_token_to_dict(value)}
            try:
                json.dumps(value)
            except TypeError:
                continue  # runtime-only objects
            config[key] = value
        for key in ("max_length", "stride", "truncation_strategy", "pad_to_multiple_of", "pad_token_type_id"):
            config.pop(key, None)  # tokenizer.json padding/truncation defaults HF copies in; not settings
        config.update(self.special_tokens_map)
        if self._extra_special_tokens:
            config["additional_special_tokens"] = self.additional_special_tokens
        config["added_tokens_decoder"] = {
            str(index): _token_to_dict(token) for index, token in sorted(self.added_tokens_decoder.items())
        }
        config["model_max_length"] = self.model_max_length
        config["padding_side"] = self.padding_side
        config["truncation_side"] = self.truncation_side
        config["model_input_names"] = list(self.model_input_names)
        config["clean_up_tokenization_spaces"] = self.clean_up_tokenization_spaces
        if self.split_special_tokens:
            config["split_special_tokens"] = True
        if isinstance(self.chat_template, dict):
            config["chat_template"] = [{"name": k, "template": v} for k, v in self.chat_template.items()]
        elif self.chat_template is not None:
            config["chat_template"] = self.chat_template
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        return config

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> tuple[str, ...]:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` (plus
        ``chat_template.jinja`` for a single chat template) into ``save_directory``; returns the written paths.

        Files are written to temporary names and renamed into place only once all are complete, so an error never
        leaves a half-written file. The result loads with this class and with HF's ``AutoTokenizer``.
        Raises ``NotADirectoryError`` when ``save_directory`` is an existing file.
        """
        if kwargs.get("push_to_hub"):
            raise NotImplementedError("push_to_hub is not supported; upload the saved directory yourself.")
        directory = Path(save_directory)
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(
                f"Cannot save the tokenizer to {str(directory)!r}: it is an existing file, not a directory."
            )
        directory.mkdir(parents=True, exist_ok=True)
        config = self._config_for_saving()
        special_map: dict[str, Any] = dict(self.special_tokens_map)
        if self._extra_special_tokens:
            special_map["additional_special_tokens"] = self.additional_special_tokens
        contents = {
            TOKENIZER_FILE: self._tokenizer.to_str(pretty=True),
            TOKENIZER_CONFIG_FILE: json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            SPECIAL_TOKENS_MAP_FILE: json.dumps(special_map, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        }
        if isinstance(self.chat_template, str):
            # HF prefers this file over the config entry; keep both in sync so a stale file never wins.
            contents[CHAT_TEMPLATE_FILE] = self.chat_template
        temporary: dict[str, str] = {}
        try:
            for name, text in contents.items():
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
                temporary[name] = tmp
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
            written = []
            for name, tmp in temporary.items():
                target = directory / name
                os.replace(tmp, target)
                written.append(str(target))
        except BaseException:
            for tmp in temporary.values():
                if os.path.exists(tmp):
                    os.unlink(tmp)
            raise
        return tuple(written)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"len={len(self)}, model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
            f"truncation_side={self.truncation_side!r}, special_tokens={self.special_tokens_map})"
        )


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


class AutoTokenizer:
    """HF-style entry point: ``AutoTokenizer.from_pretrained(...)`` returns a :class:`PreTrainedTokenizerFast`."""

    def __init__(self):
        raise EnvironmentError("AutoTokenizer is used through AutoTokenizer.from_pretrained(...).")

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | os.PathLike, *args, **kwargs) -> PreTrainedTokenizerFast:
        """Load a tokenizer; see :meth:`PreTrainedTokenizerFast.from_pretrained`."""
        return PreTrainedTokenizerFast.from_pretrained(path_or_hub_id, *args, **kwargs)
