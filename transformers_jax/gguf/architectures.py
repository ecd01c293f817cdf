"""Per-architecture maps from GGUF (llama.cpp names) to Hugging Face (config keys, PyTorch tensor names).

Each architecture is one declarative :class:`GGUFArchitecture` entry in :data:`ARCHITECTURES`:

* ``config``: Hugging Face config key -> :class:`Key`, a metadata key under the ``{arch}.`` prefix
  (``"llama.block_count"`` is ``Key("block_count")``) with its type and what to do when it is absent;
* ``config_fixups``: small functions ``(config, meta) -> None`` for the entries no single key gives
  (tied embeddings, bias flags, RoPE scaling, special token ids...);
* ``global_tensors`` / ``layer_tensors``: llama.cpp tensor stems -> Hugging Face module names
  (``blk.{i}.{stem}`` becomes ``model.layers.{i}.{name}``), plus ``ignored_tensors``; a name holding
  ``{expert}`` (:data:`EXPERT`) marks a tensor of all of a layer's experts (llama.cpp's ``ffn_*_exps``),
  split along its first axis into one Hugging Face tensor per expert;
* ``tensor_groups``: layer tensor stems that come together (a mixture-of-experts block's router and
  experts): a layer with some but not all of them is an error that names the missing tensor;
* ``when``: for an entry that shares its ``general.architecture`` with another and takes over when the
  file's metadata says so (Mixtral is ``llama`` with ``llama.expert_count``); listed in :data:`VARIANTS`;
* ``tensor_fixups``: tensor stem -> ``(weights, config) -> weights`` for layout and value changes
  (llama's q/k row un-permutation, Gemma's norms stored as ``1 + w``, GPT-2's Conv1D kernels);
* ``tensor_config``: tensor stem -> ``(config, weights) -> None`` for config entries a file keeps as
  tensors (Phi-3's LongRoPE factors); such tensors are consumed, not loaded as weights;
* ``layer_prefix``: where the repeated blocks live in the Hugging Face names (``model.layers``,
  GPT-2's ``transformer.h``).

Adding an architecture means adding one entry here (reusing the fix-up functions that apply) and
listing it in :data:`ARCHITECTURES` (or :data:`VARIANTS`); the reader needs no change.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from transformers_jax.gguf.mapping import (  # GGUFArchitecture, GGUFMetadataError and require are re-exported
    EXPERT,
    GGUFArchitecture,
    GGUFMetadataError,
    Key,
    Meta,
    bias_flags,
    minus_one,
    other_key,
    require,
    rope_scaling,
    same_as,
    special_token_ids,
    tied_embeddings,
    transposed,
    unpermute_rows,
    vocab_from_tokens,
)

__all__ = ["ARCHITECTURES", "SUPPORTED_ARCHITECTURES", "VARIANTS", "GGUFArchitecture", "GGUFMetadataError",
           "architecture_for", "require"]

# ----------------------------------------------------------------------------------------------
# Fix-ups of one or a few architectures
# ----------------------------------------------------------------------------------------------
def longrope_factors(which: str) -> Callable[[dict, np.ndarray], None]:
    """Tensor config: Phi-3's LongRoPE ``{which}_factor`` list, which llama.cpp stores as a tensor
    (``rope_factors_long`` / ``rope_factors_short``)."""

    def read(config: dict, weights: np.ndarray) -> None:
        rope = config.setdefault("rope_scaling", {"rope_type": "longrope"})
        rope["rope_type"] = "longrope"
        rope[f"{which}_factor"] = [float(x) for x in np.asarray(weights, np.float64).reshape(-1)]

    return read


def gemma_attention_scalar(config: dict, meta: Meta) -> None:
    """``query_pre_attn_scalar``, which GGUF does not store: llama.cpp scales queries by
    ``head_dim ** -0.5``, except for the 27B models (Gemma 2: 46 layers, Gemma 3: 62), whose
    ``hidden_size / num_attention_heads`` it uses instead, as their Hugging Face configs say."""
    big = {"gemma2": 46, "gemma3": 62}.get(meta.arch)
    if config["num_hidden_layers"] == big:
        config["query_pre_attn_scalar"] = config["hidden_size"] // config["num_attention_heads"]
    else:
        config["query_pre_attn_scalar"] = config["head_dim"]


def layer_pattern(period: int) -> Callable[[dict, Meta], None]:
    """``layer_types``: llama.cpp's fixed local/global pattern (every ``period``-th layer global)."""

    def fix(config: dict, meta: Meta) -> None:
        config["layer_types"] = [
            "full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(config["num_hidden_layers"])
        ]

    return fix


