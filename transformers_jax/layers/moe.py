"""Mixture-of-experts feed-forward blocks: a softmax top-k router and dropless expert dispatch.

Every token goes to its ``top_k`` experts and nowhere else (no capacity, nothing dropped): the
``N * k`` (token, expert) assignments are sorted by expert, each expert's contiguous group of rows
is multiplied by that expert's weights in one grouped matmul (:func:`grouped_matmul`), and the rows
are un-sorted and summed with their router weights. FLOPs per token scale with ``k``, not with the
number of experts. :func:`moe_dense_reference` computes every expert on every token; it exists to
check the grouped path and is not used by the models.

Expert params are stacked along a leading expert axis (logical axis ``expert``), kernels stored
``[in, out]`` as every dense kernel here: ``gate_proj``/``up_proj`` ``[E, D, F]``, ``down_proj``
``[E, F, D]``; the router is ``gate`` ``[D, E]``.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from transformers_jax.layers.basic import activation, dense
from transformers_jax.layers.mlp import gated_mlp
from transformers_jax.partitioning import (active_sharding, check_expert_split, constrain, target_platform,
                                          validate_rules)

GROUPED_MATMUL_IMPLEMENTATIONS = ("auto", "ragged_dot", "tiled")


def route(router_logits: jax.Array, top_k: int, normalize: bool) -> tuple[jax.Array, jax.Array]:
    """Softmax over experts (float32), then the ``top_k`` largest. Returns (weights [N, k] float32,
    expert ids [N, k] int32); with ``normalize`` the k weights are divided by their sum (HF's
    ``norm_topk_prob``; Mixtral always does)."""
    probs = jax.nn.softmax(router_logits.astype(jnp.float32), axis=-1)
    weights, experts = jax.lax.top_k(probs, top_k)
    if normalize:
        weights = weights / jnp.sum(weights, axis=-1, keepdims=True)
    return weights, experts.astype(jnp.int32)


def sort_by_expert(experts: jax.Array, num_experts: int) -> tuple[jax.Array, jax.Array]:
    """The assignments ``experts`` [N, k] sorted by expert: (order [N*k], the flat assignment index
    at each sorted row, stable; group_sizes [E] int32, rows per expert)."""
    flat = experts.reshape(-1)
    order = jnp.argsort(flat, stable=True)
    group_sizes = jnp.zeros((num_experts,), jnp.int32).at[flat].add(1)
    return order, group_sizes


def _tile_rows(num_rows: int, num_groups: int) -> int:
    """Rows per tile of the tiled grouped matmul: about one group's share, a power of two in [8, 128]
    (on CPU 128 beat 64, 256 and 512 for the fwd+bwd of a top-2-of-8 block over 1,024 tokens)."""
    share = max(1, -(-num_rows // num_groups))
    return int(min(128, max(8, 2 ** math.ceil(math.log2(share)))))


class _TilePlan(NamedTuple):
    """How :func:`_tiled_grouped_matmul` cuts M sorted rows into tiles of ``tile`` rows, each inside one group."""

    tile: int
    group: jax.Array  # [num_tiles] the group (expert) of each tile, clamped to E - 1 for unused tiles
    used: jax.Array  # [num_tiles] bool: the tile holds rows
    row_ids: jax.Array  # [num_tiles, tile] the sorted row in each slot (clamped)
    filled: jax.Array  # [num_tiles, tile] bool: the slot holds a row of the tile's group
    slot: jax.Array  # [M] each sorted row's flat slot (tile * tile_rows + offset)


def _tile_plan(rows: int, groups: int, group_sizes: jax.Array) -> _TilePlan:
    """Each group's rows cut into tiles (the last one partly empty); the number of tiles is bounded
    statically by ``ceil(M / tile) + min(E, M)``, and tiles past the used ones are marked unused."""
    tile = _tile_rows(rows, groups)
    num_tiles = -(-rows // tile) + min(groups, rows)
    group_sizes = group_sizes.astype(jnp.int32)
    group_end = jnp.cumsum(group_sizes)
    group_start = group_end - group_sizes  # [E] first sorted row of each group
    tiles_per_group = (group_sizes + tile - 1) // tile
    tile_end = jnp.cumsum(tiles_per_group)  # [E]
    tile_start = tile_end - tiles_per_group
    tile_ids = jnp.arange(num_tiles)
    tile_group = jnp.searchsorted(tile_end, tile_ids, side="right")  # [num_tiles]; == E for unused tiles
    used = tile_group < groups
    group = jnp.minimum(tile_group, groups - 1)
    first_row = group_start[group] + (tile_ids - tile_start[group]) * tile  # [num_tiles]
    count = jnp.where(used, jnp.clip(group_end[group] - first_row, 0, tile), 0)
    offsets = jnp.arange(tile)
    row_ids = jnp.clip(first_row[:, None] + offsets[None], 0, rows - 1)  # [num_tiles, tile]
    filled = offsets[None] < count[:, None]
    row = jnp.arange(rows)
    row_group = jnp.clip(jnp.searchsorted(group_end, row, side="right"), 0, groups - 1)
    within = row - group_start[row_group]
    slot = (tile_start[row_group] + within // tile) * tile + within % tile  # [M]
    return _TilePlan(tile, group, used, row_ids, filled, slot)


def _zeros(shape, dtype, *like) -> jax.Array:
    """Zeros of ``shape`` that vary over the mesh axes each of ``like`` varies over (inside ``shard_map``,
    a branch or loop carry must match the type of the values it meets; ``zeros_like`` keeps it)."""
    out = jnp.zeros(shape, dtype)
    for a in like:
        out = out + jnp.zeros_like(a, shape=(), dtype=dtype)
    return out


def _gather_tiles(plan: _TilePlan, x: jax.Array) -> jax.Array:
    """The rows of ``x`` [M, D] laid out in tiles [num_tiles, tile, D], empty slots zero."""
    return jnp.where(plan.filled[..., None], x[plan.row_ids], 0)


def _tiled_product(plan: _TilePlan, x: jax.Array, w: jax.Array) -> jax.Array:
    """Each tile's rows times its group's matrix of ``w`` [E, D, F] -> [M, F] in the rows' order."""
    out_dim = w.shape[-1]

    def one_tile(_, inputs):
        x_tile, group, used = inputs
        y = jax.lax.cond(used, lambda: x_tile @ w[group].astype(x.dtype),
                         lambda: _zeros((plan.tile, out_dim), x.dtype, x_tile, w))
        return None, y

    _, y_tiles = jax.lax.scan(one_tile, None, (_gather_tiles(plan, x), plan.group, plan.used))  # [num_tiles, tile, F]
    return y_tiles.reshape(-1, out_dim)[plan.slot]


