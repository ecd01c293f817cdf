"""Every supported GGUF architecture, through files written here the way llama.cpp's convert_hf_to_gguf.py
writes them, against Hugging Face's own GGUF loader on the same file (or, where that loader is lossy or
lacks the architecture, against the Hugging Face model the file was written from; see ORACLE).

A tiny random Hugging Face model per architecture (hidden 32-64, 2 layers; SmolLM3 4, so that one is NoPE) is written as F32 GGUF with
gguf-py's ``GGUFWriter``: llama.cpp's metadata keys, its tensor names (gguf-py's own ``TensorNameMap``,
what the converter uses) and its value changes (llama and smollm3 q/k row permutation, Gemma norms as ``1 + w``,
GPT-2 kernels transposed and the output matrix written out), plus a tokenizer of the kind that
architecture uses (SentencePiece-style for llama/mistral/phi3/gemma*, byte-level BPE for gpt2/qwen2/qwen3/smollm3)
with a chat template. The quantization types are covered on a separate file at the end.
"""
import numpy as np
import pytest
import torch
import transformers
from tokenizers import ByteLevelBPETokenizer, SentencePieceBPETokenizer

import gguf
import transformers_jax as tj
from parity import compare_with_hf, perturb_torch
from transformers_jax.gguf import read_gguf

CORPUS = [
    "The quick brown fox jumps over the lazy dog.", "Hello world! hello there, world of tokens.",
    "Café naïve résumé 🙂 中文", "def f(x):\n    return x * 2\n", "numbers 1234 and 56.78 in 2024",
    "  spaces   and\ttabs\n\nnewlines", "the theory of the thing is the thing of the theory",
] * 20
TEXTS = ["Hello world!", "the quick brown fox", "  leading and   inner  spaces", "Café 🙂 x*2\n\tz", "12345", ""]
MESSAGES = [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "the fox"},
            {"role": "user", "content": "world 🙂"}]

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
GEMMA_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' "
                  "else m['role']) + '\\n' + m['content'] + '<end_of_turn>\\n' }}{% endfor %}"
                  "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")
PHI3_TEMPLATE = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}")
LLAMA_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + "
                  "' [/INST]' }}{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}")

# llama.cpp token types
NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6


# ----------------------------------------------------------------------------------------------
# Tokenizers, as llama.cpp writes them
# ----------------------------------------------------------------------------------------------
def _sentencepiece(specials, gemma=False):
    """(tokens, scores, types): specials, the 256 byte tokens, then BPE pieces learned on CORPUS.
    ``specials`` is [(token, type)]. Gemma files spell whitespace-only tokens with real spaces."""
    trainer = SentencePieceBPETokenizer(add_prefix_space=not gemma)
    trainer.train_from_iterator(CORPUS, vocab_size=220, min_frequency=2, show_progress=False)
    learned = sorted(trainer.get_vocab().items(), key=lambda kv: kv[1])
    pieces = [t for t, _ in learned if not (t.startswith("<0x") and len(t) == 6)]
    if gemma:
        pieces += ["▁▁", "▁▁▁", "\n", "\t"]
        pieces = [" " * len(p) if set(p) == {"▁"} and len(p) > 1 else p for p in pieces]
    tokens = [t for t, _ in specials] + [f"<0x{b:02X}>" for b in range(256)]
    types = [k for _, k in specials] + [BYTE] * 256
    for p in pieces:
        if p not in tokens:
            tokens.append(p)
            types.append(NORMAL)
    scores = [0.0] * (len(specials) + 256) + [-float(i) for i in range(len(tokens) - len(specials) - 256)]
    return tokens, scores, types


def _byte_level(specials):
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(CORPUS, vocab_size=400, min_frequency=2, show_progress=False)
    vocab = sorted(trainer.get_vocab().items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab] + list(specials)
    types = [NORMAL] * len(vocab) + [CONTROL] * len(specials)
    model = trainer._tokenizer.model
    import json
    merges = json.loads(trainer._tokenizer.to_str())["model"]["merges"]
    merges = [" ".join(m) if isinstance(m, list) else m for m in merges]
    del model
    return tokens, types, merges


