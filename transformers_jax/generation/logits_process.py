"""Logits processors as pure, jittable functions on fixed-size buffers.

Each takes ``logits`` [B, V] (float32) and returns processed logits. The token history is a fixed
buffer ``tokens`` [B, L] with a boolean ``valid`` [B, L] marking the positions that HF's
``input_ids`` would hold; the current length is a traced scalar, so one compiled program serves
every step. Semantics follow ``transformers/generation/logits_process.py``; the order in which
:func:`process_logits` applies them is HF's ``_get_logits_processor`` order.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

NEG_INF = -jnp.inf


def _presence(tokens, valid, vocab: int):
    """[B, V] bool: token v occurs at a valid position of row b."""
    batch = tokens.shape[0]
    rows = jnp.broadcast_to(jnp.arange(batch)[:, None], tokens.shape)
    return jnp.zeros((batch, vocab), bool).at[rows, jnp.clip(tokens, 0, vocab - 1)].max(valid)


def repetition_penalty(logits, tokens, valid, penalty):
    """HF's RepetitionPenaltyLogitsProcessor: scores of tokens already present are divided by
    ``penalty`` when positive and multiplied by it when negative (once per distinct token)."""
    seen = _presence(tokens, valid, logits.shape[-1])
    penalised = jnp.where(logits < 0, logits * penalty, logits / penalty)
    return jnp.where(seen, penalised, logits)


def no_repeat_ngram(logits, tokens, valid, cur_end, ngram_size: int):
    """HF's NoRepeatNGramLogitsProcessor: ban every token that would complete an n-gram already
    present in the valid history. ``cur_end`` is the buffer index one past the last token."""
    n = ngram_size
    batch, length = tokens.shape
    width = length - n + 1
    if width <= 0:
        return logits
    windows = jnp.stack([tokens[:, i : i + width] for i in range(n)], axis=-1)  # [B, W, n]
    windows_valid = jnp.stack([valid[:, i : i + width] for i in range(n)], axis=-1).all(-1)  # [B, W]
    # windows must also lie before cur_end (valid already says so) and the suffix must exist
    suffix = jax.lax.dynamic_slice_in_dim(tokens, cur_end - (n - 1), n - 1, axis=1) if n > 1 else tokens[:, :0]
    match = windows_valid & (windows[:, :, : n - 1] == suffix[:, None, :]).all(-1)  # [B, W]
    banned = _presence(windows[:, :, n - 1], match, logits.shape[-1])
    return jnp.where(banned, NEG_INF, logits)


def suppress_eos(logits, eos_token_ids: tuple[int, ...], active):
    """HF's MinLength / MinNewTokensLength processors: EOS gets -inf while ``active``."""
    if not eos_token_ids:
        return logits
    eos = jnp.zeros(logits.shape[-1], bool).at[jnp.asarray(eos_token_ids)].set(True)
    return jnp.where(active & eos[None, :], NEG_INF, logits)


def force_tokens(logits, token_ids: tuple[int, ...], active):
    """HF's ForcedBOSToken / ForcedEOSToken processors: while ``active``, every score is -inf except
    those of ``token_ids``, which become 0."""
    forced = jnp.zeros(logits.shape[-1], bool).at[jnp.asarray(token_ids)].set(True)
    return jnp.where(active, jnp.where(forced[None, :], 0.0, NEG_INF), logits)


def _per_row(x):
    """A scalar stays a scalar; a [B] array of per-row settings becomes [B, 1] (broadcasts over V)."""
    x = jnp.asarray(x)
    return x[:, None] if x.ndim == 1 else x


def temperature(logits, temp):
    """Divide by ``temp`` (a scalar or one temperature per row, [B])."""
    return logits / _per_row(temp)


def top_k(logits, k, min_tokens_to_keep: int = 1):
    """HF's TopKLogitsWarper: keep the scores >= the k-th largest (ties kept); ``k`` may be traced,
    a scalar or one k per row ([B])."""
    vocab = logits.shape[-1]
    k = jnp.clip(jnp.maximum(_per_row(k), min_tokens_to_keep), 1, vocab)
    ordered = jnp.sort(logits, axis=-1)[:, ::-1]  # descending
    kth = jnp.take_along_axis(ordered, jnp.broadcast_to(k - 1, (logits.shape[0], 1)).astype(jnp.int32), axis=-1)
    return jnp.where(logits < kth, NEG_INF, logits)


def top_p(logits, p, min_tokens_to_keep: int = 1):
    """HF's TopPLogitsWarper: sort ascending, drop the tokens whose cumulative probability is
    <= 1 - top_p, always keeping the ``min_tokens_to_keep`` most likely. ``p`` is a scalar or one
    value per row ([B])."""
    p = _per_row(p)
    order = jnp.argsort(logits, axis=-1)  # ascending
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    cumulative = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
    remove = cumulative <= (1 - p)
    remove = remove.at[:, -min_tokens_to_keep:].set(False)
    rows = jnp.arange(logits.shape[0])[:, None]
    remove_orig = jnp.zeros_like(remove).at[rows, order].set(remove)
    return jnp.where(remove_orig, NEG_INF, logits)


def warp(logits, *, temp=None, k=None, p=None, min_tokens_to_keep: int = 1):
    """The sampling warpers in HF's order: temperature, top-k, top-p (``None`` = off)."""
    if temp is not None:
        logits = temperature(logits, temp)
    if k is not None:
        logits = top_k(logits, k, min_tokens_to_keep)
    if p is not None:
        logits = top_p(logits, p, min_tokens_to_keep)
    return logits


def sample(key, logits):
    """Draw one token per row from softmax(logits) (masked entries are -inf)."""
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


__all__ = ["repetition_penalty", "no_repeat_ngram", "suppress_eos", "force_tokens", "temperature", "top_k", "top_p", "warp", "sample"]
