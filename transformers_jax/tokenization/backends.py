"""Backends: the ``tokenizers.Tokenizer`` a folder's files give, with the defaults of the HF class they belong to.

``tokenizer.json`` is loaded as it is; without it, a WordPiece ``vocab.txt`` or GPT-2 style ``vocab.json`` +
``merges.txt`` give the tokenizer HF's class builds from them (its post-processor read from :data:`CLASS_DEFAULTS`).
A SentencePiece model alone (``spiece.model``, ``sentencepiece.bpe.model``, ``spm.model``) is refused with a message
saying how to get a ``tokenizer.json``. GGUF files are :mod:`~transformers_jax.tokenization.gguf_tokenizer`'s.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, WordPiece

from transformers_jax.tokenization.files import (
    BERT_VOCAB_FILE,
    BPE_MERGES_FILE,
    BPE_VOCAB_FILE,
    SENTENCEPIECE_FILES,
    TOKENIZER_FILE,
    TokenizerFiles,
)


@dataclasses.dataclass(frozen=True)
class ClassDefaults:
    """What one of HF's tokenizer classes assumes when its files do not say otherwise.

    Attributes:
        model_input_names: the class's ``model_input_names`` (whether ``token_type_ids`` is returned, and the order).
        special_tokens: the ``__init__`` defaults of the named special tokens (and ``extra_special_tokens``).
        wrap: the post-processor the class builds around vocabulary files: ``"cls_sep"`` (``[CLS] A [SEP] B [SEP]``
            with token types 0/1), ``"roberta"`` (``<s> A </s></s> B </s>``) or ``None`` (none).
        metaspace_without_prefix: the Metaspace ``prepend_scheme`` the class uses when ``add_prefix_space=False``.
    """

    model_input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    special_tokens: Mapping[str, object] = dataclasses.field(default_factory=dict)
    wrap: str | None = None
    metaspace_without_prefix: str = "never"


_WITH_TOKEN_TYPES = ("input_ids", "token_type_ids", "attention_mask")
_WITH_TOKEN_TYPES_LAST = ("input_ids", "attention_mask", "token_type_ids")
_BERT_TOKENS = {
    "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
}
_ROBERTA_TOKENS = {
    "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
    "pad_token": "<pad>", "mask_token": "<mask>",
}
_CLS_SEP_AS_BOS_EOS = {
    "bos_token": "[CLS]", "eos_token": "[SEP]", "sep_token": "[SEP]", "cls_token": "[CLS]", "mask_token": "[MASK]",
}

# HF v5 tokenizer classes (the names ``tokenizer_config.json`` gives, without ``Fast``) and their defaults.
CLASS_DEFAULTS: dict[str, ClassDefaults] = {
    "BertTokenizer": ClassDefaults(_WITH_TOKEN_TYPES, _BERT_TOKENS, wrap="cls_sep"),
    "DistilBertTokenizer": ClassDefaults(special_tokens=_BERT_TOKENS, wrap="cls_sep"),
    "MPNetTokenizer": ClassDefaults(special_tokens={**_ROBERTA_TOKENS, "unk_token": "[UNK]"}, wrap="roberta"),
    "GPT2Tokenizer": ClassDefaults(special_tokens=dict.fromkeys(("unk_token", "bos_token", "eos_token"), "<|endoftext|>")),
    "RobertaTokenizer": ClassDefaults(special_tokens=_ROBERTA_TOKENS, wrap="roberta"),
    "XLMRobertaTokenizer": ClassDefaults(special_tokens=_ROBERTA_TOKENS),
    "CamembertTokenizer": ClassDefaults(
        special_tokens={**_ROBERTA_TOKENS, "extra_special_tokens": ("<s>NOTUSED", "</s>NOTUSED", "<unk>NOTUSED")}
    ),
    "AlbertTokenizer": ClassDefaults(special_tokens={**_CLS_SEP_AS_BOS_EOS, "unk_token": "<unk>", "pad_token": "<pad>"}),
    "DebertaV2Tokenizer": ClassDefaults(
        _WITH_TOKEN_TYPES_LAST,
        {**_CLS_SEP_AS_BOS_EOS, "unk_token": "[UNK]", "pad_token": "[PAD]"},
        metaspace_without_prefix="first",
    ),
    # Classes known here only for their model_input_names.
    "CanineTokenizer": ClassDefaults(_WITH_TOKEN_TYPES_LAST),
    "DPRQuestionEncoderTokenizer": ClassDefaults(_WITH_TOKEN_TYPES),
    "DebertaTokenizer": ClassDefaults(_WITH_TOKEN_TYPES_LAST),
    "FNetTokenizer": ClassDefaults(("input_ids", "token_type_ids")),
    "LayoutLMv2Tokenizer": ClassDefaults(_WITH_TOKEN_TYPES_LAST),
    "MarkupLMTokenizer": ClassDefaults(_WITH_TOKEN_TYPES),
    "TapasTokenizer": ClassDefaults(_WITH_TOKEN_TYPES_LAST),
}
# Class names that HF v5 resolves to another class (``tokenizer_class_from_name``).
CLASS_ALIASES: dict[str, str] = {
    **dict.fromkeys(("ElectraTokenizer", "LxmertTokenizer", "MobileBertTokenizer"), "BertTokenizer"),
    **dict.fromkeys(("BartTokenizer", "LongformerTokenizer", "LEDTokenizer", "MvpTokenizer"), "RobertaTokenizer"),
}
# config.json ``model_type`` -> tokenizer class, for folders whose tokenizer_config.json names no class (HF's
# AutoTokenizer falls back to the model's config the same way).
MODEL_TYPE_CLASSES: dict[str, str] = {
    "albert": "AlbertTokenizer",
    "bert": "BertTokenizer",
    "camembert": "CamembertTokenizer",
    "deberta-v2": "DebertaV2Tokenizer",
    "distilbert": "BertTokenizer",
    "electra": "BertTokenizer",
    "gpt2": "GPT2Tokenizer",
    "mpnet": "MPNetTokenizer",
    "roberta": "RobertaTokenizer",
    "xlm-roberta": "XLMRobertaTokenizer",
}


def class_defaults(tokenizer_class: str | None) -> ClassDefaults | None:
    """The defaults of HF's ``tokenizer_class`` (aliases resolved), or ``None`` for a class not known here."""
    if tokenizer_class is None:
        return None
    return CLASS_DEFAULTS.get(CLASS_ALIASES.get(tokenizer_class, tokenizer_class))


