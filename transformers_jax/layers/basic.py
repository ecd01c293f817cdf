"""Basic ops: activations, dropout, dense, norms, embeddings, head splitting.

Each function takes its params sub-tree explicitly. Norms run in float32; matmuls run in the
compute dtype of their inputs.
"""
from __future__ import annotations

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


def fuse_dense(params: dict, names: tuple, fused: str) -> dict:
    """``params`` with the dense layers ``names`` (one input, kernels [in, out_i]) replaced by ``fused``, whose
    kernel (and bias) concatenate theirs along the output: one product reads the same bytes in one call, as
    vLLM's fused QKV and gate-up projections do. Unchanged unless every name is there with the same leaves."""
    parts = [params.get(name) for name in names]
    if any(not isinstance(p, dict) or "kernel" not in p or jnp.ndim(p["kernel"]) != 2 for p in parts):
        return params
    if len({tuple(sorted(p)) for p in parts}) != 1 or not set(parts[0]) <= {"kernel", "bias"}:
        return params
    joined = {leaf: jnp.concatenate([p[leaf] for p in parts], axis=-1) for leaf in parts[0]}
    return {**{k: v for k, v in params.items() if k not in names}, fused: joined}


def dense_split(params: dict, x: jax.Array, sizes: tuple) -> list:
    """The outputs of a :func:`fuse_dense` layer, cut back into the parts of ``sizes`` (their output widths)."""
    return jnp.split(dense(params, x), np.cumsum(sizes)[:-1].tolist(), axis=-1)


def layer_norm(params: dict, x: jax.Array, eps: float) -> jax.Array:
    """LayerNorm over the last axis, computed in float32."""
    dtype = x.dtype
    x = x.astype(jnp.float32)
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    y = (x - mean) * jax.lax.rsqrt(var + eps)
    y = y * params["scale"].astype(jnp.float32) + params["bias"].astype(jnp.float32)
    return y.astype(dtype)


def rms_norm(params: dict, x: jax.Array, eps: float, unit_offset: bool = False) -> jax.Array:
    """RMSNorm over the last axis, normalised in float32.

    Llama's form (default): cast the normalised values back to the input dtype, then multiply by
    ``scale``. Gemma's form (``unit_offset=True``): multiply by ``1 + scale`` in float32, then cast.
    """
    dtype = x.dtype
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + eps)
    if unit_offset:
        return (y * (1.0 + params["scale"].astype(jnp.float32))).astype(dtype)
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


def take_positions(x: jax.Array, index) -> jax.Array:
    """``x`` [B, T, ...] at one position per row: ``index`` an int (every row) or [B] -> [B, 1, ...]. A decoding
    step's prefill needs only the logits of its last prompt token: the LM head then reads one row, not T."""
    index = jnp.asarray(index, jnp.int32)
    if index.ndim == 0:
        return jax.lax.dynamic_slice_in_dim(x, index, 1, axis=1)
    return jnp.take_along_axis(x, index.reshape(-1, 1, *([1] * (x.ndim - 2))), axis=1)


def softcap(x: jax.Array, cap: float | None) -> jax.Array:
    """``cap * tanh(x / cap)`` (Gemma 2's logit soft-capping); ``x`` unchanged when ``cap`` is None."""
    if not cap:
        return x
    return jnp.tanh(x / cap) * cap


def split_heads(x: jax.Array, num_heads: int) -> jax.Array:
    """[B, T, H * D] -> [B, T, H, D]."""
    return x.reshape(*x.shape[:-1], num_heads, x.shape[-1] // num_heads)


def merge_heads(x: jax.Array) -> jax.Array:
    """[B, T, H, D] -> [B, T, H * D]."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])
