"""The tokenizer layer against Hugging Face transformers' AutoTokenizer on the same files.

Covers the real all-MiniLM-L6-v2 BERT tokenizer (from tokenizer.json and from vocab.txt only) and a byte-level BPE
tokenizer trained here (from tokenizer.json and from vocab.json + merges.txt).
"""
import json
import os
import pickle
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tokenizers import AddedToken, Encoding, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer as HFAutoTokenizer
from transformers import PreTrainedTokenizerFast as HFPreTrainedTokenizerFast

from transformers_jax.tokenization import gguf_tokenizer
from transformers_jax.tokenization import (
    VERY_LARGE_INTEGER,
    AutoTokenizer,
    BatchEncoding,
    PreTrainedTokenizerFast,
)

LONG_TEXT = " ".join(["The tokenizer must truncate this sentence, which repeats many times."] * 60)
TEXTS = [
    "Hello world!",
    "Crème brûlée à Zürich",
    "emoji 😀🎉 party",
    "你好世界，東京",
    "مرحبا بالعالم",
    "MiXeD CaSe and UPPER",
    "Punctuation!?... (brackets) [x] {y} \"quotes\" 'single' -- dashes; colons:",
    "Numbers 3.14159, 1,000,000 and 42nd",
    "  whitespace\t\toddities \n\n and\u00a0nbsp  ",
    "",
    "[CLS] special tokens [MASK] inside [SEP]",
    LONG_TEXT,
]
PAIR_TEXTS = TEXTS[1:] + TEXTS[:1]
WORDS = [["Hello", "world", "!"], ["Crème", "brûlée"], ["你好", "世界"], ["x"]]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! Hello there, general Kenobi.",
    "Crème brûlée à Zürich costs 12.50 €",
    "你好世界 こんにちは",
    "def foo(x):\n    return x * 2\n",
]
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello <|im_end|> café?", "tool_calls": None},
    {"role": "assistant", "content": "Hi there!"},
]


# ----------------------------------------------------------------------------------------------------------------------
# fixtures and helpers
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def minilm_vocab_dir(minilm_dir, tmp_path_factory):
    """A copy of the MiniLM tokenizer with only vocab.txt + tokenizer_config.json."""
    out = tmp_path_factory.mktemp("minilm_vocab_only")
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm_dir / name, out / name)
    return out


@pytest.fixture(scope="session", params=["tokenizer.json", "vocab.txt"])
def minilm_path(request, minilm_dir, minilm_vocab_dir):
    return str(minilm_dir if request.param == "tokenizer.json" else minilm_vocab_dir)


@pytest.fixture(scope="session")
def bpe_backend():
    """A byte-level BPE tokenizer trained on a small corpus."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    return tok


def _bpe_config(tokenizer_class, **extra):
    return {
        "tokenizer_class": tokenizer_class,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<pad>",
        "model_max_length": 32,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "chat_template": CHAT_TEMPLATE,
        **extra,
    }


@pytest.fixture(scope="session")
def bpe_dirs(bpe_backend, tmp_path_factory):
    """{'json': tokenizer.json (generic class), 'gpt2_json': tokenizer.json (GPT2Tokenizer),
    'vocab': vocab.json + merges.txt (GPT2Tokenizer), 'unlimited': tokenizer.json without model_max_length}."""
    root = tmp_path_factory.mktemp("bpe")
    dirs = {}
    for name, cls, files in [
        ("json", "PreTrainedTokenizerFast", "json"),
        ("gpt2_json", "GPT2Tokenizer", "json"),
        ("vocab", "GPT2Tokenizer", "vocab"),
        ("unlimited", "PreTrainedTokenizerFast", "json"),
    ]:
        d = root / name
        d.mkdir()
        if files == "json":
            bpe_backend.save(str(d / "tokenizer.json"))
        else:
            bpe_backend.model.save(str(d))
        config = _bpe_config(cls)
        if name == "unlimited":
            del config["model_max_length"]
        (d / "tokenizer_config.json").write_text(json.dumps(config))
        dirs[name] = str(d)
    assert sorted(os.listdir(dirs["vocab"])) == ["merges.txt", "tokenizer_config.json", "vocab.json"]
    return dirs


def plain(value):
    """Arrays / tuples to nested Python lists for comparison."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def outcome(fn, *args, **kwargs):
    """(True, plain dict) on success, (False, exception class name) on failure."""
    try:
        out = fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - we compare which calls fail
        return False, type(err).__name__
    return True, {k: plain(v) for k, v in out.items()}


def assert_same_call(ours, hf, *args, **kwargs):
    got, want = outcome(ours, *args, **kwargs), outcome(hf, *args, **kwargs)
    assert got == want, f"args={[str(a)[:60] for a in args]} kwargs={kwargs}"
    return want


# ----------------------------------------------------------------------------------------------------------------------
# MiniLM (BERT WordPiece)
# ----------------------------------------------------------------------------------------------------------------------


