"""Shared building blocks, written once: dense, norms, embeddings, rotary, attention, activations.

Each function takes its params sub-tree explicitly. Norms, softmax and rotary run in float32; matmuls
run in the compute dtype of their inputs.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from transformers_jax.partitioning import constrain


# ----------------------------------------------------------------------------- activations
def _gelu_exact(x):
    return jax.nn.gelu(x, approximate=False)


def _gelu_tanh(x):
    return jax.nn.gelu(x, approximate=True)


ACT2FN = {
    "gelu": _gelu_exact,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
}


def activation(name: str):
    """The activation function called ``name`` in Hugging Face configs (``hidden_act``)."""
    if name not in ACT2FN:
        raise ValueError(f"unsupported activation {name!r}; known: {sorted(ACT2FN)}")
    return ACT2FN[name]


# ----------------------------------------------------------------------------- dropout
def dropout(x: jax.Array, rate: float, rng) -> jax.Array:
    """Inverted dropout: zero each element with probability ``rate`` and scale the rest by
    1 / (1 - rate). Does nothing without an ``rng`` (inference) or at rate 0."""
    if rng is None or not rate:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def split_key(rng, num: int):
    """``num`` independent keys from ``rng``, or None when there is no rng (no dropout)."""
    return None if rng is None else jax.random.split(rng, num)


# ----------------------------------------------------------------------------- linear, norms, embeddings
def dense(params: dict, x: jax.Array) -> jax.Array:
    """``x @ kernel + bias`` with ``kernel`` stored [in, out].

    Leading dims are flattened into one matmul row dim, so the kernel's gradient contracts over a
    single dim (XLA's CPU backend runs a two-dim contraction about 1.7x slower).
    """
    kernel = params["kernel"].astype(x.dtype)
    y = (x.reshape(-1, x.shape[-1]) @ kernel).reshape(*x.shape[:-1], kernel.shape[-1])  # [..., out]
    if "bias" in params:
        y = y + params["bias"].astype(x.dtype)
    return y


def layer_norm(params: dict, x: jax.Array, eps: float) -> jax.Array:
    """LayerNorm over the last axis, computed in float32."""
    dtype = x.dtype
    x = x.astype(jnp.float32)
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    y = (x - mean) * jax.lax.rsqrt(var + eps)
    y = y * params["scale"].astype(jnp.float32) + params["bias"].astype(jnp.float32)
    return y.astype(dtype)


def rms_norm(params: dict, x: jax.Array, eps: float) -> jax.Array:
    """RMSNorm as Llama computes it: normalise in float32, cast back, then scale."""
    dtype = x.dtype
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + eps)
    return params["scale"].astype(dtype) * y.astype(dtype)


def embed(params: dict, ids: jax.Array, dtype) -> jax.Array:
    """Look up rows of ``params['embedding']`` ([V, D]) for integer ``ids``.

    Under a sharding context the table is gathered whole first, as FSDP gathers any weight it
    uses: a lookup from a split table would come out split the wrong way (by vocabulary or
    feature instead of by batch) and leave the compiler a costly fallback.
    """
    table = constrain(params["embedding"], (None, None))
    return jnp.take(table, ids, axis=0).astype(dtype)


def tied_logits(embedding: jax.Array, x: jax.Array) -> jax.Array:
    """Logits against a tied input embedding table [V, D]: ``x @ embedding.T``."""
    rows = x.reshape(-1, x.shape[-1])  # [N, D]: one contraction dim for the table's gradient too
    return (rows @ embedding.astype(x.dtype).T).reshape(*x.shape[:-1], embedding.shape[0])


# ----------------------------------------------------------------------------- rotary position embeddings
def rope_inverse_frequencies(rope: dict, head_dim: int, max_position_embeddings: int) -> tuple[np.ndarray, float]:
    """(inv_freq [head_dim // 2] float32, attention scaling) for a Hugging Face ``rope_parameters`` dict.

    Supports ``default``, ``linear``, ``llama3`` and ``yarn``; other types are refused by name.
    """
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    base = np.float32(rope.get("rope_theta", 10000.0))
    dim = int(head_dim * rope.get("partial_rotary_factor", 1.0))
    # A correctly rounded float32 power, then a float32 division: bit-equal to PyTorch's inv_freq.
    exponent = np.arange(0, dim, 2).astype(np.float32) / np.float32(dim)
    inv_freq = np.float32(1.0) / (np.float64(base) ** exponent.astype(np.float64)).astype(np.float32)
    scaling = 1.0
    if rope_type == "default":
        pass
    elif rope_type == "linear":
        inv_freq = inv_freq / np.float32(rope["factor"])
    elif rope_type == "llama3":
        factor = rope["factor"]
        low, high = rope["low_freq_factor"], rope["high_freq_factor"]
        old_len = rope["original_max_position_embeddings"]
        wavelen = np.float32(2 * math.pi) / inv_freq
        scaled = np.where(wavelen > old_len / low, inv_freq / np.float32(factor), inv_freq)
        smooth = (np.float32(old_len) / wavelen - np.float32(low)) / np.float32(high - low)
        smoothed = (1 - smooth) * scaled / np.float32(factor) + smooth * scaled
        medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
        inv_freq = np.where(medium, smoothed, scaled)
    elif rope_type == "yarn":
        inv_freq, scaling = _yarn(rope, inv_freq, base, dim, max_position_embeddings)
    else:
        raise ValueError(f"rope_type {rope_type!r} is not supported (default, linear, llama3, yarn)")
    return inv_freq.astype(np.float32), float(scaling)


def _yarn(rope: dict, inv_freq: np.ndarray, base, dim: int, max_positions: int):
    original = rope.get("original_max_position_embeddings") or max_positions
    factor = rope.get("factor") or max_positions / original

    def mscale(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention_factor = rope.get("attention_factor")
    if attention_factor is None:
        if rope.get("mscale") and rope.get("mscale_all_dim"):
            attention_factor = mscale(factor, rope["mscale"]) / mscale(factor, rope["mscale_all_dim"])
        else:
            attention_factor = mscale(factor)
    beta_fast, beta_slow = rope.get("beta_fast") or 32, rope.get("beta_slow") or 1

    def correction_dim(rotations):
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(float(base)))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if rope.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float32) - low) / (high - low), 0, 1)
    extrapolation = 1 - ramp
    interpolated = inv_freq / np.float32(factor)
    inv = interpolated * (1 - extrapolation) + inv_freq * extrapolation
    return inv.astype(np.float32), attention_factor


def rotary_cos_sin(position_ids: jax.Array, inv_freq: np.ndarray, scaling: float, dtype):
    """cos and sin [B, T, head_dim] for integer ``position_ids`` [B, T] (computed in float32)."""
    freqs = position_ids[..., None].astype(jnp.float32) * jnp.asarray(inv_freq)  # [B, T, dim/2]
    angles = jnp.concatenate([freqs, freqs], axis=-1)
    return (jnp.cos(angles) * scaling).astype(dtype), (jnp.sin(angles) * scaling).astype(dtype)


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate ``x`` [B, T, H, D] by position (the rotate-half convention of Hugging Face)."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]


# ----------------------------------------------------------------------------- attention
def padding_mask(attention_mask: jax.Array) -> jax.Array:
    """[B, S] 1/0 mask -> boolean [B, 1, 1, S] (True where a key may be attended)."""
    return attention_mask.astype(bool)[:, None, None, :]


def causal_padding_mask(key_mask: jax.Array, query_len: int, query_start=None) -> jax.Array:
    """Causal mask combined with key padding: boolean [B, 1, T, S].

    Query t sits at key slot ``query_start + t`` (by default the last T slots) and sees the valid
    keys at slots up to its own. ``query_start`` is a scalar or one start per row ([B]).

    Packed rows: when queries and keys are the same T positions, ``key_mask`` may hold document
    ids (1, 2, ... per document, 0 for padding) instead of 1/0; a token then sees only earlier
    tokens of its own document. A plain 1/0 mask is the one-document case, and padding queries
    keep Hugging Face's behaviour (they see every valid earlier key).
    """
    key_len = key_mask.shape[-1]
    if query_start is None:
        query_start = key_len - query_len
    start = jnp.reshape(jnp.asarray(query_start), (-1, 1, 1, 1))  # [B or 1, 1, 1, 1]
    q = jnp.arange(query_len)[None, None, :, None] + start
    k = jnp.arange(key_len)[None, None, None, :]
    mask = (k <= q) & key_mask.astype(bool)[:, None, None, :]
    if query_len == key_len:
        doc = key_mask.astype(jnp.int32)
        q_doc, k_doc = doc[:, None, :, None], doc[:, None, None, :]  # [B, 1, T, 1], [B, 1, 1, S]
        mask = mask & ((q_doc == k_doc) | (q_doc == 0))
    return mask


def update_kv_cache(cache: dict, layer, index, k, v):
    """Write ``k``, ``v`` [B, T, K, D] into layer ``layer`` of a stacked cache ([L, B, S, K, D]) at
    slot ``index`` (a scalar, or one slot per row: [B]); returns (cache, that layer's keys, that
    layer's values)."""
    dtype = cache["k"].dtype
    index = jnp.asarray(index)
    if index.ndim == 0:
        start = (layer, 0, index, 0, 0)
        cache = {
            "k": jax.lax.dynamic_update_slice(cache["k"], k[None].astype(dtype), start),
            "v": jax.lax.dynamic_update_slice(cache["v"], v[None].astype(dtype), start),
        }
        return cache, cache["k"][layer], cache["v"][layer]

    def write_rows(buffer, new):  # buffer [S, K, D], new [T, K, D], per row
        return jax.vmap(lambda b, n, i: jax.lax.dynamic_update_slice(b, n, (i, 0, 0)))(buffer, new, index)

    layer_k = write_rows(cache["k"][layer], k.astype(dtype))  # [B, S, K, D]
    layer_v = write_rows(cache["v"][layer], v.astype(dtype))
    cache = {"k": cache["k"].at[layer].set(layer_k), "v": cache["v"].at[layer].set(layer_v)}
    return cache, layer_k, layer_v


def dot_product_attention(q, k, v, mask, *, scale: float, head_mask=None, dropout_rate: float = 0.0, dropout_rng=None):
    """Multi-head attention with grouped key/value heads.

    q: [B, T, H, D]; k, v: [B, S, K, D] with H a multiple of K (GQA/MQA); mask: boolean,
    broadcastable to [B, H, T, S]. Scores and softmax in float32; masked scores get the float32
    minimum added, as Hugging Face's eager attention does (a fully masked row attends uniformly).
    ``head_mask`` ([H], optional) scales each head's probabilities; with ``dropout_rng`` the
    probabilities get dropout at ``dropout_rate`` (training).
    Returns (output [B, T, H, D], probabilities [B, H, T, S]).
    """
    batch, q_len, num_heads, head_dim = q.shape
    kv_len, num_kv = k.shape[1], k.shape[2]
    groups = num_heads // num_kv
    # Heads first, and the G query heads of a group stacked along the rows of one matmul per KV head.
    q = q.reshape(batch, q_len, num_kv, groups, head_dim).transpose(0, 2, 3, 1, 4)  # [B, K, G, T, D]
    q = q.reshape(batch, num_kv, groups * q_len, head_dim)  # [B, K, G*T, D]
    k = k.transpose(0, 2, 3, 1)  # [B, K, D, S]
    v = v.transpose(0, 2, 1, 3)  # [B, K, S, D]
    scores = jnp.matmul(q, k).astype(jnp.float32) * scale  # [B, K, G*T, S]
    scores = scores.reshape(batch, num_heads, q_len, kv_len)  # [B, H, T, S]
    scores = scores + jnp.where(mask, 0.0, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1)
    if head_mask is not None:
        probs = probs * head_mask.astype(jnp.float32)[None, :, None, None]
    probs = dropout(probs, dropout_rate, dropout_rng)
    weights = probs.astype(v.dtype).reshape(batch, num_kv, groups * q_len, kv_len)
    out = jnp.matmul(weights, v).reshape(batch, num_kv, groups, q_len, head_dim)  # [B, K, G, T, D]
    out = out.transpose(0, 3, 1, 2, 4).reshape(batch, q_len, num_heads, head_dim)  # [B, T, H, D]
    return constrain(out, ("batch", "length", "act_heads", None)), probs


def split_heads(x: jax.Array, num_heads: int) -> jax.Array:
    """[B, T, H * D] -> [B, T, H, D]."""
    return x.reshape(*x.shape[:-1], num_heads, x.shape[-1] // num_heads)


def merge_heads(x: jax.Array) -> jax.Array:
    """[B, T, H, D] -> [B, T, H * D]."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


# ----------------------------------------------------------------------------- layer stacks
def run_layers(layer_fn, x, stacked_params, config, per_layer_inputs=None):
    """Apply ``layer_fn(x, layer_params, per_layer_input) -> (x, extras)`` over stacked layers.

    Runs under ``lax.scan`` when ``config.scan_layers`` (compile time independent of depth), else as
    an unrolled Python loop; both give identical numbers. ``config.remat`` wraps each layer in
    ``jax.checkpoint``. Returns (x, extras stacked along a leading layer axis).
    """
    fn = jax.checkpoint(layer_fn) if config.remat else layer_fn
    if config.scan_layers:
        return jax.lax.scan(lambda h, xs: fn(h, *xs), x, (stacked_params, per_layer_inputs))
    num_layers = jax.tree.leaves(stacked_params)[0].shape[0]
    extras = []
    for i in range(num_layers):
        layer_params, layer_input = jax.tree.map(lambda a: a[i], (stacked_params, per_layer_inputs))
        x, extra = fn(x, layer_params, layer_input)
        extras.append(extra)
    return x, jax.tree.map(lambda *xs: jnp.stack(xs), *extras)
