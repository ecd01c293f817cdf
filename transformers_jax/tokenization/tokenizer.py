"""Tokenizers with Hugging Face transformers' user experience, backed by the Rust ``tokenizers`` library.

The public classes mirror ``transformers``' fast tokenizers:

* :class:`PreTrainedTokenizerFast` -- a wrapper over a ``tokenizers.Tokenizer`` with HF's calling conventions:
  padding / truncation strategies, pairs, batches, pre-split words, ``return_tensors`` ('np', 'jax', 'pt'),
  decoding, special and added tokens, chat templates and ``save_pretrained`` / ``from_pretrained``.

This module holds the class and its encoding, decoding and vocabulary methods; the other concerns are mixed in from
:mod:`~transformers_jax.tokenization.special_tokens`, :mod:`~transformers_jax.tokenization.batch_encoding` (padding
and truncation) and :mod:`~transformers_jax.tokenization.chat_template`; files are read and written by
:mod:`~transformers_jax.tokenization.files` and :mod:`~transformers_jax.tokenization.backends`.

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
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tokenizers import AddedToken, Encoding, Tokenizer

from transformers_jax.tokenization.backends import (
    backend_from_files,
    class_defaults,
    language_post_processor,
    set_post_processor,
)
from transformers_jax.tokenization.batch_encoding import (
    VERY_LARGE_INTEGER,
    BatchEncoding,
    PaddingMixin,
    _is_valid_text_input,
    _to_python,
)
from transformers_jax.tokenization.chat_template import ChatTemplateMixin
from transformers_jax.tokenization.files import read_tokenizer_files, save_tokenizer_files
from transformers_jax.tokenization.special_tokens import SpecialTokensMixin

logger = logging.getLogger(__name__)


class PreTrainedTokenizerFast(SpecialTokensMixin, PaddingMixin, ChatTemplateMixin):
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
        self._hf_class: str | None = None  # HF's class, written by save_pretrained when its behaviour is rebuilt here
        self._language_wrap: str | None = None  # set by _use_language_codes (mBART's classes)
        self._src_lang: str | None = None
        self._tgt_lang: str | None = None
        self.init_kwargs = dict(extra_init_kwargs)

        self._register_special_tokens(added_tokens_decoder)
        self._tokenizer.encode_special_tokens = self.split_special_tokens

        explicit_bos_eos = add_bos_token is not None or add_eos_token is not None
        self._add_bos_token = bool(add_bos_token)
        self._add_eos_token = bool(add_eos_token)
        if explicit_bos_eos or self._tokenizer.post_processor is None:
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
        + ``merges.txt`` (GPT-2 style byte-level BPE; RoBERTa-style wrapping when ``tokenizer_class`` says so); else
        the SentencePiece model of the XLM-R / CamemBERT / mBART / mBART-50 (``sentencepiece.bpe.model``), ALBERT /
        T5 (``spiece.model``) or DeBERTa-v2 (``spm.model``) class, converted as HF v5 converts it (needs the
        ``sentencepiece`` package). A Marian folder (``tokenizer_class`` ``MarianTokenizer``) gives a
        :class:`~transformers_jax.tokenization.marian.MarianTokenizer` through ``AutoTokenizer`` only. For
        the HF classes in :data:`~transformers_jax.tokenization.backends.CLASS_DEFAULTS` (BERT, DistilBERT, ELECTRA,
        MPNet, RoBERTa / BART, XLM-R, CamemBERT, ALBERT, DeBERTa-v2, T5, mBART, mBART-50...) the normalizer,
        pre-tokenizer, decoder and
        post-processor are built from the settings (``add_prefix_space``, ``do_lower_case``...) as HF v5's classes do,
        keeping the files' vocabulary; the class comes from ``config.json``'s ``model_type`` when the tokenizer
        config names none.
        ``tokenizer_config.json``, ``special_tokens_map.json``, ``added_tokens.json``, ``chat_template.jinja``,
        ``additional_chat_templates/*.jinja`` and ``chat_template.json`` are read when present. ``kwargs`` override
        the configuration (e.g. ``padding_side="left"``, ``pad_token="<pad>"``).

        With ``gguf_file`` (or a path to a ``.gguf`` file) the tokenizer is read from the GGUF metadata by
        ``transformers_jax.tokenization.gguf_tokenizer.load_gguf_tokenizer``. The hub keywords ``revision``, ``token``,
        ``cache_dir``, ``local_files_only``, ``force_download`` and ``subfolder`` are those of
        :func:`transformers_jax.hub_download.open_source`.
        """
        from transformers_jax.hub_download import gguf_location, pop_hub_kwargs

        from_auto = kwargs.pop("_from_auto", False)
        hub_kwargs = pop_hub_kwargs(kwargs)
        gguf_path = gguf_location(path_or_hub_id, gguf_file, **hub_kwargs)
        if gguf_path is not None:
            from transformers_jax.tokenization import gguf_tokenizer

            tokenizer = gguf_tokenizer.load_gguf_tokenizer(gguf_path)
            for key, value in kwargs.items():
                setattr(tokenizer, key, value)
            return tokenizer

        files = read_tokenizer_files(path_or_hub_id, kwargs, hub_kwargs)
        if files.tokenizer_class == "MarianTokenizer":  # HF's Marian class is sentencepiece-backed, not tokenizers
            if not from_auto:
                raise ValueError(
                    f"{files.label} is a MarianTokenizer folder (two SentencePiece models, no tokenizer.json); load it "
                    "with AutoTokenizer.from_pretrained or "
                    "transformers_jax.tokenization.MarianTokenizer.from_pretrained."
                )
            from transformers_jax.tokenization.marian import MarianTokenizer

            files.config.setdefault("name_or_path", str(path_or_hub_id))
            return MarianTokenizer(files)
        backend, post_fix = backend_from_files(files)
        config = files.config
        config["name_or_path"] = str(path_or_hub_id)
        tokenizer = cls(tokenizer_object=backend, _copy_tokenizer_object=False, **config)
        set_post_processor(tokenizer, post_fix, config)
        defaults = class_defaults(files.tokenizer_class)
        if defaults is not None and (defaults.pipeline is not None or defaults.wrap is not None):
            tokenizer._hf_class = files.tokenizer_class  # saved, so that HF rebuilds it with the same class
        return tokenizer

    # -- language codes and target mode (sequence to sequence) --------------------------------------------------------

    def _use_language_codes(self, wrap: str, src_lang: str | None, tgt_lang: str | None) -> None:
        """Make the post-processor put the language code where ``wrap`` says (a ``LANGUAGE_WRAPS`` kind): ``src_lang``
        (default ``en_XX``, as HF's mBART classes) for texts, ``tgt_lang`` (default: ``src_lang``) for targets."""
        self._language_wrap = wrap
        self._src_lang = src_lang if src_lang is not None else "en_XX"
        self._tgt_lang = tgt_lang
        self._switch_to_input_mode()

    def _language_attribute(self, name: str) -> None:
        if self._language_wrap is None:  # only mBART's classes have languages (as in HF)
            raise AttributeError(name)

    @property
    def src_lang(self) -> str:
        """The source language code (mBART's classes); setting it rebuilds the post-processor."""
        self._language_attribute("src_lang")
        return self._src_lang

    @src_lang.setter
    def src_lang(self, value: str) -> None:
        self._language_attribute("src_lang")
        self._tokenizer.post_processor = language_post_processor(self, self._language_wrap, value)
        self._src_lang = value

    @property
    def tgt_lang(self) -> str | None:
        """The target language code used for ``text_target`` (mBART's classes; ``None``: the source language)."""
        self._language_attribute("tgt_lang")
        return self._tgt_lang

    @tgt_lang.setter
    def tgt_lang(self, value: str | None) -> None:
        self._language_attribute("tgt_lang")
        self._tgt_lang = value

    def _switch_to_input_mode(self) -> None:
        """Encode texts as sources (mBART's classes: with ``src_lang``); nothing for other classes."""
        if self._language_wrap is not None:
            self._tokenizer.post_processor = language_post_processor(self, self._language_wrap, self._src_lang)

    def _switch_to_target_mode(self) -> None:
        """Encode texts as targets (mBART's classes: with ``tgt_lang``, which becomes ``src_lang`` when unset, as in
        HF); nothing for other classes."""
        if self._language_wrap is not None:
            if self._tgt_lang is None:
                self._tgt_lang = self._src_lang
            self._tokenizer.post_processor = language_post_processor(self, self._language_wrap, self._tgt_lang)

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

    # -- encoding ----------------------------------------------------------------------------------------------------

    def __call__(
        self,
        text: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        text_pair: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        text_target: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        text_pair_target: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        *,
        max_target_length: int | None = None,
        **kwargs,
    ) -> BatchEncoding:
        """Tokenize texts (see :meth:`_encode` for the arguments) and, for sequence to sequence models, targets.

        ``text_target`` (with ``text_pair_target``) is encoded as the decoder's side, with the same arguments
        (``max_target_length``, when given, instead of ``max_length``): mBART's classes put ``tgt_lang`` where they
        put ``src_lang``. With ``text`` too, the targets' ``input_ids`` are returned as ``labels``; alone, their
        encoding is returned. As in HF.
        """
        if text is None and text_target is None:
            raise ValueError("You need to specify either `text` or `text_target`.")
        if text_pair_target is not None and text_target is None:
            raise ValueError("`text_pair_target` needs `text_target` (the first target sequence).")
        if text is not None:
            self._switch_to_input_mode()
            encodings = self._encode(text, text_pair, **kwargs)
            if text_target is None:
                return encodings
        if max_target_length is not None:
            kwargs["max_length"] = max_target_length
        self._switch_to_target_mode()
        try:
            targets = self._encode(text_target, text_pair_target, **kwargs)
        finally:
            self._switch_to_input_mode()
        if text is None:
            return targets
        encodings["labels"] = targets["input_ids"]
        return encodings

    def _encode(
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

    # -- saving ------------------------------------------------------------------------------------------------------

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> tuple[str, ...]:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` (plus
        ``chat_template.jinja`` for a single chat template) into ``save_directory``; returns the written paths.

        Files are staged and moved into place only once all are complete
        (:func:`transformers_jax.file_utils.staged_directory`), so an error never leaves a half-written file. The
        result loads with this class and with HF's ``AutoTokenizer``.
        Raises ``NotADirectoryError`` when ``save_directory`` is an existing file.
        """
        if kwargs.get("push_to_hub"):
            raise NotImplementedError("push_to_hub is not supported; upload the saved directory yourself.")
        return save_tokenizer_files(self, save_directory)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"len={len(self)}, model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
            f"truncation_side={self.truncation_side!r}, special_tokens={self.special_tokens_map})"
        )
