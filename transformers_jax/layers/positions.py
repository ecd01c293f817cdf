"""Positions: rotary embeddings (RoPE and its scaled variants). Learned absolute positions are an
embedding table looked up by ``position_ids`` (``basic.embed``).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


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
    """Rotate ``x`` [B, T, H, D] by position (the rotate-half convention of Hugging Face).

    With partial rotary embeddings (``cos``/``sin`` narrower than D, as Phi-3 and GPT-NeoX may be
    configured) only the first ``cos.shape[-1]`` features rotate; the rest pass through."""
    rotary_dim = cos.shape[-1]
    if rotary_dim < x.shape[-1]:
        return jnp.concatenate([apply_rotary(x[..., :rotary_dim], cos, sin), x[..., rotary_dim:]], axis=-1)
    half = rotary_dim // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]