def write_tokenizer(writer, kind):
    """tokenizer.ggml.* keys and the chat template of tokenizer ``kind``; returns the vocabulary size."""
    if kind in ("llama", "phi3"):
        extra = [("<|endoftext|>", CONTROL), ("<|user|>", CONTROL), ("<|assistant|>", CONTROL), ("<|end|>", CONTROL)]
        tokens, scores, types = _sentencepiece([("<unk>", UNKNOWN), ("<s>", CONTROL), ("</s>", CONTROL)]
                                               + (extra if kind == "phi3" else []))
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(tokens.index("<|endoftext|>") if kind == "phi3" else 2)
        writer.add_unk_token_id(0)
        if kind == "phi3":
            writer.add_pad_token_id(tokens.index("<|endoftext|>"))
        writer.add_add_bos_token(kind == "llama")
        writer.add_add_eos_token(False)
        writer.add_chat_template(PHI3_TEMPLATE if kind == "phi3" else LLAMA_TEMPLATE)
    elif kind == "gemma":
        specials = [("<pad>", CONTROL), ("<eos>", CONTROL), ("<bos>", CONTROL), ("<unk>", UNKNOWN), ("<mask>", 4),
                    ("<start_of_turn>", 4), ("<end_of_turn>", 4)]
        tokens, scores, types = _sentencepiece(specials, gemma=True)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_bos_token_id(2)
        writer.add_eos_token_id(1)
        writer.add_unk_token_id(3)
        writer.add_pad_token_id(0)
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(False)
        writer.add_add_space_prefix(False)
        writer.add_chat_template(GEMMA_TEMPLATE)
    else:  # byte-level BPE: "gpt2" or "qwen"
        specials = ["<|endoftext|>"] + (["<|im_start|>", "<|im_end|>"] if kind == "qwen" else [])
        tokens, types, merges = _byte_level(specials)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("qwen2" if kind == "qwen" else "gpt-2")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        end = tokens.index("<|endoftext|>")
        writer.add_bos_token_id(end)
        writer.add_eos_token_id(tokens.index("<|im_end|>") if kind == "qwen" else end)
        writer.add_pad_token_id(end)
        writer.add_add_bos_token(False)
        writer.add_chat_template(CHATML)
    return len(tokens)


# ----------------------------------------------------------------------------------------------
# Models, as convert_hf_to_gguf.py writes them
# ----------------------------------------------------------------------------------------------
# architecture -> (GGUF architecture, tokenizer kind, HF config class, config kwargs, llama.cpp metadata writer)
COMMON = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=10000.0)


def _text_keys(w, c, head_dim=True, rope_dim=False):
    """TextModel.set_gguf_parameters (plus what the llama-family subclasses add)."""
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    rope = getattr(c, "rope_parameters", None) or {}
    w.add_rope_freq_base(rope.get("rope_theta", 10000.0))
    if head_dim:
        w.add_key_length(c.head_dim)
        w.add_value_length(c.head_dim)
    if rope_dim:
        w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)


def _gemma2_keys(w, c):
    _text_keys(w, c)
    w.add_sliding_window(c.sliding_window)
    if c.model_type == "gemma2":
        w.add_attn_logit_softcapping(c.attn_logit_softcapping)
        w.add_final_logit_softcapping(c.final_logit_softcapping)


def _phi3_keys(w, c):
    _text_keys(w, c, head_dim=False, rope_dim=True)
    w.add_rope_scaling_orig_ctx_len(c.original_max_position_embeddings)


def _gpt2_keys(w, c):
    w.add_block_count(c.n_layer)
    w.add_context_length(c.n_positions)
    w.add_embedding_length(c.n_embd)
    w.add_feed_forward_length(4 * c.n_embd)
    w.add_head_count(c.n_head)
    w.add_layer_norm_eps(c.layer_norm_epsilon)