def gemma3_rope(config: dict, meta: Meta) -> None:
    """Gemma 3's RoPE per layer type: global layers use ``rope.freq_base`` and the file's scaling
    (llama.cpp applies it to global layers only); local layers use base 10000, fixed in llama.cpp."""
    full = {"rope_type": "default", "rope_theta": float(meta.get("rope.freq_base", 1_000_000.0))}
    rope_scaling(config, meta)
    full.update(config.pop("rope_scaling", {}))
    swa_base = meta.get("rope.freq_base_swa", 10_000.0)
    config["rope_parameters"] = {
        "full_attention": full,
        "sliding_attention": {"rope_type": "default", "rope_theta": float(swa_base)},
    }


def phi3_rope(config: dict, meta: Meta) -> None:
    """Phi-3's ``original_max_position_embeddings`` (llama.cpp: ``rope.scaling.original_context_length``)."""
    original = meta.get("rope.scaling.original_context_length")
    config["original_max_position_embeddings"] = int(original) if original is not None else config["max_position_embeddings"]


def row_vector(weights: np.ndarray, config: dict) -> np.ndarray:
    """Tensor fix-up: Qwen2-MoE's shared-expert gate is a ``[1, hidden]`` Linear weight; llama.cpp's
    converter squeezes it to ``[hidden]``."""
    return weights.reshape(1, -1)


def has_experts(meta: Meta) -> bool:
    """Variant test: the file's ``{arch}.expert_count`` is above zero."""
    return int(meta.get("expert_count", 0) or 0) > 0


def expert_width(config: dict, meta: Meta) -> int:
    """Key default: llama.cpp's expert width when ``expert_feed_forward_length`` is absent:
    ``feed_forward_length / expert_used_count``."""
    return config["intermediate_size"] // config["num_experts_per_tok"]


def dense_layers(moe_stems: tuple[str, ...]) -> Callable[[dict, Meta], None]:
    """``mlp_only_layers``: the layers holding none of the mixture-of-experts tensors ``moe_stems``
    (llama.cpp's Qwen MoE graphs make every layer sparse; Hugging Face's configs allow dense ones)."""

    def fix(config: dict, meta: Meta) -> None:
        dense = [i for i in range(config["num_hidden_layers"])
                 if not any(f"blk.{i}.{stem}.weight" in meta.tensor_names for stem in moe_stems)]
        if dense:
            config["mlp_only_layers"] = dense

    return fix


def qkv_bias(config: dict, meta: Meta) -> None:
    """Qwen2-MoE's ``qkv_bias``: whether the file has q/k/v biases."""
    config["qkv_bias"] = any(n.endswith("attn_q.bias") for n in meta.tensor_names)


def gelu_tanh(config: dict, meta: Meta) -> None:
    """Gemma's MLP activation: llama.cpp computes GELU with the tanh approximation."""
    config["hidden_activation"] = "gelu_pytorch_tanh"


# ----------------------------------------------------------------------------------------------
# The architectures
# ----------------------------------------------------------------------------------------------
def decoder_keys(head_dim: bool = True, **extra: Key) -> dict[str, Key]:
    """The config keys of a llama-like decoder; ``head_dim`` from ``attention.key_length`` (else
    ``rope.dimension_count``) when the family's config has the field."""
    keys = {
        "vocab_size": Key("vocab_size", int, vocab_from_tokens),
        "hidden_size": Key("embedding_length"),
        "intermediate_size": Key("feed_forward_length"),
        "num_hidden_layers": Key("block_count"),
        "num_attention_heads": Key("attention.head_count"),
        "num_key_value_heads": Key("attention.head_count_kv", int, same_as("num_attention_heads")),
        "max_position_embeddings": Key("context_length"),
        "rms_norm_eps": Key("attention.layer_norm_rms_epsilon", float),
        "rope_theta": Key("rope.freq_base", float, 10000.0),  # llama.cpp's default
    }
    if head_dim:
        keys["head_dim"] = Key("attention.key_length", int, other_key("rope.dimension_count"))
    keys.update(extra)
    return keys


def constant(**values: Any) -> Callable[[dict, Meta], None]:
    """Config fix-up: entries llama.cpp fixes per architecture rather than storing."""
    return lambda config, meta: config.update(values)


