"""Device meshes and logical-axis sharding rules.

The model library's hook (logical axis names to PartitionSpecs, placing params, the activation
constraint context) lives in ``transformers_jax.partitioning`` and is re-exported here; meshes,
presets and multi-host start-up build on it.
"""
from transformers_jax.partitioning import (  # noqa: F401
    active_sharding,
    logical_sharding,
    logical_to_partition_spec,
    param_shardings,
    validate_rules,
)
