"""Mixture-of-experts GGUF files (Mixtral as llama with experts, qwen2moe, qwen3moe), written here the way
llama.cpp's convert_hf_to_gguf.py writes them, against Hugging Face's own GGUF loader on the same file where
that loader can read it, else against the Hugging Face model the file was written from (see ORACLE).

Each tiny random Hugging Face model (hidden 32, 2 layers, 4-8 experts) is saved with ``save_pretrained``
(per-expert tensors, as the converter reads them) and written as F32 GGUF: llama.cpp's metadata keys
(``expert_count``, ``expert_used_count``, ``expert_feed_forward_length``,
``expert_shared_feed_forward_length``), each layer's experts stacked into one ``ffn_{gate,up,down}_exps``
tensor, Mixtral's q/k rows permuted as for llama, every tensor squeezed (the shared-expert gate becomes
``[hidden]``).

Hugging Face's GGUF loader (transformers 5.24) reads neither ``expert_feed_forward_length`` nor
``expert_shared_feed_forward_length``: it keeps its config defaults (Qwen2-MoE 1408 and 5632, Qwen3-MoE
768). The files compared with it therefore use those widths; test_where_hf_gguf_loader_fails_on_moe shows
what it does with other widths, with dense layers, and with Mixtral (which it does not know from llama).
"""
import re

import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file

import gguf
import transformers_jax as tj
from parity import compare_with_hf, perturb_torch
from test_gguf_architectures import _llamacpp_permute, _text_keys, write_tokenizer
from transformers_jax.gguf import ARCHITECTURES, architecture_for, read_gguf

COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=128, rms_norm_eps=1e-6)

# name -> (GGUF architecture, tokenizer kind, HF config class, config kwargs, our class)
CASES = {
    "mixtral": ("llama", "llama", transformers.MixtralConfig,
                dict(COMMON, head_dim=8, intermediate_size=48, num_local_experts=4, num_experts_per_tok=2),
                tj.MixtralForCausalLM),
    "qwen2_moe": ("qwen2moe", "qwen", transformers.Qwen2MoeConfig,
                  dict(COMMON, intermediate_size=64, num_experts=8, num_experts_per_tok=4, tie_word_embeddings=False,
                       moe_intermediate_size=1408, shared_expert_intermediate_size=5632),  # HF's GGUF defaults
                  tj.Qwen2MoeForCausalLM),
    "qwen3_moe": ("qwen3moe", "qwen", transformers.Qwen3MoeConfig,
                  dict(COMMON, head_dim=16, intermediate_size=64, num_experts=8, num_experts_per_tok=2,
                       norm_topk_prob=True, tie_word_embeddings=True, moe_intermediate_size=768),  # HF's default
                  tj.Qwen3MoeForCausalLM),
    # Widths HF's GGUF loader does not read, and a dense layer (Hugging Face's mlp_only_layers; llama.cpp's
    # Qwen MoE graphs have none, the map reads it from the layer's tensors).
    "qwen3_moe_small": ("qwen3moe", "qwen", transformers.Qwen3MoeConfig,
                        dict(COMMON, head_dim=8, intermediate_size=40, num_experts=4, num_experts_per_tok=2,
                             norm_topk_prob=True, moe_intermediate_size=16, mlp_only_layers=[1]),
                        tj.Qwen3MoeForCausalLM),
}
# Compared with the source model: HF's GGUF loader builds a dense LlamaForCausalLM from a Mixtral file and
# fails on the small Qwen3-MoE (see test_where_hf_gguf_loader_fails_on_moe).
ORACLE = {"mixtral": "source", "qwen3_moe_small": "source"}
EXPERT_KEY = re.compile(r"(?P<prefix>.*\.experts)\.(?P<expert>\d+)\.(?P<proj>\w+)\.weight")


def _moe_keys(writer, config, arch, expert_count=None):
    """The expert keys convert_hf_to_gguf.py writes (TextModel, plus Qwen2MoeModel's widths)."""
    writer.add_expert_count(expert_count or getattr(config, "num_local_experts", None) or config.num_experts)
    writer.add_expert_used_count(config.num_experts_per_tok)
    if arch != "llama":
        writer.add_expert_feed_forward_length(config.moe_intermediate_size)
    if arch == "qwen2moe":
        writer.add_expert_shared_feed_forward_length(config.shared_expert_intermediate_size)


