"""GGUF loading, checked against Hugging Face transformers' own GGUF loader on the same files."""
import time

import gguf
import numpy as np
import pytest
import transformers

from transformers_jax.gguf import read_gguf
from transformers_jax.tokenization.gguf_tokenizer import build_gguf_tokenizer, load_gguf_tokenizer

TEXTS = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé, Ångström, Straße",
    "emoji 🤗🚀 and 👩‍👩‍👧 family",
    "中文 日本語のテキスト 한국어",
    "def f(x):\n    return x ** 2  # square\n\tprint('done')",
    "spaces   and\t\ttabs\n\n\nnewlines    ",
    "  leading spaces",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "numbers 1234567 and 3.14159, year 2024",
    "",
]

CONFIG_FIELDS = [
    "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "max_position_embeddings", "rms_norm_eps",
    "rope_parameters", "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "head_dim",
]


# ----------------------------------------------------------------------------------------------
# The real file: SmolLM2-135M-Instruct, Q4_1
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ours(smollm2_gguf):
    start = time.perf_counter()
    ckpt = read_gguf(smollm2_gguf)
    ckpt.seconds = time.perf_counter() - start
    return ckpt


@pytest.fixture(scope="module")
def hf_model(smollm2_hf):
    return smollm2_hf[0]


@pytest.fixture(scope="module")
def hf_tokenizer(smollm2_hf):
    return smollm2_hf[1]


@pytest.fixture(scope="module")
def tokenizer(smollm2_gguf):
    return load_gguf_tokenizer(smollm2_gguf)


def test_state_dict_matches_transformers(ours, hf_model):
    reference = {name: t.detach().numpy() for name, t in hf_model.state_dict().items()}
    assert hf_model.config.tie_word_embeddings
    del reference["lm_head.weight"]  # tied: the same tensor as the embedding, not in the file
    assert set(ours.state_dict) == set(reference)
    for name, ref in reference.items():
        got = ours.state_dict[name]
        assert got.dtype == np.float32, name
        assert got.shape == ref.shape, name
        assert np.abs(got - ref).max() <= 1e-6, name
    assert ours.state_dict["model.layers.0.self_attn.q_proj.weight"].shape == (576, 576)
    assert ours.state_dict["model.layers.0.self_attn.k_proj.weight"].shape == (192, 576)
    assert ours.state_dict["model.layers.0.mlp.down_proj.weight"].shape == (576, 1536)


def test_config_matches_transformers(ours, hf_model):
    config = ours.config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["tie_word_embeddings"] is True and "lm_head.weight" not in ours.state_dict
    assert config["rope_theta"] == hf_model.config.rope_parameters["rope_theta"] == 100000.0
    assert "rope_scaling" not in config
    rebuilt = transformers.LlamaConfig(**config)
    for field in CONFIG_FIELDS:
        assert getattr(rebuilt, field) == getattr(hf_model.config, field), field
    for field in CONFIG_FIELDS:
        if field in config:
            assert config[field] == getattr(hf_model.config, field), field
    assert (config["num_hidden_layers"], config["num_key_value_heads"], config["max_position_embeddings"]) == (
        30, 3, 8192
    )


def test_reads_are_cached_and_shared_read_only(ours, smollm2_gguf):
    start = time.perf_counter()
    again = read_gguf(smollm2_gguf)
    assert time.perf_counter() - start < 0.5
    name = "model.embed_tokens.weight"
    assert again.state_dict[name] is ours.state_dict[name]
    with pytest.raises(ValueError):
        again.state_dict[name][0, 0] = 1.0
    again.config["vocab_size"] = -1  # a caller's edit must not reach the cache
    again.state_dict.pop(name)
    third = read_gguf(smollm2_gguf)
    assert third.config["vocab_size"] == 49152 and name in third.state_dict
    assert ours.seconds < 30  # the first, uncached read (about 4 s on 2 cores)


def test_tokenizer_ids_and_decode_match_transformers(tokenizer, hf_tokenizer):
    for text in TEXTS:
        ids = tokenizer(text)["input_ids"]
        assert ids == hf_tokenizer(text)["input_ids"], text
        assert tokenizer.encode(text) == hf_tokenizer.encode(text), text
        assert tokenizer.decode(ids) == hf_tokenizer.decode(ids), text
        assert tokenizer.decode(ids, skip_special_tokens=True) == hf_tokenizer.decode(ids, skip_special_tokens=True)
    assert tokenizer("<|im_start|>")["input_ids"] == [1]  # special tokens in text stay whole
    batch = tokenizer(TEXTS[:3])["input_ids"]
    assert batch == hf_tokenizer(TEXTS[:3])["input_ids"]