@jax.custom_vjp
def _tiled_grouped_matmul(x: jax.Array, w: jax.Array, group_sizes: jax.Array) -> jax.Array:
    """``ragged_dot`` semantics as a loop over row tiles, each tile inside one group.

    A tile reads its group's weight matrix once and multiplies only its own rows, so the work is
    ``M * D * F`` plus at most one partial tile per group, whatever the number of groups. Its
    gradient is written by hand: the input gradient is the same loop over ``w`` transposed, and the
    weight gradient accumulates each tile's ``x_tile^T dy_tile`` into its group's slice in place
    (differentiating the loop instead would add a full-size zero-padded [E, D, F] array per tile).
    """
    return _tiled_product(_tile_plan(x.shape[0], w.shape[0], group_sizes), x, w)


def _tiled_forward(x, w, group_sizes):
    return _tiled_grouped_matmul(x, w, group_sizes), (x, w, group_sizes)


def _tiled_backward(residuals, dy):
    x, w, group_sizes = residuals
    plan = _tile_plan(x.shape[0], w.shape[0], group_sizes)
    dx = _tiled_product(plan, dy, jnp.swapaxes(w, 1, 2))  # [M, D]

    def accumulate(dw, inputs):
        x_tile, dy_tile, group, used = inputs
        update = jax.lax.cond(used, lambda: (x_tile.T @ dy_tile).astype(dw.dtype),
                              lambda: _zeros(dw.shape[1:], dw.dtype, x_tile, dy_tile))
        current = jax.lax.dynamic_index_in_dim(dw, group, keepdims=False)
        return jax.lax.dynamic_update_index_in_dim(dw, current + update, group, 0), None

    dw, _ = jax.lax.scan(accumulate, _zeros(w.shape, jnp.float32, w, x, dy),
                         (_gather_tiles(plan, x), _gather_tiles(plan, dy), plan.group, plan.used))
    return _sum_to_type_of(dx, x).astype(x.dtype), _sum_to_type_of(dw, w).astype(w.dtype), None


