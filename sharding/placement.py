"""Placing params, optimizer state and batches on a mesh."""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sharding.mesh import data_axes, data_parallel_size
from transformers_jax.partitioning import Rules, place_params  # noqa: F401 (re-exported)


def replicated(mesh: Mesh) -> NamedSharding:
    """A sharding that keeps a full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def like_params_shardings(tree, params_shardings, mesh: Mesh):
    """Shardings for a pytree that holds copies of the params (optimizer moments): a leaf whose
    key path ends with a param's path and has its shape takes that param's sharding; anything
    else (step counters, scalars) is replicated."""
    by_path = {}
    for path, sharding in jax.tree_util.tree_leaves_with_path(params_shardings):
        by_path[tuple(str(k) for k in path)] = sharding

    def pick(path, leaf):
        keys = tuple(str(k) for k in path)
        for start in range(len(keys)):
            sharding = by_path.get(keys[start:])
            if sharding is not None and getattr(leaf, "ndim", 0) == len(sharding.spec):
                return sharding
        return replicated(mesh)

    return jax.tree_util.tree_map_with_path(pick, tree)


def batch_sharding(mesh: Mesh, rules: Rules, ndim: int = 2) -> NamedSharding:
    """Rows split over the batch's mesh axes; other dims whole."""
    axes = data_axes(mesh, rules)
    first = None if not axes else axes[0] if len(axes) == 1 else axes
    return NamedSharding(mesh, PartitionSpec(first, *([None] * (ndim - 1))))


def check_batch_size(global_batch: int, mesh: Mesh, rules: Rules, what: str = "batch size") -> None:
    """Refuse a global batch the data-parallel axes cannot split evenly."""
    ways = data_parallel_size(mesh, rules)
    if global_batch % ways:
        raise ValueError(
            f"{what} {global_batch} is not divisible by the {ways}-way data parallelism of mesh axes "
            f"{data_axes(mesh, rules)} (mesh {dict(mesh.shape)})"
        )


def place_batch(batch: dict, mesh: Mesh, rules: Rules) -> dict:
    """A host-local numpy batch -> global arrays split by rows over the batch's mesh axes.

    Each host passes its own rows (``process_count`` hosts together make the global batch).
    """
    out = {}
    for key, value in batch.items():
        value = np.asarray(value)
        global_rows = value.shape[0] * jax.process_count()
        check_batch_size(global_rows, mesh, rules, what=f"batch size ({key!r} has {global_rows} rows)")
        sharding = batch_sharding(mesh, rules, value.ndim)
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out
