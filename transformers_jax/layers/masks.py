"""Attention masks: padding, causal, sliding window, packed documents. Boolean, True = may attend."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def padding_mask(attention_mask: jax.Array) -> jax.Array:
    """[B, S] 1/0 mask -> boolean [B, 1, 1, S] (True where a key may be attended)."""
    return attention_mask.astype(bool)[:, None, None, :]


def query_key_padding_mask(attention_mask: jax.Array) -> jax.Array:
    """[B, T] 1/0 mask -> boolean [B, 1, T, T]: pair (q, k) is True when both are real tokens
    (DeBERTa masks padded query rows too; such a row attends uniformly, as in Hugging Face)."""
    real = attention_mask.astype(bool)
    return (real[:, :, None] & real[:, None, :])[:, None]


def query_key_slots(query_len: int, key_len: int, query_start=None) -> tuple[jax.Array, jax.Array]:
    """Slot indices of queries [B or 1, 1, T, 1] and keys [1, 1, 1, S].

    Query t sits at key slot ``query_start + t`` (by default the last T slots); ``query_start`` is
    a scalar or one start per row ([B])."""
    if query_start is None:
        query_start = key_len - query_len
    start = jnp.reshape(jnp.asarray(query_start), (-1, 1, 1, 1))  # [B or 1, 1, 1, 1]
    return jnp.arange(query_len)[None, None, :, None] + start, jnp.arange(key_len)[None, None, None, :]


def causal_padding_mask(key_mask: jax.Array, query_len: int, query_start=None) -> jax.Array:
    """Causal mask combined with key padding: boolean [B, 1, T, S].

    Query t sits at key slot ``query_start + t`` (see :func:`query_key_slots`) and sees the valid
    keys at slots up to its own.

    Packed rows: when queries and keys are the same T positions, ``key_mask`` may hold document
    ids (1, 2, ... per document, 0 for padding) instead of 1/0; a token then sees only earlier
    tokens of its own document. A plain 1/0 mask is the one-document case, and padding queries
    keep Hugging Face's behaviour (they see every valid earlier key).
    """
    key_len = key_mask.shape[-1]
    q, k = query_key_slots(query_len, key_len, query_start)
    mask = (k <= q) & key_mask.astype(bool)[:, None, None, :]
    if query_len == key_len:
        doc = key_mask.astype(jnp.int32)
        q_doc, k_doc = doc[:, None, :, None], doc[:, None, None, :]  # [B, 1, T, 1], [B, 1, 1, S]
        mask = mask & ((q_doc == k_doc) | (q_doc == 0))
    return mask


def sliding_window_mask(query_len: int, key_len: int, window, query_start=None) -> jax.Array:
    """Boolean [B or 1, 1, T, S]: a query sees the ``window`` most recent slots up to its own
    (slot ``k`` with ``q - window < k``), as Hugging Face's sliding-window attention does.

    ``window`` may be a traced per-layer value (a scan input); a value at least the key length
    leaves every slot visible (a global layer). Combine with :func:`causal_padding_mask`. Slots
    are cache positions: with left padding the difference between two real tokens' slots equals
    the difference of their positions, so the window counts tokens as Hugging Face's does.
    """
    q, k = query_key_slots(query_len, key_len, query_start)
    return k > q - window
