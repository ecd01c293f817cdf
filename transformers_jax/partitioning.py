"""The small sharding hook of the model library: logical axis names to mesh axes.

Params carry logical axis names in their specs (``("layers", "embed", "heads")``). A rules table
maps logical names to mesh axes. ``constrain`` names an activation's logical axes and does nothing
unless ``logical_sharding`` is active. The full ``sharding/`` package builds meshes and presets on
top of these functions.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from transformers_jax.params import is_spec

Rules = Sequence[tuple[str, str | tuple[str, ...] | None]]

# Logical axes of the activations the models constrain (params use "embed", "heads", "mlp", ...;
# activations have their own names so that FSDP can shard params along "embed" while the
# activations stay sharded by "batch" only).
ACTIVATION_AXES = (
    ("batch", "length", "act_embed"),
    ("batch", "length", "act_mlp"),
    ("batch", "length", "act_heads", None),
    ("batch", "length", "act_vocab"),
)

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("transformers_jax_sharding", default=None)


def validate_rules(rules: Rules) -> dict:
    """Rules as a dict {logical name: tuple of mesh axes}; a logical name may appear once."""
    table: dict = {}
    for logical, mesh_axes in rules:
        if logical in table:
            raise ValueError(f"logical axis {logical!r} appears twice in the sharding rules")
        table[logical] = () if mesh_axes is None else (mesh_axes,) if isinstance(mesh_axes, str) else tuple(mesh_axes)
    return table


def logical_to_partition_spec(axes: Sequence[str | None], rules: Rules, shape=None, mesh: Mesh | None = None) -> PartitionSpec:
    """PartitionSpec for one array's logical axes.

    Rules that would shard one array twice over the same mesh axis are refused. A dim that its
    mesh axes do not divide (when ``shape`` and ``mesh`` are given) stays replicated, except the
    ``expert`` axis: experts split unevenly are an error (see :func:`check_expert_split`).
    """
    table = validate_rules(rules)
    owner: dict = {}
    spec = []
    for i, name in enumerate(axes):
        mesh_axes = table.get(name, ()) if name else ()
        for axis in mesh_axes:
            if axis in owner:
                raise ValueError(
                    f"mesh axis {axis!r} is used by both logical axes {owner[axis]!r} and {name!r} "
                    f"of one array (logical axes {tuple(axes)})"
                )
            owner[axis] = name
        if mesh_axes and shape is not None and mesh is not None:
            size = 1
            for a in mesh_axes:
                size *= mesh.shape[a]
            if name == "expert":
                check_expert_split(shape[i], mesh_axes, mesh)
            if shape[i] % size:
                mesh_axes = ()
        spec.append(None if not mesh_axes else mesh_axes[0] if len(mesh_axes) == 1 else mesh_axes)
    return PartitionSpec(*spec)


def check_expert_split(num_experts: int, mesh_axes: Sequence[str], mesh: Mesh) -> None:
    """Refuse ``num_experts`` experts over ``mesh_axes`` whose size does not divide them: expert
    parallelism needs whole experts on every device, and a silently replicated expert axis would
    quietly turn it off."""
    size = 1
    for a in mesh_axes:
        size *= mesh.shape[a]
    if num_experts % size:
        raise ValueError(f"{num_experts} experts cannot be split evenly over the expert mesh axis {tuple(mesh_axes)} "
                         f"of size {size}: the axis size must divide the number of experts")


def param_shardings(specs, mesh: Mesh, rules: Rules):
    """NamedSharding for every param leaf, from its spec's logical axes."""
    return jax.tree.map(
        lambda s: NamedSharding(mesh, logical_to_partition_spec(s.axes, rules, s.shape, mesh)), specs, is_leaf=is_spec
    )


@contextlib.contextmanager
def logical_sharding(mesh: Mesh, rules: Rules):
    """Activate activation sharding constraints for code traced inside this context."""
    validate_rules(rules)
    token = _ACTIVE.set((mesh, tuple(rules)))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active_sharding():
    """The (mesh, rules) pair in force, or None."""
    return _ACTIVE.get()


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
    """Name ``x``'s logical axes; a sharding constraint only inside ``logical_sharding``."""
    active = _ACTIVE.get()
    if active is None:
        return x
    mesh, rules = active
    spec = logical_to_partition_spec(axes, rules, x.shape, mesh)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
