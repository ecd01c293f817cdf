"""Losses computed as Hugging Face computes them (ignore index -100, means over counted items)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

IGNORE_INDEX = -100


def cross_entropy(logits: jax.Array, labels: jax.Array, ignore_index: int = IGNORE_INDEX) -> jax.Array:
    """Mean token cross entropy over labels != ``ignore_index`` (float32; 0/0 gives nan as in torch)."""
    logits = logits.astype(jnp.float32)
    valid = labels != ignore_index
    safe = jnp.where(valid, labels, 0)
    # logsumexp minus the label's logit: no full log-softmax array (one pass fewer over [..., V])
    nll = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(valid, nll, 0.0)) / jnp.sum(valid)


def causal_lm_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Next-token loss: position t predicts labels[t + 1] (labels are the unshifted input ids)."""
    shifted = jnp.concatenate([labels[:, 1:], jnp.full_like(labels[:, :1], IGNORE_INDEX)], axis=1)
    return cross_entropy(logits, shifted)


def chunked_causal_lm_loss(hidden: jax.Array, labels: jax.Array, logits_fn, chunk_size: int) -> jax.Array:
    """:func:`causal_lm_loss` of ``logits_fn(hidden)`` without ever holding the [B, T, V] logits.

    The sequence is cut into chunks of ``chunk_size`` positions (the last one padded with ignored labels);
    a scan computes each chunk's logits ``logits_fn(h)`` ([B, c, D] -> [B, c, V]) and its summed token
    losses, under ``jax.checkpoint`` so the backward pass recomputes a chunk's logits instead of keeping
    them: the memory of the LM head falls from B*T*V to B*c*V. The rows stay whole in every chunk, so a
    batch split over devices stays split. Same numbers as the unchunked loss up to float32 summation order.
    """
    batch, length, width = hidden.shape
    shifted = jnp.concatenate([labels[:, 1:], jnp.full_like(labels[:, :1], IGNORE_INDEX)], axis=1)
    chunks = -(-length // chunk_size)
    spare = chunks * chunk_size - length
    hidden = jnp.pad(hidden, ((0, 0), (0, spare), (0, 0)))
    shifted = jnp.pad(shifted, ((0, 0), (0, spare)), constant_values=IGNORE_INDEX)
    hidden = hidden.reshape(batch, chunks, chunk_size, width).swapaxes(0, 1)  # [n, B, c, D]
    shifted = shifted.reshape(batch, chunks, chunk_size).swapaxes(0, 1)  # [n, B, c]

    @jax.checkpoint
    def chunk_loss(h, y):  # summed token losses of one chunk: h [B, c, D], y [B, c]
        logits = logits_fn(h).astype(jnp.float32)  # [B, c, V]
        valid = y != IGNORE_INDEX
        safe = jnp.where(valid, y, 0)
        nll = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
        return jnp.sum(jnp.where(valid, nll, 0.0))

    total, _ = jax.lax.scan(lambda acc, xs: (acc + chunk_loss(*xs), None), jnp.float32(0), (hidden, shifted))
    return total / jnp.sum(shifted != IGNORE_INDEX)


def sequence_classification_loss(logits: jax.Array, labels: jax.Array, config) -> jax.Array:
    """Regression (MSE), single-label (CE) or multi-label (BCE with logits) loss by ``problem_type``.

    When ``config.problem_type`` is unset it is inferred as Hugging Face does: one label means
    regression, integer labels single-label, anything else multi-label.
    """
    problem = config.problem_type
    if problem is None:
        if config.num_labels == 1:
            problem = "regression"
        elif jnp.issubdtype(labels.dtype, jnp.integer):
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
    logits = logits.astype(jnp.float32)
    if problem == "regression":
        if config.num_labels == 1:
            return jnp.mean(jnp.square(logits.squeeze(-1) - labels.squeeze().astype(jnp.float32)))
        return jnp.mean(jnp.square(logits - labels.astype(jnp.float32)))
    if problem == "single_label_classification":
        return cross_entropy(logits.reshape(-1, config.num_labels), labels.reshape(-1))
    targets = labels.astype(jnp.float32)
    per_item = jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    return jnp.mean(per_item)


def span_loss(start_logits, end_logits, start_positions, end_positions) -> jax.Array:
    """Extractive QA loss: positions outside the sequence are clamped to it and then ignored."""
    length = start_logits.shape[1]
    start = jnp.clip(start_positions.reshape(-1), 0, length)
    end = jnp.clip(end_positions.reshape(-1), 0, length)
    start_loss = cross_entropy(start_logits, start, ignore_index=length)
    end_loss = cross_entropy(end_logits, end, ignore_index=length)
    return (start_loss + end_loss) / 2


def label_smoothed_loss(logits: jax.Array, labels: jax.Array, epsilon: float, ignore_index: int = IGNORE_INDEX,
                        shift_labels: bool = False) -> jax.Array:
    """Hugging Face's ``LabelSmoother``: ``(1 - epsilon) * nll + epsilon * smooth`` over labels != ``ignore_index``.

    ``nll`` is the mean negative log-likelihood of the labels and ``smooth`` the mean over the same positions of
    ``-sum(log_softmax(logits))`` divided by the vocabulary size (the cross entropy against a uniform target), so
    ``epsilon = 0`` gives :func:`cross_entropy`. ``logits`` [..., V] (float32 math), ``labels`` [...] integer ids.
    ``shift_labels`` (causal LMs, where ``labels`` are the unshifted input ids) scores ``logits[:, t]`` against
    ``labels[:, t + 1]``. No counted label gives nan (0/0), as in torch.
    """
    if not 0.0 <= float(epsilon) < 1.0:
        raise ValueError(f"label smoothing epsilon must be in [0, 1), got {epsilon!r}")
    if labels.ndim != logits.ndim - 1 or labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels {labels.shape} must be the logits' shape {logits.shape} without the last axis")
    if shift_labels:
        logits, labels = logits[:, :-1], labels[:, 1:]
    logits = logits.astype(jnp.float32)
    valid = labels != ignore_index
    safe = jnp.where(valid, labels, 0)
    log_z = jax.nn.logsumexp(logits, axis=-1)  # [...]
    nll = log_z - jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
    smooth = jnp.sum(log_z[..., None] - logits, axis=-1)  # -sum_v log_softmax(logits)_v (one fused reduction)
    count = jnp.sum(valid)
    nll = jnp.sum(jnp.where(valid, nll, 0.0)) / count
    smooth = jnp.sum(jnp.where(valid, smooth, 0.0)) / (count * logits.shape[-1])
    return (1.0 - epsilon) * nll + epsilon * smooth
