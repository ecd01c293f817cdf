"""Marian's tokenizer: two SentencePiece models and one vocabulary, as HF's ``MarianTokenizer`` (a sentencepiece-backed
class in transformers v5 too, with no ``tokenizer.json``).

A Marian folder (``Helsinki-NLP/opus-mt-*``) holds ``source.spm`` (splits source texts), ``target.spm`` (splits
targets, ``text_target=``), ``vocab.json`` (the ids of both sides' pieces; with ``separate_vocabs`` the targets' ids are
in ``target_vocab.json``) and ``tokenizer_config.json``. A text is split on the special tokens written in it, a leading
language code (``>>fr<<``) is kept whole, the rest goes through the SentencePiece model of the current side, and the
pieces become ids through the vocabulary (unknown pieces: ``<unk>``); ``</s>`` is appended. Decoding joins the pieces
with the SentencePiece model (the source one unless ``separate_vocabs``, as in HF; ``use_source_tokenizer`` chooses).

The models are read with the ``sentencepiece`` package, imported only here. Offsets, overflowing windows and pre-split
words are not available (HF's class has no offsets either); adding tokens is not supported.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken

from transformers_jax.file_utils import staged_directory
from transformers_jax.tokenization.batch_encoding import (
    VERY_LARGE_INTEGER,
    BatchEncoding,
    PaddingMixin,
    _is_valid_text_input,
    _to_python,
)
from transformers_jax.tokenization.files import (
    BPE_VOCAB_FILE,
    MARIAN_FILES,
    TOKENIZER_CONFIG_FILE,
    TokenizerFiles,
    read_tokenizer_files,
)
from transformers_jax.tokenization.special_tokens import SpecialTokensMixin, _as_added_token, _token_to_dict

logger = logging.getLogger(__name__)

SOURCE_SPM_FILE, TARGET_SPM_FILE, TARGET_VOCAB_FILE = MARIAN_FILES
VOCAB_FILE = BPE_VOCAB_FILE  # Marian's ids, in the file name GPT-2's vocabularies use
_SPIECE_UNDERLINE = "\u2581"
# Call arguments HF's Marian class cannot honour either (a Python tokenizer has no offsets) or that are not done here.
_UNSUPPORTED = ("return_offsets_mapping", "return_overflowing_tokens", "is_split_into_words", "stride")


def _load_sentencepiece(model: bytes, path: Path):
    try:
        import sentencepiece
    except ImportError as err:
        raise ImportError(
            f"Reading {path} (a Marian tokenizer's SentencePiece model) needs the `sentencepiece` package: "
            f'pip install "sentencepiece[protobuf]". ({err})'
        ) from err
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(model)
    except Exception as err:  # sentencepiece raises RuntimeError / OSError on a bad model
        raise ValueError(f"{path} is not a SentencePiece model file: {err}") from err
    return processor


def _read_vocab(path: Path) -> dict[str, int]:
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise ValueError(f"{path} must map each piece to its id (a JSON object of integers).")
    return vocab


class MarianTokenizer(SpecialTokensMixin, PaddingMixin):
    """HF's ``MarianTokenizer``: source / target SentencePiece models over one vocabulary (see the module docstring).

    Made by :meth:`from_pretrained` (``AutoTokenizer.from_pretrained`` picks it for ``tokenizer_class``
    ``MarianTokenizer`` or a ``marian`` model type). Its public API is that of
    :class:`~transformers_jax.tokenization.PreTrainedTokenizerFast` where HF's class has the same: ``__call__`` (with
    ``text_target``), ``encode``, ``tokenize``, ``decode`` / ``batch_decode``, ``pad``, the special tokens,
    ``get_vocab``, ``save_pretrained``.
    """

    def __init__(self, files: TokenizerFiles):
        config = dict(files.config)
        directory = files.directory
        missing = [name for name in (SOURCE_SPM_FILE, TARGET_SPM_FILE, VOCAB_FILE) if not (directory / name).is_file()]
        self.separate_vocabs = bool(config.pop("separate_vocabs", False))
        if self.separate_vocabs and not (directory / TARGET_VOCAB_FILE).is_file():
            missing.append(TARGET_VOCAB_FILE + " (separate_vocabs is set)")
        if missing:
            raise FileNotFoundError(
                f"{files.label} is a MarianTokenizer folder but lacks {', '.join(missing)}: Marian's tokenizer reads "
                f"{SOURCE_SPM_FILE} and {TARGET_SPM_FILE} (SentencePiece models) and {VOCAB_FILE} (the ids)."
            )
        self._spm_bytes = {name: (directory / name).read_bytes() for name in (SOURCE_SPM_FILE, TARGET_SPM_FILE)}
        self._spm_source = _load_sentencepiece(self._spm_bytes[SOURCE_SPM_FILE], directory / SOURCE_SPM_FILE)
        self._spm_target = _load_sentencepiece(self._spm_bytes[TARGET_SPM_FILE], directory / TARGET_SPM_FILE)
        self.encoder = _read_vocab(directory / VOCAB_FILE)
        self.target_encoder = _read_vocab(directory / TARGET_VOCAB_FILE) if self.separate_vocabs else self.encoder
        self.decoder = {index: piece for piece, index in self.target_encoder.items()}
        self.supported_language_codes = [] if self.separate_vocabs else [
            piece for piece in self.encoder if piece.startswith(">>") and piece.endswith("<<")
        ]

        named = {key: config.pop(key, None) for key in self.SPECIAL_TOKENS_ATTRIBUTES}
        for key, default in (("unk_token", "<unk>"), ("eos_token", "</s>"), ("pad_token", "<pad>")):
            if named[key] is None:
                named[key] = default
        if str(named["unk_token"]) not in self.encoder:
            raise KeyError(f"{directory / VOCAB_FILE} has no {named['unk_token']} (the unk token); Marian needs it.")
        self._special_tokens = named
        self._model_specific_tokens = []
        extras = config.pop("extra_special_tokens", None) or []
        self._extra_special_tokens = list(extras) if isinstance(extras, (list, tuple)) else []
        self.source_lang = config.pop("source_lang", None)
        self.target_lang = config.pop("target_lang", None)
        self.name_or_path = str(config.pop("name_or_path", files.label))
        max_length = config.pop("model_max_length", 512)
        self.model_max_length = int(max_length) if max_length is not None else VERY_LARGE_INTEGER
        self.padding_side = config.pop("padding_side", None) or "right"
        self.truncation_side = config.pop("truncation_side", None) or "right"
        self.model_input_names = list(config.pop("model_input_names", None) or ["input_ids", "attention_mask"])
        self.clean_up_tokenization_spaces = bool(config.pop("clean_up_tokenization_spaces", False))
        self.split_special_tokens = bool(config.pop("split_special_tokens", False))
        self.sp_model_kwargs = config.pop("sp_model_kwargs", None) or {}
        if self.sp_model_kwargs:
            raise NotImplementedError(
                f"sp_model_kwargs={self.sp_model_kwargs!r} (SentencePiece sampling) is not supported by "
                "transformers_jax's MarianTokenizer."
            )
        self._pad_token_type_id = 0
        # The special tokens (and other configured added tokens) are matched whole in texts.
        self._added_tokens: dict[int, AddedToken] = {}
        for index, token in (config.pop("added_tokens_decoder", None) or {}).items():
            self._added_tokens[int(index)] = _as_added_token(token)
        for value in [*named.values(), *self._extra_special_tokens]:
            if value is not None and str(value) not in {t.content for t in self._added_tokens.values()}:
                if str(value) not in self.encoder:
                    raise ValueError(
                        f"The special token {str(value)!r} of {files.label} is not in its {VOCAB_FILE}; adding tokens "
                        "to a Marian tokenizer is not supported here."
                    )
                self._added_tokens[self.encoder[str(value)]] = AddedToken(
                    str(value), normalized=False, special=True
                )
        for key in ("tokenizer_class", "add_bos_token", "add_eos_token", "target_vocab_file"):
            config.pop(key, None)
        self.init_kwargs = config  # other settings, written back by save_pretrained
        self._target_mode = False

    # -- loading and saving ------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | os.PathLike, **kwargs) -> MarianTokenizer:
        """Load a Marian folder or hub repo (``source.spm``, ``target.spm``, ``vocab.json``, ``tokenizer_config.json``);
        ``kwargs`` override its configuration. The hub keywords are those of
        :func:`transformers_jax.hub_download.open_source`."""
        from transformers_jax.hub_download import pop_hub_kwargs

        hub_kwargs = pop_hub_kwargs(kwargs)
        files = read_tokenizer_files(path_or_hub_id, kwargs, hub_kwargs)
        files.config.setdefault("name_or_path", str(path_or_hub_id))
        return cls(files)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> tuple[str, ...]:
        """Write HF's Marian files: ``source.spm``, ``target.spm``, ``vocab.json`` (``target_vocab.json`` with
        ``separate_vocabs``) and ``tokenizer_config.json``; HF's ``AutoTokenizer`` loads them. Returns the paths."""
        if kwargs.get("push_to_hub"):
            raise NotImplementedError("push_to_hub is not supported; upload the saved directory yourself.")
        directory = Path(save_directory)
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(
                f"Cannot save the tokenizer to {str(directory)!r}: it is an existing file, not a directory."
            )
        config: dict[str, Any] = {}
        for key, value in self.init_kwargs.items():
            try:
                json.dumps(value)
            except TypeError:
                continue
            config[key] = value
        config.update(self.special_tokens_map)
        if self._extra_special_tokens:
            config["extra_special_tokens"] = self.additional_special_tokens
        config["added_tokens_decoder"] = {
            str(index): _token_to_dict(token) for index, token in sorted(self._added_tokens.items())
        }
        config.update(
            model_max_length=self.model_max_length, padding_side=self.padding_side,
            truncation_side=self.truncation_side, model_input_names=self.model_input_names,
            clean_up_tokenization_spaces=self.clean_up_tokenization_spaces, separate_vocabs=self.separate_vocabs,
            source_lang=self.source_lang, target_lang=self.target_lang, sp_model_kwargs=self.sp_model_kwargs,
            tokenizer_class="MarianTokenizer",
        )
        if self.split_special_tokens:
            config["split_special_tokens"] = True
        contents: dict[str, str | bytes] = {
            **self._spm_bytes,
            VOCAB_FILE: json.dumps(self.encoder, indent=2, ensure_ascii=False),
            TOKENIZER_CONFIG_FILE: json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        }
        if self.separate_vocabs:
            contents[TARGET_VOCAB_FILE] = json.dumps(self.target_encoder, indent=2, ensure_ascii=False)
        with staged_directory(directory) as stage:
            for name, data in contents.items():
                if isinstance(data, bytes):
                    (stage / name).write_bytes(data)
                else:
                    (stage / name).write_text(data, encoding="utf-8")
        return tuple(str(directory / name) for name in contents)

    # -- vocabulary --------------------------------------------------------------------------------------------------

    @property
    def is_fast(self) -> bool:
        """``False``: a SentencePiece-backed tokenizer, as HF's Marian class."""
        return False

    @property
    def vocab_size(self) -> int:
        """Size of ``vocab.json``."""
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        """The source vocabulary (``vocab.json``) with the added tokens."""
        return {**self.encoder, **self.added_tokens_encoder}

    def __len__(self) -> int:
        return len(self.get_vocab())

    def __bool__(self) -> bool:
        return True

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """The added (special) tokens as ``{id: AddedToken}``."""
        return dict(sorted(self._added_tokens.items()))

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """The added tokens as ``{content: id}``, sorted by id."""
        return {token.content: index for index, token in sorted(self._added_tokens.items())}

    def _current_encoder(self) -> dict[str, int]:
        return self.target_encoder if self._target_mode else self.encoder

    def _token_to_id(self, token: str) -> int:
        added = self.added_tokens_encoder
        if token in added:
            return added[token]
        encoder = self._current_encoder()
        return encoder[token] if token in encoder else encoder[str(self._special_tokens["unk_token"])]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str] | None) -> int | list[int] | None:
        """Piece(s) to id(s) through the vocabulary of the current side; unknown pieces give the unk id."""
        if tokens is None:
            return None
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(token) for token in tokens]

    def _id_to_token(self, index: int, use_source: bool) -> str:
        if index in self._added_tokens:
            return self._added_tokens[index].content
        if index in self.decoder:
            return self.decoder[index]
        spm = self._spm_source if use_source else self._spm_target  # HF falls back to the model's own pieces
        piece = spm.IdToPiece(index) if 0 <= index < spm.GetPieceSize() else ""
        return piece or str(self._special_tokens["unk_token"])

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False,
                              use_source_tokenizer: bool | None = None) -> str | list[str]:
        """Id(s) to piece(s); ``skip_special_tokens`` drops the ids in :attr:`all_special_ids`."""
        use_source = (not self.separate_vocabs) if use_source_tokenizer is None else use_source_tokenizer
        if not isinstance(ids, (list, tuple)) and not hasattr(ids, "tolist"):
            return self._id_to_token(int(ids), use_source)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._id_to_token(int(i), use_source) for i in _to_python(ids) if int(i) not in skip]

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """1: ``</s>`` ends every input, single or pair."""
        return 1

    # -- encoding ----------------------------------------------------------------------------------------------------

    def _split_on_added_tokens(self, text: str, split: bool) -> list[str]:
        if split:
            return [text]
        tokens = sorted({t.content for t in self._added_tokens.values()} | set(self.all_special_tokens),
                        key=len, reverse=True)
        return [part for part in re.split("(" + "|".join(map(re.escape, tokens)) + ")", text) if part]

    def tokenize(self, text: str, split_special_tokens: bool | None = None) -> list[str]:
        """The pieces of ``text`` on the current side: special tokens whole (unless ``split_special_tokens``), a
        leading ``>>xx<<`` language code whole, the rest from the side's SentencePiece model."""
        split = self.split_special_tokens if split_special_tokens is None else split_special_tokens
        specials = {t.content for t in self._added_tokens.values()} | set(self.all_special_tokens)
        spm = self._spm_target if self._target_mode else self._spm_source
        pieces: list[str] = []
        for part in self._split_on_added_tokens(text, split):
            if part in specials and not split:
                pieces.append(part)
                continue
            if part.startswith(">>") and (end := part.find("<<")) != -1:
                pieces.append(part[: end + 2])
                part = part[end + 2:]
            pieces.extend(spm.encode(part, out_type=str))
        return pieces

    def _special_token_mask(self, ids: Sequence[int]) -> list[int]:
        special = set(self.all_special_ids) - {self.unk_token_id}  # HF: <unk> is only sometimes special
        return [1 if i in special else 0 for i in ids]

    def get_special_tokens_mask(self, token_ids_0: Sequence[int], token_ids_1: Sequence[int] | None = None,
                                already_has_special_tokens: bool = False) -> list[int]:
        """1 for ``</s>`` / ``<pad>`` (and the other special tokens but ``<unk>``), as HF's Marian class."""
        ids = list(_to_python(token_ids_0)) + list(_to_python(token_ids_1 or []))
        return self._special_token_mask(ids) + ([] if already_has_special_tokens else [1])

    def _truncate(self, ids: list[int], pair: list[int] | None, remove: int, strategy: str):
        """HF's ``truncate_sequences`` (no overflow windows)."""
        side = self.truncation_side
        if strategy == "only_first" or (strategy == "longest_first" and pair is None):
            if remove >= len(ids):
                raise ValueError(
                    f"The first sequence has {len(ids)} tokens; {remove} must go to fit max_length. Use "
                    "truncation='longest_first' or 'only_second', or a larger max_length."
                )
            return (ids[remove:] if side == "left" else ids[:-remove]), pair
        if strategy == "only_second":
            if pair is None or remove >= len(pair):
                raise ValueError(
                    f"The second sequence has {len(pair or [])} tokens; {remove} must go to fit max_length. Use "
                    "truncation='longest_first' or 'only_first', or a larger max_length."
                )
            return ids, (pair[remove:] if side == "left" else pair[:-remove])
        first = min(abs(len(pair) - len(ids)), remove)
        second = remove - first
        if len(ids) > len(pair):
            from_ids, from_pair = first + second // 2, second - second // 2
        else:
            from_ids, from_pair = second // 2, first + second - second // 2
        if side == "right":
            return (ids[:-from_ids] if from_ids else ids), (pair[:-from_pair] if from_pair else pair)
        return ids[from_ids:], pair[from_pair:]

    def _encode_one(self, text: str, pair: str | None, add_special_tokens: bool, truncation: str,
                    max_length: int | None, return_special_tokens_mask: bool,
                    split: bool | None) -> dict[str, list[int]]:
        ids = self.convert_tokens_to_ids(self.tokenize(text, split))
        pair_ids = self.convert_tokens_to_ids(self.tokenize(pair, split)) if pair is not None else None
        total = len(ids) + len(pair_ids or []) + (1 if add_special_tokens else 0)
        if truncation != "do_not_truncate" and max_length and total > max_length:
            ids, pair_ids = self._truncate(ids, pair_ids, total - max_length, truncation)
        sequence = ids + (pair_ids or []) + ([self.eos_token_id] if add_special_tokens else [])
        row = {"input_ids": sequence}
        if return_special_tokens_mask:
            row["special_tokens_mask"] = (
                self.get_special_tokens_mask(ids, pair_ids) if add_special_tokens else [0] * len(sequence)
            )
        return row

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        text_pair: str | Sequence[str] | None = None,
        text_target: str | Sequence[str] | None = None,
        text_pair_target: str | Sequence[str] | None = None,
        *,
        max_target_length: int | None = None,
        **kwargs,
    ) -> BatchEncoding:
        """Encode source ``text`` (and ``text_pair``) with ``source.spm`` and/or ``text_target`` (and
        ``text_pair_target``) with ``target.spm``; with both, the targets' ids are ``labels``. Arguments as
        :meth:`PreTrainedTokenizerFast.__call__ <transformers_jax.tokenization.PreTrainedTokenizerFast.__call__>`,
        without offsets, overflow, pre-split words or strides."""
        if text is None and text_target is None:
            raise ValueError("You need to specify either `text` or `text_target`.")
        if text is not None:
            self._target_mode = False
            encodings = self._encode(text, text_pair, **kwargs)
            if text_target is None:
                return encodings
        if max_target_length is not None:
            kwargs["max_length"] = max_target_length
        self._target_mode = True
        try:
            targets = self._encode(text_target, text_pair_target, **kwargs)
        finally:
            self._target_mode = False
        if text is None:
            return targets
        encodings["labels"] = targets["input_ids"]
        return encodings

    def _encode(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_special_tokens_mask: bool = False,
        return_length: bool = False,
        padding_side: str | None = None,
        split_special_tokens: bool | None = None,
        verbose: bool = True,
        **unsupported,
    ) -> BatchEncoding:
        asked = {key: value for key, value in unsupported.items() if value}
        if asked:
            known = [key for key in asked if key in _UNSUPPORTED]
            raise (NotImplementedError if known else TypeError)(
                f"MarianTokenizer does not support {', '.join(f'{k}={v!r}' for k, v in asked.items())}"
                + (" (a SentencePiece-backed tokenizer, as HF's Marian class)." if known else ".")
            )
        if return_token_type_ids:
            raise NotImplementedError("MarianTokenizer returns no token_type_ids (its model takes none).")
        for value in (text, text_pair):
            if value is not None and not _is_valid_text_input(value):
                raise ValueError("text input must be of type `str` (single example) or `list[str]` (batch).")
        padding, truncation, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of, verbose)
        batched = isinstance(text, (list, tuple))
        if batched and text_pair is not None and (isinstance(text_pair, str) or len(text_pair) != len(text)):
            raise ValueError("`text_pair` must be a list as long as `text` when `text` is a batch.")
        if not batched and text_pair is not None and not isinstance(text_pair, str):
            raise ValueError("`text_pair` must be a str when `text` is a str.")
        texts = list(text) if batched else [text]
        pairs = (list(text_pair) if batched else [text_pair]) if text_pair is not None else [None] * len(texts)
        rows = [
            self._encode_one(a, b, add_special_tokens, truncation, max_length, return_special_tokens_mask,
                             split_special_tokens)
            for a, b in zip(texts, pairs)
        ]
        data = {key: [row[key] for row in rows] for key in rows[0]} if rows else {"input_ids": []}
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        if padding != "do_not_pad" or return_attention_mask:
            data = dict(self.pad(data, padding=padding if padding != "do_not_pad" else False, max_length=max_length,
                                 pad_to_multiple_of=pad_to_multiple_of, padding_side=padding_side,
                                 return_attention_mask=return_attention_mask))
        if return_length:
            data["length"] = [len(ids) for ids in data["input_ids"]]
        if not batched and return_tensors is None:
            data = {key: value[0] for key, value in data.items()}
            return BatchEncoding(data, n_sequences=1 + (text_pair is not None))
        return BatchEncoding(data, tensor_type=return_tensors, n_sequences=1 + (text_pair is not None))

    def encode(self, text: str, text_pair: str | None = None, **kwargs) -> list[int]:
        """Token ids of ``text`` (and ``text_pair``); same arguments as :meth:`__call__`."""
        return self(text, text_pair, **kwargs)["input_ids"]

    # -- decoding ----------------------------------------------------------------------------------------------------

    def convert_tokens_to_string(self, tokens: Sequence[str], use_source_tokenizer: bool | None = None) -> str:
        """Join pieces with the SentencePiece model (special tokens kept as they are, each followed by a space)."""
        use_source = (not self.separate_vocabs) if use_source_tokenizer is None else use_source_tokenizer
        spm = self._spm_source if use_source else self._spm_target
        specials = set(self.all_special_tokens)
        out, pending = "", []
        for token in tokens:
            if token in specials:
                out += spm.decode_pieces(pending) + token + " "
                pending = []
            else:
                pending.append(token)
        out += spm.decode_pieces(pending)
        return out.replace(_SPIECE_UNDERLINE, " ").strip()

    def decode(self, token_ids: Any, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool | None = None,
               use_source_tokenizer: bool | None = None) -> str | list[str]:
        """Ids to text (with the source model unless ``separate_vocabs``, as HF; ``use_source_tokenizer`` chooses);
        a batch (list of lists, 2-D array) gives a list."""
        if isinstance(token_ids, Mapping):
            token_ids = token_ids["input_ids"]
        token_ids = _to_python(token_ids)
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        if token_ids and isinstance(token_ids[0], (list, tuple)):
            return [self.decode(ids, skip_special_tokens, clean_up_tokenization_spaces, use_source_tokenizer)
                    for ids in token_ids]
        tokens = self.convert_ids_to_tokens(token_ids, skip_special_tokens, use_source_tokenizer)
        text = self.convert_tokens_to_string(tokens, use_source_tokenizer)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces:
            from transformers_jax.tokenization.tokenizer import PreTrainedTokenizerFast

            text = PreTrainedTokenizerFast.clean_up_tokenization(text)
        return text

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None,
                     use_source_tokenizer: bool | None = None) -> list[str]:
        """Decode a batch of id sequences to a list of strings."""
        return [self.decode(ids, skip_special_tokens, clean_up_tokenization_spaces, use_source_tokenizer)
                for ids in _to_python(sequences)]

    def add_tokens(self, *args, **kwargs):
        raise NotImplementedError("Adding tokens to a MarianTokenizer is not supported by transformers_jax.")

    add_special_tokens = add_tokens

    def __repr__(self) -> str:
        return (
            f"MarianTokenizer(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"source_lang={self.source_lang!r}, target_lang={self.target_lang!r}, "
            f"separate_vocabs={self.separate_vocabs}, special_tokens={self.special_tokens_map})"
        )
