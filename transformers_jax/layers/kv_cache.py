"""The KV cache: one place that knows its layout.

A cache is ``{"k": [L, B, K, S, D], "v": [L, B, K, S, D]}`` (layers, rows, kv heads, slots, head dim):
heads before slots, so a layer's keys and values are read by the attention products as they lie (on
XLA:CPU a slots-first cache made every step copy each layer's keys and values transposed; issue 15).
:func:`write` hands attention a layer's entries as [B, S, K, D], a transposed view the compiler folds
into the products. An encoder-decoder's cache adds the cross-attention entries of
:func:`cross_entries`: ``cross_k`` / ``cross_v`` [L, B, K, S_enc, D], the encoder output's keys and
values computed once per generation, laid out as the self-attention entries and read by
:func:`cross_layer`, and ``cross_mask`` [1, B, S_enc], the encoder's padding. The row axis is axis 1
everywhere, so the row operations below treat every entry alike; slots (:func:`prefix`) are the
self-attention entries' only. Generation, beam search and the serving engine go through these functions only.

On a mesh (:class:`transformers_jax.partitioning.MeshRules`) the rows are split like a batch (the
``batch`` logical axis: ``data``/``fsdp``) and the KV heads like the attention heads (``kv_heads``:
``tensor`` under the ``tp`` presets): :func:`shardings`, :func:`init_placed`, and :func:`constrain` inside
compiled programs.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from transformers_jax.layers.stack import has_unstacked_layers
from transformers_jax.partitioning import MeshRules
from transformers_jax.partitioning import constrain as constrain_axes

ROW_AXIS, SLOT_AXIS = 1, 3  # of the keys and values [L, B, K, S, D], self-attention and cross entries alike
# Logical axes: the keys and values [L, B, K, S, D] (the cross entries' heads are the decoder's kv heads too) and
# the cross mask [1, B, S].
_ENTRY_AXES = (None, "batch", "kv_heads", None, None)
_MASK_AXES = (None, "batch", None)


def init_cache(num_layers: int, batch: int, length: int, num_kv_heads: int, head_dim: int, dtype) -> dict:
    """An empty self-attention cache of ``length`` slots per row."""
    shape = (num_layers, batch, num_kv_heads, length, head_dim)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


CROSS_PREFIX = "cross_"


def cache_length(cache: dict) -> int:
    """Self-attention slots per row."""
    return cache["k"][0].shape[1] if is_split(cache) else cache["k"].shape[SLOT_AXIS]


def cross_entries(k, v, encoder_mask) -> dict:
    """The cross-attention entries of a cache: ``k``, ``v`` [L, B, S, H, D] of the encoder output under
    every decoder layer (stored heads first, [L, B, H, S, D]), and its [B, S] padding mask (stored as [1, B, S])."""
    return {"cross_k": k.transpose(0, 1, 3, 2, 4), "cross_v": v.transpose(0, 1, 3, 2, 4),
            "cross_mask": jnp.asarray(encoder_mask, jnp.int32)[None]}


def cross_layer(cache: dict, layer) -> tuple[jax.Array, jax.Array]:
    """Layer ``layer``'s cross-attention keys and values as attention takes them, [B, S_enc, K, D] (views of the
    stored entries; a cache in the per-layer form needs a static ``layer``)."""
    if is_split(cache):
        layer = _static_layer(layer)
        rows = cache["cross_mask"].shape[ROW_AXIS]
        return tuple(_heads_first(_rows_and_heads(cache[name][layer], rows)) for name in ("cross_k", "cross_v"))
    return _heads_first(cache["cross_k"][layer]), _heads_first(cache["cross_v"][layer])


def cross_mask(cache: dict) -> jax.Array:
    """The encoder padding of a cache with cross entries, as an attention mask [B, 1, 1, S_enc]."""
    return cache["cross_mask"][0].astype(bool)[:, None, None, :]


def self_entries(cache: dict) -> dict:
    """The self-attention part of a cache (``k``, ``v``)."""
    return {name: value for name, value in cache.items() if not name.startswith(CROSS_PREFIX)}


def cache_rows(cache: dict) -> int:
    """Rows (batch entries, beams or serving slots)."""
    return jax.tree.leaves(cache)[0].shape[ROW_AXIS]


def visible_slots(index, query_length: int) -> int | None:
    """How many leading cache slots queries written at slot ``index`` can see under the causal mask: ``index +
    query_length`` when ``index`` is static (a prefill at slot 0 then attends over its own keys, not over the empty
    slots after them), else None (a traced index: every slot). Slice the keys, values and mask with it."""
    return int(index) + query_length if isinstance(index, (int, np.integer)) else None


def write(cache: dict, layer, index, k, v) -> tuple[dict, jax.Array, jax.Array]:
    """Write ``k``, ``v`` [B, T, K, D] into layer ``layer`` at slot ``index`` (a scalar, or one slot
    per row: [B]); returns (cache, that layer's keys, that layer's values) as attention takes them,
    [B, S, K, D] (a transposed view of the stored [B, K, S, D]). A cache in the per-layer form
    (:func:`split_layers`) needs a static ``layer``."""
    if is_split(cache):
        return _write_split(cache, layer, index, k, v)
    dtype = cache["k"].dtype
    index = jnp.asarray(index)
    k, v = _heads_first(k).astype(dtype), _heads_first(v).astype(dtype)  # [B, K, T, D]
    if index.ndim == 0:
        start = (layer, 0, 0, index, 0)
        cache = {**cache,
                 "k": jax.lax.dynamic_update_slice(cache["k"], k[None], start),
                 "v": jax.lax.dynamic_update_slice(cache["v"], v[None], start)}
        return cache, _heads_first(cache["k"][layer]), _heads_first(cache["v"][layer])

    def write_rows(buffer, new):  # buffer [B, K, S, D], new [B, K, T, D]: row b at slot index[b]
        return jax.vmap(lambda b, n, i: jax.lax.dynamic_update_slice(b, n, (0, i, 0)))(buffer, new, index)

    layer_k, layer_v = write_rows(cache["k"][layer], k), write_rows(cache["v"][layer], v)
    cache = {**cache, "k": cache["k"].at[layer].set(layer_k), "v": cache["v"].at[layer].set(layer_v)}
    return cache, _heads_first(layer_k), _heads_first(layer_v)


# ----------------------------------------------------------------------------- the per-layer form
# Inside a decoding loop whose layers run unrolled (XLA:CPU, ``decode_params``), the keys and values (self-attention
# and cross entries) are held as one buffer per layer, [B*K, S, D] (rows and KV heads merged): a layer's attention
# then reads the very buffer its update wrote in place. Read out of the stacked [L, ...] entries, every step sliced
# each layer's keys and values into a fresh array (issue 15); and with a separate row axis XLA drops a batch of 1
# from the products' operands and then updates the buffer twice, out of place. The form lives only inside a compiled
# program: :func:`split_layers` at the loop's start, :func:`stack_layers` at its end.
def split_layers(cache: dict) -> dict:
    """``cache`` with its keys and values (self-attention and cross entries) as tuples of per-layer
    [B*K, S, D] buffers."""
    def split(entry):  # [L, B, K, S, D]
        layers, rows, heads, slots, dim = entry.shape
        return tuple(entry[i].reshape(rows * heads, slots, dim) for i in range(layers))

    return {**cache, **{name: split(value) for name, value in _keys_and_values(cache).items()}}


def loop_form(cache: dict, params, sharding=None) -> dict:
    """``cache`` as a decoding loop over ``params`` holds it: in the per-layer form when the params' layers run
    unrolled (``decode_params`` on XLA:CPU) and no mesh placement (``sharding``) splits it, else as it is. The
    loop hands it back through :func:`stack_layers` when :func:`is_split`."""
    if sharding is None and has_unstacked_layers(params):
        return split_layers(cache)
    return cache


def stack_layers(cache: dict, like: dict) -> dict:
    """The per-layer form ``cache`` stacked back into the layout of ``like`` (the cache it was split from)."""
    def stack(layers, entry):
        return jnp.stack([layer.reshape(entry.shape[1:]) for layer in layers])  # [L, B, K, S, D]

    return {**cache, **{name: stack(cache[name], value) for name, value in _keys_and_values(like).items()}}


def is_split(cache: dict) -> bool:
    """Whether ``cache`` is in the per-layer form of :func:`split_layers`."""
    return isinstance(cache["k"], tuple)


def _keys_and_values(cache: dict) -> dict:
    return {name: value for name, value in cache.items() if name != "cross_mask"}


def _static_layer(layer) -> int:
    try:
        return int(layer)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError):
        raise ValueError("a KV cache in the per-layer form (kv_cache.split_layers) is read and written by a static "
                         "layer index: its layers must run unrolled, not under a scan") from None


def _rows_and_heads(buffer, rows: int):
    """A per-layer buffer [B*K, S, D] as [B, K, S, D]."""
    return buffer.reshape(rows, -1, *buffer.shape[1:])


def _write_split(cache: dict, layer, index, k, v):
    layer = _static_layer(layer)
    rows, _, heads, dim = k.shape
    index = jnp.asarray(index)

    def update(buffers, new):  # buffers: per-layer [B*K, S, D]; new [B, T, K, D]
        buffer = buffers[layer]
        new = _heads_first(new).astype(buffer.dtype).reshape(rows * heads, -1, dim)  # [B*K, T, D]
        if index.ndim == 0:
            buffer = jax.lax.dynamic_update_slice(buffer, new, (0, index, 0))
        else:  # one slot per row, the same for each of its heads
            starts = jnp.repeat(index, heads)
            buffer = jax.vmap(lambda b, n, i: jax.lax.dynamic_update_slice(b, n, (i, 0)))(buffer, new, starts)
        view = _heads_first(_rows_and_heads(buffer, rows))  # [B, S, K, D]
        return buffers[:layer] + (buffer,) + buffers[layer + 1:], view

    (keys, k_view), (values, v_view) = update(cache["k"], k), update(cache["v"], v)
    return {**cache, "k": keys, "v": values}, k_view, v_view


def _heads_first(x):
    """[B, T, K, D] <-> [B, K, T, D] (its own inverse)."""
    return x.transpose(0, 2, 1, 3)


def repeat_rows(cache: dict, times: int) -> dict:
    """Each row repeated ``times`` times in place (row b becomes rows b*times ... b*times+times-1): one
    prompt's cache copied to its beams."""
    return jax.tree.map(lambda c: jnp.repeat(c, times, axis=ROW_AXIS), cache)


