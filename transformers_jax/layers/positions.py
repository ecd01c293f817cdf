"""Positions: rotary embeddings (RoPE and its scaled variants), T5/MPNet relative position buckets, and
DeBERTa's relative positions (distances between query and key, log buckets, gathering per-distance
scores into [T, S] maps). Learned absolute positions are an embedding table looked up by
``position_ids`` (``basic.embed``).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


# ----------------------------------------------------------------------------- rotary position embeddings
ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn", "longrope")


def rope_type_of(rope: dict) -> str:
    """The ``rope_type`` of a ``rope_parameters`` dict (older configs say ``type``), checked against
    :data:`ROPE_TYPES`."""
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        raise ValueError(f"rope_type {rope_type!r} is not supported; known types: {', '.join(ROPE_TYPES)}")
    return rope_type


def _rotary_dim(rope: dict, head_dim: int) -> int:
    return int(head_dim * rope.get("partial_rotary_factor", 1.0))


def _float32_power(base, exponent: np.ndarray) -> np.ndarray:
    """``base ** exponent`` correctly rounded to float32 (bit-equal to PyTorch's float32 pow)."""
    return (np.float64(base) ** exponent.astype(np.float64)).astype(np.float32)


def rope_inverse_frequencies(rope: dict, head_dim: int, max_position_embeddings: int,
                             seq_len: int | None = None) -> tuple[np.ndarray, float]:
    """(inv_freq [rotary_dim // 2] float32, attention scaling) for a Hugging Face ``rope_parameters``
    dict: the values of HF's ``ROPE_INIT_FUNCTIONS[rope_type](config, seq_len=seq_len)``.

    Types: ``default``, ``linear``, ``dynamic``, ``llama3``, ``yarn``, ``longrope``; others are refused
    by name. ``seq_len`` matters to the two length-dependent types only: ``dynamic`` (NTK: the base
    grows once ``seq_len`` exceeds ``max_position_embeddings``) and ``longrope`` (``long_factor``
    once ``seq_len`` exceeds ``original_max_position_embeddings``, else ``short_factor``). A forward
    pass picks ``seq_len`` from its positions: see :func:`rope_cos_sin`.
    """
    rope_type = rope_type_of(rope)
    base = np.float32(rope.get("rope_theta", 10000.0))
    dim = _rotary_dim(rope, head_dim)
    exponent = np.arange(0, dim, 2).astype(np.float32) / np.float32(dim)
    if rope_type == "dynamic":
        # HF computes the grown base in Python floats here (a tensor seq_len is done in float32, see
        # _dynamic_inv_freq); seq_len is at least max_position_embeddings, where the base is unchanged.
        factor, length = rope["factor"], max(seq_len or 0, max_position_embeddings)
        grown = float(rope.get("rope_theta", 10000.0)) * (
            (factor * length / max_position_embeddings) - (factor - 1)) ** (dim / (dim - 2))
        return np.float32(1.0) / _float32_power(np.float32(grown), exponent), 1.0
    # A correctly rounded float32 power, then a float32 division: bit-equal to PyTorch's inv_freq.
    inv_freq = np.float32(1.0) / _float32_power(base, exponent)
    scaling = 1.0
    if rope_type == "linear":
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
    elif rope_type == "longrope":
        inv_freq, scaling = _longrope(rope, base, exponent, max_position_embeddings, seq_len)
    return inv_freq.astype(np.float32), float(scaling)


def _longrope(rope: dict, base, exponent: np.ndarray, max_positions: int, seq_len: int | None):
    """LongRoPE (Phi-3): per-frequency ``short_factor`` or ``long_factor`` divide the frequencies;
    the attention factor defaults to sqrt(1 + log(factor) / log(original)), where ``factor``
    defaults to max_position_embeddings / original_max_position_embeddings (as HF does)."""
    original = rope["original_max_position_embeddings"]
    factor = rope.get("factor")
    if factor is None:
        factor = max_positions / original
    attention_factor = rope.get("attention_factor")
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    ext = rope["long_factor"] if seq_len and seq_len > original else rope["short_factor"]
    ext = np.asarray(ext, np.float32)
    if ext.shape != exponent.shape:
        raise ValueError(f"longrope factors have {ext.shape[0]} entries, the rotary dimension needs "
                         f"{exponent.shape[0]} (rotary_dim / 2)")
    return np.float32(1.0) / (ext * _float32_power(base, exponent)), attention_factor


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


def _dynamic_inv_freq(rope: dict, head_dim: int, max_positions: int, seq_len: jax.Array) -> jax.Array:
    """Dynamic NTK inv_freq for a traced ``seq_len``, in float32 as HF computes it during a forward
    (its ``seq_len`` is then a tensor, so the grown base is float32 arithmetic)."""
    dim = _rotary_dim(rope, head_dim)
    factor = jnp.float32(rope["factor"])
    length = jnp.maximum(seq_len, max_positions).astype(jnp.float32)
    scale = (factor * length / jnp.float32(max_positions) - jnp.float32(rope["factor"] - 1)) ** jnp.float32(dim / (dim - 2))
    grown = jnp.float32(rope.get("rope_theta", 10000.0)) * scale
    exponent = jnp.asarray(np.arange(0, dim, 2).astype(np.float32) / np.float32(dim))
    return jnp.float32(1.0) / grown ** exponent


def rope_cos_sin(rope: dict, head_dim: int, max_position_embeddings: int, position_ids: jax.Array, dtype):
    """cos and sin [B, T, rotary_dim] of a forward pass at ``position_ids`` [B, T].

    The length-dependent types take the pass's length as HF does: ``max(position_ids) + 1`` over the
    whole batch. ``longrope`` uses its long factors when that exceeds
    ``original_max_position_embeddings``; ``dynamic`` keeps the plain frequencies up to
    ``max_position_embeddings`` and grows the base beyond it. HF's rotary module remembers the
    longest length it has seen (``max_seq_len_cached``) and keeps those frequencies for later, shorter
    calls still above ``max_position_embeddings``; this is a function of the current call only, i.e.
    it equals a freshly loaded HF model on every call. With a KV cache, each step's keys are rotated
    with that step's frequencies and earlier keys are not re-rotated (as HF's cache does too).
    """
    rope_type = rope_type_of(rope)
    if rope_type not in ("dynamic", "longrope"):
        inv_freq, scaling = rope_inverse_frequencies(rope, head_dim, max_position_embeddings)
        return rotary_cos_sin(position_ids, inv_freq, scaling, dtype)
    seq_len = jnp.max(position_ids) + 1
    if rope_type == "longrope":
        original = rope["original_max_position_embeddings"]
        short, scaling = rope_inverse_frequencies(rope, head_dim, max_position_embeddings)
        long, _ = rope_inverse_frequencies(rope, head_dim, max_position_embeddings, seq_len=original + 1)
        inv_freq = jnp.where(seq_len > original, jnp.asarray(long), jnp.asarray(short))
    else:
        plain, scaling = rope_inverse_frequencies(rope, head_dim, max_position_embeddings)
        grown = _dynamic_inv_freq(rope, head_dim, max_position_embeddings, seq_len)
        inv_freq = jnp.where(seq_len > max_position_embeddings, grown, jnp.asarray(plain))
    return rotary_cos_sin(position_ids, inv_freq, scaling, dtype)


def rotary_cos_sin(position_ids: jax.Array, inv_freq, scaling: float, dtype):
    """cos and sin [B, T, rotary_dim] for integer ``position_ids`` [B, T] and ``inv_freq``
    [rotary_dim // 2] (computed in float32)."""
    freqs = position_ids[..., None].astype(jnp.float32) * jnp.asarray(inv_freq)  # [B, T, dim/2]
    angles = jnp.concatenate([freqs, freqs], axis=-1)
    return (jnp.cos(angles) * scaling).astype(dtype), (jnp.sin(angles) * scaling).astype(dtype)


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate ``x`` [B, T, H, D] by position (the rotate-half convention of Hugging Face).

    With partial rotary embeddings (``cos``/``sin`` narrower than D, as Phi-3 and GPT-NeoX may be
    configured) only the first ``cos.shape[-1]`` features rotate; the rest pass through."""
    rotary_dim = cos.shape[-1]
    if rotary_dim < x.shape[-1]:
        return jnp.concatenate([apply_rotary(x[..., :rotary_dim], cos, sin), x[..., rotary_dim:]], axis=-1)
    half = rotary_dim // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]


# ----------------------------------------------------------------------------- relative position buckets
def _bucket_ids(relative: np.ndarray, num_buckets: int, max_distance: int, bidirectional: bool) -> np.ndarray:
    """T5's bucket id of each relative position ``key - query`` in ``relative`` (int array), in float64."""
    buckets = np.zeros(relative.shape, np.int64)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative > 0) * num_buckets
        distance = np.abs(relative)
    else:
        distance = np.maximum(-relative, 0)
    max_exact = num_buckets // 2
    log_ratio = np.log(np.maximum(distance, 1) / max_exact) / np.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return (buckets + np.where(distance < max_exact, distance, large)).astype(np.int32)