def test_minilm_loads_like_hf(minilm_path):
    ours, hf = AutoTokenizer.from_pretrained(minilm_path), HFAutoTokenizer.from_pretrained(minilm_path)
    assert isinstance(ours, PreTrainedTokenizerFast)
    assert ours.get_vocab() == hf.get_vocab()
    assert (ours.vocab_size, len(ours)) == (hf.vocab_size, len(hf)) == (30522, 30522)
    assert ours.model_max_length == hf.model_max_length == 512
    assert ours.model_input_names == hf.model_input_names == ["input_ids", "token_type_ids", "attention_mask"]
    for name in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{name}_token") == getattr(hf, f"{name}_token")
        assert getattr(ours, f"{name}_token_id") == getattr(hf, f"{name}_token_id")
    assert ours.all_special_tokens == hf.all_special_tokens
    assert ours.all_special_ids == hf.all_special_ids
    assert ours.special_tokens_map == hf.special_tokens_map


def test_minilm_single_pairs_and_batches(minilm_path):
    ours, hf = AutoTokenizer.from_pretrained(minilm_path), HFAutoTokenizer.from_pretrained(minilm_path)
    extras = dict(return_offsets_mapping=True, return_special_tokens_mask=True, return_length=True)
    for text in TEXTS:
        ok, out = assert_same_call(ours, hf, text, **extras)
        assert ok and isinstance(out["input_ids"], list)
        assert ours.encode(text) == hf.encode(text)
        assert ours.tokenize(text) == hf.tokenize(text)
    for a, b in zip(TEXTS, PAIR_TEXTS):
        ok, out = assert_same_call(ours, hf, a, b, **extras)
        assert ok
    ok, out = assert_same_call(ours, hf, TEXTS, **extras)
    assert ok and len(out["input_ids"]) == len(TEXTS)
    ok, out = assert_same_call(ours, hf, TEXTS, PAIR_TEXTS, **extras)
    assert ok and 1 in out["token_type_ids"][0]
    # a batch given as (a, b) tuples
    assert_same_call(ours, hf, list(zip(TEXTS[:4], PAIR_TEXTS[:4])))
    # a long text is not truncated without being asked to
    assert len(ours(LONG_TEXT)["input_ids"]) > 512
    # known ids
    assert ours("Hello world")["input_ids"] == [101, 7592, 2088, 102]


@pytest.mark.filterwarnings("ignore:`max_length` is ignored")
def test_minilm_padding_and_truncation_modes(minilm_path):
    ours, hf = AutoTokenizer.from_pretrained(minilm_path), HFAutoTokenizer.from_pretrained(minilm_path)
    # (the Rust library builds every overflow window combination of a truncated pair, so the long text stays out)
    medium = " ".join(TEXTS[5:8])
    batch, pairs = TEXTS[:3] + [medium], PAIR_TEXTS[:3] + [medium]
    compared = failures = 0
    for padding in (False, True, "longest", "max_length", "do_not_pad"):
        for truncation in (None, True, False, "longest_first", "only_first", "only_second", "do_not_truncate"):
            for max_length in (None, 9, 24):
                for args in ((batch,), (batch, pairs), (TEXTS[1], PAIR_TEXTS[1]), (TEXTS[1],)):
                    ok, _ = assert_same_call(
                        ours, hf, *args, padding=padding, truncation=truncation, max_length=max_length
                    )
                    compared += 1
                    failures += not ok
    assert compared == 5 * 7 * 3 * 4
    assert 0 < failures < compared  # e.g. only_second on single sequences fails in both
    # pad_to_multiple_of, stride, left padding / truncation
    assert_same_call(ours, hf, batch, padding=True, pad_to_multiple_of=8)
    assert_same_call(ours, hf, batch, padding="max_length", truncation=True, max_length=16, pad_to_multiple_of=8)
    assert_same_call(ours, hf, batch, padding="max_length", truncation=True, max_length=15, pad_to_multiple_of=8)
    assert_same_call(ours, hf, batch, padding=True, padding_side="left")
    for tok in (ours, hf):
        tok.padding_side, tok.truncation_side = "left", "left"
    ok, out = assert_same_call(ours, hf, batch, pairs, padding=True, truncation=True, max_length=12)
    assert ok and [len(row) for row in out["input_ids"]] == [12] * 4
    ok, out = assert_same_call(ours, hf, batch[:3], padding=True)
    assert ok and out["attention_mask"][0][0] == 0 and out["attention_mask"][0][-1] == 1
    assert_same_call(ours, hf, batch, max_length=10, return_overflowing_tokens=True, stride=2)
    with pytest.warns(UserWarning, match="`max_length` is ignored when `padding`=`True`"):
        ours(batch, padding=True, max_length=5)


