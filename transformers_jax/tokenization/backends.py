"""Backends: the ``tokenizers.Tokenizer`` a folder's files give, with the defaults of the HF class they belong to.

HF v5's tokenizer classes do not take ``tokenizer.json`` as it is: they keep its model (vocabulary, merges, scores)
and added tokens, and build the normalizer, pre-tokenizer, decoder and post-processor themselves from their
settings (``add_prefix_space``, ``do_lower_case``...). :data:`CLASS_DEFAULTS` records, for the classes known here,
what that construction is (a ``pipeline`` and a ``wrap``), their default special tokens and ``model_input_names``;
folders of other classes (or none) load ``tokenizer.json`` as it is, as HF's generic class does.

Without ``tokenizer.json``, a WordPiece ``vocab.txt`` or GPT-2 style ``vocab.json`` + ``merges.txt`` give the
tokenizer HF's class builds from them, and so does the SentencePiece model of the XLM-R / CamemBERT / mBART /
mBART-50 (``sentencepiece.bpe.model``), ALBERT / T5 (``spiece.model``) and DeBERTa-v2/v3 (``spm.model``) classes: a
Unigram model over its pieces and scores, laid out as the class lays them out (XLM-R's, CamemBERT's and mBART's
fairseq ids, the language codes and ``<mask>`` they append, T5's sentinels), its control and user-defined pieces as
extra special tokens, its precompiled charsmap in the class's normalizer (read with the ``sentencepiece`` package,
imported only then). Marian's two SentencePiece models are :mod:`~transformers_jax.tokenization.marian`'s, GGUF files
:mod:`~transformers_jax.tokenization.gguf_tokenizer`'s.
"""
from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Mapping

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, Unigram, WordPiece

from transformers_jax.tokenization.files import (
    BERT_VOCAB_FILE,
    BPE_MERGES_FILE,
    BPE_VOCAB_FILE,
    SENTENCEPIECE_FILES,
    TOKENIZER_FILE,
    TokenizerFiles,
)

# A pipeline: (tokenizer config, SentencePiece precompiled charsmap or None) -> (normalizer, pre-tokenizer, decoder).
Pipeline = Callable[[Mapping, "bytes | None"], tuple]


def _wordpiece_pipeline(config: Mapping, charsmap: bytes | None) -> tuple:
    """BERT's: BertNormalizer from the casing / accents / CJK settings, BertPreTokenizer, WordPiece decoder."""
    normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=config.get("tokenize_chinese_chars", True),
        strip_accents=config.get("strip_accents"),
        lowercase=config.get("do_lower_case", True),
    )
    return normalizer, pre_tokenizers.BertPreTokenizer(), decoders.WordPiece(prefix="##")


def _byte_level_pipeline(config: Mapping, charsmap: bytes | None) -> tuple:
    """GPT-2 / RoBERTa's: no normalizer, ByteLevel pre-tokenizer (``add_prefix_space``, default off) and decoder."""
    add_prefix_space = bool(config.get("add_prefix_space", False))
    return None, pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space), decoders.ByteLevel()


def _metaspace(config: Mapping, without_prefix: str = "never") -> tuple:
    scheme = "always" if config.get("add_prefix_space", True) else without_prefix
    return pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=scheme), decoders.Metaspace(
        replacement="\u2581", prepend_scheme=scheme
    )


def _sentencepiece_pipeline(config: Mapping, charsmap: bytes | None) -> tuple:
    """XLM-R / CamemBERT's: the precompiled charsmap alone as normalizer, WhitespaceSplit + Metaspace."""
    metaspace, decoder = _metaspace(config)
    normalizer = normalizers.Precompiled(charsmap) if charsmap is not None else None
    return normalizer, pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), metaspace]), decoder


def _t5_pipeline(config: Mapping, charsmap: bytes | None) -> tuple:
    """T5's: the charsmap alone as normalizer, WhitespaceSplit + Metaspace that always prepends (whatever
    ``add_prefix_space`` says)."""
    return _sentencepiece_pipeline({}, charsmap)


def _mbart_pipeline(config: Mapping, charsmap: bytes | None) -> tuple:
    """mBART's: no normalizer (the model's charsmap is not used), WhitespaceSplit + Metaspace that always prepends."""
    return _sentencepiece_pipeline({}, None)


