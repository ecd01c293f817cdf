"""Token choice and sampling settings, shared by ``generate`` and the serving engine.

:func:`choose_tokens` picks one token per row from float32 logits: greedy (argmax), or a draw from
the logits after Hugging Face's warpers in HF's order (temperature, top-k, top-p, from
``logits_process``). Every setting is either one value for the whole batch or one value per row,
so the same function serves ``generate`` (one setting for the batch, switched on or off at compile
time) and the engine (a mix of greedy and sampled requests in one program).

:func:`validate_sampling_args` is the one check of the user-facing settings (``max_new_tokens``,
``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``); its errors name the
argument and the value, and carry both as attributes so that an HTTP server can report the field.
"""
from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from transformers_jax.generation import logits_process as lp


# ------------------------------------------------------------------------------------------ token choice
def _per_row(x):
    """A scalar stays a scalar; a [B] array becomes [B, 1] (it broadcasts over the vocabulary)."""
    x = jnp.asarray(x)
    return x[:, None] if x.ndim == 1 else x


def _is_typed_key(key) -> bool:
    return hasattr(key, "dtype") and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)


def draw(key, scores):
    """One token per row from softmax(``scores``) [B, V] (masked entries are -inf). ``key`` is one
    PRNG key for the whole batch (a raw uint32 [2] key or a typed scalar key), or one key per row
    (raw [B, 2] or typed [B]); with per-row keys, each row's draw depends only on its own key."""
    per_row = jnp.ndim(key) == (1 if _is_typed_key(key) else 2)
    if not per_row:
        return lp.sample(key, scores)
    return jax.vmap(lambda k, s: lp.sample(k, s[None])[0])(key, scores)


def fold_in_rows(keys, data):
    """Per-row keys [B, 2] with one integer per row [B] (e.g. the sequence position of the token
    being drawn) folded in: a request's draws then depend on its seed and position only."""
    return jax.vmap(jax.random.fold_in)(keys, data)


def host_prng_key(seed: int) -> np.ndarray:
    """``jax.random.PRNGKey(seed)`` (threefry, raw uint32 [2]) built on the host with NumPy, so that
    making a key for a request runs no device program."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return np.array([seed >> 32, seed & 0xFFFFFFFF], np.uint32)


def choose_tokens(logits, key=None, *, greedy=False, temperature=None, top_k=None, top_p=None):
    """One int32 token per row from float32 ``logits`` [B, V].

    ``greedy``: ``True`` (every row takes the argmax; no sampling code is traced), ``False`` (every
    row samples) or a bool array [B] (per row; when all rows are greedy at run time the sampling
    branch is skipped). ``temperature``, ``top_k`` and ``top_p`` are ``None`` (that warper is left
    out of the program) or a scalar or a [B] array of per-row values, traced; per row, ``top_k <= 0``
    and ``top_p >= 1`` switch that warper off and greedy rows are not divided by their temperature.
    ``key``: see :func:`draw`; unused (may be ``None``) when ``greedy is True``.
    """
    best = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if greedy is True:
        return best
    row_greedy = None if greedy is False else jnp.asarray(greedy)

    def sampled():
        temp = temperature
        if temp is not None and row_greedy is not None:
            temp = jnp.where(row_greedy, 1.0, temp)
        k = None
        if top_k is not None:
            k = jnp.where(jnp.asarray(top_k) > 0, top_k, logits.shape[-1])
        scores = lp.warp(logits, temp=temp, k=k)
        if top_p is not None:
            scores = jnp.where(_per_row(jnp.asarray(top_p) < 1.0), lp.top_p(scores, top_p), scores)
        drawn = draw(key, scores)
        return drawn if row_greedy is None else jnp.where(row_greedy, best, drawn)

    if row_greedy is None:
        return sampled()
    return jax.lax.cond(jnp.all(row_greedy), lambda: best, sampled)


# ------------------------------------------------------------------------------------------ validation
class SamplingArgumentError(ValueError):
    """A sampling setting out of range or of the wrong type; ``argument`` is its name (as the caller
    calls it) and ``value`` the value given."""

    def __init__(self, argument: str, value, requirement: str):
        self.argument, self.value = argument, value
        super().__init__(f"{argument} must be {requirement}, got {value!r}")


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def validate_sampling_args(*, max_new_tokens=None, do_sample=None, temperature=None, top_k=None, top_p=None,
                           repetition_penalty=None, max_temperature: float | None = None,
                           names: dict[str, str] | None = None) -> None:
    """Check the sampling settings that are given (``None`` = not given) and raise
    :class:`SamplingArgumentError` (a ``ValueError``) for the first bad one.

    Rules: ``max_new_tokens`` an integer >= 1; ``do_sample`` a bool; ``temperature`` a finite number
    >= 0 (0 means greedy, so ``do_sample=True`` needs it > 0), at most ``max_temperature`` when the
    caller has such a limit (an HTTP API); ``top_k`` an integer >= 0 (0 = off); ``top_p`` a number
    in (0, 1] (1 = off); ``repetition_penalty`` a finite number > 0. ``names`` maps these argument
    names to the caller's (``{"max_new_tokens": "max_tokens"}``) for the error messages.
    """
    names = names or {}

    def bad(argument, value, requirement):
        raise SamplingArgumentError(names.get(argument, argument), value, requirement)

    if max_new_tokens is not None and not (_is_integer(max_new_tokens) and max_new_tokens >= 1):
        bad("max_new_tokens", max_new_tokens, "a positive integer (at least 1)")
    if do_sample is not None and not isinstance(do_sample, (bool, np.bool_)):
        bad("do_sample", do_sample, "true or false")
    if temperature is not None:
        if not (_is_real(temperature) and temperature >= 0):
            bad("temperature", temperature, "a finite number >= 0 (0 means greedy)")
        if max_temperature is not None and temperature > max_temperature:
            bad("temperature", temperature, f"at most {max_temperature:g}")
        if temperature == 0 and do_sample:
            bad("temperature", temperature, "> 0 when sampling (do_sample=True); temperature 0 means greedy")
    if top_k is not None and not (_is_integer(top_k) and top_k >= 0):
        bad("top_k", top_k, "an integer >= 0 (0 = off)")
    if top_p is not None and not (_is_real(top_p) and 0 < top_p <= 1):
        bad("top_p", top_p, "a number in (0, 1] (1 = off)")
    if repetition_penalty is not None and not (_is_real(repetition_penalty) and repetition_penalty > 0):
        bad("repetition_penalty", repetition_penalty, "a finite number > 0 (1 = off)")


__all__ = ["SamplingArgumentError", "choose_tokens", "draw", "fold_in_rows", "host_prng_key",
           "validate_sampling_args"]