def take_rows(cache: dict, rows: jax.Array) -> dict:
    """The cache of rows ``rows`` [B'] (beam search reorders its beams this way)."""
    return jax.tree.map(lambda c: jnp.take(c, rows, axis=ROW_AXIS), cache)


def reorder_beams(cache: dict, rows: jax.Array, shared_slots: int = 0) -> dict:
    """Beam search's reordering: the self-attention rows taken from ``rows`` [B*K] (each beam's
    source beam, always a beam of the same prompt), in either form. The cross entries are left as
    they are: every beam of a prompt holds the same encoder keys and values, so gathering them would
    copy them to themselves. So are the first ``shared_slots`` self-attention slots when the caller knows them
    to be the same in every beam of a prompt (the prompt's, written once and repeated to its beams): only the
    later slots are gathered, and written back in place."""
    def take(entry, row_axis, slot_axis, index):  # the slots from ``shared_slots`` on, rows by ``index``
        if shared_slots == 0:
            return jnp.take(entry, index, axis=row_axis)
        tail = jax.lax.slice_in_dim(entry, shared_slots, entry.shape[slot_axis], axis=slot_axis)
        tail = jnp.take(tail, index, axis=row_axis)
        return jax.lax.dynamic_update_slice_in_dim(entry, tail, shared_slots, axis=slot_axis)

    if not is_split(cache):
        return {**cache, **{name: take(cache[name], ROW_AXIS, SLOT_AXIS, rows) for name in ("k", "v")}}

    def take_layer(buffer):  # [R*H, S, D]: row r's heads are buffers r*H ... r*H + H-1
        heads = buffer.shape[0] // rows.shape[0]
        return take(buffer, 0, 1, (rows[:, None] * heads + jnp.arange(heads)).reshape(-1))

    return {**cache, **{name: tuple(take_layer(layer) for layer in cache[name]) for name in ("k", "v")}}