def _sum_to_type_of(grad: jax.Array, primal: jax.Array) -> jax.Array:
    """Inside ``shard_map``: ``grad`` summed over the mesh axes it varies over and ``primal`` does not (a
    weight replicated over ``data`` gets the sum of every data shard's gradient, as autodiff would give)."""
    extra = _varying_axes(grad) - _varying_axes(primal)
    return jax.lax.psum(grad, tuple(sorted(extra))) if extra else grad


def _varying_axes(x: jax.Array) -> set:
    """The ``shard_map`` mesh axes ``x`` varies over (``manual_axis_type.varying``; ``vma`` in older JAX)."""
    aval = jax.typeof(x)
    axis_type = getattr(aval, "manual_axis_type", None)
    return set(axis_type.varying) if axis_type is not None else set(getattr(aval, "vma", ()))


_tiled_grouped_matmul.defvjp(_tiled_forward, _tiled_backward)


def grouped_matmul(x: jax.Array, w: jax.Array, group_sizes: jax.Array, implementation: str = "auto") -> jax.Array:
    """Rows of ``x`` [M, D] in consecutive groups (``group_sizes`` [E], summing to at most M; rows
    past the last group give zeros) times their group's matrix of ``w`` [E, D, F] -> [M, F].

    ``"ragged_dot"`` is ``jax.lax.ragged_dot`` (native grouped matmuls on TPU and GPU; XLA:CPU
    lowers it to a dense product over every group); ``"tiled"`` loops over row tiles, each with one
    group's weights (the work of the rows actually present, on any backend); ``"auto"`` takes
    ragged_dot except on CPU (the platform the program is built for: :func:`~transformers_jax.partitioning.target_platform`,
    so an ahead-of-time compile for TPU on a CPU host takes ragged_dot).
    """
    if implementation not in GROUPED_MATMUL_IMPLEMENTATIONS:
        raise ValueError(f"unknown grouped matmul implementation {implementation!r}; "
                         f"known: {GROUPED_MATMUL_IMPLEMENTATIONS}")
    if implementation == "auto":
        implementation = "tiled" if target_platform() == "cpu" else "ragged_dot"
    if implementation == "ragged_dot":
        return jax.lax.ragged_dot(x, w.astype(x.dtype), group_sizes.astype(jnp.int32))
    return _tiled_grouped_matmul(x, w, group_sizes)


def expert_mlp(params: dict, x_sorted: jax.Array, group_sizes: jax.Array, act: str, implementation: str = "auto"):
    """The gated MLP of each expert on its rows: ``down(act(gate(x)) * up(x))`` per group. [M, D] -> [M, D]."""
    gate = grouped_matmul(x_sorted, params["gate_proj"]["kernel"], group_sizes, implementation)  # [M, F]
    up = grouped_matmul(x_sorted, params["up_proj"]["kernel"], group_sizes, implementation)
    return grouped_matmul(activation(act)(gate) * up, params["down_proj"]["kernel"], group_sizes, implementation)


