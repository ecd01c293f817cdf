"""The shared pre-norm decoder: Llama and the families built like it (Mistral, Qwen2/3, Gemma 1/2/3,
Phi-3, GPT-2) are this skeleton plus their config.

A family says how it differs through its config class:

* class switches (``ClassVar``): ``norm_type`` ("rms" or "layer"), ``norm_unit_offset`` (Gemma's
  ``1 + weight``), ``position_type`` ("rope" or "learned"), ``mlp_type`` ("gated" or "plain"),
  ``qk_norm`` (per-head RMSNorm of queries and keys: Qwen3, Gemma 3), ``sandwich_norms`` (Gemma 2/3:
  norms after attention and around the MLP), ``scale_embeddings`` (Gemma: embeddings times
  sqrt(hidden) in the compute dtype), ``fields_absent_in_hf`` (shared fields its HF config lacks);
* fields read when present: ``sliding_window`` with ``layer_types`` (which layers use it),
  ``attn_logit_softcapping``, ``final_logit_softcapping``, per-layer-type ``rope_parameters``,
  ``attention_out_bias`` (o_proj's bias where it differs from ``attention_bias``: Qwen2);
* methods of :class:`DecoderConfig` it may override: ``decoder_layer_types()``,
  ``rope_layers()`` (which layers rotate q and k: SmolLM3's NoPE layers do not),
  ``attention_scales()`` (per layer), ``dropout_rates()``, ``mlp_activation()`` (Gemma 2/3 read
  ``hidden_activation``) and ``attention_softcap()``.

Per-layer differences (a layer's window, its RoPE table or none, its attention scale) are arrays with a
leading layer axis fed to the one ``lax.scan``, never Python branches that unroll it.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from transformers_jax import layers as L
from transformers_jax.configuration_utils import PretrainedConfig
from transformers_jax.generation.utils import GenerationMixin
from transformers_jax.losses import causal_lm_loss, chunked_causal_lm_loss, cross_entropy, sequence_classification_loss
from transformers_jax.modeling_outputs import (
    BaseModelOutput,
    CausalLMOutput,
    MoeModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers_jax.models._heads import extras, span_head
from transformers_jax.modeling_utils import PreTrainedModel
from transformers_jax.params import ParamSpec, dense_spec, embedding_spec, layer_norm_spec, stack_specs
from transformers_jax.partitioning import constrain

GLOBAL_WINDOW = 2**30  # the window of a layer that attends to every earlier token
SLIDING, FULL = "sliding_attention", "full_attention"


class DecoderArchitecture:
    """What the shared decoder reads from a config beyond its fields: class switches and hooks.

    :class:`DecoderConfig` carries them with Llama's field names; a family whose config.json uses
    other names (GPT-2's ``n_embd``) mixes this into its own config and answers the decoder's
    names through ``attribute_map`` and properties.
    """

    norm_type: ClassVar[str] = "rms"
    norm_unit_offset: ClassVar[bool] = False
    position_type: ClassVar[str] = "rope"
    mlp_type: ClassVar[str] = "gated"
    qk_norm: ClassVar[bool] = False
    sandwich_norms: ClassVar[bool] = False
    scale_embeddings: ClassVar[bool] = False
    attention_kernels: ClassVar[bool] = True  # attn_implementation may pick splash or cuDNN (layers.attention_kernels)
    # Shared fields the family's HF config does not have (Qwen2: head_dim, attention_bias, mlp_bias):
    # left out of config.json while they hold the value the family implies.
    fields_absent_in_hf: ClassVar[tuple[str, ...]] = ()

    def decoder_layer_types(self) -> list[str]:
        """``sliding_attention`` or ``full_attention`` per layer (``layer_types`` when the config has it)."""
        types = getattr(self, "layer_types", None)
        if types is not None:
            if len(types) != self.num_hidden_layers:
                raise ValueError(f"layer_types has {len(types)} entries for {self.num_hidden_layers} layers")
            return list(types)
        return [FULL] * self.num_hidden_layers

    def layer_rope_parameters(self, layer_type: str) -> dict:
        """The RoPE parameters of layers of ``layer_type`` (a per-type dict, as Gemma 3 has, or one for all)."""
        rope = getattr(self, "rope_parameters", None) or {}
        if layer_type in rope and isinstance(rope[layer_type], dict):
            return rope[layer_type]
        return rope

    def sparse_layers(self) -> np.ndarray:
        """1 where a layer's feed-forward block is a sparse mixture of experts [L]; none by default
        (the MoE families' configs say which, see ``models/_moe.py``)."""
        return np.zeros((self.num_hidden_layers,), np.int32)

    def rope_layers(self) -> np.ndarray:
        """1 where a layer applies RoPE to queries and keys, 0 where it uses none (NoPE) [L]; all 1 by default."""
        return np.ones((self.num_hidden_layers,), np.int32)

    def attention_scales(self) -> np.ndarray:
        """The factor on q.k per layer [L] (``head_dim ** -0.5`` unless the family says otherwise)."""
        return np.full((self.num_hidden_layers,), self.head_dim**-0.5, np.float32)

    def mlp_activation(self) -> str:
        """The MLP's activation name (``hidden_act``; a family may read another field)."""
        return self.hidden_act

    def attention_softcap(self) -> float | None:
        """The soft cap on attention logits (``attn_logit_softcapping`` when the config has it)."""
        return getattr(self, "attn_logit_softcapping", None)

    def dropout_rates(self) -> tuple[float, float, float]:
        """(embedding, attention probabilities, residual) dropout rates in training."""
        return 0.0, getattr(self, "attention_dropout", 0.0), 0.0

    @property
    def norm_eps(self) -> float:
        return self.rms_norm_eps

    def check_sliding_window(self) -> None:
        """Refuse a sliding window longer than the position table (when some layer uses it)."""
        window = getattr(self, "sliding_window", None)
        if window is not None and SLIDING in self.decoder_layer_types() and window > self.max_position_embeddings:
            raise ValueError(f"{type(self).__name__}: sliding_window={window} is larger than "
                             f"max_position_embeddings={self.max_position_embeddings}")


@dataclasses.dataclass(frozen=True, eq=False)
class DecoderConfig(DecoderArchitecture, PretrainedConfig):
    """Fields every Llama-like decoder family shares (Hugging Face's Llama names and defaults)."""

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    rope_parameters: dict | None = None
    attention_bias: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    bos_token_id: int | None = 1
    eos_token_id: int | list | None = 2
    tie_word_embeddings: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.num_key_value_heads is None:
            object.__setattr__(self, "num_key_value_heads", self.num_attention_heads)
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        if self.rope_parameters is None and self.position_type == "rope":
            object.__setattr__(self, "rope_parameters", {"rope_theta": 10000.0, "rope_type": "default"})
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.position_type == "rope":
            for layer_type in set(self.decoder_layer_types()):
                L.positions.rope_type_of(self.layer_rope_parameters(layer_type))  # refuse unknown types early
        self.check_sliding_window()

    @classmethod
    def _normalize_legacy(cls, values: dict) -> dict:
        """Older configs keep ``rope_theta`` and ``rope_scaling`` at the top level; fold them into
        ``rope_parameters`` (the current spelling, which is what gets written back)."""
        values = dict(values)
        theta = values.pop("rope_theta", None)
        scaling = values.pop("rope_scaling", None)
        if values.get("rope_parameters") is None and (theta is not None or scaling is not None):
            rope = dict(scaling or {})
            if "type" in rope:
                rope["rope_type"] = rope.pop("type")
            rope.setdefault("rope_type", "default")
            rope["rope_theta"] = float(theta if theta is not None else 10000.0)
            values["rope_parameters"] = rope
        return values

    def to_dict(self) -> dict:
        out = super().to_dict()
        for name in self.fields_absent_in_hf:
            implied = (self.hidden_size // self.num_attention_heads if name == "head_dim"
                       else self.__dataclass_fields__[name].default)
            if out.get(name) == implied:
                del out[name]
        return out

    @property
    def rope_theta(self) -> float:
        return self.layer_rope_parameters(FULL).get("rope_theta", 10000.0)


# ----------------------------------------------------------------------------- params
def _norm_spec(config: DecoderConfig, dim: int | None = None) -> dict:
    spec = layer_norm_spec(dim or config.hidden_size, bias=config.norm_type == "layer")
    if config.norm_unit_offset:  # the norm multiplies by 1 + scale: scale starts at 0 (identity)
        spec["scale"] = dataclasses.replace(spec["scale"], init="zeros")
    return spec


def decoder_specs(config: DecoderConfig) -> dict:
    """Specs of the base decoder's params (keys follow Hugging Face's Llama module names)."""
    d, std = config.hidden_size, config.initializer_range
    q_dim = config.num_attention_heads * config.head_dim
    kv_dim = config.num_key_value_heads * config.head_dim
    bias = config.attention_bias
    attention = {
        "q_proj": dense_spec(d, q_dim, "embed", "heads", bias, std),
        "k_proj": dense_spec(d, kv_dim, "embed", "kv_heads", bias, std),
        "v_proj": dense_spec(d, kv_dim, "embed", "kv_heads", bias, std),
        "o_proj": dense_spec(q_dim, d, "heads", "embed", getattr(config, "attention_out_bias", bias), std),
    }
    if config.qk_norm:
        attention["q_norm"] = _norm_spec(config, config.head_dim)
        attention["k_norm"] = _norm_spec(config, config.head_dim)
    layer = {"input_layernorm": _norm_spec(config), "self_attn": attention, "post_attention_layernorm": _norm_spec(config)}
    if config.sandwich_norms:
        layer["pre_feedforward_layernorm"] = _norm_spec(config)
        layer["post_feedforward_layernorm"] = _norm_spec(config)
    specs = {"embed_tokens": embedding_spec(config.vocab_size, d, std)}
    if config.position_type == "learned":
        specs["embed_positions"] = embedding_spec(config.max_position_embeddings, d, std, axes=(None, "embed"))
    sparse = np.asarray(config.sparse_layers(), bool)
    if sparse.all() or not sparse.any():  # one kind of layer: the MLP sits in the one layer stack
        layer["mlp"] = moe_mlp_specs(config) if sparse.any() else mlp_specs(config, config.intermediate_size)
        specs["layers"] = stack_specs(layer, config.num_hidden_layers)
    else:  # dense and MoE layers mixed: the MLPs of each kind are stacked apart (see ``stacked_layer_numbers``)
        specs["layers"] = stack_specs(layer, config.num_hidden_layers)
        specs["sparse_layers"] = stack_specs({"mlp": moe_mlp_specs(config)}, int(sparse.sum()))
        specs["dense_layers"] = stack_specs({"mlp": mlp_specs(config, config.intermediate_size)}, int((~sparse).sum()))
    specs["norm"] = _norm_spec(config)
    return specs


def mlp_specs(config: DecoderConfig, width: int) -> dict:
    """A dense feed-forward block of ``width`` hidden units: gated (gate/up/down) or plain (up/down)."""
    d, std, bias = config.hidden_size, config.initializer_range, config.mlp_bias
    mlp = {"gate_proj": dense_spec(d, width, "embed", "mlp", bias, std)} if config.mlp_type == "gated" else {}
    mlp["up_proj"] = dense_spec(d, width, "embed", "mlp", bias, std)
    mlp["down_proj"] = dense_spec(width, d, "mlp", "embed", bias, std)
    return mlp


def moe_mlp_specs(config: DecoderConfig) -> dict:
    """A sparse MoE block (``layers.moe``): router ``gate`` [D, E], ``experts`` stacked along the
    ``expert`` axis ([E, D, F] and [E, F, D]), and a ``shared_expert`` with its one-unit gate where the
    config has one (``shared_expert_intermediate_size`` > 0)."""
    d, std, experts, width = config.hidden_size, config.initializer_range, config.num_experts, config.moe_intermediate_size

    def expert_kernel(d_in, d_out, in_axis, out_axis):
        return {"kernel": ParamSpec((experts, d_in, d_out), ("expert", in_axis, out_axis), "normal", std)}

    block = {"gate": dense_spec(d, experts, "embed", None, False, std),
             "experts": {"gate_proj": expert_kernel(d, width, "embed", "mlp"), "up_proj": expert_kernel(d, width, "embed", "mlp"),
                         "down_proj": expert_kernel(width, d, "mlp", "embed")}}
    if config.shared_expert_intermediate_size:
        block["shared_expert"] = mlp_specs(config, config.shared_expert_intermediate_size)
        block["shared_expert_gate"] = dense_spec(d, 1, "embed", None, False, std)
    return block


def fuse_layer(layer: dict) -> dict:
    """One layer's params with q/k/v fused into ``qkv_proj`` and a gated MLP's gate/up into ``gate_up_proj``
    (``layers.fuse_dense``); an MoE block's experts are left as they are."""
    layer = {**layer, "self_attn": L.fuse_dense(layer["self_attn"], ("q_proj", "k_proj", "v_proj"), "qkv_proj")}
    if "mlp" in layer:
        layer["mlp"] = L.fuse_dense(layer["mlp"], ("gate_proj", "up_proj"), "gate_up_proj")
    return layer


def layer_segments(config: DecoderConfig) -> list[tuple[int, int, bool]]:
    """Runs of consecutive layers of one kind: (first layer, end, sparse) for each."""
    sparse = np.asarray(config.sparse_layers(), bool)
    segments, start = [], 0
    for i in range(1, len(sparse) + 1):
        if i == len(sparse) or sparse[i] != sparse[start]:
            segments.append((start, i, bool(sparse[start])))
            start = i
    return segments


def run_decoder_layers(layer_fn, carry, base: dict, config: DecoderConfig, layer_inputs: dict):
    """``run_layers`` over the decoder's layers: one scan when every layer is of one kind; for mixed
    dense/MoE layers one scan per run of same-kind layers (each with its kind's MLP stack sliced to
    match). Extras a run leaves None (router logits of dense layers) are left out of the stacked extras."""
    layers = base["layers"]
    if isinstance(layers, tuple) or "sparse_layers" not in base:
        return L.run_layers(layer_fn, carry, layers, config, layer_inputs)
    def take(tree, a, b):  # entries a..b-1 of every stacked leaf
        return jax.tree.map(lambda x: x[a:b], tree)

    sparse = np.asarray(config.sparse_layers(), bool)
    runs = []
    for start, end, is_sparse in layer_segments(config):
        kind = "sparse_layers" if is_sparse else "dense_layers"
        first = int((sparse[:start] == is_sparse).sum())  # this run's first index in its kind's stack
        run_params = {**take(layers, start, end), "mlp": take(base[kind]["mlp"], first, first + end - start)}
        carry, extras = L.run_layers(layer_fn, carry, run_params, config, take(layer_inputs, start, end))
        runs.append(extras)
    joined = []
    for field in zip(*runs):
        present = [f for f in field if f is not None]
        joined.append(jnp.concatenate(present) if present else None)
    return carry, tuple(joined)


# ----------------------------------------------------------------------------- forward
def _norm(config: DecoderConfig, params: dict, x):
    if config.norm_type == "layer":
        return L.layer_norm(params, x, config.norm_eps)
    return L.rms_norm(params, x, config.norm_eps, unit_offset=config.norm_unit_offset)


def _rope_tables(config: DecoderConfig, position_ids, dtype):
    """(cos, sin) [2, B, T, rotary_dim]: index 0 for full-attention layers, 1 for sliding ones."""
    tables = []
    for layer_type in (FULL, SLIDING):
        tables.append(L.rope_cos_sin(config.layer_rope_parameters(layer_type), config.head_dim,
                                     config.max_position_embeddings, position_ids, dtype))
    return jnp.stack([t[0] for t in tables]), jnp.stack([t[1] for t in tables])


def per_layer_inputs(config: DecoderConfig) -> dict:
    """The arrays that make layers differ, each with a leading layer axis: ``window`` (slots a query
    sees), ``sliding`` (1 where the layer uses the sliding window and its RoPE table), ``rope`` (0 where
    the layer applies no RoPE), ``scale``."""
    types = config.decoder_layer_types()
    window = getattr(config, "sliding_window", None) or GLOBAL_WINDOW
    sliding = np.array([t == SLIDING for t in types], np.int32)
    rope = np.asarray(config.rope_layers(), np.int32)
    if rope.shape != (config.num_hidden_layers,):
        raise ValueError(f"rope_layers() has shape {rope.shape} for {config.num_hidden_layers} layers")
    return {"window": np.where(sliding == 1, window, GLOBAL_WINDOW).astype(np.int32), "sliding": sliding,
            "rope": rope, "scale": np.asarray(config.attention_scales(), np.float32)}


def decoder_forward(params, config: DecoderConfig, input_ids, attention_mask, position_ids, output_hidden_states,
                    output_attentions, cache=None, cache_index=None, dropout_rng=None, output_router_logits=False):
    """The base decoder's forward. Returns (BaseModelOutput, cache).

    hidden_states are the embeddings, every layer's output, and the last one after the final norm
    (as Hugging Face records them). With a KV ``cache`` (``layers.kv_cache``) the new keys and
    values are written at slots ``cache_index ...`` and queries attend to every earlier slot;
    ``attention_mask`` is then the [B, S] mask of valid cache slots. Without a cache,
    ``attention_mask`` may hold document ids of packed rows (see ``causal_padding_mask``). With
    ``dropout_rng`` (training), dropout at the family's rates. Attention runs the kernel
    ``config.attn_implementation`` selects (``layers.attention_kernels``); steps with a cache run XLA.
    """
    dtype = jnp.dtype(config.compute_dtype)
    batch, length = input_ids.shape
    embed_rate, attention_rate, residual_rate = config.dropout_rates()
    rngs = L.split_key(dropout_rng, 2)
    embed_rng, layer_rng = (None, None) if rngs is None else rngs
    visible = None if cache is None else L.kv_cache.visible_slots(cache_index, length)
    if attention_mask is not None:
        attention_mask = attention_mask[:, :visible]  # [B, S']: the cache slots these queries can see
    key_mask = attention_mask  # as given (None: no padding), for the kernels' segment ids
    if attention_mask is None:
        attention_mask = jnp.ones((batch, length), jnp.int32)
    if position_ids is None:
        position_ids = jnp.broadcast_to(jnp.arange(length)[None], (batch, length))
    x = L.embed(params["embed_tokens"], input_ids, dtype)  # [B, T, D]
    if config.scale_embeddings:
        x = x * jnp.asarray(config.hidden_size**0.5, dtype)
    if config.position_type == "learned":
        x = x + L.embed(params["embed_positions"], position_ids, dtype)
    x = constrain(L.dropout(x, embed_rate, embed_rng), ("batch", "length", "act_embed"))
    cos = sin = None
    if config.position_type == "rope":
        cos, sin = _rope_tables(config, position_ids, dtype)  # [2, B, T, rotary_dim]
    query_start = 0 if cache is None else cache_index
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    softcap = config.attention_softcap()
    implementation = L.select_attention_implementation(
        config.attn_implementation, dtype=dtype, head_dim=config.head_dim, logit_softcap=softcap, cached=cache is not None,
        output_attentions=output_attentions, dropout=attention_rate > 0 and layer_rng is not None,
        interpret=config.pallas_interpret)
    # The XLA path's causal-and-padding mask [B, 1, T, S], made once for every layer; the kernels need none.
    mask = L.causal_padding_mask(attention_mask, length, query_start) if implementation == "xla" else None
    window_sizes = tuple(sorted(set(per_layer_inputs(config)["window"].tolist())))

    def attention_block(p, h, layer_in, layer_cache, key):
        """Self-attention of one layer: (output [B, T, D], probabilities, the layer-stacked cache)."""
        attn_key, out_key = L.split_key(key, 2) if key is not None else (None, None)
        if "qkv_proj" in p:  # decoding's fused view (``decode_params``): one product for q, k and v
            q, k, v = L.dense_split(p["qkv_proj"], h, (heads * config.head_dim,) + (kv_heads * config.head_dim,) * 2)
        else:
            q, k, v = L.dense(p["q_proj"], h), L.dense(p["k_proj"], h), L.dense(p["v_proj"], h)
        q = L.split_heads(q, heads)  # [B, T, H, D]
        k, v = L.split_heads(k, kv_heads), L.split_heads(v, kv_heads)  # [B, T, K, D]
        if config.qk_norm:
            q, k = _norm(config, p["q_norm"], q), _norm(config, p["k_norm"], k)
        if cos is not None:
            layer_cos, layer_sin = cos[layer_in["sliding"]], sin[layer_in["sliding"]]
            # A NoPE layer rotates by nothing: cos 1 and sin 0 leave q and k exactly as they are.
            use_rope = layer_in["rope"] == 1
            layer_cos, layer_sin = jnp.where(use_rope, layer_cos, 1), jnp.where(use_rope, layer_sin, 0)
            q, k = L.apply_rotary(q, layer_cos, layer_sin), L.apply_rotary(k, layer_cos, layer_sin)
        if layer_cache is not None:
            layer_cache, k, v = L.kv_cache.write(layer_cache, layer_in["index"], cache_index, k, v)
            k, v = k[:, :visible], v[:, :visible]  # [B, S', K, D]
        layer_mask = L.CausalMaskSpec(key_mask, query_start, layer_in["window"], window_sizes, base=mask)
        out, probs = L.causal_attention(q, k, v, layer_mask, implementation=implementation, scale=layer_in["scale"],
                                        logit_softcap=softcap, dropout_rate=attention_rate, dropout_rng=attn_key,
                                        interpret=config.pallas_interpret)
        return L.dropout(L.dense(p["o_proj"], L.merge_heads(out)), residual_rate, out_key), probs, layer_cache

    def mlp_block(p, h, key):
        """The feed-forward block: (output [B, T, D], router logits [B*T, E] of an MoE block or None)."""
        router_logits = None
        if "experts" in p:
            jitter_key, key = L.split_key(key, 2) if key is not None else (None, None)
            out, router_logits = L.moe.sparse_moe_block(
                p, h, config.num_experts_per_tok, config.norm_topk_prob, config.mlp_activation(),
                config.moe_implementation, jitter=config.router_jitter_noise, rng=jitter_key,
                dispatch=L.moe.active_dispatch())
        elif config.mlp_type == "gated":
            out = L.gated_mlp(p, h, config.mlp_activation())
        else:
            out = L.plain_mlp(p, h, config.mlp_activation())
        return L.dropout(out, residual_rate, key), router_logits

    def layer(carry, p, layer_in):
        x, layer_cache = carry
        attn_key, mlp_key = L.split_key(layer_in["rng"], 2) if "rng" in layer_in else (None, None)
        attn_out, probs, layer_cache = attention_block(p["self_attn"], _norm(config, p["input_layernorm"], x), layer_in,
                                                       layer_cache, attn_key)
        if config.sandwich_norms:
            x = x + _norm(config, p["post_attention_layernorm"], attn_out)
            mlp_out, router_logits = mlp_block(p["mlp"], _norm(config, p["pre_feedforward_layernorm"], x), mlp_key)
            x = x + _norm(config, p["post_feedforward_layernorm"], mlp_out)
        else:
            x = x + attn_out
            mlp_out, router_logits = mlp_block(p["mlp"], _norm(config, p["post_attention_layernorm"], x), mlp_key)
            x = x + mlp_out
        x = constrain(x, ("batch", "length", "act_embed"))  # the residual stream keeps its split from layer to layer
        return (x, layer_cache), (x if output_hidden_states else None, probs if output_attentions else None,
                                  router_logits if output_router_logits else None)

    num_layers = config.num_hidden_layers
    layer_inputs = {name: jnp.asarray(value) for name, value in per_layer_inputs(config).items()}
    layer_inputs["index"] = np.arange(num_layers)  # static when the layers run unrolled: a static slice of the cache
    if layer_rng is not None:
        layer_inputs["rng"] = jax.random.split(layer_rng, num_layers)
    embeddings = x
    (x, cache), (layer_outputs, attentions, router_logits) = run_decoder_layers(layer, (x, cache), params, config,
                                                                                 layer_inputs)
    x = _norm(config, params["norm"], x)
    hidden_states = None
    if output_hidden_states:
        hidden_states = (embeddings, *[layer_outputs[i] for i in range(num_layers - 1)], x)
    out = BaseModelOutput(
        last_hidden_state=x,
        hidden_states=hidden_states,
        attentions=tuple(attentions[i] for i in range(num_layers)) if output_attentions else None,
    )
    if output_router_logits:
        out = MoeModelOutput(**out, router_logits=tuple(router_logits[i] for i in range(router_logits.shape[0])))
    return out, cache


def init_cache(config: DecoderConfig, batch: int, max_length: int) -> dict:
    """An empty KV cache for ``batch`` rows of ``max_length`` slots (see ``layers.kv_cache``)."""
    return L.kv_cache.init_cache(config.num_hidden_layers, batch, max_length, config.num_key_value_heads,
                                 config.head_dim, jnp.dtype(config.compute_dtype))


# ----------------------------------------------------------------------------- heads
class DecoderPreTrainedModel(PreTrainedModel):
    """Base of the classes built on the shared decoder; the base model lives at ``params[base_model_prefix]``."""

    base_model_prefix = "model"
    stacked_layer_keys = ("layers",)
    flax_leaf_names = (("scale", "weight"),)  # HF Flax's RMSNorm param is "weight"

    @classmethod
    def base_specs(cls, config):
        return decoder_specs(config)

    @classmethod
    def _base(cls, params, config, input_ids, attention_mask, position_ids, output_hidden_states, output_attentions,
              dropout_rng):
        return decoder_forward(params[cls.base_model_prefix], config, input_ids, attention_mask, position_ids,
                               output_hidden_states, output_attentions, dropout_rng=dropout_rng)[0]



class DecoderModel(DecoderPreTrainedModel):
    """The bare decoder: last hidden states (after the final norm)."""

    is_base_model = True

    @classmethod
    def param_specs(cls, config):
        return cls.base_specs(config)

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, position_ids=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        return decoder_forward(params, config, input_ids, attention_mask, position_ids, output_hidden_states,
                               output_attentions, dropout_rng=dropout_rng)[0]


class DecoderForCausalLM(GenerationMixin, DecoderPreTrainedModel):
    """The decoder with a language-modelling head (tied to the input embeddings when configured)."""

    flax_untied_weights = ("lm_head.weight",)  # HF Flax's causal LMs always stored their own lm_head
    loss_chunks = True  # honours config.loss_chunk_size (see ``logits_and_loss``)

    @classmethod
    def param_specs(cls, config):
        specs = {cls.base_model_prefix: cls.base_specs(config)}
        if not config.tie_word_embeddings:
            specs["lm_head"] = {"kernel": ParamSpec((config.hidden_size, config.vocab_size), ("embed", "vocab"), "normal",
                                                    config.initializer_range)}
        return specs

    @classmethod
    def tied_weights(cls, config):
        prefix = cls.base_model_prefix
        return {"lm_head.weight": cls.checkpoint_name(f"{prefix}.embed_tokens.weight")} if config.tie_word_embeddings else {}

    @classmethod
    def lm_logits(cls, params, config, hidden):
        """The LM head (tied or not), then the family's final soft-capping if any."""
        if config.tie_word_embeddings:
            logits = L.tied_logits(params[cls.base_model_prefix]["embed_tokens"]["embedding"], hidden)
        else:
            logits = L.dense(params["lm_head"], hidden)
        logits = L.softcap(logits, getattr(config, "final_logit_softcapping", None))
        return constrain(logits, ("batch", "length", "act_vocab"))

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, position_ids=None, labels=None,
                output_hidden_states=False, output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, position_ids, output_hidden_states, output_attentions,
                        dropout_rng)
        logits, loss = cls.logits_and_loss(params, config, out.last_hidden_state, labels)
        return CausalLMOutput(loss=loss, logits=logits, **extras(out))

    @classmethod
    def logits_and_loss(cls, params, config, hidden, labels):
        """(logits [B, T, V], next-token loss or None) of the last hidden states. With labels and
        ``config.loss_chunk_size`` the loss is computed chunk by chunk (``losses.chunked_causal_lm_loss``)
        and the logits are None: the whole [B, T, V] array is never made (training large vocabularies)."""
        if labels is not None and config.loss_chunk_size:
            return None, chunked_causal_lm_loss(hidden, labels, lambda h: cls.lm_logits(params, config, h),
                                                config.loss_chunk_size)
        logits = cls.lm_logits(params, config, hidden)
        return logits, causal_lm_loss(logits, labels) if labels is not None else None

    init_cache = staticmethod(init_cache)

    @classmethod
    def decode_params(cls, params):
        """The params a decoding loop hands to its prefill and every :meth:`decode` step, laid out once
        before the loop. On XLA:CPU the layers are unstacked into separate arrays (a scan would copy each
        layer's slice of the stacked weights at every step, ~25-35% of a batch-1 step), and each layer's
        q/k/v and gate/up projections are fused into one product each (``qkv_proj``, ``gate_up_proj``:
        a mat-vec reads its weights faster in one larger call; ``scripts/profile_decode.py``). Elsewhere they
        stay as they are. The tokens are the same either way."""
        if jax.default_backend() != "cpu":
            return params
        base = params[cls.base_model_prefix]
        return {**params, cls.base_model_prefix: {**base, "layers": tuple(fuse_layer(layer) for layer in
                                                                          L.unstack_layers(base["layers"]))}}

    @classmethod
    def decode(cls, params, config, input_ids, position_ids, cache_mask, cache, cache_index, logits_index=None):
        """One cached step for generation: feed ``input_ids`` [B, T] at cache slots
        ``cache_index ... cache_index + T - 1``; ``cache_mask`` [B, S] marks valid slots (the new
        ones included). Returns (logits [B, T, V], updated cache); with ``logits_index`` (an int, or
        one position per row [B]) only that position's logits, [B, 1, V] (a prefill's last token)."""
        out, cache = decoder_forward(params[cls.base_model_prefix], config, input_ids, cache_mask, position_ids, False,
                                     False, cache=cache, cache_index=cache_index)
        hidden = out.last_hidden_state if logits_index is None else L.take_positions(out.last_hidden_state, logits_index)
        return cls.lm_logits(params, config, hidden), cache


def last_token_logits(logits, input_ids, config, class_name: str):
    """Each row's logits at its last non-padding token (``pad_token_id`` marks padding), as Hugging
    Face pools decoder sequence classifiers."""
    batch, length = input_ids.shape
    if config.pad_token_id is None:
        if batch != 1:
            raise ValueError(f"{class_name} needs config.pad_token_id for batches larger than 1")
        last = jnp.full((batch,), length - 1)
    else:
        positions = jnp.arange(length)[None] * (input_ids != config.pad_token_id)
        last = jnp.argmax(positions, axis=-1)  # the rightmost non-padding token
    return logits[jnp.arange(batch), last]


class DecoderForSequenceClassification(DecoderPreTrainedModel):
    """The decoder with a linear head (``score``, no bias) on each row's last non-padding token."""

    @classmethod
    def param_specs(cls, config):
        return {cls.base_model_prefix: cls.base_specs(config),
                "score": dense_spec(config.hidden_size, config.num_labels, "embed", None, False, config.initializer_range)}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, position_ids=None, labels=None,
                output_hidden_states=False, output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, position_ids, output_hidden_states, output_attentions,
                        dropout_rng)
        logits = L.dense(params["score"], out.last_hidden_state)  # [B, T, num_labels]
        pooled = last_token_logits(logits, input_ids, config, cls.__name__)
        loss = sequence_classification_loss(pooled, labels, config) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=pooled, **extras(out))