def test_minilm_long_text_truncates_to_model_max_length(minilm_path):
    ours, hf = AutoTokenizer.from_pretrained(minilm_path), HFAutoTokenizer.from_pretrained(minilm_path)
    enc = ours(LONG_TEXT, truncation=True)
    assert len(enc["input_ids"]) == 512 and enc["input_ids"][-1] == ours.sep_token_id
    assert dict(enc) == dict(hf(LONG_TEXT, truncation=True))
    padded = ours([LONG_TEXT, "short"], padding="max_length", truncation=True, return_tensors="np")
    assert padded["input_ids"].shape == (2, 512)
    want = hf([LONG_TEXT, "short"], padding="max_length", truncation=True, return_tensors="np")
    np.testing.assert_array_equal(padded["input_ids"], want["input_ids"])


def test_minilm_pre_split_words(minilm_path):
    ours, hf = AutoTokenizer.from_pretrained(minilm_path), HFAutoTokenizer.from_pretrained(minilm_path)
    kw = dict(is_split_into_words=True, return_offsets_mapping=True)
    assert_same_call(ours, hf, WORDS[0], **kw)
    assert_same_call(ours, hf, WORDS[0], WORDS[1], **kw)
    ok, out = assert_same_call(ours, hf, WORDS, padding=True, **kw)
    assert ok and len(out["input_ids"]) == len(WORDS)
    assert_same_call(ours, hf, WORDS, WORDS[::-1], padding=True, truncation=True, max_length=6, **kw)
    enc_ours, enc_hf = ours(WORDS, is_split_into_words=True), hf(WORDS, is_split_into_words=True)
    for i in range(len(WORDS)):
        assert enc_ours.word_ids(i) == enc_hf.word_ids(i)
        assert enc_ours.tokens(i) == enc_hf.tokens(i)
    assert enc_ours.word_ids(0) == [None, 0, 1, 2, None]


def test_minilm_return_tensors(minilm_path):
    ours, hf = AutoTokenizer.from_pretrained(minilm_path), HFAutoTokenizer.from_pretrained(minilm_path)
    want = hf(TEXTS, padding=True, truncation=True, return_tensors="np", return_offsets_mapping=True)
    got_np = ours(TEXTS, padding=True, truncation=True, return_tensors="np", return_offsets_mapping=True)
    got_jax = ours(TEXTS, padding=True, truncation=True, return_tensors="jax", return_offsets_mapping=True)
    assert set(got_np) == set(got_jax) == set(want)
    for key in want:
        assert isinstance(got_np[key], np.ndarray) and got_np[key].dtype == want[key].dtype == np.int64
        np.testing.assert_array_equal(got_np[key], want[key])
        assert isinstance(got_jax[key], jax.Array) and got_jax[key].dtype == jnp.int32
        np.testing.assert_array_equal(np.asarray(got_jax[key]), want[key])
    assert got_np["offset_mapping"].shape == (len(TEXTS), want["input_ids"].shape[1], 2)
    # un-batched input: tensors get a batch axis, lists stay flat
    single = ours("Hello world", return_tensors="jax")
    assert single["input_ids"].shape == (1, 4)
    np.testing.assert_array_equal(np.asarray(single.input_ids), hf("Hello world", return_tensors="np")["input_ids"])
    assert ours("Hello world")["input_ids"] == [101, 7592, 2088, 102]
    assert ours.encode("Hello world", return_tensors="np").tolist() == [[101, 7592, 2088, 102]]


def test_minilm_optional_outputs(minilm_path):
    ours, hf = AutoTokenizer.from_pretrained(minilm_path), HFAutoTokenizer.from_pretrained(minilm_path)
    for kw in (
        dict(return_token_type_ids=False),
        dict(return_attention_mask=False),
        dict(return_token_type_ids=True, return_attention_mask=True, return_special_tokens_mask=True),
        dict(add_special_tokens=False, return_offsets_mapping=True),
    ):
        ok, out = assert_same_call(ours, hf, TEXTS[:4], PAIR_TEXTS[:4], padding=True, **kw)
        assert ok
    enc = ours("Crème brûlée", return_offsets_mapping=True)
    assert enc["offset_mapping"][0] == (0, 0) and enc["offset_mapping"][-2][1] == len("Crème brûlée")