def dispatch_combine(expert_params: dict, x: jax.Array, weights: jax.Array, experts: jax.Array, act: str,
                     implementation: str = "auto") -> jax.Array:
    """Dropless routed experts: tokens ``x`` [N, D] to their experts ``experts`` [N, k], computed
    by grouped matmuls, summed with ``weights`` [N, k]. Returns [N, D]."""
    num_tokens, top_k = experts.shape
    num_experts = expert_params["gate_proj"]["kernel"].shape[0]
    order, group_sizes = sort_by_expert(experts, num_experts)
    x_sorted = x[order // top_k]  # [N*k, D]: each assignment's token, grouped by expert
    y_sorted = expert_mlp(expert_params, x_sorted, group_sizes, act, implementation)
    y = y_sorted[jnp.argsort(order)].reshape(num_tokens, top_k, -1)  # [N, k, D] back in assignment order
    return jnp.einsum("nkd,nk->nd", y, weights.astype(y.dtype))


def moe_dense_reference(expert_params: dict, x: jax.Array, weights: jax.Array, experts: jax.Array, act: str):
    """Every expert on every token, weighted by the router's top-k weights (zero elsewhere). For tests."""
    num_experts = expert_params["gate_proj"]["kernel"].shape[0]
    gate = jnp.einsum("nd,edf->enf", x, expert_params["gate_proj"]["kernel"].astype(x.dtype))
    up = jnp.einsum("nd,edf->enf", x, expert_params["up_proj"]["kernel"].astype(x.dtype))
    y = jnp.einsum("enf,efd->end", activation(act)(gate) * up, expert_params["down_proj"]["kernel"].astype(x.dtype))
    dense_weights = jnp.sum(jax.nn.one_hot(experts, num_experts, dtype=y.dtype) * weights[..., None].astype(y.dtype),
                            axis=1)  # [N, E]
    return jnp.einsum("end,ne->nd", y, dense_weights)


def sparse_moe_block(params: dict, x: jax.Array, top_k: int, normalize: bool, act: str,
                     implementation: str = "auto", jitter: float = 0.0, rng=None, dispatch=None):
    """A sparse MoE feed-forward block: router ``gate``, routed ``experts``, and where the params
    have them a ``shared_expert`` scaled by ``sigmoid(shared_expert_gate(x))`` (Qwen2-MoE).

    ``jitter`` (Mixtral's ``router_jitter_noise``, training only) multiplies the input by uniform
    noise in ``[1 - jitter, 1 + jitter]``. ``dispatch`` replaces :func:`dispatch_combine` (the
    expert-parallel version under a mesh). Returns (output [B, T, D], router logits [B*T, E]).
    """
    batch, length, dim = x.shape
    if jitter and rng is not None:
        x = x * jax.random.uniform(rng, x.shape, x.dtype, 1.0 - jitter, 1.0 + jitter)
    tokens = x.reshape(-1, dim)  # [N, D]
    router_logits = dense(params["gate"], tokens)  # [N, E]
    weights, experts = route(router_logits, top_k, normalize)
    combine = dispatch or dispatch_combine
    out = combine(params["experts"], tokens, weights, experts, act, implementation)
    out = out.reshape(batch, length, dim)
    if "shared_expert" in params:
        shared = gated_mlp(params["shared_expert"], x, act)  # [B, T, D]
        out = out + jax.nn.sigmoid(dense(params["shared_expert_gate"], x)) * shared
    out = constrain(out, ("batch", "length", "act_embed"))
    return out, router_logits


def load_balancing_loss(router_logits: jax.Array, top_k: int, attention_mask: jax.Array | None = None) -> jax.Array:
    """Switch-Transformer auxiliary loss as Hugging Face computes it: ``E * sum_e f_e * P_e`` where
    ``f_e`` is the share of top-k assignments to expert e and ``P_e`` its mean router probability,
    both over every sparse layer's tokens (``router_logits`` [L, N, E]), counting only tokens that
    ``attention_mask`` [B, T] (N = B*T) marks as real."""
    num_experts = router_logits.shape[-1]
    probs = jax.nn.softmax(router_logits.astype(jnp.float32), axis=-1)  # [L, N, E]
    _, chosen = jax.lax.top_k(probs, top_k)
    counts = jnp.sum(jax.nn.one_hot(chosen, num_experts, dtype=jnp.float32), axis=-2)  # [L, N, E]
    if attention_mask is None:
        mask = jnp.ones(probs.shape[:-1], jnp.float32)
    else:
        mask = jnp.broadcast_to(attention_mask.reshape(1, -1).astype(jnp.float32), probs.shape[:-1])
    rows = jnp.sum(mask)
    tokens_per_expert = jnp.sum(counts * mask[..., None], axis=(0, 1)) / rows
    prob_per_expert = jnp.sum(probs * mask[..., None], axis=(0, 1)) / rows
    return num_experts * jnp.sum(tokens_per_expert * prob_per_expert)


def router_z_loss(router_logits: jax.Array, attention_mask: jax.Array | None = None) -> jax.Array:
    """ST-MoE's router z-loss: the mean over tokens (and sparse layers) of ``logsumexp(logits)**2``."""
    z = jax.nn.logsumexp(router_logits.astype(jnp.float32), axis=-1) ** 2  # [L, N]
    if attention_mask is None:
        return jnp.mean(z)
    mask = jnp.broadcast_to(attention_mask.reshape(1, -1).astype(jnp.float32), z.shape)
    return jnp.sum(z * mask) / jnp.sum(mask)


# ----------------------------------------------------------------------------- expert parallelism
# Logical axes of the expert kernels (without the stacked layer axis the decoder's scan strips).
EXPERT_KERNEL_AXES = {"gate_proj": ("expert", "embed", "mlp"), "up_proj": ("expert", "embed", "mlp"),
                      "down_proj": ("expert", "mlp", "embed")}


def _shard_map(fn, mesh, in_specs, out_specs):
    """``jax.shard_map`` (JAX >= 0.7), else the older ``jax.experimental.shard_map``."""
    if hasattr(jax, "shard_map"):
        return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs)
    from jax.experimental.shard_map import shard_map

    return shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs)