def write_moe(path, name, drop=(), expert_count=None):
    """Write the GGUF of case ``name`` (leaving out the tensors named in ``drop``; ``expert_count``: another
    count in the metadata); return (the source HF model, its saved per-expert state dict)."""
    arch, tok, config_cls, kwargs, _ = CASES[name]
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"Tiny {name}")
    vocab = write_tokenizer(writer, tok)
    config = config_cls(vocab_size=vocab, **kwargs)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    perturb_torch(model, seed=1, scale=0.2)
    source_dir = path.parent / f"{path.stem}-source"
    model.save_pretrained(source_dir)
    state = load_file(source_dir / "model.safetensors")
    _text_keys(writer, config, head_dim=arch != "qwen2moe", rope_dim=arch == "llama")
    _moe_keys(writer, config, arch, expert_count)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    names = gguf.get_tensor_name_map(next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch),
                                     config.num_hidden_layers)
    experts = {}  # (merged HF name) -> {expert: weights}
    tensors = {}
    for hf_name, w in state.items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        if m := EXPERT_KEY.fullmatch(hf_name):
            experts.setdefault(f"{m['prefix']}.{m['proj']}", {})[int(m["expert"])] = w
            continue
        stem, suffix = hf_name.rsplit(".", 1)
        new = names.get_name(stem)
        if new is None and re.search(r"\.mlp\.(gate|up|down)_proj$", stem):  # a dense layer of an MoE model
            layer, proj = re.search(r"layers\.(\d+)\.mlp\.(\w+)_proj", stem).groups()
            new = f"blk.{layer}.ffn_{proj}"
        assert new is not None, hf_name
        if arch == "llama" and new.endswith("attn_q"):
            w = _llamacpp_permute(w, config.num_attention_heads)
        if arch == "llama" and new.endswith("attn_k"):
            w = _llamacpp_permute(w, config.num_key_value_heads)
        tensors[f"{new}.{suffix}"] = w
    for merged, by_expert in experts.items():  # the converter stacks a layer's experts: [experts, out, in]
        new = names.get_name(merged)
        assert new is not None and new.endswith("_exps"), merged
        tensors[f"{new}.weight"] = np.stack([by_expert[e] for e in range(len(by_expert))])
    for tensor_name, w in tensors.items():
        if tensor_name not in drop:
            writer.add_tensor(tensor_name, np.ascontiguousarray(np.squeeze(w), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model, state


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf_moe")
    return root, {name: write_moe(root / f"{name}.gguf", name) for name in CASES}


@pytest.fixture(scope="module")
def loaded(files):
    """name -> (ours, the oracle: HF's GGUF load of the same file, or the source model)."""
    root, sources = files
    out = {}
    for name in CASES:
        ours = tj.AutoModelForCausalLM.from_pretrained(root, gguf_file=f"{name}.gguf")
        if ORACLE.get(name) == "source":
            oracle = sources[name][0]
        else:
            oracle = transformers.AutoModelForCausalLM.from_pretrained(root, gguf_file=f"{name}.gguf").eval()
        oracle.set_attn_implementation("eager")
        out[name] = ours, oracle
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_family_class_and_config(name, files, loaded):
    _, sources = files
    ours, _ = loaded[name]
    assert type(ours) is CASES[name][4]
    c, ours = sources[name][0].config, ours.config
    fields = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "num_experts", "num_experts_per_tok", "tie_word_embeddings"]
    if name == "mixtral":  # HF's Mixtral always renormalises its top-k weights (no config field)
        fields += ["intermediate_size"]
        assert ours.norm_topk_prob is True
    else:
        fields += ["moe_intermediate_size", "mlp_only_layers", "norm_topk_prob"]
    fields += ["shared_expert_intermediate_size", "qkv_bias"] if name == "qwen2_moe" else ["head_dim"]
    for field in fields:
        assert getattr(ours, field) == getattr(c, field), field
    assert ours.rms_norm_eps == np.float32(c.rms_norm_eps)  # stored as float32


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_equals_the_saved_checkpoint(name, files):
    """Per-expert tensors under Hugging Face's checkpoint names, exactly the source's saved ones."""
    root, sources = files
    ckpt = read_gguf(root / f"{name}.gguf")
    want = dict(sources[name][1])
    if ckpt.config["tie_word_embeddings"]:
        want.pop("lm_head.weight", None)
    assert set(ckpt.state_dict) == set(want)
    for k, v in want.items():
        np.testing.assert_array_equal(ckpt.state_dict[k], v, err_msg=k)


@pytest.mark.parametrize("name", list(CASES))
def test_logits_equal_hf(name, files, loaded):
    _, sources = files
    ours, oracle = loaded[name]
    ids = np.random.default_rng(0).integers(0, ours.config.vocab_size, (2, 7))
    compare_with_hf(ours(input_ids=ids), oracle, {"input_ids": ids})
    if ORACLE.get(name) != "source":  # and HF's GGUF weights are the source's
        source = {k: v.numpy() for k, v in sources[name][0].state_dict().items()}
        assert set(oracle.state_dict()) == set(source)
        for k, v in oracle.state_dict().items():
            np.testing.assert_array_equal(v.numpy(), source[k], err_msg=k)


@pytest.mark.parametrize("name", list(CASES))
def test_greedy_generate_equals_hf(name, loaded):
    ours, oracle = loaded[name]
    ids = np.random.default_rng(1).integers(3, ours.config.vocab_size, (2, 5))
    got = np.asarray(ours.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0))
    with torch.no_grad():
        want = oracle.generate(input_ids=torch.tensor(ids), attention_mask=torch.ones(ids.shape, dtype=torch.long),
                               max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0).numpy()
    np.testing.assert_array_equal(got, want)