def test_minilm_decode(minilm_path):
    ours, hf = AutoTokenizer.from_pretrained(minilm_path), HFAutoTokenizer.from_pretrained(minilm_path)
    ids = hf(TEXTS, PAIR_TEXTS, padding=True)["input_ids"]
    for skip in (False, True):
        assert ours.batch_decode(ids, skip_special_tokens=skip) == hf.batch_decode(ids, skip_special_tokens=skip)
        assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip)
        for row in ids[:4]:
            assert ours.decode(row, skip_special_tokens=skip) == hf.decode(row, skip_special_tokens=skip)
        for flag in (True, False):
            assert ours.decode(ids[1], skip_special_tokens=skip, clean_up_tokenization_spaces=flag) == hf.decode(
                ids[1], skip_special_tokens=skip, clean_up_tokenization_spaces=flag
            )
    assert ours.decode(ids[0]).startswith("[CLS] hello world! [SEP]")
    assert ours.decode(ids[0], skip_special_tokens=True).startswith("hello world!")
    # arrays and single ids
    assert ours.batch_decode(np.asarray(ids)) == hf.batch_decode(ids)
    assert ours.batch_decode(jnp.asarray(ids)) == hf.batch_decode(ids)
    assert ours.decode(jnp.asarray(ids[0])) == hf.decode(ids[0])
    assert ours.decode(7592) == hf.decode(7592) == "hello"


def test_minilm_token_conversions(minilm_path):
    ours, hf = AutoTokenizer.from_pretrained(minilm_path), HFAutoTokenizer.from_pretrained(minilm_path)
    tokens = ours.tokenize("Crème brûlée unaffable")
    assert tokens == hf.tokenize("Crème brûlée unaffable")
    assert ours.tokenize("a", "b", add_special_tokens=True) == hf.tokenize("a", "b", add_special_tokens=True)
    assert ours.convert_tokens_to_ids(tokens) == hf.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_ids("hello") == hf.convert_tokens_to_ids("hello") == 7592
    assert ours.convert_tokens_to_ids("notavocabtoken") == ours.unk_token_id == 100
    ids = ours.encode("Crème brûlée")
    assert ours.convert_ids_to_tokens(ids) == hf.convert_ids_to_tokens(ids)
    skipped = ours.convert_ids_to_tokens(ids, skip_special_tokens=True)
    assert skipped == hf.convert_ids_to_tokens(ids, skip_special_tokens=True) and "[CLS]" not in skipped
    assert ours.convert_ids_to_tokens(7592) == "hello"
    assert ours.convert_tokens_to_string(tokens) == hf.convert_tokens_to_string(tokens)
    assert ours.num_special_tokens_to_add(pair=True) == hf.num_special_tokens_to_add(pair=True) == 3
    assert ours.get_special_tokens_mask(ids, already_has_special_tokens=True) == hf.get_special_tokens_mask(
        ids, already_has_special_tokens=True
    )


# ----------------------------------------------------------------------------------------------------------------------
# Byte-level BPE
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["json", "gpt2_json", "vocab"])
def test_bpe_matches_hf(bpe_dirs, kind):
    path = bpe_dirs[kind]
    ours, hf = AutoTokenizer.from_pretrained(path), HFAutoTokenizer.from_pretrained(path)
    assert ours.get_vocab() == hf.get_vocab() and len(ours) == len(hf)
    assert ours.all_special_tokens == hf.all_special_tokens and ours.all_special_ids == hf.all_special_ids
    assert ours.model_input_names == hf.model_input_names == ["input_ids", "attention_mask"]
    extras = dict(return_offsets_mapping=True, return_special_tokens_mask=True)
    for text in TEXTS[:-1] + ["Hello <|im_end|> world"]:
        assert_same_call(ours, hf, text, **extras)
    assert_same_call(ours, hf, TEXTS, PAIR_TEXTS, padding=True, truncation=True, **extras)
    assert_same_call(ours, hf, TEXTS, padding="max_length", truncation="only_first", max_length=20)
    assert_same_call(ours, hf, WORDS, is_split_into_words=True, padding=True)
    ids = hf(TEXTS, padding=True)["input_ids"]
    for skip in (False, True):
        assert ours.batch_decode(ids, skip_special_tokens=skip) == hf.batch_decode(ids, skip_special_tokens=skip)
    assert ours.decode(ours.encode("Crème brûlée à Zürich")) == "Crème brûlée à Zürich"


def test_bpe_unlimited_model_max_length_like_hf(bpe_dirs):
    path = bpe_dirs["unlimited"]
    ours, hf = AutoTokenizer.from_pretrained(path), HFAutoTokenizer.from_pretrained(path)
    assert ours.model_max_length == hf.model_max_length == VERY_LARGE_INTEGER
    # truncation / max_length padding without a max_length silently do nothing, as in HF
    ok, out = assert_same_call(ours, hf, [LONG_TEXT, "hi"], truncation=True)
    assert ok and len(out["input_ids"][0]) > 100
    ok, out = assert_same_call(ours, hf, [LONG_TEXT, "hi"], padding="max_length")
    assert ok and len(out["input_ids"][1]) < 5
    assert_same_call(ours, hf, [LONG_TEXT, "hi"], max_length=7)