def relative_position_buckets(query_length: int, key_length: int, num_buckets: int = 32,
                              max_distance: int = 128, bidirectional: bool = True) -> np.ndarray:
    """T5/MPNet bucket ids [query_length, key_length] of the relative positions ``key - query``.

    Bidirectional: half the buckets hold keys after the query. Within a half, distances below
    ``num_buckets // 4`` (half of the half) get a bucket each; longer ones share logarithmically
    spaced buckets up to ``max_distance``, beyond which all share the last. Computed with numpy at
    trace time (the ids depend on the lengths only), in float64: the log buckets' edges fall on
    exact integers (distance 16 is bucket 10 of 16), which float64 keeps and float32 may round down.
    """
    relative = np.arange(key_length)[None, :] - np.arange(query_length)[:, None]  # key - query
    return _bucket_ids(relative, num_buckets, max_distance, bidirectional)


def relative_bucket_table(num_buckets: int, max_distance: int, bidirectional: bool) -> np.ndarray:
    """The bucket id [2 * max_distance + 1] of every relative position ``key - query`` in
    [-max_distance, max_distance], at index ``key - query + max_distance`` (the ids of
    :func:`relative_position_buckets`). Every farther position shares the bucket of the distance
    ``max_distance`` in its direction, so clipping a distance into the range gives its bucket; that
    needs ``max_distance`` above the exact-bucket range (``num_buckets // 4`` bidirectional,
    ``num_buckets // 2`` causal), where T5's formula saturates (below it, Hugging Face's buckets
    decrease again and finally leave the table)."""
    max_exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
    if num_buckets < 2 or max_exact < 1:
        raise ValueError(f"num_buckets must be at least {4 if bidirectional else 2} for "
                         f"{'bidirectional' if bidirectional else 'causal'} relative buckets, got {num_buckets}")
    if max_distance <= max_exact:
        raise ValueError(f"max_distance ({max_distance}) must exceed the {max_exact} exact buckets of "
                         f"num_buckets={num_buckets} ({'bidirectional' if bidirectional else 'causal'}): T5's "
                         "log buckets do not saturate below it")
    return _bucket_ids(np.arange(-max_distance, max_distance + 1), num_buckets, max_distance, bidirectional)


