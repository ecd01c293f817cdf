"""Backends: the ``tokenizers.Tokenizer`` a folder's files give, with the defaults of the HF class they belong to.

``tokenizer.json`` is loaded as it is; without it, a BERT ``vocab.txt`` gives a WordPiece tokenizer and GPT-2 style
``vocab.json`` + ``merges.txt`` a byte-level BPE one (RoBERTa-style wrapping when ``tokenizer_class`` says so), as HF's
slow-to-fast conversion builds them. GGUF files are :mod:`~transformers_jax.tokenization.gguf_tokenizer`'s.
"""
from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, WordPiece

from transformers_jax.tokenization.files import (
    BERT_VOCAB_FILE,
    BPE_MERGES_FILE,
    BPE_VOCAB_FILE,
    TOKENIZER_FILE,
    TokenizerFiles,
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


def backend_from_files(files: TokenizerFiles) -> tuple[Tokenizer, str | None]:
    """The backend for ``files`` and the post-processor it still needs (``"bert"``, ``"roberta"`` or ``None``, for
    :func:`set_post_processor`). Fills the HF class's defaults (special tokens, ``model_input_names``, padding side)
    into ``files.config``."""
    config, tokenizer_class, directory, label = files.config, files.tokenizer_class, files.directory, files.label
    tokenizer_json = files.tokenizer_json
    use_json = tokenizer_json.is_file()
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
    return backend, post_fix


def set_post_processor(tokenizer, post_fix: str | None, config: dict) -> None:
    """Give a tokenizer built from vocabulary files the post-processor of its HF class (BERT's ``[CLS] A [SEP]``
    template, or RoBERTa's ``<s> A </s></s> B </s>``)."""
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
