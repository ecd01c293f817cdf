"""Device meshes, logical-axis sharding rules, and placing params and batches on a mesh.

The model library's hook (logical axis names to PartitionSpecs, the activation constraint
context) lives in ``transformers_jax.partitioning`` and is re-exported here.
"""
from sharding.mesh import create_mesh, data_axes, data_parallel_size, resolve_mesh_shape  # noqa: F401
from sharding.placement import (  # noqa: F401
    batch_sharding,
    check_batch_size,
    like_params_shardings,
    place_batch,
    place_params,
    replicated,
)
from sharding.rules import PRESETS, check_rules, rules_for_mesh  # noqa: F401
from transformers_jax.partitioning import (  # noqa: F401
    active_sharding,
    logical_sharding,
    logical_to_partition_spec,
    param_shardings,
    validate_rules,
)