LLAMA_LAYER_TENSORS = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
DECODER_GLOBAL_TENSORS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
# llama.cpp's precomputed RoPE frequency factors have no Hugging Face parameter (the config describes them).
ROPE_FACTOR_TENSORS = ("rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight")

LLAMA = GGUFArchitecture(
    name="llama",
    model_type="llama",
    hf_class="LlamaForCausalLM",
    config=decoder_keys(),
    config_fixups=(tied_embeddings, bias_flags, rope_scaling, special_token_ids),
    global_tensors=DECODER_GLOBAL_TENSORS,
    layer_tensors=LLAMA_LAYER_TENSORS,
    ignored_tensors=ROPE_FACTOR_TENSORS,
    tensor_fixups={"attn_q": unpermute_rows("num_attention_heads"), "attn_k": unpermute_rows("num_key_value_heads")},
)

# SmolLM3: llama.cpp converts it as llama (same tensors, q/k rows permuted) and fixes its NoPE layers in
# code (every 4th layer, no metadata key), which is Hugging Face's no_rope_layer_interval=4; no sliding window.
SMOLLM3 = dataclasses.replace(LLAMA, name="smollm3", model_type="smollm3", hf_class="SmolLM3ForCausalLM",
                              config_fixups=(*LLAMA.config_fixups, constant(no_rope_layer_interval=4)))

# Qwen2 has q/k/v biases (always, in Hugging Face's class) and its q/k rows are stored unpermuted.
QWEN2 = GGUFArchitecture(
    name="qwen2",
    model_type="qwen2",
    hf_class="Qwen2ForCausalLM",
    config=decoder_keys(head_dim=False),
    config_fixups=(tied_embeddings, rope_scaling, special_token_ids),
    global_tensors=DECODER_GLOBAL_TENSORS,
    layer_tensors=LLAMA_LAYER_TENSORS,
    ignored_tensors=ROPE_FACTOR_TENSORS,
)

QWEN3 = GGUFArchitecture(
    name="qwen3",
    model_type="qwen3",
    hf_class="Qwen3ForCausalLM",
    config=decoder_keys(),
    config_fixups=(tied_embeddings, bias_flags, rope_scaling, special_token_ids),
    global_tensors=DECODER_GLOBAL_TENSORS,
    layer_tensors={**LLAMA_LAYER_TENSORS, "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"},
    ignored_tensors=ROPE_FACTOR_TENSORS,
)

# Mixtures of experts. llama.cpp stores a layer's experts as one tensor each for gate, up and down
# ([experts, out, in] in numpy order); Hugging Face's checkpoints hold one tensor per expert.
MOE_TENSORS = ("ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps")
SHARED_EXPERT_TENSORS = ("ffn_gate_inp_shexp", "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp")
MOE_KEYS = {
    "num_experts": Key("expert_count"),
    "num_experts_per_tok": Key("expert_used_count"),
    "moe_intermediate_size": Key("expert_feed_forward_length", int, expert_width),
}
QWEN_MOE_LAYER_TENSORS = {
    "ffn_gate_inp": "mlp.gate",
    "ffn_gate_exps": f"mlp.experts.{EXPERT}.gate_proj",
    "ffn_up_exps": f"mlp.experts.{EXPERT}.up_proj",
    "ffn_down_exps": f"mlp.experts.{EXPERT}.down_proj",
}

# Mixtral: llama.cpp writes it as llama (q/k rows permuted) with llama.expert_count experts of width
# feed_forward_length in every layer; it always renormalises the top-k weights, as Mixtral does.
MIXTRAL = dataclasses.replace(
    LLAMA,
    model_type="mixtral",
    hf_class="MixtralForCausalLM",
    config=decoder_keys(num_local_experts=MOE_KEYS["num_experts"], num_experts_per_tok=MOE_KEYS["num_experts_per_tok"]),
    layer_tensors={
        **{stem: name for stem, name in LLAMA_LAYER_TENSORS.items() if stem not in ("ffn_gate", "ffn_up", "ffn_down")},
        "ffn_gate_inp": "block_sparse_moe.gate",
        "ffn_gate_exps": f"block_sparse_moe.experts.{EXPERT}.w1",
        "ffn_up_exps": f"block_sparse_moe.experts.{EXPERT}.w3",
        "ffn_down_exps": f"block_sparse_moe.experts.{EXPERT}.w2",
    },
    tensor_groups=(MOE_TENSORS,),
    expert_count_key="num_local_experts",
    when=has_experts,
)