def test_bpe_chat_template(bpe_dirs):
    ours, hf = AutoTokenizer.from_pretrained(bpe_dirs["json"]), HFAutoTokenizer.from_pretrained(bpe_dirs["json"])
    for add_generation_prompt in (False, True):
        text = ours.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=add_generation_prompt)
        assert text == hf.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=add_generation_prompt)
        assert text.startswith("<|endoftext|><|im_start|>system\nBe brief.<|im_end|>\n")
        assert text.endswith("<|im_start|>assistant\n") == add_generation_prompt
        ids = ours.apply_chat_template(CONVERSATION, add_generation_prompt=add_generation_prompt)
        want = hf.apply_chat_template(CONVERSATION, add_generation_prompt=add_generation_prompt, return_dict=False)
        assert ids == want
        assert ours.convert_tokens_to_ids("<|im_start|>") in ids
    kw = dict(return_dict=True, padding=True, return_tensors="np")
    got = ours.apply_chat_template([CONVERSATION, CONVERSATION[:2]], **kw)
    want = hf.apply_chat_template([CONVERSATION, CONVERSATION[:2]], **kw)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    assert isinstance(got, BatchEncoding) and got["input_ids"].shape[0] == 2
    batch_text = ours.apply_chat_template([CONVERSATION, CONVERSATION[:1]], tokenize=False)
    assert batch_text == hf.apply_chat_template([CONVERSATION, CONVERSATION[:1]], tokenize=False)
    # continue_final_message, explicit templates, template kwargs, jinja helpers
    prefill = CONVERSATION[:2] + [{"role": "assistant", "content": "The answer is"}]
    assert ours.apply_chat_template(prefill, tokenize=False, continue_final_message=True) == hf.apply_chat_template(
        prefill, tokenize=False, continue_final_message=True
    )
    template = (
        "{{ greeting }} {{ messages[0]['content'] | tojson }} {{ tools | tojson }}"
        "{{ raise_exception('boom') if messages | length > 5 }}"
    )
    tools = [{"type": "function", "function": {"name": "f", "description": "<&>"}}]
    kw = dict(tokenize=False, chat_template=template, greeting="hé", tools=tools)
    msg = [{"role": "user", "content": "<b>ü</b>"}]
    assert ours.apply_chat_template(msg, **kw) == hf.apply_chat_template(msg, **kw)
    assert '"<b>ü</b>"' in ours.apply_chat_template(msg, **kw)
    with pytest.raises(Exception, match="boom"):
        ours.apply_chat_template(msg * 6, **kw)
    year = ours.apply_chat_template(msg, tokenize=False, chat_template="{{ strftime_now('%Y') }}")
    assert year.isdigit() and len(year) == 4


def test_chat_template_sandbox_and_tool_functions(bpe_dirs):
    ours, hf = AutoTokenizer.from_pretrained(bpe_dirs["json"]), HFAutoTokenizer.from_pretrained(bpe_dirs["json"])

    def get_weather(city: str, days: int = 1):
        """Get the weather forecast.

        Args:
            city: The city to look up.
            days: How many days ahead.
        """
        return city, days

    template = "{% for t in tools %}{{ t | tojson }}{% endfor %}"
    msg = [{"role": "user", "content": "hi"}]
    got = ours.apply_chat_template(msg, tools=[get_weather], chat_template=template, tokenize=False)
    assert got == hf.apply_chat_template(msg, tools=[get_weather], chat_template=template, tokenize=False)
    assert '"required": ["city"]' in got
    with pytest.raises(Exception, match="unsafe|access"):
        ours.apply_chat_template(msg, tokenize=False, chat_template="{{ ''.__class__.__subclasses__() }}")
    with pytest.raises(ValueError, match="empty conversation"):
        ours.apply_chat_template([])
    bare = PreTrainedTokenizerFast(tokenizer_file=os.path.join(bpe_dirs["json"], "tokenizer.json"))
    assert bare.get_vocab() == ours.get_vocab() and bare.chat_template is None
    with pytest.raises(ValueError, match="chat_template is not set"):
        bare.apply_chat_template(msg)


