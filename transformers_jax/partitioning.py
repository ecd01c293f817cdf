"""The small sharding hook of the model library: logical axis names to mesh axes.

Params carry logical axis names in their specs (``("layers", "embed", "heads")``). A rules table
maps logical names to mesh axes. ``constrain`` names an activation's logical axes and does nothing
unless ``logical_sharding`` is active. The presets (``tp``, ``fsdp_tp``, ...) and the checks of a table
live here too, so that a model places itself on a mesh by a preset's name (``model.shard(mesh, "tp")``);
:class:`MeshRules` is a mesh with its checked table, the static argument of sharded inference programs
(``generate``, the serving engine). The ``sharding/`` package builds meshes, places batches and
estimates memory on top of these functions.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from typing import Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from transformers_jax.params import flatten_tree, is_spec

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



# ----------------------------------------------------------------------------- rules tables and presets
_TENSOR = (("heads", "tensor"), ("kv_heads", "tensor"), ("mlp", "tensor"), ("vocab", "tensor"),
           ("act_heads", "tensor"), ("act_mlp", "tensor"), ("act_vocab", "tensor"))

# Templates: mesh axes a preset names but the mesh lacks are dropped (see ``rules_for_mesh``).
PRESETS: dict[str, tuple] = {
    # Every device holds all params; the batch is split over every data-like axis.
    "dp": (("batch", ("data", "fsdp")),),
    # ZeRO-3 style: params, gradients and optimizer state split along "embed" over fsdp; XLA
    # gathers each layer's weights when it needs them.
    "fsdp": (("batch", ("data", "fsdp")), ("embed", "fsdp")),
    # Megatron style: attention heads, MLP hidden units and the vocabulary split over tensor.
    "tp": (("batch", ("data", "fsdp")), *_TENSOR),
    "fsdp_tp": (("batch", ("data", "fsdp")), ("embed", "fsdp"), *_TENSOR),
    # Sequence (context) parallelism: activations split along the length over "sequence" through the whole
    # model (every activation constraint names its "length" axis); attention gathers the keys and values it
    # needs across the axis (XLA's partitioner inserts the all-gathers). Rows split over data/fsdp as before.
    "sp": (("batch", ("data", "fsdp")), ("length", "sequence")),
    "fsdp_sp": (("batch", ("data", "fsdp")), ("embed", "fsdp"), ("length", "sequence")),
    "fsdp_tp_sp": (("batch", ("data", "fsdp")), ("embed", "fsdp"), ("length", "sequence"), *_TENSOR),
    # Expert parallelism: each device of the expert axis holds E / size whole experts; the expert
    # axis is data-parallel for everything else, so the batch is split over it too and tokens
    # travel to their experts' devices by all-to-all (``layers.moe.active_dispatch``).
    "ep": (("batch", ("data", "fsdp", "expert")), ("expert", "expert")),
    "fsdp_ep": (("batch", ("data", "fsdp", "expert")), ("embed", "fsdp"), ("expert", "expert")),
}


def rules_for_mesh(rules: str | Rules, mesh: Mesh) -> tuple:
    """A preset name or an explicit table -> a table checked against ``mesh``.

    Presets are templates: a mesh axis they name that the mesh lacks is dropped (the "dp" preset
    on a mesh with only ``data`` splits the batch over ``data``). An explicit table must only
    name axes the mesh has.
    """
    if isinstance(rules, str):
        if rules not in PRESETS:
            raise ValueError(f"unknown sharding preset {rules!r}; known presets: {sorted(PRESETS)}")
        table = []
        for logical, axes in PRESETS[rules]:
            axes = (axes,) if isinstance(axes, str) else axes
            kept = tuple(a for a in axes if a in mesh.shape)
            table.append((logical, kept or None))
        return tuple(table)
    table = tuple((logical, axes) for logical, axes in rules)
    for logical, axes in validate_rules(table).items():
        for axis in axes:
            if axis not in mesh.shape:
                raise ValueError(
                    f"sharding rule {logical!r} -> {axis!r} names a mesh axis the mesh does not have "
                    f"(mesh axes: {dict(mesh.shape)})"
                )
    return table


def check_rules(rules: Rules, mesh: Mesh, specs) -> None:
    """Refuse a table that would use one mesh axis twice within any param or activation.

    Run before a training run starts, so the error names the array instead of surfacing at
    trace time. Also refuses an ``expert`` mesh axis that does not divide a param's experts.
    """
    expert_axes = tuple(a for a in validate_rules(rules).get("expert", ()) if a in mesh.shape)
    for path, spec in flatten_tree(specs).items():
        if is_spec(spec) and expert_axes and "expert" in spec.axes:
            try:
                check_expert_split(spec.shape[spec.axes.index("expert")], expert_axes, mesh)
            except ValueError as err:
                raise ValueError(f"param {'/'.join(path)}: {err}") from None
    for path, spec in flatten_tree(specs).items():
        if not is_spec(spec):
            continue
        try:
            logical_to_partition_spec(spec.axes, rules, spec.shape, mesh)
        except ValueError as err:
            raise ValueError(f"sharding rules reuse a mesh axis in param {'/'.join(path)}: {err}") from None
    for axes in ACTIVATION_AXES:
        try:
            logical_to_partition_spec(axes, rules)
        except ValueError as err:
            raise ValueError(f"sharding rules reuse a mesh axis in activations {axes}: {err}") from None


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


def target_platform() -> str:
    """"tpu", "gpu" or "cpu": the platform of the devices the program being traced is built for, i.e. of the
    active ``logical_sharding`` mesh (an ahead-of-time compile for a described TPU topology on a CPU host is
    "tpu"), else JAX's default backend. Kernel choices (attention, grouped matmuls) go by it."""
    active = _ACTIVE.get()
    if active is not None:
        return active[0].devices.flat[0].platform
    return jax.default_backend()


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
    """Name ``x``'s logical axes; a sharding constraint only inside ``logical_sharding``."""
    active = _ACTIVE.get()
    if active is None:
        return x
    mesh, rules = active
    spec = logical_to_partition_spec(axes, rules, x.shape, mesh)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


