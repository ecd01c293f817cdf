"""Rules tables: which mesh axes each logical axis is split over, with presets.

Param logical axes (from the models' specs): ``layers``, ``vocab``, ``embed``, ``heads``,
``kv_heads``, ``mlp``, ``expert`` (the stacked experts of an MoE block), ``positions``,
``token_types``, ``embed_out``. Activation axes: ``batch``,
``length``, ``act_embed``, ``act_heads``, ``act_mlp``, ``act_vocab``.

A mesh axis may serve several logical axes that never meet in one array (``heads`` and ``mlp``
both go to ``tensor``), but never two axes of the same array: ``check_rules`` refuses such a
table up front, naming the array.
"""
from __future__ import annotations

from jax.sharding import Mesh

from transformers_jax.params import flatten_tree, is_spec
from transformers_jax.partitioning import (
    ACTIVATION_AXES,
    Rules,
    check_expert_split,
    logical_to_partition_spec,
    validate_rules,
)

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