def test_where_hf_gguf_loader_fails_on_moe(files, loaded):
    """Hugging Face's GGUF loader (transformers 5.24) on these files, where we read them right:

    * ``mixtral``: the file is llama with ``llama.expert_count``; HF builds a dense LlamaForCausalLM, finds no
      ``ffn_gate``/``ffn_up``/``ffn_down`` tensors and leaves its MLPs randomly initialised (the experts unread).
    * ``qwen3_moe_small``: ``expert_feed_forward_length`` is not read, so ``moe_intermediate_size`` stays 768 and
      the expert tensors do not fit; the dense layer's MLP has no place either.
    """
    root, sources = files
    hf_mixtral = transformers.AutoModelForCausalLM.from_pretrained(root, gguf_file="mixtral.gguf")
    assert type(hf_mixtral).__name__ == "LlamaForCausalLM" and not hasattr(hf_mixtral.config, "num_local_experts")
    assert tuple(hf_mixtral.model.layers[0].mlp.gate_proj.weight.shape) == (48, 32)  # no such tensor in the file
    assert type(loaded["mixtral"][0]) is tj.MixtralForCausalLM and loaded["mixtral"][0].config.num_local_experts == 4
    small = transformers.AutoConfig.from_pretrained(root, gguf_file="qwen3_moe_small.gguf")
    assert small.moe_intermediate_size == 768 != loaded["qwen3_moe_small"][0].config.moe_intermediate_size == 16
    with pytest.raises(RuntimeError, match="mismatched_sizes"):
        transformers.AutoModelForCausalLM.from_pretrained(root, gguf_file="qwen3_moe_small.gguf")


@pytest.mark.parametrize("name", ["mixtral", "qwen2_moe"])
def test_tokenizer_equals_hf(name, files):
    """The tokenizer of an MoE file is its architecture's (Mixtral's: llama's SentencePiece-style one)."""
    root, _ = files
    ours = tj.AutoTokenizer.from_pretrained(root, gguf_file=f"{name}.gguf")
    theirs = transformers.AutoTokenizer.from_pretrained(root, gguf_file=f"{name}.gguf")
    for text in ["Hello world!", "the quick brown fox", "Café 🙂 x*2\n\tz", ""]:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"], text
    assert ours.chat_template == theirs.chat_template is not None


@pytest.mark.parametrize("missing", ["blk.1.ffn_up_exps.weight", "blk.0.ffn_gate_inp_shexp.weight"])
def test_missing_expert_tensor_is_named(missing, tmp_path):
    path = tmp_path / "broken.gguf"
    write_moe(path, "qwen2_moe", drop=(missing,))
    with pytest.raises(ValueError, match=rf"broken\.gguf has no tensor '{re.escape(missing)}'"):
        read_gguf(path)
    with pytest.raises(ValueError, match=rf"has no tensor '{re.escape(missing)}'"):
        tj.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name)


def test_expert_count_other_than_the_stacked_tensors_is_an_error(tmp_path):
    path = tmp_path / "miscounted.gguf"
    write_moe(path, "qwen3_moe_small", expert_count=8)  # 4 experts stacked
    with pytest.raises(ValueError, match=r"tensor 'blk\.0\.ffn_(gate|up|down)_exps\.weight' of shape \(4, .*should stack "
                                         r"8 experts' matrices \(num_experts=8\)"):
        read_gguf(path)


def test_llama_cpp_defaults_for_absent_expert_widths():
    """Without ``expert_feed_forward_length`` llama.cpp sizes experts ``feed_forward_length / expert_used_count``;
    without ``expert_shared_feed_forward_length`` the shared expert is ``feed_forward_length`` wide."""
    meta = {"general.architecture": "qwen2moe", "qwen2moe.embedding_length": 32, "qwen2moe.feed_forward_length": 96,
            "qwen2moe.block_count": 1, "qwen2moe.attention.head_count": 4, "qwen2moe.context_length": 64,
            "qwen2moe.attention.layer_norm_rms_epsilon": 1e-6, "qwen2moe.expert_count": 8,
            "qwen2moe.expert_used_count": 4, "tokenizer.ggml.tokens": ["a", "b"]}
    config = ARCHITECTURES["qwen2moe"].hf_config(meta, {"blk.0.ffn_gate_inp.weight"}, "f.gguf")
    assert (config["moe_intermediate_size"], config["shared_expert_intermediate_size"]) == (24, 96)
    assert config["norm_topk_prob"] is False and "mlp_only_layers" not in config
    llama = {**{k.replace("qwen2moe.", "llama."): v for k, v in meta.items()}, "general.architecture": "llama"}
    assert architecture_for(llama, "f.gguf").hf_class == "MixtralForCausalLM"
    assert architecture_for({**llama, "llama.expert_count": 0}, "f.gguf").hf_class == "LlamaForCausalLM"