def test_tokenizer_special_tokens_and_settings(tokenizer, hf_tokenizer):
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        assert getattr(tokenizer, name) == getattr(hf_tokenizer, name), name
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert tokenizer.pad_token_id == hf_tokenizer.pad_token_id == 2
    assert tokenizer.model_max_length == 8192  # the file's context length
    assert tokenizer("hi")["input_ids"] == hf_tokenizer("hi")["input_ids"] == [6004]  # add_bos_token is false
    assert tokenizer.chat_template == hf_tokenizer.chat_template


def test_chat_template_matches_transformers(tokenizer, hf_tokenizer):
    messages = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is the capital of France? Réponds en français 🙂"},
    ]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    expected = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == expected
    assert text.endswith("<|im_start|>assistant\n") and text.startswith("<|im_start|>system\nYou are a terse")
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    hf_ids = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    if isinstance(hf_ids, dict) or hasattr(hf_ids, "keys"):
        hf_ids = hf_ids["input_ids"]
    assert list(ids) == list(hf_ids)
    assert list(ids)[0] == 1


# ----------------------------------------------------------------------------------------------
# Small files written here: an untied model with SentencePiece vocabulary, and bad inputs
# ----------------------------------------------------------------------------------------------
HIDDEN, HEADS, KV_HEADS, FFN, LAYERS = 16, 4, 2, 24, 2
PIECES = ["▁", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "llo", "hello", "▁hello", "or", "ld", "▁w",
          "▁wor", "▁world", "lo", "▁he"]


def _sentencepiece_vocab():
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + PIECES
    types = [2, 3, 3] + [6] * 256 + [1] * len(PIECES)
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-float(i) for i in range(len(PIECES))]
    return tokens, types, scores