def _mbart50_pipeline(config: Mapping, charsmap: bytes | None) -> tuple:
    """mBART-50's: the charsmap, then runs of spaces to one; Metaspace alone (no WhitespaceSplit), always prepending."""
    steps = [normalizers.Precompiled(charsmap)] if charsmap is not None else []
    steps.append(normalizers.Replace(Regex(r" {2,}"), " "))
    metaspace, decoder = _metaspace({})
    return normalizers.Sequence(steps), metaspace, decoder


def _albert_pipeline(config: Mapping, charsmap: bytes | None) -> tuple:
    """ALBERT's: quotes normalized, accents stripped unless ``keep_accents``, lower-cased unless ``do_lower_case``
    is off, then the charsmap; WhitespaceSplit + Metaspace."""
    steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if not config.get("keep_accents", False):
        steps += [normalizers.NFKD(), normalizers.StripAccents()]
    if config.get("do_lower_case", True):
        steps.append(normalizers.Lowercase())
    if charsmap is not None:
        steps.append(normalizers.Precompiled(charsmap))
    metaspace, decoder = _metaspace(config)
    return normalizers.Sequence(steps), pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), metaspace]), decoder


def _deberta_v2_pipeline(config: Mapping, charsmap: bytes | None) -> tuple:
    """DeBERTa-v2/v3's: whitespace runs and control whitespace to one space, NFC, right strip (lower-cased with
    ``do_lower_case``); Metaspace (``prepend_scheme="first"`` without the prefix space), punctuation isolated with
    ``split_by_punct``. No charsmap."""
    steps = [normalizers.Lowercase()] if config.get("do_lower_case", False) else []
    steps += [
        normalizers.Replace(Regex(r"\s{2,}|[\n\r\t]"), " "),
        normalizers.NFC(),
        normalizers.Strip(left=False, right=True),
    ]
    pieces = [pre_tokenizers.Punctuation(behavior="isolated")] if config.get("split_by_punct", False) else []
    metaspace, decoder = _metaspace(config, without_prefix="first")
    return normalizers.Sequence(steps), pre_tokenizers.Sequence([*pieces, metaspace]), decoder


# A SentencePiece layout: (the model's (piece, score) list, its unk_id, tokenizer config, the class's default special
# tokens) -> (the Unigram vocabulary the class builds, its unk id).
SpmLayout = Callable[[list, int, Mapping, Mapping], tuple]


def _token_name(config: Mapping, defaults: Mapping, key: str) -> str:
    value = config.get(key)
    return str(value if value is not None else defaults[key])


def _xlm_roberta_layout(pieces: list, unk_id: int, config: Mapping, defaults: Mapping) -> tuple:
    """fairseq's ids: ``<s> <pad> </s> <unk>`` first, the model's pieces after its own three (``<unk> <s> </s>``),
    ``<mask>`` last; unk id 3."""
    first = [(_token_name(config, defaults, key), 0.0) for key in ("bos_token", "pad_token", "eos_token", "unk_token")]
    return [*first, *pieces[3:], (_token_name(config, defaults, "mask_token"), 0.0)], 3


def _camembert_layout(pieces: list, unk_id: int, config: Mapping, defaults: Mapping) -> tuple:
    """``<s>NOTUSED <pad> </s>NOTUSED <unk> <unk>NOTUSED`` first, the model's pieces after its first (``<unk>``),
    ``<mask>`` last; the unk id is where the unk token is."""
    unk = _token_name(config, defaults, "unk_token")
    first = [("<s>NOTUSED", 0.0), (_token_name(config, defaults, "pad_token"), 0.0), ("</s>NOTUSED", 0.0),
             (unk, 0.0), ("<unk>NOTUSED", -100.0)]
    vocab = [*first, *pieces[1:], (str(_token_name(config, defaults, "mask_token")), 0.0)]
    return vocab, next((i for i, (piece, _) in enumerate(vocab) if piece == unk), 0)