def _fill_class_defaults(config: dict, defaults: ClassDefaults) -> None:
    """Put the class's default special tokens and ``model_input_names`` into ``config`` where it has none."""
    for key, default in defaults.special_tokens.items():
        if key not in config:
            config[key] = list(default) if isinstance(default, tuple) else default
    config.setdefault("model_input_names", list(defaults.model_input_names))


def _wordpiece_backend(vocab_file: Path, config: dict, unk_token: str) -> Tokenizer:
    """A WordPiece tokenizer built from ``vocab.txt`` like HF's ``BertTokenizer`` does."""
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


def _components(node: dict | None):
    """The components of a serialized normalizer / pre-tokenizer / decoder / post-processor (Sequences flattened)."""
    if not node:
        return
    for key in ("pretokenizers", "decoders", "processors"):
        if node.get("type") == "Sequence" and key in node:
            for child in node[key]:
                yield from _components(child)
            return
    yield node


def _apply_add_prefix_space(backend: Tokenizer, add_prefix_space: bool, defaults: ClassDefaults) -> Tokenizer:
    """``backend`` with its ByteLevel / Metaspace pieces set to ``add_prefix_space``, as HF's classes build them
    from that setting (``prepend_scheme`` ``"always"``, or the class's choice without the prefix space)."""
    data = json.loads(backend.to_str())
    changed = False
    for part in ("pre_tokenizer", "decoder", "post_processor"):
        for node in _components(data.get(part)):
            if node.get("type") in ("ByteLevel", "RobertaProcessing") and "add_prefix_space" in node:
                changed |= node["add_prefix_space"] != add_prefix_space
                node["add_prefix_space"] = add_prefix_space
            elif node.get("type") == "Metaspace" and "prepend_scheme" in node:
                scheme = "always" if add_prefix_space else defaults.metaspace_without_prefix
                changed |= node["prepend_scheme"] != scheme
                node["prepend_scheme"] = scheme
    return Tokenizer.from_str(json.dumps(data)) if changed else backend


