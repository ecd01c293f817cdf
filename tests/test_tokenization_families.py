"""Tokenizers of the encoder families against Hugging Face transformers' AutoTokenizer on the same files.

For each family a tiny model is trained here with the ``tokenizers`` library (byte-level BPE for RoBERTa, Unigram with
a Metaspace pre-tokenizer for XLM-R / CamemBERT / ALBERT / DeBERTa-v2, WordPiece for DistilBERT / ELECTRA / MPNet),
wrapped in HF's tokenizer class of that family and saved with HF's ``save_pretrained``. Both libraries then load the
directory and must agree on everything a user sees; the directory our ``save_pretrained`` writes must load in HF
with the same behaviour.

Also against HF: tokenizer.json pipelines unlike the class's (HF v5's classes rebuild them from their settings),
settings passed to ``from_pretrained``, a SentencePiece precompiled charsmap, vocabulary files without tokenizer.json,
and the class taken from config.json. SentencePiece model files without tokenizer.json: test_tokenization_spm.py.
"""
import json
import shutil

import pytest
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer as HFAutoTokenizer

from transformers_jax.tokenization import AutoTokenizer, PreTrainedTokenizerFast

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! Hello there, general Kenobi, how are you today?",
    "Crème brûlée à Zürich costs 12.50 € at the café near the Öffentliche Bibliothek.",
    "Le garçon mange une pomme rouge et boit de l'eau fraîche.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "你好世界，東京は日本の首都です。こんにちは",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "Numbers 3.14159, 1,000,000 and 42nd street; tokenization of unbelievably long words.",
    "Emoji are fun 😀🎉 and so are accents: naïve, señor, façade, résumé.",
]
LONG_WORD = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 3
TEXTS = [
    "Hello world!",
    "Crème brûlée à Zürich",
    "emoji 😀🎉 party 👩‍👩‍👧",
    "你好世界，東京",
    "مرحبا بالعالم",
    "MiXeD CaSe and UPPER",
    "Punctuation!?... (brackets) [x] {y} \"quotes\" 'single' -- don't",
    f"a {LONG_WORD} word",
    "  whitespace\t\toddities \n\n and\u00a0nbsp  ",
    "",
    " ",
]
PAIR_TEXTS = TEXTS[1:] + TEXTS[:1]
LONG_TEXT = " ".join(CORPUS)
WORDS = [["Hello", "world", "!"], ["Crème", "brûlée"], ["你好", "世界"], ["x"]]


# ----------------------------------------------------------------------------------------------------------------------
# training the tiny models
# ----------------------------------------------------------------------------------------------------------------------


def _train_byte_level_bpe(specials):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 5, trainer)
    data = json.loads(tok.to_str())["model"]
    return data["vocab"], [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["merges"]]


def _train_unigram(specials, unk):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=220, special_tokens=specials, unk_token=unk, show_progress=False, max_piece_length=8
    )
    tok.train_from_iterator(CORPUS * 5, trainer)
    return [tuple(piece) for piece in json.loads(tok.to_str())["model"]["vocab"]]


