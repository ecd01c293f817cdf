"""Per-architecture maps from GGUF (llama.cpp names) to Hugging Face (config keys, PyTorch tensor names).

Each architecture is one declarative :class:`GGUFArchitecture` entry in :data:`ARCHITECTURES`:

* ``config``: Hugging Face config key -> :class:`Key`, a metadata key under the ``{arch}.`` prefix
  (``"llama.block_count"`` is ``Key("block_count")``) with its type and what to do when it is absent;
* ``config_fixups``: small functions ``(config, meta) -> None`` for the entries no single key gives
  (tied embeddings, bias flags, RoPE scaling, special token ids...);
* ``global_tensors`` / ``layer_tensors``: llama.cpp tensor stems -> Hugging Face module names
  (``blk.{i}.{stem}`` becomes ``model.layers.{i}.{name}``), plus ``ignored_tensors``;
* ``tensor_fixups``: tensor stem -> ``(weights, config) -> weights`` for layout and value changes
  (llama's q/k row un-permutation, Gemma's norms stored as ``1 + w``, GPT-2's Conv1D kernels);
* ``tensor_config``: tensor stem -> ``(config, weights) -> None`` for config entries a file keeps as
  tensors (Phi-3's LongRoPE factors); such tensors are consumed, not loaded as weights;
* ``layer_prefix``: where the repeated blocks live in the Hugging Face names (``model.layers``,
  GPT-2's ``transformer.h``).

Adding an architecture means adding one entry here (reusing the fix-up functions that apply) and
listing it in :data:`ARCHITECTURES`; the reader needs no change.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------------------------
# Reading metadata
# ----------------------------------------------------------------------------------------------
REQUIRED = object()  # Key default: the metadata key must be present


class GGUFMetadataError(KeyError):
    """A metadata key the loader needs is missing from a GGUF file."""

    def __str__(self):
        return str(self.args[0])


def require(metadata: Mapping, key: str, path, needed_by: str = "the model") -> Any:
    """``metadata[key]``, or a :class:`GGUFMetadataError` naming the key and the file."""
    if key not in metadata:
        raise GGUFMetadataError(f"GGUF file {path} has no metadata key {key!r}, which {needed_by} needs")
    return metadata[key]


@dataclasses.dataclass(frozen=True)
class Meta:
    """The metadata of one file as the maps see it: ``{arch}.``-prefixed lookups and the tensor names."""

    metadata: Mapping[str, Any]
    arch: str
    tensor_names: frozenset
    path: str

    def need(self, key: str) -> Any:
        """``{arch}.{key}``, which must be present."""
        return require(self.metadata, f"{self.arch}.{key}", self.path, f"a {self.arch} model")

    def get(self, key: str, default: Any = None) -> Any:
        """``{arch}.{key}``, or ``default``."""
        return self.metadata.get(f"{self.arch}.{key}", default)


@dataclasses.dataclass(frozen=True)
class Key:
    """One config entry read from ``{arch}.{name}``, converted with ``cast``.

    ``default``: :data:`REQUIRED` (absent -> :class:`GGUFMetadataError`), a value, or a function
    ``(config so far, meta) -> value``; the entry is left out when the result is ``None``.
    """

    name: str
    cast: Callable[[Any], Any] = int
    default: Any = REQUIRED

    def read(self, config: dict, meta: Meta) -> Any:
        if self.default is REQUIRED:
            return self.cast(meta.need(self.name))
        value = meta.get(self.name)
        if value is None:
            value = self.default(config, meta) if callable(self.default) else self.default
        return None if value is None else self.cast(value)


# ----------------------------------------------------------------------------------------------
# Fix-ups shared by architectures
# ----------------------------------------------------------------------------------------------
def vocab_from_tokens(config: dict, meta: Meta) -> int:
    """Key default: the vocabulary size is the length of the tokenizer's token list."""
    return len(require(meta.metadata, "tokenizer.ggml.tokens", meta.path, f"a {meta.arch} model"))


def same_as(hf_key: str) -> Callable[[dict, Meta], Any]:
    """Key default: the value of another config entry (read before this one)."""
    return lambda config, meta: config[hf_key]


def other_key(name: str) -> Callable[[dict, Meta], Any]:
    """Key default: another ``{arch}.`` metadata key, or nothing."""
    return lambda config, meta: meta.get(name)


def tied_embeddings(config: dict, meta: Meta) -> None:
    """Input and output embeddings are tied when the file has no ``output.weight``."""
    config["tie_word_embeddings"] = "output.weight" not in meta.tensor_names


def bias_flags(config: dict, meta: Meta) -> None:
    """``attention_bias`` / ``mlp_bias`` when the file has those bias tensors."""
    if any(n.endswith(("attn_q.bias", "attn_output.bias")) for n in meta.tensor_names):
        config["attention_bias"] = True
    if any(n.endswith("ffn_up.bias") for n in meta.tensor_names):
        config["mlp_bias"] = True


def rope_scaling(config: dict, meta: Meta) -> None:
    """Hugging Face's ``rope_scaling`` from llama.cpp's ``{arch}.rope.scaling.*`` keys, if any."""
    kind, factor = meta.get("rope.scaling.type"), meta.get("rope.scaling.factor")
    if kind is None and meta.get("rope.scale_linear") is not None:  # older files
        kind, factor = "linear", meta.get("rope.scale_linear")
    if kind in (None, "none"):
        return
    scaling = {"rope_type": str(kind)}
    if factor is not None:
        scaling["factor"] = float(factor)
    original = meta.get("rope.scaling.original_context_length")
    if original is not None:
        scaling["original_max_position_embeddings"] = int(original)
    attn_factor = meta.get("rope.scaling.attn_factor")
    if attn_factor is not None:
        scaling["attention_factor"] = float(attn_factor)
    config["rope_scaling"] = scaling