def _llamacpp_permute(w, n_heads):
    """llama.cpp's conversion: interleave the two rotary halves of each head's rows."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_tiny(path, arch="llama", skip=(), rope_scaling=True):
    """A tiny untied Llama GGUF; returns the Hugging Face-layout weights it holds."""
    rng = np.random.default_rng(0)
    tokens, types, scores = _sentencepiece_vocab()
    vocab, head_dim = len(tokens), HIDDEN // HEADS
    hf = {"model.embed_tokens.weight": rng.normal(size=(vocab, HIDDEN)), "model.norm.weight": rng.normal(size=HIDDEN),
          "lm_head.weight": rng.normal(size=(vocab, HIDDEN))}
    gg = {"token_embd.weight": hf["model.embed_tokens.weight"], "output_norm.weight": hf["model.norm.weight"],
          "output.weight": hf["lm_head.weight"]}
    shapes = {"attn_q": ("self_attn.q_proj", (HEADS * head_dim, HIDDEN)),
              "attn_k": ("self_attn.k_proj", (KV_HEADS * head_dim, HIDDEN)),
              "attn_v": ("self_attn.v_proj", (KV_HEADS * head_dim, HIDDEN)),
              "attn_output": ("self_attn.o_proj", (HIDDEN, HIDDEN)), "ffn_gate": ("mlp.gate_proj", (FFN, HIDDEN)),
              "ffn_up": ("mlp.up_proj", (FFN, HIDDEN)), "ffn_down": ("mlp.down_proj", (HIDDEN, FFN)),
              "attn_norm": ("input_layernorm", (HIDDEN,)), "ffn_norm": ("post_attention_layernorm", (HIDDEN,))}
    for i in range(LAYERS):
        for gname, (hname, shape) in shapes.items():
            w = rng.normal(size=shape)
            hf[f"model.layers.{i}.{hname}.weight"] = w
            if gname == "attn_q":
                w = _llamacpp_permute(w, HEADS)
            elif gname == "attn_k":
                w = _llamacpp_permute(w, KV_HEADS)
            gg[f"blk.{i}.{gname}.weight"] = w

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny")
    for key, value in [("block_count", LAYERS), ("context_length", 256), ("embedding_length", HIDDEN),
                       ("feed_forward_length", FFN), ("attention.head_count", HEADS),
                       ("attention.head_count_kv", KV_HEADS), ("rope.dimension_count", head_dim)]:
        if key not in skip:
            writer.add_uint32(f"{arch}.{key}", value)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    writer.add_float32(f"{arch}.rope.freq_base", 500000.0)
    if rope_scaling:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(2.0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    for name, w in gg.items():
        # One tensor in float16, as some files store it; everything else in float32.
        dtype = np.float16 if name == "blk.1.ffn_up.weight" else np.float32
        writer.add_tensor(name, w.astype(dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    hf["model.layers.1.mlp.up_proj.weight"] = hf["model.layers.1.mlp.up_proj.weight"].astype(np.float16)
    return {name: w.astype(np.float32) for name, w in hf.items()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, _write_tiny(path)


def test_tiny_untied_file_round_trips_and_matches_transformers(tiny):
    path, weights = tiny
    ckpt = read_gguf(path)
    assert set(ckpt.state_dict) == set(weights)  # lm_head.weight present: the file has output.weight
    for name, w in weights.items():
        assert np.abs(ckpt.state_dict[name] - w).max() <= 1e-6, name
    assert ckpt.config["tie_word_embeddings"] is False
    assert ckpt.config["rope_scaling"] == {"rope_type": "linear", "factor": 2.0}
    assert ckpt.config["num_key_value_heads"] == KV_HEADS and ckpt.config["head_dim"] == HIDDEN // HEADS

    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    reference = {n: t.detach().numpy() for n, t in hf_model.state_dict().items()}
    assert set(reference) == set(ckpt.state_dict)
    for name, ref in reference.items():
        assert np.abs(ckpt.state_dict[name] - ref).max() <= 1e-6, name
    rebuilt = transformers.LlamaConfig(**{k: v for k, v in ckpt.config.items() if k != "rope_scaling"})
    for field in CONFIG_FIELDS:
        assert getattr(rebuilt, field) == getattr(hf_model.config, field), field


def test_tiny_sentencepiece_tokenizer_matches_transformers(tiny):
    path, _ = tiny
    tokenizer = load_gguf_tokenizer(path)
    reference = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    # "lld" and "helld" come out differently if the merges implied by the scores are ranked wrongly.
    texts = ["hello world", "hello  world hello", "lld helld worldo", "héllo wörld", "world", " hello", "h\n🙂", ""]
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert ids == reference(text)["input_ids"], text
        assert tokenizer.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)
    assert tokenizer("hello world")["input_ids"] == [1, 259 + PIECES.index("▁hello"), 259 + PIECES.index("▁world")]
    assert tokenizer.model_max_length == 256


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        read_gguf(missing)
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        load_gguf_tokenizer(missing)


def test_not_a_gguf_file(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a GGUF file")
    with pytest.raises(ValueError, match="model.gguf.*not a GGUF file"):
        read_gguf(bad)
    with pytest.raises(ValueError, match="not a GGUF file"):
        load_gguf_tokenizer(bad)


def test_truncated_gguf_file(tmp_path, tiny):
    path = tmp_path / "cut.gguf"
    path.write_bytes(tiny[0].read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.gguf"):
        read_gguf(path)


def test_unsupported_architecture(tmp_path):
    path = tmp_path / "encoder.gguf"
    _write_tiny(path, arch="bert")
    with pytest.raises(ValueError, match=r"'bert'.*encoder\.gguf|encoder\.gguf.*'bert'"):
        read_gguf(path)
    with pytest.raises(ValueError, match="bert"):
        load_gguf_tokenizer(path)


def test_missing_metadata_key(tmp_path):
    path = tmp_path / "nolayers.gguf"
    _write_tiny(path, skip=("block_count",))
    with pytest.raises(KeyError, match=r"llama\.block_count") as err:
        read_gguf(path)
    assert "nolayers.gguf" in str(err.value)


def test_unsupported_tokenizer_model():
    with pytest.raises(ValueError, match="'t5' is not supported.*tiny.gguf"):
        build_gguf_tokenizer({"ggml.model": "t5", "ggml.tokens": ["<pad>"]}, name_or_path="tiny.gguf")