# Qwen2-MoE: Qwen2's attention (q/k/v biases, rows unpermuted), routed experts plus a shared expert
# behind a sigmoid gate; llama.cpp does not renormalise the top-k weights. A layer without expert
# tensors is a dense one (Hugging Face's mlp_only_layers).
QWEN2MOE = GGUFArchitecture(
    name="qwen2moe",
    model_type="qwen2_moe",
    hf_class="Qwen2MoeForCausalLM",
    config=decoder_keys(head_dim=False, **MOE_KEYS, shared_expert_intermediate_size=Key(
        "expert_shared_feed_forward_length", int, same_as("intermediate_size"))),  # llama.cpp's default
    config_fixups=(tied_embeddings, qkv_bias, rope_scaling, special_token_ids,
                   dense_layers(MOE_TENSORS), constant(norm_topk_prob=False)),
    global_tensors=DECODER_GLOBAL_TENSORS,
    layer_tensors={
        **LLAMA_LAYER_TENSORS,
        **QWEN_MOE_LAYER_TENSORS,
        "ffn_gate_inp_shexp": "mlp.shared_expert_gate",
        "ffn_gate_shexp": "mlp.shared_expert.gate_proj",
        "ffn_up_shexp": "mlp.shared_expert.up_proj",
        "ffn_down_shexp": "mlp.shared_expert.down_proj",
    },
    ignored_tensors=ROPE_FACTOR_TENSORS,
    tensor_fixups={"ffn_gate_inp_shexp": row_vector},
    tensor_groups=(MOE_TENSORS + SHARED_EXPERT_TENSORS,),
)

# Qwen3-MoE: Qwen3's attention (q/k norms), routed experts only; llama.cpp renormalises the top-k weights.
QWEN3MOE = GGUFArchitecture(
    name="qwen3moe",
    model_type="qwen3_moe",
    hf_class="Qwen3MoeForCausalLM",
    config=decoder_keys(**MOE_KEYS),
    config_fixups=(tied_embeddings, bias_flags, rope_scaling, special_token_ids,
                   dense_layers(MOE_TENSORS), constant(norm_topk_prob=True)),
    global_tensors=DECODER_GLOBAL_TENSORS,
    layer_tensors={**QWEN3.layer_tensors, **QWEN_MOE_LAYER_TENSORS},
    ignored_tensors=ROPE_FACTOR_TENSORS,
    tensor_groups=(MOE_TENSORS,),
)

