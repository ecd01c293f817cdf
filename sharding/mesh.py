"""Device meshes from a spec such as ``{"data": -1, "fsdp": 4, "tensor": 2}``.

The mesh spans every device of every host (``jax.devices()``), in the order JAX's mesh utilities
choose for the hardware topology. Axes are ``AxisType.Auto``: shardings come from ``jit``'s
in/out shardings and ``with_sharding_constraint``, the classic GSPMD way, on every JAX version
(``jax.make_mesh`` defaults to Explicit axes in newer releases, so the type is always passed).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import jax
from jax.sharding import AxisType, Mesh

from transformers_jax.partitioning import validate_rules

MeshSpec = Mapping[str, int] | Sequence[tuple[str, int]]


def resolve_mesh_shape(spec: MeshSpec, num_devices: int) -> dict[str, int]:
    """Sizes of every axis: one axis may be -1 and takes the devices the others leave."""
    items = list(spec.items()) if isinstance(spec, Mapping) else [tuple(item) for item in spec]
    if not items:
        raise ValueError("mesh spec is empty; give at least one axis, e.g. {'data': -1}")
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"mesh spec {dict(items)} names an axis twice")
    free = [name for name, size in items if size == -1]
    if len(free) > 1:
        raise ValueError(f"mesh spec {dict(items)}: only one axis may be -1, got {free}")
    for name, size in items:
        if not isinstance(size, int) or (size < 1 and size != -1):
            raise ValueError(f"mesh axis {name!r} has size {size!r}; sizes are positive integers or -1")
    fixed = math.prod(size for _, size in items if size != -1)
    if free:
        if num_devices % fixed:
            raise ValueError(
                f"mesh spec {dict(items)} does not divide the {num_devices} devices: the fixed axes take "
                f"{fixed}, which does not divide {num_devices}"
            )
        return {name: (num_devices // fixed if size == -1 else size) for name, size in items}
    if fixed != num_devices:
        raise ValueError(
            f"mesh spec {dict(items)} needs {fixed} devices but {num_devices} are available; "
            f"make one axis -1 to take the rest"
        )
    return dict(items)


def parse_mesh_spec(text: str) -> dict[str, int]:
    """The command lines' spelling of a mesh (``--mesh``): ``"data=2,fsdp=-1"`` -> ``{"data": 2, "fsdp": -1}``."""
    try:
        pairs = [item.split("=") for item in text.split(",")]
        spec = {name.strip(): int(size) for name, size in pairs}
    except ValueError:
        raise ValueError(f"--mesh {text!r}: expected axis=size pairs separated by commas, e.g. data=2,fsdp=-1 "
                         "or tensor=8") from None
    if "" in spec:
        raise ValueError(f"--mesh {text!r}: an axis has no name")
    return spec


def create_mesh(spec: MeshSpec, devices: Sequence | None = None) -> Mesh:
    """A mesh with named Auto axes over ``devices`` (default: all devices of all hosts)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(spec, len(devices))
    types = (AxisType.Auto,) * len(shape)
    try:
        return jax.make_mesh(tuple(shape.values()), tuple(shape), axis_types=types, devices=devices)
    except NotImplementedError:
        # A TPU torus maps each mesh axis onto whole physical axes (a 4x4x4 slice takes 4, 16 or 64, not 8);
        # an axis that needs part of one gets a physical axis split between two mesh axes.
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_device_mesh(tuple(shape.values()), devices, allow_split_physical_axes=True)
        return Mesh(grid, tuple(shape), axis_types=types)


def data_axes(mesh: Mesh, rules) -> tuple[str, ...]:
    """The mesh axes the batch dimension is split over (from the rules' ``batch`` entry)."""
    return tuple(a for a in validate_rules(rules).get("batch", ()) if a in mesh.shape)


def data_parallel_size(mesh: Mesh, rules) -> int:
    """How many ways the batch is split (the product of the batch's mesh axes)."""
    return math.prod(mesh.shape[a] for a in data_axes(mesh, rules))