def relative_position_bias(table: jax.Array, query_positions: jax.Array, key_positions: jax.Array, *,
                           num_buckets: int, max_distance: int, bidirectional: bool) -> jax.Array:
    """T5's relative position bias [B, H, T, S] from its table [num_buckets, H] (an embedding per bucket).

    ``query_positions`` [B, T] and ``key_positions`` [B, S] are int positions (B may be 1; they may be
    traced, as while decoding with a cache); each pair's bucket is that of ``key - query``, looked up
    in :func:`relative_bucket_table` after clipping the distance to ``max_distance``."""
    ids = jnp.asarray(relative_bucket_table(num_buckets, max_distance, bidirectional))  # [2 * max_distance + 1]
    relative = key_positions[:, None, :].astype(jnp.int32) - query_positions[:, :, None].astype(jnp.int32)  # [B, T, S]
    buckets = ids[jnp.clip(relative, -max_distance, max_distance) + max_distance]  # [B, T, S]
    return jnp.take(table, buckets, axis=0).transpose(0, 3, 1, 2)  # [B, H, T, S]


# ----------------------------------------------------------------------------- relative positions
def log_bucket_distances(distances: np.ndarray, bucket_size: int, max_position: int) -> np.ndarray:
    """DeBERTa's log buckets of signed distances (int array in, int64 array out).

    Distances within ``bucket_size // 2`` (``mid``) keep their value; farther ones map to
    ``sign * (mid + ceil(log(|d| / mid) / log((max_position - 1) / mid) * (mid - 1)))``, so
    ``max_position - 1`` lands on bucket ``2 * mid - 1`` and larger distances beyond it (callers
    clamp). Computed in float32 as Hugging Face's ``make_log_bucket_position`` does.
    """
    d = np.asarray(distances, np.int64)
    mid = bucket_size // 2
    sign = np.sign(d)
    abs_pos = np.where((d < mid) & (d > -mid), mid - 1, np.abs(d))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(abs_pos.astype(np.float32) / np.float32(mid))
        log_pos = np.ceil(ratio / np.log(np.float32((max_position - 1) / mid)) * np.float32(mid - 1)) + np.float32(mid)
    return np.where(abs_pos <= mid, d.astype(np.float32), log_pos * sign).astype(np.int64)