CASES = {
    "llama": ("llama", "llama", transformers.LlamaConfig, dict(COMMON, head_dim=16), lambda w, c: _text_keys(w, c, rope_dim=True)),
    # llama.cpp converts Mistral as the llama architecture.
    "mistral": ("llama", "llama", transformers.MistralConfig, dict(COMMON, head_dim=16, sliding_window=None),
                lambda w, c: _text_keys(w, c, rope_dim=True)),
    "qwen2": ("qwen2", "qwen", transformers.Qwen2Config, dict(COMMON, tie_word_embeddings=False), lambda w, c: _text_keys(w, c, head_dim=False)),
    "qwen3": ("qwen3", "qwen", transformers.Qwen3Config, dict(COMMON, head_dim=16, tie_word_embeddings=True), _text_keys),
    "gemma": ("gemma", "gemma", transformers.GemmaConfig, dict(COMMON, head_dim=16), _text_keys),
    "gemma2": ("gemma2", "gemma", transformers.Gemma2Config, dict(COMMON, head_dim=16, query_pre_attn_scalar=16,
                                                                 sliding_window=4, attn_logit_softcapping=50.0,
                                                                 final_logit_softcapping=30.0), _gemma2_keys),
    "gemma3": ("gemma3", "gemma", transformers.Gemma3TextConfig, dict(COMMON, head_dim=16, query_pre_attn_scalar=16,
                                                                     sliding_window=4, num_hidden_layers=2,
                                                                     layer_types=["sliding_attention", "sliding_attention"]),
               _gemma2_keys),
    "phi3": ("phi3", "phi3", transformers.Phi3Config, dict(COMMON, tie_word_embeddings=False, pad_token_id=None,
                                                           original_max_position_embeddings=128), _phi3_keys),
    "gpt2": ("gpt2", "gpt2", transformers.GPT2Config, dict(n_embd=32, n_layer=2, n_head=4, n_positions=1024), _gpt2_keys),
    # llama.cpp writes SmolLM3 as llama (permuted q/k, no head_dim key as HF's config has none); its 4th
    # layer is a NoPE layer, which the file does not say (llama.cpp fixes the interval at 4).
    "smollm3": ("smollm3", "qwen", transformers.SmolLM3Config, dict(COMMON, num_hidden_layers=4, tie_word_embeddings=True,
                                                                           pad_token_id=None, bos_token_id=None, eos_token_id=None),
                lambda w, c: _text_keys(w, c, head_dim=False, rope_dim=True)),
}

# Which model the logits are compared with. "gguf": Hugging Face's GGUF load of the same file.
# "source": the Hugging Face model the file was written from, because Hugging Face's GGUF loader gets
# the file wrong (see test_where_hf_gguf_loader_is_lossy for each).
ORACLE = {"gemma": "source", "gemma2": "source", "gemma3": "source", "qwen3": "source", "smollm3": "source"}
NO_HF_GGUF_MODEL = ("gemma", "qwen3", "smollm3")  # HF's GGUF loader cannot build these (smollm3: not an architecture it has)