def _mesh_axes(table: dict, name: str, mesh) -> tuple[str, ...]:
    return tuple(a for a in table.get(name, ()) if a in mesh.shape)


def _expert_parallel_shard(x, weights, experts, gate, up, down, *, axis, shards, act, implementation):
    """One device's part of expert-parallel dispatch (inside ``shard_map``).

    ``x`` [n, D], ``weights``/``experts`` [n, k] are this device's tokens and their routing (global
    expert ids); ``gate``/``up`` [E_loc, D, F] and ``down`` [E_loc, F, D] its experts, the
    ``E_loc`` consecutive ids ``rank * E_loc ...``. The ``a = n * k`` assignments, sorted by
    expert (hence by owning device), go out in one all-to-all into a ``[S, a, D]`` buffer (``S`` =
    ``shards``, the devices of the expert axis; ``a`` rows per destination is the dropless worst
    case, every assignment to one device). Each device groups what it received by local expert,
    runs :func:`expert_mlp`, and a second all-to-all returns the rows to their senders, which
    combine them with the router weights exactly as :func:`dispatch_combine` does. Returns [n, D].
    """
    num_tokens, top_k = experts.shape
    e_local = gate.shape[0]
    a = num_tokens * top_k
    flat = experts.reshape(-1)  # [a] global expert of each assignment
    order = jnp.argsort(flat, stable=True)  # [a] assignments by expert, hence by destination device
    dest = flat // e_local  # [a]
    send_counts = jnp.zeros((shards,), jnp.int32).at[dest].add(1)  # [S]
    send_start = jnp.cumsum(send_counts) - send_counts  # [S] first sorted assignment of each device
    slot = jnp.arange(a)
    valid = slot[None] < send_counts[:, None]  # [S, a]
    assignment = order[jnp.minimum(send_start[:, None] + slot[None], a - 1)]  # [S, a]
    send = jnp.where(valid[..., None], x[assignment // top_k], 0)  # [S, a, D]
    send_expert = jnp.where(valid, flat[assignment] % e_local, e_local)  # [S, a]; e_local marks an empty slot

    recv = jax.lax.all_to_all(send, axis, 0, 0, tiled=True)  # [S, a, D]: block s came from device s
    recv_expert = jax.lax.all_to_all(send_expert, axis, 0, 0, tiled=True).reshape(-1)  # [S*a]
    local_order, group_sizes = sort_by_expert(recv_expert[:, None], e_local + 1)  # empty slots sort last
    group_sizes = group_sizes[:e_local]  # [E_loc]; the empty slots' group is left out
    params = {"gate_proj": {"kernel": gate}, "up_proj": {"kernel": up}, "down_proj": {"kernel": down}}
    y_sorted = expert_mlp(params, recv.reshape(-1, x.shape[-1])[local_order], group_sizes, act, implementation)
    y_recv = y_sorted[jnp.argsort(local_order)].reshape(send.shape)  # [S, a, D] in received order
    back = jax.lax.all_to_all(y_recv, axis, 0, 0, tiled=True)  # [S, a, D]: back[d, j] answers send[d, j]

    position = jnp.argsort(order)  # [a] each assignment's place in the sorted order
    y = back[dest, position - send_start[dest]].reshape(num_tokens, top_k, -1)  # [n, k, D]
    return jnp.einsum("nkd,nk->nd", y, weights.astype(y.dtype))


def _token_sharded(shard, mesh, token_axes: tuple[str, ...], kernel_spec: P):
    """``shard`` (tokens ``x``, ``weights``, ``experts``, then the ``gate``/``up``/``down`` kernels, with
    keywords ``act`` and ``implementation``; returns the tokens' outputs) as a dispatch function over
    ``mesh``: the [N, ...] token arrays split over ``token_axes`` (padded to a multiple of their size
    first: the padded rows route to expert 0 with weight 0 and are cut off after), the kernels entering
    ``shard_map`` as ``kernel_spec`` says (the compiler gathers whatever other split they have on the way
    in, and sums their gradients on the way out)."""
    token_shards = math.prod(mesh.shape[a] for a in token_axes)
    token_spec = P(token_axes, None)

    def dispatch(expert_params, x, weights, experts, act, implementation="auto"):
        num_tokens = x.shape[0]
        pad = -num_tokens % token_shards
        if pad:
            x, weights, experts = (jnp.pad(v, ((0, pad), (0, 0))) for v in (x, weights, experts))
        kernels = [expert_params[name]["kernel"] for name in ("gate_proj", "up_proj", "down_proj")]
        run = _shard_map(functools.partial(shard, act=act, implementation=implementation), mesh,
                         (token_spec,) * 3 + (kernel_spec,) * 3, token_spec)
        return run(x, weights, experts, *kernels)[:num_tokens]

    return dispatch


def _token_axes(table: dict, mesh, *extra: str) -> tuple[str, ...]:
    """The mesh axes that split tokens: those of ``batch``, then ``length``, then ``extra``, each once."""
    return tuple(dict.fromkeys(_mesh_axes(table, "batch", mesh) + _mesh_axes(table, "length", mesh) + extra))


def expert_parallel_dispatch(mesh, rules):
    """A :func:`dispatch_combine` that runs expert-parallel over ``mesh`` with ``rules``.

    Experts are split over the mesh axes of the logical ``expert`` axis (their size must divide
    the number of experts). Tokens [N, D] are split over the batch and length mesh axes and also
    over the expert axes (every expert-axis device routes its own tokens; when the rules do not
    split the batch over the expert axis, the tokens are split further here and gathered back
    after). Expert kernels enter with only their expert dim split: a shard along ``embed`` or
    ``mlp`` (fsdp, tensor) is gathered on the way in, never the expert dim.
    """
    table = validate_rules(rules)
    expert_axes = _mesh_axes(table, "expert", mesh)
    axis = expert_axes[0] if len(expert_axes) == 1 else expert_axes
    shard = functools.partial(_expert_parallel_shard, axis=axis,
                              shards=math.prod(mesh.shape[a] for a in expert_axes))
    run = _token_sharded(shard, mesh, _token_axes(table, mesh, *expert_axes), P(axis, None, None))

    def expert_parallel(expert_params, x, weights, experts, act, implementation="auto"):
        check_expert_split(expert_params["gate_proj"]["kernel"].shape[0], expert_axes, mesh)
        return run(expert_params, x, weights, experts, act, implementation)

    return expert_parallel


def _local_shard(x, weights, experts, gate, up, down, *, act, implementation):
    """One device's part of the local dispatch (inside ``shard_map``): :func:`dispatch_combine` of its
    own tokens against every expert's whole kernels."""
    params = {"gate_proj": {"kernel": gate}, "up_proj": {"kernel": up}, "down_proj": {"kernel": down}}
    return dispatch_combine(params, x, weights, experts, act, implementation)


def local_dispatch(mesh, rules):
    """A :func:`dispatch_combine` that runs on each device for its own tokens (MaxText's dispatch without
    expert parallelism): tokens [N, D] split over the mesh axes of ``batch`` and ``length``, each device
    sorting only its tokens by expert and running the grouped matmuls against all experts' kernels, which
    enter whole (an FSDP split is gathered layer by layer as for any dense weight; the gradients of the
    kernels come back summed over the devices). No token leaves its device. Under the single-program
    :func:`dispatch_combine` the sort by expert is over the global batch instead, and the partitioner
    gathers tokens across devices to do it."""
    table = validate_rules(rules)
    run = _token_sharded(_local_shard, mesh, _token_axes(table, mesh), P(None, None, None))

    def local(expert_params, x, weights, experts, act, implementation="auto"):
        return run(expert_params, x, weights, experts, act, implementation)

    return local


def active_dispatch():
    """The dispatch for the active ``logical_sharding`` context, or None (the single-program
    :func:`dispatch_combine`) without one.

    * rules that split ``expert`` over mesh axes of more than one device: :func:`expert_parallel_dispatch`;
    * else, tokens split over more than one device and the experts' ``mlp`` dim not split (no tensor
      parallelism of the experts): :func:`local_dispatch`;
    * else None: one device's worth of tokens, or experts split along ``mlp``, which the compiler
      partitions like any other op.
    """
    active = active_sharding()
    if active is None:
        return None
    mesh, rules = active
    table = validate_rules(rules)

    def ways(axes):
        return math.prod(mesh.shape[a] for a in axes)

    if ways(_mesh_axes(table, "expert", mesh)) > 1:
        return expert_parallel_dispatch(mesh, rules)
    if ways(_token_axes(table, mesh)) > 1 and ways(_mesh_axes(table, "mlp", mesh)) == 1:
        return local_dispatch(mesh, rules)
    return None
