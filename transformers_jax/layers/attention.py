"""Dot-product attention, written once: grouped key/value heads, masks, additive bias, soft-capping."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from transformers_jax.layers.basic import dropout, softcap
from transformers_jax.partitioning import active_sharding, constrain


def dot_product_attention(q, k, v, mask, *, scale: float, bias=None, logit_softcap: float | None = None,
                          head_mask=None, dropout_rate: float = 0.0, dropout_rng=None):
    """Multi-head attention with grouped key/value heads.

    q: [B, T, H, D]; k, v: [B, S, K, D] with H a multiple of K (GQA/MQA); mask: boolean,
    broadcastable to [B, H, T, S] (padding, causal and sliding window combined by the caller).
    Scores ``q.k * scale`` are computed in float32; ``logit_softcap`` caps them as
    ``cap * tanh(s / cap)`` (Gemma 2); an additive ``bias`` (broadcastable to [B, H, T, S], e.g.
    ALiBi or relative positions) is added next; masked scores get the float32 minimum added, as
    Hugging Face's eager attention does (a fully masked row attends uniformly). ``head_mask`` ([H],
    optional) scales each head's probabilities; with ``dropout_rng`` the probabilities get dropout
    at ``dropout_rate`` (training).
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
    decoding = q_len == 1
    if decoding:  # a step: the keys as the left operand, read as they lie in the KV cache
        keys, queries = _rows_and_heads_merged(k.transpose(0, 1, 3, 2)), _rows_and_heads_merged(q.transpose(0, 1, 3, 2))
        scores = jnp.matmul(keys, queries).reshape(batch, num_kv, kv_len, groups).transpose(0, 1, 3, 2)  # [B, K, G, S]
    else:
        scores = jnp.matmul(q, k)  # [B, K, G*T, S]
    scores = scores.astype(jnp.float32) * scale
    scores = scores.reshape(batch, num_heads, q_len, kv_len)  # [B, H, T, S]
    scores = softcap(scores, logit_softcap)
    if bias is not None:
        scores = scores + bias.astype(jnp.float32)
    scores = scores + jnp.where(mask, 0.0, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1)
    if head_mask is not None:
        probs = probs * head_mask.astype(jnp.float32)[None, :, None, None]
    probs = dropout(probs, dropout_rate, dropout_rng)
    weights = probs.astype(v.dtype).reshape(batch, num_kv, groups * q_len, kv_len)
    if decoding:  # the values too as the cache holds them
        out = jnp.matmul(_rows_and_heads_merged(weights), _rows_and_heads_merged(v))
    else:
        out = jnp.matmul(weights, v)
    out = out.reshape(batch, num_kv, groups, q_len, head_dim)  # [B, K, G, T, D]
    out = out.transpose(0, 3, 1, 2, 4).reshape(batch, q_len, num_heads, head_dim)  # [B, T, H, D]
    return constrain(out, ("batch", "length", "act_heads", None)), probs


def _rows_and_heads_merged(x):
    """[B, K, ...] as [B*K, ...], the layout of a KV cache buffer inside an unrolled decoding loop
    (``kv_cache.split_layers``): a product reads that buffer itself only when its operand has exactly that
    shape. On a mesh (rows and heads split over different mesh axes) ``x`` stays as it is: merged, the
    partitioner gathers the cache."""
    if active_sharding() is not None:
        return x
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