def _llamacpp_permute(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_model(path, name):
    """Write the GGUF of architecture ``name``; return the source HF model."""
    arch, tok, config_cls, kwargs, keys = CASES[name]
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"Tiny {name.capitalize()}")
    vocab = write_tokenizer(writer, tok)
    config = config_cls(vocab_size=vocab, **kwargs)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    perturb_torch(model, seed=1, scale=0.2)
    keys(writer, config)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    gemma = arch.startswith("gemma")
    if gemma:  # norms stored as 1 + w: make them exactly representable so the file is exact
        with torch.no_grad():
            for k, p in model.named_parameters():
                if "norm" in k:
                    p.copy_(torch.round(p * 1024) / 1024)
        state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH_NAMES_INV[arch] if hasattr(gguf, "MODEL_ARCH_NAMES_INV")
                                     else next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch),
                                     config.num_hidden_layers)
    tied = getattr(config, "tie_word_embeddings", False)
    for hf_name, w in state.items():
        if hf_name == "lm_head.weight" and tied:
            continue
        if hf_name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        stem, suffix = hf_name.rsplit(".", 1)
        new = names.get_name(stem)
        assert new is not None, hf_name
        if arch in ("llama", "smollm3") and new.endswith("attn_q"):
            w = _llamacpp_permute(w, config.num_attention_heads)
        if arch in ("llama", "smollm3") and new.endswith("attn_k"):
            w = _llamacpp_permute(w, config.num_key_value_heads)
        if gemma and stem.endswith("norm"):
            w = w + 1
        if arch == "gpt2" and w.ndim == 2 and stem.endswith(("c_attn", "c_proj", "c_fc")):
            w = w.T
        writer.add_tensor(f"{new}.{suffix}", np.ascontiguousarray(w, dtype=np.float32))
        if arch == "gpt2" and new == "token_embd":  # llama.cpp writes GPT-2's tied output matrix out
            writer.add_tensor("output.weight", np.ascontiguousarray(w, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf_archs")
    return root, {name: write_model(root / f"{name}.gguf", name) for name in CASES}


@pytest.fixture(scope="module")
def loaded(files):
    """name -> (ours, our tokenizer, HF's GGUF load or None, HF's GGUF tokenizer)."""
    root, sources = files
    out = {}
    for name in CASES:
        file = f"{name}.gguf"
        ours = tj.AutoModelForCausalLM.from_pretrained(root, gguf_file=file)
        tokenizer = tj.AutoTokenizer.from_pretrained(root, gguf_file=file)
        hf = hf_tok = None
        if name not in ("gemma", "smollm3"):  # HF's GGUF loader has no gemma or smollm3 architecture
            hf_tok = transformers.AutoTokenizer.from_pretrained(root, gguf_file=file)
        if name not in NO_HF_GGUF_MODEL:  # qwen3: HF's load fails on this file (head_dim 16)
            hf = transformers.AutoModelForCausalLM.from_pretrained(root, gguf_file=file).eval()
            hf.set_attn_implementation("eager")
        out[name] = (ours, tokenizer, hf, hf_tok)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_logits_equal_hf(name, files, loaded):
    _, sources = files
    ours, tokenizer, hf, _ = loaded[name]
    oracle = sources[name] if ORACLE.get(name) == "source" else hf
    oracle.set_attn_implementation("eager")
    ids = np.random.default_rng(0).integers(0, ours.config.vocab_size, (2, 7))
    compare_with_hf(ours(input_ids=ids), oracle, {"input_ids": ids})
    if hf is not None and ORACLE.get(name) != "source":  # and HF's GGUF weights are the source's
        source = {k: v.numpy() for k, v in sources[name].state_dict().items()}
        for k, v in hf.state_dict().items():
            np.testing.assert_array_equal(v.numpy(), source[k], err_msg=k)


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_and_config_equal_the_source(name, files):
    root, sources = files
    source = sources[name]
    ckpt = read_gguf(root / f"{name}.gguf")
    want = {k: v.numpy() for k, v in source.state_dict().items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    if ckpt.config.get("tie_word_embeddings", False):
        want.pop("lm_head.weight", None)
    assert set(ckpt.state_dict) == set(want)
    for k, v in want.items():
        np.testing.assert_array_equal(ckpt.state_dict[k], v, err_msg=k)
    ours = tj.AutoConfig.for_model(**ckpt.config) if hasattr(tj.AutoConfig, "for_model") else None
    c = source.config
    fields = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"]
    if name != "gpt2":
        fields += ["intermediate_size", "num_key_value_heads", "rms_norm_eps", "tie_word_embeddings"]
    if name not in ("gpt2", "qwen2", "phi3", "smollm3"):
        fields += ["head_dim"]
    if name.startswith("gemma"):
        fields += ["hidden_activation"] if name != "gemma" else ["hidden_act"]
    if name in ("gemma2", "gemma3"):
        fields += ["query_pre_attn_scalar", "sliding_window", "final_logit_softcapping", "layer_types"]
    model = tj.AutoModelForCausalLM.from_pretrained(root, gguf_file=f"{name}.gguf") if ours is None else None
    ours = ours or model.config
    if name == "smollm3":  # no head_dim in HF's config; the NoPE layers are llama.cpp's fixed every-4th
        fields += ["no_rope_layers", "layer_types"]
        assert ours.head_dim == c.hidden_size // c.num_attention_heads and c.no_rope_layers == [1, 1, 1, 0]
    if name == "gpt2":  # llama.cpp writes GPT-2's output matrix out, so the file's model is untied
        assert ours.tie_word_embeddings is False and ours.n_inner == 4 * c.n_embd and ours.n_positions == c.n_positions
    for field in fields:
        want = np.float32(getattr(c, field)) if field == "rms_norm_eps" else getattr(c, field)  # stored as float32
        assert getattr(ours, field) == want, field


@pytest.mark.parametrize("name", list(CASES))
def test_tokenizer_and_chat_template_equal_hf(name, loaded):
    _, tokenizer, _, reference = loaded[name]
    if reference is None:  # HF cannot read the file; another file has the same tokenizer metadata
        reference = loaded[{"gemma": "gemma2", "smollm3": "qwen2"}[name]][3]
    for text in TEXTS:
        ids = tokenizer(text)["input_ids"]
        assert ids == reference(text)["input_ids"], text
        assert tokenizer.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True), text
    for field in ("bos_token", "eos_token", "unk_token", "pad_token"):
        assert getattr(tokenizer, field) == getattr(reference, field), field
    assert tokenizer.chat_template == reference.chat_template is not None
    text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text == reference.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == reference(text, add_special_tokens=False)["input_ids"]


def test_where_hf_gguf_loader_is_lossy(files, loaded):
    """Hugging Face's GGUF loader (transformers 5.x, legacy path) gets these files wrong; we read them right:

    * ``gemma``, ``smollm3``: not supported architectures at all (ValueError).
    * ``gemma2``/``gemma3``: ``query_pre_attn_scalar`` is not in GGUF; HF keeps its config default (256)
      whatever the head size, where llama.cpp scales queries by ``head_dim ** -0.5`` (27B: hidden/heads).
    * ``gemma2``: ``attn_logit_softcapping``/``final_logit_softcapping`` from the file are ignored (defaults kept).
    * ``qwen3``: ``attention.key_length`` is not read, so ``head_dim`` stays 128 (the Qwen3 models happen to use
      128; a file with another head size fails to load).
    * ``gpt2``: ``feed_forward_length`` and ``context_length`` do not reach ``n_inner``/``n_positions``.
    * ``rope.scaling.*`` is dropped for every architecture but gpt-oss (tests/test_gguf.py's linear-scaling file).
    """
    root, sources = files
    for name in ("gemma", "smollm3"):
        with pytest.raises(ValueError, match=f"architecture {name} is not supported"):
            transformers.AutoConfig.from_pretrained(root, gguf_file=f"{name}.gguf")
    for name in ("gemma2", "gemma3"):
        hf = loaded[name][2]
        assert hf.config.query_pre_attn_scalar == 256 != sources[name].config.query_pre_attn_scalar
        assert loaded[name][0].config.query_pre_attn_scalar == 16
    qwen3 = transformers.AutoConfig.from_pretrained(root, gguf_file="qwen3.gguf")
    assert qwen3.head_dim == 128 != loaded["qwen3"][0].config.head_dim == 16
    with pytest.raises(RuntimeError, match="mismatch"):
        transformers.AutoModelForCausalLM.from_pretrained(root, gguf_file="qwen3.gguf")


def test_unsupported_architecture_names_file_and_architecture(tmp_path):
    path = tmp_path / "falcon-tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "falcon")
    writer.add_block_count(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match=r"falcon-tiny\.gguf holds a 'falcon' model.*supported: llama, qwen2"):
        read_gguf(path)
    with pytest.raises(ValueError, match="falcon-tiny.gguf holds a 'falcon' model"):
        tj.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name)


# ----------------------------------------------------------------------------------------------
# Quantization types: one llama file holding every type we read
# ----------------------------------------------------------------------------------------------
Q = gguf.GGMLQuantizationType
# llama.cpp tensor stem -> the type it is stored in (layer 0 / layer 1). gguf-py quantizes all but the
# K-quants; those get random blocks with small finite scales (real Q4_K and Q6_K tensors are also read
# in tests/test_real_gemma3.py, Q4_1 and Q8_0 in tests/test_gguf.py's SmolLM2).
QTYPES = [
    {"attn_q": Q.Q4_0, "attn_k": Q.Q4_1, "attn_v": Q.Q5_0, "attn_output": Q.Q5_1, "ffn_gate": Q.Q8_0,
     "ffn_up": Q.F16, "ffn_down": Q.BF16},
    {"attn_q": Q.Q4_K, "attn_k": Q.Q5_K, "attn_v": Q.Q6_K, "attn_output": Q.Q8_0, "ffn_gate": Q.Q4_K,
     "ffn_up": Q.Q5_K, "ffn_down": Q.Q6_K},
]
K_QUANTS = (Q.Q4_K, Q.Q5_K, Q.Q6_K)


def _random_k_blocks(rng, qtype, shape):
    """Random bytes as ``qtype`` blocks, with every f16 scale set small and finite (Q4_K/Q5_K: d and
    dmin first; Q6_K: d last)."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    rows, cols = shape
    blocks = rng.integers(0, 256, (rows, cols // block_size, type_size), dtype=np.uint8)
    scales = (rng.uniform(0.5, 1.0, blocks.shape[:2] + (2,)) * 1e-4).astype(np.float16).view(np.uint8)
    if qtype == Q.Q6_K:
        blocks[..., -2:] = scales[..., :2]
    else:
        blocks[..., :4] = scales
    return blocks.reshape(rows, -1)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf_quants") / "quants.gguf"
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("Tiny quantized")
    vocab = write_tokenizer(writer, "llama")
    config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=256, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4, head_dim=64,
                                      max_position_embeddings=64, rms_norm_eps=1e-5)
    _text_keys(writer, config, rope_dim=True)
    writer.add_tensor("token_embd.weight", (rng.standard_normal((vocab, 256)) * 0.2).astype(np.float32))
    writer.add_tensor("output_norm.weight", rng.uniform(0.5, 1.5, 256).astype(np.float32))
    types = set()
    for layer, table in enumerate(QTYPES):
        for stem in ("attn_norm", "ffn_norm"):
            writer.add_tensor(f"blk.{layer}.{stem}.weight", rng.uniform(0.5, 1.5, 256).astype(np.float32))
        for stem, qtype in table.items():
            if qtype in K_QUANTS:
                data = _random_k_blocks(rng, qtype, (256, 256))
            else:
                data = gguf.quants.quantize((rng.standard_normal((256, 256)) * 0.04).astype(np.float32), qtype)
            writer.add_tensor(f"blk.{layer}.{stem}.weight", data, raw_dtype=qtype)
            types.add(qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, types


def test_every_quantization_type_dequantizes_as_gguf_py_and_hf(quantized):
    path, types = quantized
    assert {t.name for t in types} >= {"F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}
    ckpt = read_gguf(path)
    reader = gguf.GGUFReader(str(path))
    for tensor in reader.tensors:  # ours is gguf-py's dequantization, renamed and (q/k) un-permuted
        want = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        layer, stem = (tensor.name.split(".")[1], tensor.name.split(".")[2]) if tensor.name.startswith("blk.") else (None, None)
        if stem in ("attn_q", "attn_k"):
            want = want.reshape(4, 32, 2, 256).swapaxes(1, 2).reshape(256, 256)
        hf_name = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}.get(
            tensor.name) or f"model.layers.{layer}.{dict(LLAMA_NAMES)[stem]}.weight"
        assert np.isfinite(want).all() and np.abs(want).max() > 0, tensor.name
        np.testing.assert_array_equal(ckpt.state_dict[hf_name], want, err_msg=f"{tensor.name} ({tensor.tensor_type.name})")
    hf = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    hf.set_attn_implementation("eager")
    for name, value in hf.state_dict().items():
        if name != "lm_head.weight":
            np.testing.assert_array_equal(ckpt.state_dict[name], value.numpy(), err_msg=name)
    ours = tj.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    ids = np.random.default_rng(1).integers(0, ours.config.vocab_size, (2, 7))
    compare_with_hf(ours(input_ids=ids), hf, {"input_ids": ids})


LLAMA_NAMES = [("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"), ("attn_q", "self_attn.q_proj"),
               ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
               ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj")]


def test_convert_cli_gguf_to_hf_for_a_non_llama_architecture(files, tmp_path):
    """``transformers-jax convert --gguf FILE --to-hf OUT`` for Gemma 2: HF PyTorch loads OUT and gives the
    source model's logits; the tokenizer (with its chat template) goes along."""
    from train.convert import main

    root, sources = files
    out = tmp_path / "gemma2-hf"
    assert main(["--gguf", str(root / "gemma2.gguf"), "--to-hf", str(out)]) == 0
    converted = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert converted.config.query_pre_attn_scalar == 16 and type(converted).__name__ == "Gemma2ForCausalLM"
    ids = torch.tensor(np.random.default_rng(2).integers(0, converted.config.vocab_size, (1, 6)))
    with torch.no_grad():
        want, got = sources["gemma2"](ids).logits, converted(ids).logits
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5 * float(want.abs().max()))
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template == GEMMA_TEMPLATE
    assert tokenizer("Hello world!")["input_ids"] == tj.AutoTokenizer.from_pretrained(root, gguf_file="gemma2.gguf")(
        "Hello world!")["input_ids"]