def _with_language_codes(codes: tuple[str, ...]) -> SpmLayout:
    """mBART's fairseq ids: ``<s> <pad> </s> <unk>`` (the names of the class's bos or cls, pad, eos and unk tokens)
    first, the model's pieces after its own three, then the language ``codes`` and the mask token; unk id 3."""

    def layout(pieces: list, unk_id: int, config: Mapping, defaults: Mapping) -> tuple:
        first_key = "bos_token" if "bos_token" in defaults else "cls_token"
        keys = (first_key, "pad_token", "eos_token", "unk_token")
        first = [(_token_name(config, defaults, key), 0.0) for key in keys]
        codes_vocab = [(code, 0.0) for code in codes]
        return [*first, *pieces[3:], *codes_vocab, (_token_name(config, defaults, "mask_token"), 0.0)], 3

    return layout


def _t5_layout(pieces: list, unk_id: int, config: Mapping, defaults: Mapping) -> tuple:
    """The model's pieces as they are, then the ``extra_ids`` sentinels from the last down (``<extra_id_0>`` has the
    highest id); HF's T5 class takes id 2 as the unknown piece."""
    return [*pieces, *((token, 0.0) for token in reversed(_t5_sentinels(config)))], 2


def _t5_sentinels(config: Mapping) -> list[str]:
    return [f"<extra_id_{i}>" for i in range(int(config.get("extra_ids", 100)))]


def _t5_extra_tokens(extras: list, configured: bool, config: Mapping) -> list:
    """T5's sentinels ``<extra_id_0>``... come after the SentencePiece model's control pieces; extra special tokens
    named by the configuration replace both (HF v5 passes them over the class's list)."""
    return extras if configured else [*extras, *_t5_sentinels(config)]


def _codes_first(codes: tuple[str, ...]) -> Callable:
    """mBART: the language codes, then the model's control pieces that are not codes; extra special tokens named by
    the configuration replace them (as in HF v5, where the configured list wins over the class's)."""

    def extra_tokens(extras: list, configured: bool, config: Mapping) -> list:
        return extras if configured else [*codes, *(t for t in extras if str(t) not in codes)]

    return extra_tokens


def _codes_last(codes: tuple[str, ...]) -> Callable:
    """mBART-50: the extra special tokens (configured or the model's), then the language codes they lack (HF's class
    adds them after its ``__init__``, so they are always there)."""

    def extra_tokens(extras: list, configured: bool, config: Mapping) -> list:
        present = {str(t) for t in extras}
        return [*extras, *(AddedToken(code, special=True) for code in codes if code not in present)]

    return extra_tokens


def _albert_layout(pieces: list, unk_id: int, config: Mapping, defaults: Mapping) -> tuple:
    """The model's pieces as they are; HF's ALBERT class takes id 1 as the unknown piece (ALBERT's ``<unk>``)."""
    return list(pieces), 1


def _deberta_v2_layout(pieces: list, unk_id: int, config: Mapping, defaults: Mapping) -> tuple:
    """The model's pieces as they are; the unk id is that of the unk token with score 0, else the model's."""
    unk = (_token_name(config, defaults, "unk_token"), 0.0)
    return list(pieces), pieces.index(unk) if unk in pieces else unk_id


@dataclasses.dataclass(frozen=True)
class ClassDefaults:
    """How one of HF's tokenizer classes builds its tokenizer, and what it assumes when its files do not say.

    Attributes:
        model_input_names: the class's ``model_input_names`` (whether ``token_type_ids`` is returned, and the order).
        special_tokens: the ``__init__`` defaults of the named special tokens (and ``extra_special_tokens``).
        pipeline: builds the normalizer, pre-tokenizer and decoder from the settings (``None``: the file's are used).
        wrap: the post-processor the class sets: ``"cls_sep"`` (``[CLS] A [SEP] B [SEP]``, token types 0/1),
            ``"roberta"`` (``<s> A </s></s> B </s>``, RobertaProcessing with the ``trim_offsets`` and
            ``add_prefix_space`` settings), ``"roberta_fixed"`` (the same with ``trim_offsets=True`` and
            ``add_prefix_space=False`` whatever the settings), ``"bos_eos"`` (the same shape as a template, XLM-R
            style) or ``None`` (the file's post-processor is kept).
        spm_file: the SentencePiece model file the class reads when there is no ``tokenizer.json``.
        spm_layout: how the class turns that model's pieces into its vocabulary (an :data:`SpmLayout`). HF reads
            the pieces and scores of a BPE model too, as a Unigram vocabulary.
        spm_unigram_only: the class reads only Unigram SentencePiece models (HF's CamemBERT fails on BPE ones).
        extra_tokens: how the class completes the extra special tokens (``(extras, configured, config) -> extras``;
            ``configured``: named by the configuration, else the SentencePiece model's control pieces or none): T5's
            sentinels, mBART's language codes.
        language_codes: the language codes of a class whose post-processor puts ``src_lang`` (``tgt_lang`` for
            targets) around the text; ``wrap`` then says where.
    """

    model_input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    special_tokens: Mapping[str, object] = dataclasses.field(default_factory=dict)
    pipeline: Pipeline | None = None
    wrap: str | None = None
    spm_file: str | None = None
    spm_layout: SpmLayout | None = None
    spm_unigram_only: bool = False
    extra_tokens: Callable[[list, bool, Mapping], list] | None = None
    language_codes: tuple[str, ...] = ()


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