def test_constructor_signature_used_by_gguf_loader(bpe_backend):
    kw = dict(bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<pad>", add_bos_token=True)
    for extra in ({}, {"add_eos_token": True}):
        ours = PreTrainedTokenizerFast(tokenizer_object=bpe_backend, **kw, **extra)
        hf = HFPreTrainedTokenizerFast(tokenizer_object=bpe_backend, **kw, **extra)
        for args in (("hi there",), ("a", "b"), (["x y", "z"],)):
            assert_same_call(ours, hf, *args)
        assert ours("hi")["input_ids"][0] == ours.bos_token_id == 0
        assert (ours("hi")["input_ids"][-1] == ours.eos_token_id) == bool(extra)
    # a special token missing from the vocabulary is added, as HF does
    ours = PreTrainedTokenizerFast(tokenizer_object=bpe_backend, bos_token="<newbos>", add_bos_token=True)
    hf = HFPreTrainedTokenizerFast(tokenizer_object=bpe_backend, bos_token="<newbos>", add_bos_token=True)
    assert len(ours) == len(hf) == bpe_backend.get_vocab_size() + 1
    assert ours("hi")["input_ids"] == hf("hi")["input_ids"]
    # the wrapped object is copied
    assert bpe_backend.token_to_id("<newbos>") is None


# ----------------------------------------------------------------------------------------------------------------------
# added tokens, pad token, saving
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["minilm", "bpe"])
def test_add_tokens_and_special_tokens_like_hf(which, minilm_dir, bpe_dirs):
    path = str(minilm_dir) if which == "minilm" else bpe_dirs["json"]
    ours, hf = AutoTokenizer.from_pretrained(path), HFAutoTokenizer.from_pretrained(path)
    base = len(ours)
    counts = []
    for tok in (ours, hf):
        counts.append(
            (
                tok.add_tokens(["newword", "hello", AddedToken("<tight>", lstrip=True)]),
                tok.add_tokens("newword"),
                tok.add_tokens([]),
                tok.add_tokens(["<sp1>"], special_tokens=True),
                tok.add_special_tokens({"additional_special_tokens": ["<extra>"], "cls_token": "<cls2>"}),
                tok.add_special_tokens({"additional_special_tokens": ["<extra>", "<more>"]}, False),
            )
        )
    assert counts[0] == counts[1]
    assert counts[0][1:3] == (0, 0) and counts[0][4] == 2
    assert len(ours) == len(hf) > base
    assert ours.cls_token == "<cls2>" and ours.cls_token_id == hf.cls_token_id == ours.convert_tokens_to_ids("<cls2>")
    assert ours.additional_special_tokens == ["<extra>", "<more>"]
    assert ours.all_special_tokens == hf.all_special_tokens and ours.all_special_ids == hf.all_special_ids
    text = ["a newword <extra> b <cls2>  <tight> <sp1>c", "hello newwordish"]
    assert_same_call(ours, hf, text, return_offsets_mapping=True)
    ids = ours(text)["input_ids"]
    for skip in (False, True):
        assert ours.batch_decode(ids, skip_special_tokens=skip) == hf.batch_decode(ids, skip_special_tokens=skip)
    assert ours.get_added_vocab() == hf.get_added_vocab()


def test_pad_token_assignment(bpe_dirs, bpe_backend):
    ours, hf = AutoTokenizer.from_pretrained(bpe_dirs["json"]), HFAutoTokenizer.from_pretrained(bpe_dirs["json"])
    for tok in (ours, hf):
        tok.pad_token = tok.eos_token
    assert ours.pad_token == "<|im_end|>" and ours.pad_token_id == hf.pad_token_id == 2
    ok, out = assert_same_call(ours, hf, ["a", "a b c"], padding=True)
    assert ok and out["input_ids"][0][-1] == 2
    ours.pad_token_id = 3
    assert ours.pad_token == "<pad>"
    # a tokenizer without any pad token refuses to pad, like HF
    bare = PreTrainedTokenizerFast(tokenizer_object=bpe_backend, eos_token="<|im_end|>")
    assert bare.pad_token is None and bare.pad_token_id is None
    with pytest.raises(ValueError, match="does not have a padding token"):
        bare(["a", "b c"], padding=True)
    bare.pad_token = bare.eos_token
    assert bare(["a", "b c"], padding=True)["input_ids"][0][-1] == bare.eos_token_id
    with pytest.raises(ValueError, match="must be a str"):
        bare.pad_token = 5