def relative_distance_table(query_len: int, key_len: int, bucket_size: int = -1, max_position: int = -1) -> np.ndarray:
    """The relative position ``q - k`` for every distance a [query_len, key_len] map holds, as a 1-D
    table indexed by ``q - k + key_len - 1`` (length ``query_len + key_len - 1``); log-bucketed
    (:func:`log_bucket_distances`) when both ``bucket_size`` and ``max_position`` are positive.
    A table over distances, not a [T, S] array: cheap to build at trace time for any length."""
    distances = np.arange(-(key_len - 1), query_len, dtype=np.int64)
    if bucket_size > 0 and max_position > 0:
        distances = log_bucket_distances(distances, bucket_size, max_position)
    return distances


def relative_position_map(query_len: int, key_len: int, bucket_size: int = -1, max_position: int = -1) -> jax.Array:
    """Relative positions [T, S] (int32): entry (q, k) is ``q - k``, log-bucketed as in
    :func:`relative_distance_table`; built in the program from a 1-D table (no [T, S] constant)."""
    table = jnp.asarray(relative_distance_table(query_len, key_len, bucket_size, max_position), jnp.int32)
    q = jnp.arange(query_len)[:, None]
    k = jnp.arange(key_len)[None, :]
    return table[q - k + key_len - 1]


def gather_relative_scores(scores: jax.Array, index: jax.Array) -> jax.Array:
    """Pick per-distance scores into a position map: ``scores`` [..., T, R] (one column per relative
    embedding), ``index`` [T, S] (the column of each query/key pair) -> [..., T, S] with
    ``out[..., t, s] = scores[..., t, index[t, s]]`` (``torch.gather`` along the last axis)."""
    index = jnp.broadcast_to(index, (*scores.shape[:-1], index.shape[-1]))
    return jnp.take_along_axis(scores, index, axis=-1)