# mBART's (facebook/mbart-large-cc25) and mBART-50's language codes, in their vocabulary order.
MBART_LANGUAGE_CODES = (
    "ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN", "it_IT", "ja_XX", "kk_KZ",
    "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN",
)
MBART50_LANGUAGE_CODES = MBART_LANGUAGE_CODES + (
    "af_ZA", "az_AZ", "bn_IN", "fa_IR", "he_IL", "hr_HR", "id_ID", "ka_GE", "km_KH", "mk_MK", "ml_IN", "mn_MN", "mr_IN",
    "pl_PL", "ps_AF", "pt_XX", "sv_SE", "sw_KE", "ta_IN", "te_IN", "th_TH", "tl_XX", "uk_UA", "ur_PK", "xh_ZA", "gl_ES",
    "sl_SI",
)
_MBART_MASK = AddedToken("<mask>", lstrip=True, special=True)  # the class's mask strips left, like CamemBERT's

# HF v5 tokenizer classes (the names ``tokenizer_config.json`` gives, without ``Fast``) and their defaults.
CLASS_DEFAULTS: dict[str, ClassDefaults] = {
    "BertTokenizer": ClassDefaults(_WITH_TOKEN_TYPES, _BERT_TOKENS, _wordpiece_pipeline, "cls_sep"),
    "DistilBertTokenizer": ClassDefaults(special_tokens=_BERT_TOKENS, pipeline=_wordpiece_pipeline, wrap="cls_sep"),
    "MPNetTokenizer": ClassDefaults(
        special_tokens={**_ROBERTA_TOKENS, "unk_token": "[UNK]"}, pipeline=_wordpiece_pipeline, wrap="roberta_fixed"
    ),
    # GPT2Tokenizer's own wrapping depends on add_bos_token; its tokenizer.json is kept as it is.
    "GPT2Tokenizer": ClassDefaults(
        special_tokens=dict.fromkeys(("unk_token", "bos_token", "eos_token"), "<|endoftext|>")
    ),
    "RobertaTokenizer": ClassDefaults(special_tokens=_ROBERTA_TOKENS, pipeline=_byte_level_pipeline, wrap="roberta"),
    "XLMRobertaTokenizer": ClassDefaults(
        special_tokens=_ROBERTA_TOKENS,
        pipeline=_sentencepiece_pipeline,
        wrap="bos_eos",
        spm_file="sentencepiece.bpe.model",
        spm_layout=_xlm_roberta_layout,
    ),
    "CamembertTokenizer": ClassDefaults(
        special_tokens={
            **_ROBERTA_TOKENS,
            "mask_token": AddedToken("<mask>", lstrip=True, special=True),  # the class's default mask strips left
            "extra_special_tokens": ("<s>NOTUSED", "</s>NOTUSED", "<unk>NOTUSED"),
        },
        pipeline=_sentencepiece_pipeline,
        wrap="bos_eos",
        spm_file="sentencepiece.bpe.model",
        spm_layout=_camembert_layout,
        spm_unigram_only=True,
    ),
    # HF's AlbertTokenizer sets its [CLS]/[SEP] template before tokenizer.json's post-processor replaces it.
    "AlbertTokenizer": ClassDefaults(
        special_tokens={**_CLS_SEP_AS_BOS_EOS, "unk_token": "<unk>", "pad_token": "<pad>"},
        pipeline=_albert_pipeline,
        spm_file="spiece.model",
        spm_layout=_albert_layout,
    ),
    "DebertaV2Tokenizer": ClassDefaults(
        _WITH_TOKEN_TYPES_LAST,
        {**_CLS_SEP_AS_BOS_EOS, "unk_token": "[UNK]", "pad_token": "[PAD]"},
        _deberta_v2_pipeline,
        "cls_sep",
        spm_file="spm.model",
        spm_layout=_deberta_v2_layout,
    ),
    "T5Tokenizer": ClassDefaults(
        special_tokens={"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
        pipeline=_t5_pipeline,
        wrap="eos",
        spm_file="spiece.model",
        spm_layout=_t5_layout,
        extra_tokens=_t5_extra_tokens,
    ),
    "MBartTokenizer": ClassDefaults(
        special_tokens={**_ROBERTA_TOKENS, "mask_token": _MBART_MASK},
        pipeline=_mbart_pipeline,
        wrap="language_suffix",
        spm_file="sentencepiece.bpe.model",
        spm_layout=_with_language_codes(MBART_LANGUAGE_CODES),
        extra_tokens=_codes_first(MBART_LANGUAGE_CODES),
        language_codes=MBART_LANGUAGE_CODES,
    ),
    "MBart50Tokenizer": ClassDefaults(
        special_tokens={key: value for key, value in _ROBERTA_TOKENS.items() if key != "bos_token"}
        | {"mask_token": _MBART_MASK},
        pipeline=_mbart50_pipeline,
        wrap="language_prefix",
        spm_file="sentencepiece.bpe.model",
        spm_layout=_with_language_codes(MBART50_LANGUAGE_CODES),
        extra_tokens=_codes_last(MBART50_LANGUAGE_CODES),
        language_codes=MBART50_LANGUAGE_CODES,
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
    "t5": "T5Tokenizer",
    "mt5": "T5Tokenizer",
    "bart": "RobertaTokenizer",
    "marian": "MarianTokenizer",
    "mbart": "MBartTokenizer",
    "xlm-roberta": "XLMRobertaTokenizer",
}


def class_defaults(tokenizer_class: str | None) -> ClassDefaults | None:
    """The defaults of HF's ``tokenizer_class`` (aliases resolved), or ``None`` for a class not known here."""
    if tokenizer_class is None:
        return None
    return CLASS_DEFAULTS.get(CLASS_ALIASES.get(tokenizer_class, tokenizer_class))


def _fill_class_defaults(config: dict, defaults: ClassDefaults, configured_extras: bool) -> None:
    """Put the class's default special tokens and ``model_input_names`` into ``config`` where it has none."""
    for key, default in defaults.special_tokens.items():
        if isinstance(default, AddedToken):
            # The class gives its flags (CamemBERT's mask strips left) to the default and to a token named as text;
            # a fresh AddedToken each time, as tokenizers change their tokens' flags.
            if isinstance(config.get(key, default.content), str):
                flags = {k: v for k, v in default.__getstate__().items() if k not in ("id", "content")}
                config[key] = AddedToken(config.get(key, default.content), **flags)
        elif key not in config:
            config[key] = list(default) if isinstance(default, tuple) else default
    if defaults.extra_tokens is not None:
        extras = list(config.get("extra_special_tokens") or [])
        config["extra_special_tokens"] = defaults.extra_tokens(extras, configured_extras, config)
    config.setdefault("model_input_names", list(defaults.model_input_names))


def _precompiled_charsmap(backend: Tokenizer) -> bytes | None:
    """The SentencePiece charsmap of ``backend``'s ``Precompiled`` normalizer (alone or in a Sequence), if any."""
    if backend.normalizer is None:
        return None
    node = json.loads(backend.normalizer.__getstate__())
    for part in node.get("normalizers", [node]) if node.get("type") == "Sequence" else [node]:
        if part.get("type") == "Precompiled" and part.get("precompiled_charsmap"):
            return base64.b64decode(part["precompiled_charsmap"])
    return None


def _apply_pipeline(backend: Tokenizer, pipeline: Pipeline, config: Mapping, charsmap: bytes | None = None) -> None:
    """Give ``backend`` the normalizer, pre-tokenizer and decoder that ``pipeline`` builds from ``config`` (with
    ``charsmap``, else the one of ``backend``'s normalizer)."""
    charsmap = charsmap if charsmap is not None else _precompiled_charsmap(backend)
    normalizer, pre_tokenizer, decoder = pipeline(config, charsmap)
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoder


def _backend_from_sentencepiece(
    files: TokenizerFiles, defaults: ClassDefaults | None
) -> tuple[Tokenizer, bytes | None]:
    """The Unigram backend HF's class builds from the folder's SentencePiece model, and the model's charsmap.

    The model's control pieces (special) and user-defined pieces (not special) become the extra special tokens when
    the configuration names none, as HF's SentencePiece extraction makes them."""
    from transformers_jax.tokenization.sentencepiece_model import CONTROL, USER_DEFINED, read_sentencepiece_model

    present = [name for name in SENTENCEPIECE_FILES if (files.directory / name).is_file()]
    if defaults is None or defaults.spm_layout is None:
        known = ", ".join(f"{name} ({d.spm_file})" for name, d in CLASS_DEFAULTS.items() if d.spm_layout)
        raise ValueError(
            f"{files.label} has a SentencePiece model ({present[0]}) but no {TOKENIZER_FILE}, and its tokenizer class "
            f"({files.tokenizer_class or 'none named'}) is not one whose SentencePiece model transformers_jax reads: "
            f"{known}. Name the class in tokenizer_config.json (\"tokenizer_class\"), or write a {TOKENIZER_FILE} once "
            f"with Hugging Face transformers (`AutoTokenizer.from_pretrained(path).save_pretrained(path)`)."
        )
    path = files.directory / defaults.spm_file
    if not path.is_file():
        raise FileNotFoundError(
            f"{files.label} has {', '.join(present)} but {files.tokenizer_class} reads its SentencePiece model from "
            f"{defaults.spm_file} (and there is no {TOKENIZER_FILE})."
        )
    model = read_sentencepiece_model(path)
    if defaults.spm_unigram_only and model.model_type != "unigram":
        raise ValueError(
            f"{path} is a {model.model_type} SentencePiece model; {files.tokenizer_class} reads only unigram ones "
            f"(Hugging Face transformers cannot convert it either). Give the folder a {TOKENIZER_FILE}."
        )
    vocab, unk_id = defaults.spm_layout(model.pieces, model.unk_id, files.config, defaults.special_tokens)
    backend = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    if not files.config.get("extra_special_tokens"):
        files.config["extra_special_tokens"] = [
            AddedToken(piece, normalized=False, special=kind == CONTROL)
            for (piece, _), kind in zip(model.pieces, model.types)
            if kind in (CONTROL, USER_DEFINED)
        ]
    return backend, model.precompiled_charsmap


def backend_from_files(files: TokenizerFiles) -> tuple[Tokenizer, str | None]:
    """The backend for ``files`` and the post-processor it still needs (a :class:`ClassDefaults` ``wrap``, for
    :func:`set_post_processor`). Fills the HF class's defaults (special tokens, ``model_input_names``, padding side)
    into ``files.config``."""
    config, directory, label = files.config, files.directory, files.label
    defaults = class_defaults(files.tokenizer_class)
    bos_eos_flags_apply = False
    from_sentencepiece = False
    configured_extras = bool(config.get("extra_special_tokens"))
    if files.tokenizer_json.is_file():
        backend = Tokenizer.from_file(str(files.tokenizer_json))
        if defaults is not None and defaults.pipeline is not None:
            _apply_pipeline(backend, defaults.pipeline, config)
    elif (directory / BERT_VOCAB_FILE).is_file():
        if defaults is None or defaults.pipeline is not _wordpiece_pipeline:
            defaults = CLASS_DEFAULTS["BertTokenizer"]  # HF builds a BERT tokenizer from a bare vocab.txt
        unk = config.get("unk_token") or defaults.special_tokens["unk_token"]
        backend = Tokenizer(WordPiece.from_file(str(directory / BERT_VOCAB_FILE), unk_token=str(unk)))
        _apply_pipeline(backend, defaults.pipeline, config)
    elif (directory / BPE_VOCAB_FILE).is_file() and (directory / BPE_MERGES_FILE).is_file():
        if defaults is None or defaults.wrap != "roberta":
            defaults = CLASS_DEFAULTS["GPT2Tokenizer"]
        backend = Tokenizer(BPE.from_file(
            str(directory / BPE_VOCAB_FILE), str(directory / BPE_MERGES_FILE), dropout=None,
            continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False,
        ))
        _apply_pipeline(backend, _byte_level_pipeline, config)  # GPT-2's too
        bos_eos_flags_apply = True
    elif any((directory / name).is_file() for name in SENTENCEPIECE_FILES):
        backend, charsmap = _backend_from_sentencepiece(files, defaults)
        _apply_pipeline(backend, defaults.pipeline, config, charsmap)
        from_sentencepiece = True
    else:
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
        _fill_class_defaults(config, defaults, configured_extras)

    # Settings baked into tokenizer.json's padding (HF uses them as defaults).
    if backend.padding is not None:
        config.setdefault("padding_side", backend.padding.get("direction", "right"))
    if config.get("padding_side") is None:
        config.pop("padding_side", None)
    if config.get("truncation_side") is None:
        config.pop("truncation_side", None)
    wrap = None if defaults is None else defaults.wrap
    if from_sentencepiece and wrap is None:
        wrap = "cls_sep"  # ALBERT's own [CLS] A [SEP] B [SEP], which no tokenizer.json post-processor replaces here
    return backend, wrap


# Where the language code goes: mBART's ``A </s> xx_XX`` (pairs ``A B </s> xx_XX``), mBART-50's ``xx_XX A </s>``
# (pairs ``xx_XX A B </s>``).
LANGUAGE_WRAPS = ("language_suffix", "language_prefix")


def language_post_processor(tokenizer, wrap: str, language: str) -> processors.TemplateProcessing:
    """The post-processor of a :data:`LANGUAGE_WRAPS` class for texts in ``language``; a ``ValueError`` naming the
    language when the vocabulary lacks it."""
    code_id = tokenizer._tokenizer.token_to_id(language)
    if code_id is None:
        raise ValueError(
            f"Unknown language code {language!r} for {tokenizer.name_or_path or 'this tokenizer'}: it is not in the "
            "vocabulary. Language codes are its extra special tokens: "
            f"{', '.join(tokenizer.additional_special_tokens)}."
        )
    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    if wrap == "language_suffix":
        single, pair = ["$A", eos, language], ["$A", "$B", eos, language]
    else:
        single, pair = [language, "$A", eos], [language, "$A", "$B", eos]
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=[(eos, eos_id), (language, code_id)])


def set_post_processor(tokenizer, wrap: str | None, config: dict) -> None:
    """Give ``tokenizer`` the post-processor its HF class sets (a :class:`ClassDefaults` ``wrap``); ``None`` keeps
    the one it has."""
    cls_token, sep_token = tokenizer.cls_token, tokenizer.sep_token
    if wrap == "cls_sep":
        tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls_token}:0 $A:0 {sep_token}:0",
            pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
            special_tokens=[(cls_token, tokenizer.cls_token_id), (sep_token, tokenizer.sep_token_id)],
        )
    elif wrap in ("roberta", "roberta_fixed"):
        settings = config if wrap == "roberta" else {}
        tokenizer._tokenizer.post_processor = processors.RobertaProcessing(
            (sep_token, tokenizer.sep_token_id),
            (cls_token, tokenizer.cls_token_id),
            trim_offsets=bool(settings.get("trim_offsets", True)),
            add_prefix_space=bool(settings.get("add_prefix_space", False)),
        )
    elif wrap == "eos":
        eos = tokenizer.eos_token
        tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
            single=["$A", eos], pair=["$A", eos, "$B", eos], special_tokens=[(eos, tokenizer.eos_token_id)]
        )
    elif wrap in LANGUAGE_WRAPS:
        tokenizer._use_language_codes(wrap, config.get("src_lang"), config.get("tgt_lang"))
    elif wrap == "bos_eos":
        bos, eos = tokenizer.bos_token, tokenizer.eos_token
        tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
            single=[bos, "$A", eos],
            pair=[bos, "$A", eos, eos, "$B", eos],
            special_tokens=[(bos, tokenizer.bos_token_id), (eos, tokenizer.eos_token_id)],
        )
    elif wrap is not None:
        raise ValueError(f"Unknown post-processor kind {wrap!r}")