# ----------------------------------------------------------------------------- inference on a mesh
@dataclasses.dataclass(frozen=True)
class MeshRules:
    """A mesh and the rules table checked against it: what a sharded inference program needs to know.

    Hashable, so it is a static argument of ``jit`` (one compiled program per placement). Build one with
    :func:`mesh_rules`; ``model.shard(mesh, rules)`` keeps one as ``model.mesh_rules``.
    """

    mesh: Mesh
    rules: tuple

    def split(self, logical: str) -> tuple[tuple[str, ...], int]:
        """(the mesh axes the logical axis ``logical`` is split over, how many ways that is)."""
        axes = tuple(a for a in validate_rules(self.rules).get(logical, ()) if a in self.mesh.shape)
        return axes, math.prod(self.mesh.shape[a] for a in axes)

    def exact(self, axes: Sequence[str | None], shape: Sequence[int], names: dict | None = None) -> NamedSharding:
        """The sharding of an array of ``shape`` whose dims have the logical ``axes``, where every split dim must
        split evenly: a dim its mesh axes do not divide is a ValueError naming it (``names`` maps a logical axis
        to what the caller calls that dim, e.g. ``{"batch": "num_slots"}``) and both sizes. (Param shardings
        instead keep such a dim whole: :func:`logical_to_partition_spec`.)"""
        for i, name in enumerate(axes):
            if name is None:
                continue
            mesh_axes, ways = self.split(name)
            if shape[i] % ways:
                what = (names or {}).get(name, f"dim {i} ({name!r}) of an array of shape {tuple(shape)}")
                raise ValueError(f"{what} = {shape[i]} is not divisible by {ways}, the size of the mesh axes "
                                 f"{mesh_axes} it is split over (mesh {dict(self.mesh.shape)})")
        return NamedSharding(self.mesh, logical_to_partition_spec(axes, self.rules, shape, self.mesh))

    def params(self, specs):
        """NamedSharding of every param leaf of ``specs`` (:func:`param_shardings`)."""
        return param_shardings(specs, self.mesh, self.rules)

    def place_params(self, params, specs):
        """``params`` on the mesh by the rules (:func:`place_params`; no copy for a leaf already placed so)."""
        return place_params(params, specs, self.mesh, self.rules)

    @property
    def replicated(self) -> NamedSharding:
        """A full copy on every device of the mesh."""
        return NamedSharding(self.mesh, PartitionSpec())


def mesh_rules(mesh: Mesh, rules: str | Rules | MeshRules = "tp") -> MeshRules:
    """A :class:`MeshRules` for ``mesh`` and ``rules``: a preset name (``tp``, ``fsdp_tp``, ...; see
    :data:`PRESETS`) or an explicit table, checked by :func:`rules_for_mesh` (an unknown preset name is a
    ValueError listing the known ones)."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh (e.g. sharding.create_mesh({{'tensor': 8}})), "
                        f"got {type(mesh).__name__}")
    if isinstance(rules, MeshRules):
        if rules.mesh != mesh:
            raise ValueError(f"rules were made for mesh {dict(rules.mesh.shape)}, not {dict(mesh.shape)}")
        return rules
    table = validate_rules(rules_for_mesh(rules, mesh))
    return MeshRules(mesh, tuple((logical, axes or None) for logical, axes in table.items()))


def activate(placement: MeshRules | None):
    """The :func:`logical_sharding` context of ``placement``; a context that does nothing for None. Programs
    that take a ``sharding`` static argument trace their body inside it."""
    return contextlib.nullcontext() if placement is None else logical_sharding(placement.mesh, placement.rules)


def place_params(params, specs, mesh: Mesh, rules: Rules):
    """``params`` moved onto the mesh with the shardings their specs' logical axes give."""
    return jax.device_put(params, param_shardings(specs, mesh, rules))