def classifier_dropout_rate(config) -> float:
    """Hugging Face's rule for decoder token classifiers: ``classifier_dropout``, else ``hidden_dropout``, else 0.1."""
    for name in ("classifier_dropout", "hidden_dropout"):
        value = getattr(config, name, None)
        if value is not None:
            return value
    return 0.1


class DecoderForTokenClassification(DecoderPreTrainedModel):
    """The decoder with a per-token linear classifier (``score``, with bias)."""

    @classmethod
    def param_specs(cls, config):
        return {cls.base_model_prefix: cls.base_specs(config),
                "score": dense_spec(config.hidden_size, config.num_labels, "embed", None, True, config.initializer_range)}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, position_ids=None, labels=None,
                output_hidden_states=False, output_attentions=False, dropout_rng=None):
        rngs = L.split_key(dropout_rng, 2)
        out = cls._base(params, config, input_ids, attention_mask, position_ids, output_hidden_states, output_attentions,
                        None if rngs is None else rngs[0])
        hidden = L.dropout(out.last_hidden_state, classifier_dropout_rate(config), None if rngs is None else rngs[1])
        logits = L.dense(params["score"], hidden)
        loss = cross_entropy(logits, labels) if labels is not None else None
        return TokenClassifierOutput(loss=loss, logits=logits, **extras(out))


