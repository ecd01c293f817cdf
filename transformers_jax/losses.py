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
