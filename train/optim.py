"""Optimizers and learning-rate schedules with Hugging Face Trainer's semantics, on optax.

The schedule value at update ``i`` (0-based) equals what Hugging Face's ``get_scheduler`` gives the
``i``-th optimizer step; AdamW applies decoupled weight decay exactly as ``torch.optim.AdamW``
(``p <- p - lr * (adam_update + weight_decay * p)``), masked off biases and norm scales.
"""
from __future__ import annotations

import math
import re
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup")
OPTIMIZERS = ("adamw", "adamw_torch", "sgd")


def lr_schedule(name: str, learning_rate: float, num_training_steps: int, warmup_steps: int = 0) -> Callable:
    """Learning rate as a function of the update count, like ``transformers.get_scheduler``."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown lr_scheduler_type {name!r}; supported: {list(SCHEDULES)}")
    total, warmup = int(num_training_steps), int(warmup_steps)

    def factor(step):
        step = jnp.asarray(step, jnp.float32)
        warm = step / max(1, warmup)
        if name == "constant":
            return jnp.ones_like(step)
        if name == "constant_with_warmup":
            return jnp.where(step < warmup, warm, 1.0)
        progress = (step - warmup) / max(1, total - warmup)
        if name == "linear":
            after = jnp.maximum(0.0, (total - step) / max(1, total - warmup))
        else:  # cosine, half a cycle
            after = jnp.maximum(0.0, 0.5 * (1.0 + jnp.cos(jnp.pi * progress)))
        return jnp.where(step < warmup, warm, after)

    return lambda step: learning_rate * factor(step)


def warmup_steps_for(num_training_steps: int, warmup_steps: int = 0, warmup_ratio: float = 0.0) -> int:
    """Warm-up length: ``warmup_steps`` when set, else ``ceil(warmup_ratio * total)`` (HF's rule)."""
    if warmup_steps < 0 or not 0.0 <= warmup_ratio <= 1.0:
        raise ValueError(f"warmup_steps must be >= 0 and warmup_ratio in [0, 1], got {warmup_steps}, {warmup_ratio}")
    return int(warmup_steps) if warmup_steps > 0 else math.ceil(num_training_steps * warmup_ratio)


def _path(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def decay_mask(params):
    """True where weight decay applies: every param but norm scales and those whose path contains "bias" (biases,
    BART's ``final_logits_bias``, T5's ``relative_attention_bias``), as Hugging Face Trainer's
    ``get_decay_parameter_names`` excludes names containing "bias" and LayerNorm/RMSNorm weights."""
    def decays(path) -> bool:
        name = _path(path)
        return "bias" not in name and name.rsplit("/", 1)[-1] != "scale"

    return jax.tree_util.tree_map_with_path(lambda p, _: decays(p), params)


def trainable_mask(params, freeze: Sequence[str] = ()):
    """True for params that train. ``freeze`` holds regular expressions searched in each param's
    path (``"bert/encoder"`` freezes the encoder); a pattern matching nothing is an error."""
    patterns = [re.compile(p) for p in freeze]
    paths = [_path(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    for pattern in patterns:
        if not any(pattern.search(path) for path in paths):
            raise ValueError(f"freeze pattern {pattern.pattern!r} matches no param (params look like {paths[0]!r})")
    return jax.tree_util.tree_map_with_path(lambda p, _: not any(r.search(_path(p)) for r in patterns), params)


def make_optimizer(params, *, optim: str = "adamw", schedule: Callable, weight_decay: float = 0.0,
                   adam_beta1: float = 0.9, adam_beta2: float = 0.999, adam_epsilon: float = 1e-8,
                   max_grad_norm: float = 1.0, freeze: Sequence[str] = ()) -> optax.GradientTransformation:
    """Clip by global norm, then AdamW (or SGD) with the schedule; frozen params get no update and
    no optimizer state."""
    if optim not in OPTIMIZERS:
        raise ValueError(f"unknown optim {optim!r}; supported: {list(OPTIMIZERS)}")
    if optim == "sgd":
        core = optax.chain(optax.add_decayed_weights(weight_decay, mask=decay_mask(params)), optax.sgd(schedule))
    else:
        core = optax.adamw(schedule, b1=adam_beta1, b2=adam_beta2, eps=adam_epsilon, weight_decay=weight_decay,
                           mask=decay_mask(params))
    tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), core) if max_grad_norm and max_grad_norm > 0 else core
    if not freeze:
        return tx
    labels = jax.tree.map(lambda t: "train" if t else "frozen", trainable_mask(params, freeze))
    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