class DecoderForQuestionAnswering(DecoderPreTrainedModel):
    """The decoder with a span head (``qa_outputs``): start and end logits per token."""

    @classmethod
    def param_specs(cls, config):
        return {cls.base_model_prefix: cls.base_specs(config),
                "qa_outputs": dense_spec(config.hidden_size, 2, "embed", None, True, config.initializer_range)}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, position_ids=None, start_positions=None,
                end_positions=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, position_ids, output_hidden_states, output_attentions,
                        dropout_rng)
        return span_head(params["qa_outputs"], out, start_positions, end_positions)


HEADS = {
    "base": ("Model", DecoderModel),
    "causal_lm": ("ForCausalLM", DecoderForCausalLM),
    "sequence_classification": ("ForSequenceClassification", DecoderForSequenceClassification),
    "token_classification": ("ForTokenClassification", DecoderForTokenClassification),
    "question_answering": ("ForQuestionAnswering", DecoderForQuestionAnswering),
}


def build_family(prefix: str, config_class: type[DecoderConfig], module: str, tasks=tuple(HEADS),
                 base: type[DecoderPreTrainedModel] = DecoderPreTrainedModel, head_prefixes: dict | None = None,
                 class_names: dict | None = None, heads: dict | None = None, **class_attributes) -> dict[str, type]:
    """The classes of a decoder family named as Hugging Face names them (``{prefix}Model``,
    ``{prefix}ForCausalLM``, ...) for the ``tasks`` HF has, each over ``config_class``, with
    ``class_attributes`` (key maps, legacy renames) set on a shared ``{prefix}PreTrainedModel``
    base; registered with the Auto classes (causal LM also for pretraining). ``head_prefixes``
    ({task: name}) gives heads whose base model HF stores under another name (Llama's and Qwen's
    question answering keep it under ``transformer``). ``class_names`` ({task: name}) gives heads HF
    names otherwise (Gemma 3's ``Gemma3TextModel``, GPT-2's ``GPT2LMHeadModel``). ``heads`` replaces
    :data:`HEADS` (the MoE families' base model and causal LM). Returns {class name: class}."""
    from transformers_jax.models._family import build_classes

    head_attributes = {task: {"base_model_prefix": name} for task, name in (head_prefixes or {}).items()}
    return build_classes(prefix, config_class, module, heads or HEADS, tasks, base, class_attributes, class_names=class_names,
                         head_attributes=head_attributes,
                         register_tasks={"pretraining": "causal_lm"} if "causal_lm" in tasks else None)