def _train_wordpiece(specials, unk, lowercase=True):
    tok = Tokenizer(models.WordPiece(unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(CORPUS * 5, trainer)
    return tok.get_vocab()


def _roberta():
    vocab, merges = _train_byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return transformers.RobertaTokenizer(vocab=vocab, merges=merges)


def _xlm_roberta():
    vocab = _train_unigram(["<s>", "<pad>", "</s>", "<unk>"], "<unk>") + [("<mask>", 0.0)]
    return transformers.XLMRobertaTokenizer(vocab=vocab)


def _camembert():
    specials = ["<s>NOTUSED", "<pad>", "</s>NOTUSED", "<unk>", "<unk>NOTUSED", "<s>", "</s>"]
    vocab = _train_unigram(specials, "<unk>") + [("<mask>", 0.0)]
    return transformers.CamembertTokenizer(vocab=vocab)


def _albert():
    vocab = _train_unigram(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], "<unk>")
    return transformers.AlbertTokenizer(vocab=vocab)


def _deberta_v2():
    vocab = _train_unigram(["[PAD]", "[CLS]", "[SEP]", "[UNK]"], "[UNK]") + [("[MASK]", 0.0)]
    return transformers.DebertaV2Tokenizer(vocab=vocab)


def _distilbert():
    vocab = _train_wordpiece(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[UNK]")
    return transformers.DistilBertTokenizer(vocab=vocab)


def _electra():
    vocab = _train_wordpiece(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[UNK]")
    return transformers.ElectraTokenizer(vocab=vocab)


def _mpnet():
    vocab = _train_wordpiece(["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"], "[UNK]")
    return transformers.MPNetTokenizer(vocab=vocab)


FAMILIES = {
    "roberta": _roberta,
    "xlm_roberta": _xlm_roberta,
    "camembert": _camembert,
    "albert": _albert,
    "deberta_v2": _deberta_v2,
    "distilbert": _distilbert,
    "electra": _electra,
    "mpnet": _mpnet,
}
# A SentencePiece precompiled charsmap (base64), made once with `sentencepiece` 0.2 from the normalization rules
# U+FF01 -> "!", U+2160 -> "I", "A" -> "a", U+2003 -> " ", U+FB01 -> "fi" (a tiny stand-in for nmt_nfkc's).
CHARSMAP = (
    "AAQAAAAAAQBBDQAABgAAgIAQAgCDBQAAAAAAgIWEAgCgPQAABAAAgKwIAgCBBQAACAAAgIEFAAACAACADwAAAA4AAAARAAAAEAAAABMAAAASAAAA"
    "FQAAABQAAAAXAAAAFgAAABkAAAC8UAIAGwAAABoAAAAdAAAAHAAAAB8AAAAeAAAAIQAAACAAAAAjAAAAIgAAACUAAAAkAAAAJwAAACYAAAApAAAA"
    "KAAAACsAAAAqAAAALQAAACwAAAAvAAAALgAAADEAAAAwAAAAMwAAADIAAAA1AAAANAAAADcAAAA2AAAAOQAAADgAAAA7AAAAOgAAAD0AAAA8AAAA"
    "PwAAAD4AAABBAAAAQAAAAEMAAABCAAAARQAAAEQAAABHAAAARgAAAEkAAABIAAAASwAAAEoAAABNAAAATAAAAE8AAABOAAAAUQAAAFAAAABTAAAA"
    "UgAAAFUAAABUAAAAVwAAAFYAAABZAAAAWAAAAFsAAABaAAAAXQAAAFwAAABfAAAAXgAAAGEAAABgAAAAYwAAAGIAAABlAAAAZAAAAGcAAABmAAAA"
    "aQAAAGgAAABrAAAAagAAAG0AAABsAAAAbwAAAG4AAABxAAAAcAAAAHMAAAByAAAAdQAAAHQAAAB3AAAAdgAAAHkAAAB4AAAAewAAAHoAAAB9AAAA"
    "fAAAAH8AAAB+AAAAgQAAAIAAAACDAAAAggAAAIUAAACEAAAAhwAAAIYAAACJAAAAiAAAAIsAAACKAAAAjQAAAIwAAACPAAAAjgAAAJEAAACQAAAA"
    "kwAAAJIAAACVAAAAlAAAAJcAAACWAAAAmQAAAJgAAACbAAAAmgAAAJ0AAACcAAAAnwAAAJ4AAAChAAAAoAAAAOKEAACiAAAApQAAAKQAAACnAAAA"
    "pgAAAKkAAACoAAAAqwAAAKoAAACtAAAArAAAAK8AAADvKAAAsQAAALAAAACzAAAAsgAAALUAAAC0AAAAtwAAALYAAAC5AAAAuAAAALsAAAC6AAAA"
    "vQAAALwAAAC/AAAAvgAAAMEAAADAAAAAwwAAAMIAAADFAAAAxAAAAMcAAADGAAAAyQAAAMgAAADLAAAAygAAAM0AAADMAAAAzwAAAM4AAADRAAAA"
    "0AAAANMAAADSAAAA1QAAANQAAADXAAAA1gAAANkAAADYAAAA2wAAANoAAADdAAAA3AAAAN8AAADeAAAA4QAAAOAAAADjAAAA4gAAAOUAAADkAAAA"
    "5wAAAOYAAADpAAAA6AAAAOsAAADqAAAA7QAAAOwAAADvAAAA7gAAAPEAAADwAAAA8wAAAPIAAAD1AAAA9AAAAPcAAAD2AAAA+QAAAPgAAAD7AAAA"
    "+gAAAP0AAAD8AAAA/wAAAP4AAAAgACEASQBhAGZpAA=="
)
CHARSMAP_TEXT = "A fullwidth！ Roman Ⅰ and the ﬁne ligature"

# HF's class for each family, as AutoTokenizer resolves the saved tokenizer_class (ELECTRA's is BertTokenizer).
HF_CLASS = {
    "roberta": "RobertaTokenizer",
    "xlm_roberta": "XLMRobertaTokenizer",
    "camembert": "CamembertTokenizer",
    "albert": "AlbertTokenizer",
    "deberta_v2": "DebertaV2Tokenizer",
    "distilbert": "DistilBertTokenizer",
    "electra": "BertTokenizer",
    "mpnet": "MPNetTokenizer",
}
PREFIX_SPACE_FAMILIES = ["roberta", "xlm_roberta", "camembert", "albert", "deberta_v2"]


# ----------------------------------------------------------------------------------------------------------------------
# fixtures and helpers
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    """{family: folder written by HF's save_pretrained of that family's class}."""
    root = tmp_path_factory.mktemp("families")
    dirs = {}
    for name, build in FAMILIES.items():
        build().save_pretrained(root / name)
        dirs[name] = root / name
    return dirs


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, family_dirs):
    """(name, folder, ours, HF's) for each family."""
    path = family_dirs[request.param]
    return request.param, path, AutoTokenizer.from_pretrained(path), HFAutoTokenizer.from_pretrained(path)


def plain(value):
    """Arrays / tuples to nested Python lists for comparison."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def outcome(fn, *args, **kwargs):
    """(True, plain dict) on success, (False, exception class name) on failure (Rust panics included)."""
    try:
        out = fn(*args, **kwargs)
    except BaseException as err:  # noqa: BLE001 - we compare which calls fail; a Rust panic is a BaseException
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        return False, type(err).__name__
    return True, {k: plain(v) for k, v in out.items()}


def assert_same_call(ours, hf, *args, **kwargs):
    got, want = outcome(ours, *args, **kwargs), outcome(hf, *args, **kwargs)
    assert got == want, f"args={[str(a)[:60] for a in args]} kwargs={kwargs}"
    return want


def with_specials(tok):
    """Texts with the tokenizer's special tokens written inside them."""
    return [
        f"x {tok.mask_token} y",
        f"{tok.cls_token}start{tok.sep_token} end {tok.pad_token}",
        f"a{tok.mask_token}b {tok.unk_token}",
    ]


def assert_same_attributes(ours, hf):
    assert ours.get_vocab() == hf.get_vocab() and len(ours) == len(hf) and ours.vocab_size == hf.vocab_size
    assert ours.special_tokens_map == hf.special_tokens_map
    assert ours.all_special_tokens == hf.all_special_tokens and ours.all_special_ids == hf.all_special_ids
    for name in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        assert getattr(ours, name) == getattr(hf, name), name
        assert getattr(ours, name + "_id") == getattr(hf, name + "_id"), name
    assert list(ours.extra_special_tokens) == list(hf.extra_special_tokens)
    assert ours.model_input_names == hf.model_input_names
    assert (ours.padding_side, ours.truncation_side) == (hf.padding_side, hf.truncation_side)
    assert ours.model_max_length == hf.model_max_length
    assert ours.clean_up_tokenization_spaces == hf.clean_up_tokenization_spaces
    assert {i: str(t) for i, t in ours.added_tokens_decoder.items()} == {
        i: str(t) for i, t in hf.added_tokens_decoder.items()
    }
    assert ours.num_special_tokens_to_add(False) == hf.num_special_tokens_to_add(False)
    assert ours.num_special_tokens_to_add(True) == hf.num_special_tokens_to_add(True)


def pipeline_of(tok):
    """The serialized normalizer, pre-tokenizer, decoder and post-processor of a tokenizer's backend."""
    backend = tok.backend_tokenizer
    parts = (backend.normalizer, backend.pre_tokenizer, backend.decoder, backend.post_processor)
    return [None if part is None else json.loads(part.__getstate__()) for part in parts]


def assert_same_pipeline(ours, hf):
    assert pipeline_of(ours) == pipeline_of(hf)


def assert_same_encodings(ours, hf):
    """Single texts, pairs, batches, padding, truncation with overflow, pre-split words: all as HF."""
    extras = dict(return_offsets_mapping=True, return_special_tokens_mask=True, return_length=True)
    for text in TEXTS + with_specials(hf):
        assert_same_call(ours, hf, text, **extras)
        assert ours.tokenize(text) == hf.tokenize(text)
        assert_same_call(ours, hf, text, add_special_tokens=False, return_token_type_ids=True)
    assert_same_call(ours, hf, TEXTS, PAIR_TEXTS, padding=True, **extras)
    assert_same_call(ours, hf, TEXTS, PAIR_TEXTS, padding=True, padding_side="left", return_token_type_ids=True)
    assert_same_call(ours, hf, TEXTS, padding="max_length", max_length=24, truncation=True, pad_to_multiple_of=8)
    assert_same_call(ours, hf, TEXTS, return_tensors="np", padding=True, return_attention_mask=False)
    long_word = TEXTS[7] * 3
    truncated_pairs = {  # the side each strategy truncates is long enough to be cut to max_length
        "longest_first": [(LONG_TEXT, TEXTS[1]), (TEXTS[1], LONG_TEXT), (long_word, LONG_TEXT)],
        "only_first": [(LONG_TEXT, TEXTS[1]), (long_word, TEXTS[0]), (LONG_TEXT, "")],
        "only_second": [(TEXTS[1], LONG_TEXT), (TEXTS[0], long_word), ("", LONG_TEXT)],
    }
    for strategy, pairs in truncated_pairs.items():
        for max_length, stride in ((40, 4), (24, 0)):
            call = dict(truncation=strategy, max_length=max_length, stride=stride, return_overflowing_tokens=True)
            for first, second in pairs:
                assert assert_same_call(ours, hf, first, second, **call, **extras)[0]
            firsts, seconds = (list(side) for side in zip(*pairs))
            assert assert_same_call(ours, hf, firsts, seconds, padding=True, **call, **extras)[0]
    # A side too short to truncate fails in both.
    assert not assert_same_call(ours, hf, TEXTS[1], LONG_TEXT, truncation="only_first", max_length=24)[0]
    assert_same_call(ours, hf, LONG_TEXT, truncation=True, max_length=16, stride=5, return_overflowing_tokens=True)
    assert_same_call(ours, hf, WORDS, is_split_into_words=True, padding=True, return_offsets_mapping=True)


def assert_same_decoding(ours, hf):
    batch = hf(TEXTS + with_specials(hf), padding=True)["input_ids"]
    for skip in (False, True):
        for clean_up in (None, True, False):
            kwargs = dict(skip_special_tokens=skip, clean_up_tokenization_spaces=clean_up)
            assert ours.batch_decode(batch, **kwargs) == hf.batch_decode(batch, **kwargs)
    pair = hf(TEXTS[1], TEXTS[6])["input_ids"]
    assert ours.decode(pair) == hf.decode(pair)
    assert ours.convert_ids_to_tokens(pair) == hf.convert_ids_to_tokens(pair)
    tokens = hf.convert_ids_to_tokens(pair)
    assert ours.convert_tokens_to_ids(tokens) == hf.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_string(tokens) == hf.convert_tokens_to_string(tokens)


def _copy_config(src, dst, **changes):
    """Copy tokenizer_config.json from ``src`` to ``dst`` with ``changes`` (a value of None drops the key)."""
    config = json.loads((src / "tokenizer_config.json").read_text())
    for key, value in changes.items():
        config.pop(key, None) if value is None else config.__setitem__(key, value)
    (dst / "tokenizer_config.json").write_text(json.dumps(config))


# ----------------------------------------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------------------------------------


def test_loads_like_hf(family):
    name, _, ours, hf = family
    assert type(hf).__name__ == HF_CLASS[name]
    assert isinstance(ours, PreTrainedTokenizerFast)
    assert ours.mask_token is not None and ours.pad_token_id is not None
    assert_same_attributes(ours, hf)
    assert_same_pipeline(ours, hf)


def test_encodes_like_hf(family):
    _, _, ours, hf = family
    assert_same_encodings(ours, hf)


def test_decodes_like_hf(family):
    _, _, ours, hf = family
    assert_same_decoding(ours, hf)


def test_token_type_ids_follow_the_class(family):
    name, _, ours, hf = family
    got = ours("first", "second")
    assert ("token_type_ids" in got) == ("token_type_ids" in hf.model_input_names)
    assert list(got.keys()) == list(hf("first", "second").keys())
    # BERT-style classes mark the second sequence with type 1; the RoBERTa-style ones use 0 throughout.
    forced = ours("first", "second", return_token_type_ids=True)["token_type_ids"]
    assert forced == hf("first", "second", return_token_type_ids=True)["token_type_ids"]


@pytest.mark.parametrize("name", PREFIX_SPACE_FAMILIES)
def test_add_prefix_space_override_like_hf(family_dirs, name):
    path = family_dirs[name]
    saved = json.loads((path / "tokenizer_config.json").read_text())["add_prefix_space"]
    ours = AutoTokenizer.from_pretrained(path, add_prefix_space=not saved)
    hf = HFAutoTokenizer.from_pretrained(path, add_prefix_space=not saved)
    default = AutoTokenizer.from_pretrained(path)
    probes = ["Hello world", f"{hf.sep_token}Hello"]  # DeBERTa-v2 without the prefix space still adds it up front
    assert [ours(t)["input_ids"] for t in probes] != [default(t)["input_ids"] for t in probes]  # it took effect
    for text in TEXTS[:4] + with_specials(hf):
        assert_same_call(ours, hf, text, TEXTS[1], return_offsets_mapping=True)
    assert_same_call(ours, hf, WORDS, is_split_into_words=True, padding=True, return_offsets_mapping=True)
    ids = hf(TEXTS[:4], padding=True)["input_ids"]
    assert ours.batch_decode(ids, skip_special_tokens=True) == hf.batch_decode(ids, skip_special_tokens=True)


# tokenizer.json pipelines unlike what the class builds: SentencePiece ones as older converters wrote them (Metaspace
# alone, XLM-R's run-of-spaces Replace), a WordPiece one that keeps the case, a byte-level one with the prefix space.
STALE_PIPELINES = {
    "sentencepiece": {
        "normalizer": {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
    },
    "wordpiece": {
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": False,
                       "strip_accents": False, "lowercase": False},
        "pre_tokenizer": {"type": "Whitespace"},
    },
    "byte_level": {
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False},
    },
}
STALE_KIND = {"roberta": "byte_level", "distilbert": "wordpiece", "electra": "wordpiece", "mpnet": "wordpiece"}


def test_pipeline_comes_from_the_class_not_tokenizer_json(family, tmp_path):
    """HF v5's classes keep tokenizer.json's vocabulary but build normalizer / pre-tokenizer / decoder themselves."""
    name, path, _, hf_original = family
    data = json.loads((path / "tokenizer.json").read_text())
    data.update(STALE_PIPELINES[STALE_KIND.get(name, "sentencepiece")])
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    _copy_config(path, tmp_path)
    ours, hf = AutoTokenizer.from_pretrained(tmp_path), HFAutoTokenizer.from_pretrained(tmp_path)
    as_is = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    probe = TEXTS + with_specials(hf)
    assert [as_is.tokenize(t) for t in probe] != [hf.tokenize(t) for t in probe]  # the stale pipeline matters
    assert [hf.tokenize(t) for t in probe] == [hf_original.tokenize(t) for t in probe]
    assert_same_pipeline(ours, hf)
    for text in probe:
        assert_same_call(ours, hf, text, TEXTS[1], return_offsets_mapping=True, return_special_tokens_mask=True)
    ids = hf(probe, padding=True)["input_ids"]
    assert ours.batch_decode(ids) == hf.batch_decode(ids)


@pytest.mark.parametrize("name", ["xlm_roberta", "camembert", "albert", "deberta_v2"])
def test_precompiled_charsmap_like_hf(family_dirs, tmp_path, name):
    """tokenizer.json's SentencePiece charsmap: XLM-R / CamemBERT / ALBERT normalize with it (ALBERT after its own
    steps), DeBERTa-v2 does not use it -- as HF's classes build them."""
    path = family_dirs[name]
    data = json.loads((path / "tokenizer.json").read_text())
    data["normalizer"] = {"type": "Precompiled", "precompiled_charsmap": CHARSMAP}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    _copy_config(path, tmp_path)
    ours, hf = AutoTokenizer.from_pretrained(tmp_path), HFAutoTokenizer.from_pretrained(tmp_path)
    without = AutoTokenizer.from_pretrained(path)
    assert_same_pipeline(ours, hf)
    assert ("Precompiled" in json.dumps(pipeline_of(ours))) == (name != "deberta_v2")
    if name in ("xlm_roberta", "camembert"):  # ALBERT's own NFKD + lower-casing already do what these rules do
        assert ours.tokenize(CHARSMAP_TEXT) != without.tokenize(CHARSMAP_TEXT)
    for text in [CHARSMAP_TEXT, *TEXTS]:
        assert_same_call(ours, hf, text, return_offsets_mapping=True)
    ids = hf([CHARSMAP_TEXT, *TEXTS], padding=True)["input_ids"]
    assert ours.batch_decode(ids) == hf.batch_decode(ids)
    ours.save_pretrained(tmp_path / "saved")
    again = HFAutoTokenizer.from_pretrained(tmp_path / "saved")
    assert_same_call(again, hf, [CHARSMAP_TEXT, *TEXTS], return_offsets_mapping=True)


@pytest.mark.parametrize(
    "name, settings",
    [
        ("albert", dict(do_lower_case=False, keep_accents=True)),
        ("deberta_v2", dict(split_by_punct=True, do_lower_case=True)),
        ("distilbert", dict(do_lower_case=False)),
        ("electra", dict(do_lower_case=False, strip_accents=True)),
        ("mpnet", dict(tokenize_chinese_chars=False, add_prefix_space=True)),  # MPNet's wrapping ignores the latter
        ("roberta", dict(add_prefix_space=True, trim_offsets=False)),
        ("xlm_roberta", dict(add_prefix_space=False)),
    ],
)
def test_settings_passed_to_from_pretrained_like_hf(family_dirs, name, settings):
    path = family_dirs[name]
    ours, hf = AutoTokenizer.from_pretrained(path, **settings), HFAutoTokenizer.from_pretrained(path, **settings)
    assert pipeline_of(ours) != pipeline_of(AutoTokenizer.from_pretrained(path))  # the settings changed something
    assert_same_pipeline(ours, hf)
    for text in TEXTS + with_specials(hf):
        assert_same_call(ours, hf, text, "Zürich ÉTÉ", return_offsets_mapping=True)


@pytest.mark.parametrize(
    "name, saved_class, vocab_files",
    [
        ("distilbert", None, "vocab.txt"),
        ("electra", "ElectraTokenizer", "vocab.txt"),  # the name ELECTRA checkpoints on the hub carry
        ("mpnet", None, "vocab.txt"),
        ("roberta", None, "vocab.json"),
    ],
)
def test_vocabulary_files_without_tokenizer_json_like_hf(family_dirs, tmp_path, name, saved_class, vocab_files):
    src = family_dirs[name]
    _copy_config(src, tmp_path, **({"tokenizer_class": saved_class} if saved_class else {}))
    model = json.loads((src / "tokenizer.json").read_text())["model"]
    if vocab_files == "vocab.txt":
        (tmp_path / "vocab.txt").write_text("".join(f"{t}\n" for t in sorted(model["vocab"], key=model["vocab"].get)))
    else:
        (tmp_path / "vocab.json").write_text(json.dumps(model["vocab"]))
        merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
        (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    ours, hf = AutoTokenizer.from_pretrained(tmp_path), HFAutoTokenizer.from_pretrained(tmp_path)
    assert_same_attributes(ours, hf)
    for text in TEXTS[:4] + with_specials(hf):
        assert_same_call(ours, hf, text, TEXTS[6], return_offsets_mapping=True, return_special_tokens_mask=True)
    ids = hf(TEXTS, padding=True)["input_ids"]
    assert ours.batch_decode(ids, skip_special_tokens=True) == hf.batch_decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("name, model_type", [("xlm_roberta", "xlm-roberta"), ("distilbert", "distilbert")])
def test_class_from_model_config_like_hf(family_dirs, tmp_path, name, model_type):
    """A tokenizer_config.json naming no class (as on older hub repos): the class comes from config.json."""
    src = family_dirs[name]
    shutil.copy(src / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
    ours, hf = AutoTokenizer.from_pretrained(tmp_path), HFAutoTokenizer.from_pretrained(tmp_path)
    assert_same_attributes(ours, hf)
    assert_same_call(ours, hf, TEXTS[:4], PAIR_TEXTS[:4], padding=True)


def test_save_pretrained_round_trips_both_ways(family, tmp_path):
    _, _, ours, hf = family
    reference = {k: plain(v) for k, v in hf(TEXTS, PAIR_TEXTS, padding=True, padding_side="left").items()}
    ours.save_pretrained(tmp_path / "ours")
    assert_same_pipeline(HFAutoTokenizer.from_pretrained(tmp_path / "ours"), hf)
    for tok in (HFAutoTokenizer.from_pretrained(tmp_path / "ours"), AutoTokenizer.from_pretrained(tmp_path / "ours")):
        assert_same_attributes(tok, hf)
        got = {k: plain(v) for k, v in tok(TEXTS, PAIR_TEXTS, padding=True, padding_side="left").items()}
        assert got == reference
        ids = reference["input_ids"]
        assert tok.batch_decode(ids, skip_special_tokens=True) == hf.batch_decode(ids, skip_special_tokens=True)


def test_changed_tokenizer_saves_and_loads_like_hf(family, tmp_path):
    """Added tokens, a new special token and left padding / truncation survive our save, read by HF and by us."""
    _, path, _, _ = family
    ours, hf = AutoTokenizer.from_pretrained(path), HFAutoTokenizer.from_pretrained(path)
    for tok in (ours, hf):
        assert tok.add_tokens(["newword", "Zürichsee"]) == 2
        assert tok.add_special_tokens({"additional_special_tokens": ["<extra>"]}) == 1
        tok.padding_side = tok.truncation_side = "left"
    texts = ["x newword <extra> y Zürichsee", *TEXTS[:5]]
    call = dict(padding=True, truncation=True, max_length=12, return_offsets_mapping=True)
    reference = assert_same_call(ours, hf, texts, PAIR_TEXTS[:6], **call)
    assert reference[0] and max(len(ids) for ids in reference[1]["input_ids"]) == 12
    ours.save_pretrained(tmp_path / "ours")
    for tok in (HFAutoTokenizer.from_pretrained(tmp_path / "ours"), AutoTokenizer.from_pretrained(tmp_path / "ours")):
        assert_same_attributes(tok, hf)
        assert outcome(tok, texts, PAIR_TEXTS[:6], **call) == reference
        assert tok.decode(hf.encode(texts[0])) == hf.decode(hf.encode(texts[0]))