# Gemma: every RMSNorm weight is stored as 1 + w; embeddings tied; GELU (tanh) MLP.
GEMMA = GGUFArchitecture(
    name="gemma",
    model_type="gemma",
    hf_class="GemmaForCausalLM",
    config=decoder_keys(),
    config_fixups=(tied_embeddings, rope_scaling, special_token_ids,
                   constant(hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh")),
    global_tensors=DECODER_GLOBAL_TENSORS,
    layer_tensors=LLAMA_LAYER_TENSORS,
    tensor_fixups={"attn_norm": minus_one, "ffn_norm": minus_one, "output_norm": minus_one},
)

GEMMA2_LAYER_TENSORS = {
    **LLAMA_LAYER_TENSORS,
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
GEMMA2_NORMS = ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm", "output_norm")

GEMMA2 = GGUFArchitecture(
    name="gemma2",
    model_type="gemma2",
    hf_class="Gemma2ForCausalLM",
    config=decoder_keys(
        sliding_window=Key("attention.sliding_window", int, None),
        attn_logit_softcapping=Key("attn_logit_softcapping", float, 50.0),  # llama.cpp's defaults
        final_logit_softcapping=Key("final_logit_softcapping", float, 30.0),
    ),
    config_fixups=(tied_embeddings, rope_scaling, special_token_ids, gemma_attention_scalar, layer_pattern(2),
                   constant(hidden_activation="gelu_pytorch_tanh")),
    global_tensors=DECODER_GLOBAL_TENSORS,
    layer_tensors=GEMMA2_LAYER_TENSORS,
    tensor_fixups={stem: minus_one for stem in GEMMA2_NORMS},
)

# Gemma 3's text decoder: Gemma 2 plus q/k norms, no attention soft-capping, five local layers to one
# global, and a RoPE base per layer type.
GEMMA3 = GGUFArchitecture(
    name="gemma3",
    model_type="gemma3_text",
    hf_class="Gemma3ForCausalLM",
    config={
        **{k: v for k, v in decoder_keys().items() if k != "rope_theta"},
        "sliding_window": Key("attention.sliding_window", int, None),
        "final_logit_softcapping": Key("final_logit_softcapping", float, None),
    },
    config_fixups=(tied_embeddings, gemma3_rope, special_token_ids, gemma_attention_scalar, layer_pattern(6),
                   constant(hidden_activation="gelu_pytorch_tanh")),
    global_tensors=DECODER_GLOBAL_TENSORS,
    layer_tensors={**GEMMA2_LAYER_TENSORS, "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"},
    tensor_fixups={stem: minus_one for stem in (*GEMMA2_NORMS, "attn_q_norm", "attn_k_norm")},
)

# Phi-3: q/k/v and gate/up stored fused, as in Hugging Face's checkpoints; LongRoPE factors as tensors.
PHI3 = GGUFArchitecture(
    name="phi3",
    model_type="phi3",
    hf_class="Phi3ForCausalLM",
    config=decoder_keys(head_dim=False, sliding_window=Key("attention.sliding_window", int, None)),
    config_fixups=(tied_embeddings, rope_scaling, phi3_rope, special_token_ids),
    global_tensors=DECODER_GLOBAL_TENSORS,
    layer_tensors={
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
        "attn_qkv": "self_attn.qkv_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_up": "mlp.gate_up_proj",
        "ffn_down": "mlp.down_proj",
    },
    ignored_tensors=("rope_freqs.weight",),
    tensor_config={"rope_factors_long": longrope_factors("long"), "rope_factors_short": longrope_factors("short")},
)

# GPT-2: LayerNorms with biases, learned positions, fused c_attn; llama.cpp transposes the Conv1D
# kernels to [out, in] and writes the (tied) output matrix as its own tensor.
GPT2 = GGUFArchitecture(
    name="gpt2",
    model_type="gpt2",
    hf_class="GPT2LMHeadModel",
    config={
        "vocab_size": Key("vocab_size", int, vocab_from_tokens),
        "n_embd": Key("embedding_length"),
        "n_inner": Key("feed_forward_length"),
        "n_layer": Key("block_count"),
        "n_head": Key("attention.head_count"),
        "n_positions": Key("context_length"),
        "layer_norm_epsilon": Key("attention.layer_norm_epsilon", float),
    },
    config_fixups=(tied_embeddings, special_token_ids),
    global_tensors={"token_embd": "transformer.wte", "position_embd": "transformer.wpe",
                    "output_norm": "transformer.ln_f", "output": "lm_head"},
    layer_tensors={
        "attn_norm": "ln_1",
        "attn_qkv": "attn.c_attn",
        "attn_output": "attn.c_proj",
        "ffn_norm": "ln_2",
        "ffn_up": "mlp.c_fc",
        "ffn_down": "mlp.c_proj",
    },
    layer_prefix="transformer.h",
    tensor_fixups={stem: transposed for stem in ("attn_qkv", "attn_output", "ffn_up", "ffn_down")},
)

#: ``general.architecture`` value -> its entry.
ARCHITECTURES: dict[str, GGUFArchitecture] = {
    arch.name: arch for arch in (LLAMA, QWEN2, QWEN3, GEMMA, GEMMA2, GEMMA3, PHI3, GPT2, SMOLLM3, QWEN2MOE, QWEN3MOE)
}
#: ``general.architecture`` value -> entries that take over from its entry when their ``when`` holds.
VARIANTS: dict[str, tuple[GGUFArchitecture, ...]] = {"llama": (MIXTRAL,)}
SUPPORTED_ARCHITECTURES = tuple(ARCHITECTURES)


def architecture_for(metadata: Mapping, path) -> GGUFArchitecture:
    """The entry for a file's ``general.architecture`` (or the variant its metadata selects); one clear
    error naming file and architecture when there is none."""
    arch = require(metadata, "general.architecture", path)
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"GGUF file {path} holds a {arch!r} model, an architecture transformers_jax cannot load from GGUF; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    meta = Meta(metadata, arch, frozenset(), str(path))
    return next((v for v in VARIANTS.get(arch, ()) if v.when(meta)), ARCHITECTURES[arch])