def backend_from_files(files: TokenizerFiles) -> tuple[Tokenizer, str | None]:
    """The backend for ``files`` and the post-processor it still needs (``"cls_sep"``, ``"roberta"`` or ``None``, for
    :func:`set_post_processor`). Fills the HF class's defaults (special tokens, ``model_input_names``, padding side)
    into ``files.config``."""
    config, directory, label = files.config, files.directory, files.label
    defaults = class_defaults(files.tokenizer_class)
    wrap, bos_eos_flags_apply = None, False
    if files.tokenizer_json.is_file():
        backend = Tokenizer.from_file(str(files.tokenizer_json))
        if defaults is not None and config.get("add_prefix_space") is not None:
            # HF's class rebuilds these pieces from the setting (which a caller may override).
            backend = _apply_add_prefix_space(backend, bool(config["add_prefix_space"]), defaults)
    elif (directory / BERT_VOCAB_FILE).is_file():
        if defaults is None or defaults.wrap is None:
            defaults = CLASS_DEFAULTS["BertTokenizer"]  # HF builds a BERT tokenizer from a bare vocab.txt
        unk = config.get("unk_token") or defaults.special_tokens["unk_token"]
        backend = _wordpiece_backend(directory / BERT_VOCAB_FILE, config, str(unk))
        wrap = defaults.wrap
    elif (directory / BPE_VOCAB_FILE).is_file() and (directory / BPE_MERGES_FILE).is_file():
        if defaults is None or defaults.wrap != "roberta":
            defaults = CLASS_DEFAULTS["GPT2Tokenizer"]
        backend = _byte_level_bpe_backend(directory / BPE_VOCAB_FILE, directory / BPE_MERGES_FILE, config)
        wrap, bos_eos_flags_apply = defaults.wrap, True
    else:
        spm = [name for name in SENTENCEPIECE_FILES if (directory / name).is_file()]
        if spm:
            raise ValueError(
                f"{label} has a SentencePiece model ({spm[0]}) but no {TOKENIZER_FILE}; transformers_jax reads "
                f"SentencePiece tokenizers only from {TOKENIZER_FILE}. Write one once with Hugging Face transformers "
                f"(`transformers.AutoTokenizer.from_pretrained(path).save_pretrained(path)`, which needs the "
                f"`sentencepiece` package) and load the folder again."
            )
        looked_for = [TOKENIZER_FILE, BERT_VOCAB_FILE, f"{BPE_VOCAB_FILE} + {BPE_MERGES_FILE}"]
        raise FileNotFoundError(
            f"No tokenizer files found in {label}: looked for {', '.join(looked_for)} "
            f"(or pass gguf_file=... for a GGUF checkpoint)."
        )
    if not bos_eos_flags_apply:
        # HF reads the bos/eos wrapping from tokenizer.json's post-processor or the class, not from these flags.
        config.pop("add_bos_token", None)
        config.pop("add_eos_token", None)
    if defaults is not None:
        _fill_class_defaults(config, defaults)

    # Settings baked into tokenizer.json's padding (HF uses them as defaults).
    if backend.padding is not None:
        config.setdefault("padding_side", backend.padding.get("direction", "right"))
    if config.get("padding_side") is None:
        config.pop("padding_side", None)
    if config.get("truncation_side") is None:
        config.pop("truncation_side", None)
    return backend, wrap


def set_post_processor(tokenizer, wrap: str | None, config: dict) -> None:
    """Give a tokenizer built from vocabulary files the post-processor of its HF class: ``"cls_sep"`` (BERT's
    ``[CLS] A [SEP] B [SEP]`` template) or ``"roberta"`` (``<s> A </s></s> B </s>``)."""
    if wrap == "cls_sep":
        cls_token, sep_token = tokenizer.cls_token, tokenizer.sep_token
        tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls_token}:0 $A:0 {sep_token}:0",
            pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
            special_tokens=[(cls_token, tokenizer.cls_token_id), (sep_token, tokenizer.sep_token_id)],
        )
    elif wrap == "roberta":
        tokenizer._tokenizer.post_processor = processors.RobertaProcessing(
            (tokenizer.sep_token, tokenizer.sep_token_id),
            (tokenizer.cls_token, tokenizer.cls_token_id),
            trim_offsets=bool(config.get("trim_offsets", True)),
            add_prefix_space=bool(config.get("add_prefix_space", False)),
        )