def write_row(cache: dict, row_cache: dict, row) -> dict:
    """Put a one-row cache (of at most as many slots) into row ``row`` of ``cache``, from slot 0."""
    return jax.tree.map(
        lambda c, r: jax.lax.dynamic_update_slice_in_dim(c, r.astype(c.dtype), row, axis=ROW_AXIS), cache, row_cache)


def prefix(cache: dict, length: int) -> dict:
    """The first ``length`` self-attention slots of every row (attention over a shorter cache costs less);
    cross entries are kept whole."""
    return {**cache, **jax.tree.map(lambda c: jax.lax.slice_in_dim(c, 0, length, axis=SLOT_AXIS), self_entries(cache))}


def restore_prefix(full: dict, head: dict) -> dict:
    """``full`` with its first slots replaced by ``head`` (the inverse of :func:`prefix` after updates)."""
    return {**head, **jax.tree.map(lambda c, h: jax.lax.dynamic_update_slice_in_dim(c, h, 0, axis=SLOT_AXIS),
                                   self_entries(full), self_entries(head))}


# ----------------------------------------------------------------------------- on a mesh
def _axes(name: str) -> tuple:
    return _MASK_AXES if name == "cross_mask" else _ENTRY_AXES


def shardings(cache: dict, placement: MeshRules, rows: str = "batch size") -> dict:
    """The NamedSharding of every entry of ``cache`` (arrays or ``jax.ShapeDtypeStruct``) on ``placement``:
    rows over the batch's mesh axes, KV heads over theirs. Either not splitting evenly is a ValueError that
    names it and both sizes (``rows`` is what the caller calls the rows: "batch size", "num_slots")."""
    names = {"batch": rows, "kv_heads": "num_key_value_heads (the KV heads of the cache)"}
    return {name: placement.exact(_axes(name), value.shape, names) for name, value in cache.items()}


def constrain(cache: dict) -> dict:
    """``cache`` with its entries' logical axes named: a sharding constraint inside a compiled program traced
    under ``partitioning.logical_sharding`` (rows and KV heads stay split through loops), else unchanged."""
    return {name: constrain_axes(value, _axes(name)) for name, value in cache.items()}


def init_placed(init_cache, config, batch: int, length: int, placement: MeshRules, rows: str = "batch size") -> dict:
    """``init_cache(config, batch, length)`` made directly in its shards on ``placement`` (no device ever
    holds the whole cache): one compiled program per shape, see :func:`shardings` for the errors."""
    shapes = jax.eval_shape(lambda: init_cache(config, batch, length))
    shardings(shapes, placement, rows)  # the checks, with the caller's name for the rows
    return _placed_init(init_cache, config, batch, length, placement)()


@functools.cache
def _placed_init(init_cache, config, batch: int, length: int, placement: MeshRules):
    shapes = jax.eval_shape(lambda: init_cache(config, batch, length))
    return jax.jit(lambda: init_cache(config, batch, length), out_shardings=shardings(shapes, placement))
