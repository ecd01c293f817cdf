"""Running a stack of identical layers."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def run_layers(layer_fn, x, stacked_params, config, per_layer_inputs=None):
    """Apply ``layer_fn(x, layer_params, per_layer_input) -> (x, extras)`` over stacked layers.

    Runs under ``lax.scan`` when ``config.scan_layers`` (compile time independent of depth), else as
    an unrolled Python loop; both give identical numbers. ``config.remat`` wraps each layer in
    ``jax.checkpoint``. Per-layer differences (local or global attention, a layer's window) are
    arrays in ``per_layer_inputs`` with a leading layer axis, never Python branches. Returns (x,
    extras stacked along a leading layer axis).

    ``stacked_params`` may instead be a tuple of per-layer trees (``unstack_layers``): the layers then
    run unrolled over those separate arrays (decoding on XLA:CPU reads each weight once that way,
    where a scan first copies each layer's slice of the stacked weights).
    """
    fn = jax.checkpoint(layer_fn) if config.remat else layer_fn
    if isinstance(stacked_params, tuple):
        extras = []
        for i, layer_params in enumerate(stacked_params):
            x, extra = fn(x, layer_params, jax.tree.map(lambda a: a[i], per_layer_inputs))
            extras.append(extra)
        return x, jax.tree.map(lambda *xs: jnp.stack(xs), *extras)
    if config.scan_layers:
        return jax.lax.scan(lambda h, xs: fn(h, *xs), x, (stacked_params, per_layer_inputs))
    num_layers = jax.tree.leaves(stacked_params)[0].shape[0]
    extras = []
    for i in range(num_layers):
        layer_params, layer_input = jax.tree.map(lambda a: a[i], (stacked_params, per_layer_inputs))
        x, extra = fn(x, layer_params, layer_input)
        extras.append(extra)
    return x, jax.tree.map(lambda *xs: jnp.stack(xs), *extras)


def unstack_layers(stacked_params) -> tuple:
    """A stacked layer tree ([L, ...] leaves) as a tuple of L per-layer trees."""
    num_layers = jax.tree.leaves(stacked_params)[0].shape[0]
    return tuple(jax.tree.map(lambda a: a[i], stacked_params) for i in range(num_layers))


def has_unstacked_layers(params) -> bool:
    """Whether some ``layers`` entry of the params tree ``params`` is a tuple of per-layer trees
    (:func:`unstack_layers`): its layers then run unrolled."""
    if not isinstance(params, dict):
        return False
    return any(isinstance(value, tuple) if name == "layers" else has_unstacked_layers(value)
               for name, value in params.items())