@pytest.mark.parametrize("which", ["minilm", "minilm_vocab", "bpe", "bpe_vocab"])
def test_save_round_trips_both_ways(which, minilm_dir, minilm_vocab_dir, bpe_dirs, tmp_path):
    paths = {"minilm": minilm_dir, "minilm_vocab": minilm_vocab_dir}
    paths.update(bpe=bpe_dirs["json"], bpe_vocab=bpe_dirs["vocab"])
    path = str(paths[which])
    ours, hf = AutoTokenizer.from_pretrained(path), HFAutoTokenizer.from_pretrained(path)
    for tok in (ours, hf):
        tok.add_tokens(["newword"])
        tok.add_special_tokens({"additional_special_tokens": ["<extra>"]})
        tok.padding_side = "left"
    texts = TEXTS[:4] + ["x newword <extra> y"]
    reference = {k: plain(v) for k, v in hf(texts, PAIR_TEXTS[:5], padding=True).items()}

    written = ours.save_pretrained(tmp_path / "ours")
    names = sorted(os.path.basename(p) for p in written)
    assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= set(names)
    config = json.loads((tmp_path / "ours" / "tokenizer_config.json").read_text())
    # HF's class is kept where ours builds the tokenizer as that class does (MiniLM's BertTokenizer); GPT-2's
    # tokenizer.json is taken as it is, by the generic class.
    assert config["tokenizer_class"] == ("BertTokenizer" if which.startswith("minilm") else "PreTrainedTokenizerFast")
    assert config["padding_side"] == "left" and config["model_max_length"] == ours.model_max_length
    assert config["pad_token"] == ours.pad_token
    assert not [p for p in os.listdir(tmp_path / "ours") if p.endswith(".tmp")]
    hf_from_ours = HFAutoTokenizer.from_pretrained(tmp_path / "ours")
    ours_from_ours = AutoTokenizer.from_pretrained(tmp_path / "ours")
    for tok in (hf_from_ours, ours_from_ours):
        assert {k: plain(v) for k, v in tok(texts, PAIR_TEXTS[:5], padding=True).items()} == reference
        assert tok.all_special_tokens == hf.all_special_tokens and len(tok) == len(hf)
        assert tok.chat_template == hf.chat_template
        assert tok.model_max_length == hf.model_max_length

    hf.save_pretrained(tmp_path / "hf")
    ours_from_hf = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert {k: plain(v) for k, v in ours_from_hf(texts, PAIR_TEXTS[:5], padding=True).items()} == reference
    assert ours_from_hf.all_special_tokens == hf.all_special_tokens
    assert ours_from_hf.chat_template == hf.chat_template
    assert ours_from_hf.padding_side == "left"
    if hf.chat_template is not None:
        conv = ours_from_hf.apply_chat_template(CONVERSATION, add_generation_prompt=True)
        assert conv == hf.apply_chat_template(CONVERSATION, add_generation_prompt=True, return_dict=False)


def test_save_is_atomic(bpe_dirs, tmp_path, monkeypatch):
    tok = AutoTokenizer.from_pretrained(bpe_dirs["json"])
    target = tmp_path / "out"

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        tok.save_pretrained(target)
    assert os.listdir(target) == []  # no temporary and no half-written files remain
    monkeypatch.undo()
    tok.save_pretrained(target)
    assert sorted(os.listdir(target)) == sorted(
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"]
    )


# ----------------------------------------------------------------------------------------------------------------------
# loading paths, errors, BatchEncoding
# ----------------------------------------------------------------------------------------------------------------------