def special_token_ids(config: dict, meta: Meta) -> None:
    """``bos_token_id`` / ``eos_token_id`` / ``pad_token_id`` from the tokenizer metadata."""
    for name, key in (("bos", "bos"), ("eos", "eos"), ("pad", "padding")):
        token_id = meta.metadata.get(f"tokenizer.ggml.{key}_token_id")
        if token_id is not None:
            config[f"{name}_token_id"] = int(token_id)


def unpermute_rows(heads_key: str) -> Callable[[np.ndarray, dict], np.ndarray]:
    """Tensor fix-up: undo llama.cpp's q/k row order, which within each of ``config[heads_key]``
    heads interleaves the two rotary halves."""

    def fix(weights: np.ndarray, config: dict) -> np.ndarray:
        n_heads, rows = config[heads_key], weights.shape[0]
        w = weights.reshape(n_heads, rows // n_heads // 2, 2, *weights.shape[1:])
        return np.ascontiguousarray(w.swapaxes(1, 2)).reshape(weights.shape)

    return fix


def minus_one(weights: np.ndarray, config: dict) -> np.ndarray:
    """Tensor fix-up: Gemma's RMSNorm multiplies by ``1 + w``; llama.cpp stores ``1 + w``, Hugging Face ``w``."""
    return weights - np.float32(1.0)


def transposed(weights: np.ndarray, config: dict) -> np.ndarray:
    """Tensor fix-up: GPT-2's ``Conv1D`` kernels are [in, out]; llama.cpp stores them [out, in]."""
    return np.ascontiguousarray(weights.T) if weights.ndim == 2 else weights


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


def gelu_tanh(config: dict, meta: Meta) -> None:
    """Gemma's MLP activation: llama.cpp computes GELU with the tanh approximation."""
    config["hidden_activation"] = "gelu_pytorch_tanh"


# ----------------------------------------------------------------------------------------------
# The entry type
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GGUFArchitecture:
    """How one ``general.architecture`` value maps onto a Hugging Face model (see the module doc)."""

    name: str
    model_type: str
    hf_class: str
    config: Mapping[str, Key]
    config_fixups: tuple[Callable[[dict, Meta], None], ...] = ()
    global_tensors: Mapping[str, str] = dataclasses.field(default_factory=dict)
    layer_tensors: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ignored_tensors: tuple[str, ...] = ()
    tensor_fixups: Mapping[str, Callable[[np.ndarray, dict], np.ndarray]] = dataclasses.field(default_factory=dict)
    tensor_config: Mapping[str, Callable[[dict, np.ndarray], None]] = dataclasses.field(default_factory=dict)
    layer_prefix: str = "model.layers"

    def hf_config(self, metadata: Mapping, tensor_names, path) -> dict:
        """A ``config.json``-style dict from the file's metadata and tensor names."""
        meta = Meta(metadata, self.name, frozenset(tensor_names), str(path))
        config: dict[str, Any] = {"architectures": [self.hf_class], "model_type": self.model_type}
        for hf_key, key in self.config.items():
            value = key.read(config, meta)
            if value is not None:
                config[hf_key] = value
        for fixup in self.config_fixups:
            fixup(config, meta)
        return config

    def _split(self, name: str) -> tuple[str | None, str, str]:
        """``blk.3.attn_q.weight`` -> ("3", "attn_q", "weight"); ``output.weight`` -> (None, "output", "weight")."""
        stem, _, suffix = name.rpartition(".")
        match = re.fullmatch(r"blk\.(\d+)\.(\w+)", stem)
        return (match.group(1), match.group(2), suffix) if match else (None, stem, suffix)

    def hf_tensor_name(self, name: str, path) -> str:
        """Hugging Face PyTorch name of a llama.cpp tensor name such as ``blk.3.attn_q.weight``."""
        layer, stem, suffix = self._split(name)
        if layer is None and stem in self.global_tensors:
            return f"{self.global_tensors[stem]}.{suffix}"
        if layer is not None and stem in self.layer_tensors:
            return f"{self.layer_prefix}.{layer}.{self.layer_tensors[stem]}.{suffix}"
        raise ValueError(f"GGUF file {path} has tensor {name!r}, which a {self.hf_class} has no place for")

    def fix_tensor(self, name: str, weights: np.ndarray, config: dict) -> np.ndarray:
        """Apply the fix-up of a tensor's stem (``attn_q``, ``output_norm``...), if it has one (weights and
        biases alike: llama.cpp permutes a q bias as it permutes q's rows)."""
        _, stem, _ = self._split(name)
        fixup = self.tensor_fixups.get(stem)
        return weights if fixup is None else fixup(weights, config)

    def config_tensor(self, name: str):
        """The ``(config, weights) -> None`` function of a tensor that holds config, not weights, or None."""
        layer, stem, _ = self._split(name)
        return self.tensor_config.get(stem) if layer is None else None


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
    arch.name: arch for arch in (LLAMA, QWEN2, QWEN3, GEMMA, GEMMA2, GEMMA3, PHI3, GPT2, SMOLLM3)
}
SUPPORTED_ARCHITECTURES = tuple(ARCHITECTURES)


def architecture_for(metadata: Mapping, path) -> GGUFArchitecture:
    """The entry for a file's ``general.architecture``; one clear error naming file and architecture
    when there is none."""
    arch = require(metadata, "general.architecture", path)
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"GGUF file {path} holds a {arch!r} model, an architecture transformers_jax cannot load from GGUF; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    return ARCHITECTURES[arch]