def test_hub_id_from_local_cache_only(minilm_dir, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "models--someorg--tiny-tok" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(minilm_dir / name, snapshot / name)
    refs = tmp_path / "models--someorg--tiny-tok" / "refs"
    refs.mkdir()
    (refs / "main").write_text(commit)
    tok = AutoTokenizer.from_pretrained("someorg/tiny-tok", cache_dir=str(tmp_path))
    assert tok("Hello world")["input_ids"] == [101, 7592, 2088, 102]
    with pytest.raises(FileNotFoundError, match="someorg/not-cached.*local Hugging Face cache"):
        AutoTokenizer.from_pretrained("someorg/not-cached", cache_dir=str(tmp_path))


def test_tokenizer_json_file_path(minilm_dir):
    tok = PreTrainedTokenizerFast.from_pretrained(minilm_dir / "tokenizer.json")
    assert tok("Hello world")["input_ids"] == [101, 7592, 2088, 102]


def test_gguf_is_delegated(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(gguf_tokenizer, "load_gguf_tokenizer", lambda path: calls.append(path) or "loaded")
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    assert AutoTokenizer.from_pretrained(tmp_path, gguf_file="model.gguf") == "loaded"
    assert PreTrainedTokenizerFast.from_pretrained(tmp_path / "model.gguf") == "loaded"
    assert calls == [tmp_path / "model.gguf", tmp_path / "model.gguf"]
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        AutoTokenizer.from_pretrained(tmp_path, gguf_file="missing.gguf")


def test_error_messages(tmp_path, minilm_dir, bpe_dirs):
    missing = tmp_path / "does_not_exist"
    with pytest.raises(FileNotFoundError, match="does_not_exist.*does not exist"):
        AutoTokenizer.from_pretrained(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    looked_for = r"tokenizer\.json, vocab\.txt, vocab\.json \+ merges\.txt"
    with pytest.raises(FileNotFoundError, match=rf"No tokenizer files found in .*empty.*{looked_for}"):
        AutoTokenizer.from_pretrained(empty)
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    a_file = tmp_path / "afile.txt"
    a_file.write_text("keep me")
    with pytest.raises(NotADirectoryError, match="afile.txt.*existing file"):
        tok.save_pretrained(a_file)
    assert a_file.read_text() == "keep me"
    for tensors in ("np", "jax"):
        with pytest.raises(ValueError, match="different lengths.*padding=True"):
            tok(["short", "a much longer sentence here"], return_tensors=tensors)
    with pytest.raises(ValueError, match="not a valid padding strategy"):
        tok("x", padding="sideways")
    with pytest.raises(ValueError, match="not a valid truncation strategy"):
        tok("x", truncation="middle")
    with pytest.raises(ValueError, match="text input must be of type"):
        tok([1, 2, 3])
    with pytest.raises(ValueError, match="Unknown return_tensors"):
        tok("x", return_tensors="tf")
    bad = tmp_path / "badjson"
    bad.mkdir()
    shutil.copy(minilm_dir / "tokenizer.json", bad / "tokenizer.json")
    (bad / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer_config.json is not valid JSON"):
        AutoTokenizer.from_pretrained(bad)
    with pytest.raises(ValueError, match="tokenizer_object.*tokenizer_file"):
        PreTrainedTokenizerFast()


def test_batch_encoding_behaviour(minilm_dir):
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    enc = tok(["Hello world", "Crème brûlée"], padding=True)
    assert isinstance(enc, dict) and isinstance(enc, BatchEncoding)
    assert list(enc.keys()) == ["input_ids", "token_type_ids", "attention_mask"]
    assert enc.input_ids is enc["input_ids"] and enc.attention_mask == enc["attention_mask"]
    assert isinstance(enc[0], Encoding) and enc[1].ids == enc.input_ids[1]
    assert enc[:1] == {k: v[:1] for k, v in enc.items()}
    assert len(enc.encodings) == 2 and enc.n_sequences == 1
    assert enc.tokens(0)[:4] == ["[CLS]", "hello", "world", "[SEP]"]
    assert enc.word_ids(1)[0] is None and enc.word_ids(1)[1] == 0
    assert enc.sequence_ids(0)[1] == 0
    assert enc.char_to_token(1, 0) == 1 and enc.token_to_chars(0, 1) == (0, 5)
    with pytest.raises(AttributeError, match="labels"):
        enc.labels
    with pytest.raises(KeyError):
        enc[1.5]
    restored = pickle.loads(pickle.dumps(enc))
    assert dict(restored) == dict(enc) and restored.tokens(0) == enc.tokens(0)
    converted = BatchEncoding({"input_ids": [[1, 2], [3, 4]]}, tensor_type="jax")
    assert converted.encodings is None and converted.input_ids.dtype == jnp.int32
    with pytest.raises(ValueError, match="no tokenizers.Encoding"):
        converted.tokens(0)


def test_pad_method_like_hf(minilm_dir):
    ours, hf = AutoTokenizer.from_pretrained(minilm_dir), HFAutoTokenizer.from_pretrained(minilm_dir)
    features = [dict(ours(t)) for t in ("Hello world", "Crème brûlée à Zürich", "a")]
    options = (dict(), dict(padding="max_length", max_length=16), dict(pad_to_multiple_of=8), dict(padding_side="left"))
    for kw in options:
        got = {k: plain(v) for k, v in ours.pad(features, **kw).items()}
        want = {k: plain(v) for k, v in hf.pad(features, **kw).items()}
        assert got == want
    arrays = ours.pad(features, return_tensors="np")
    np.testing.assert_array_equal(arrays["input_ids"], hf.pad(features, return_tensors="np")["input_ids"])


def test_normalize_messages_is_the_one_conversation_check():
    from transformers_jax.tokenization import MessagesError, normalize_messages

    given = [{"role": "user", "content": "hi", "name": None}, {"role": "assistant", "content": "yo"}]
    assert normalize_messages(given) == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert given[0]["name"] is None  # the input is not changed
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert normalize_messages(parts, text_only=True, text_parts=True) == [{"role": "user", "content": "ab"}]
    assert normalize_messages([], allow_empty=True) == []
    cases = [
        (None, {}, "'messages' is missing", "messages", "missing_required_parameter"),
        ("hi", {}, "'messages' must be an array, got string", "messages", "invalid_type"),
        ([], {}, "'messages' must not be empty", "messages", "empty_array"),
        (["hi"], {}, "'messages[0]' must be an object, got string", "messages[0]", "invalid_type"),
        ([{"content": "x"}], {"text_only": True}, "'messages[0].role' must be a string; it is missing",
         "messages[0].role", "invalid_type"),
        ([{"role": "wizard", "content": "x"}], {"roles": ("user",)}, "must be one of user; got 'wizard'",
         "messages[0].role", "invalid_value"),
        ([{"role": "user", "content": 5}], {"text_only": True}, "'messages[0].content' must be a string; got integer",
         "messages[0].content", "invalid_type"),
        (parts, {"text_only": True}, "'messages[0].content' must be a string; got array", "messages[0].content",
         "invalid_type"),
        ([{"role": "user", "content": [{"type": "image"}]}], {"text_only": True, "text_parts": True},
         "'messages[0].content[0]' must be a text part", "messages[0].content", "invalid_type"),
    ]
    for messages, options, words, param, code in cases:
        with pytest.raises(MessagesError) as err:
            normalize_messages(messages, **options)
        assert words in str(err.value) and (err.value.param, err.value.code) == (param, code)
        assert isinstance(err.value, ValueError)
