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

# The presets and the checks live in the model library's sharding hook (``transformers_jax.partitioning``), so
# that a model can be placed on a mesh by a preset's name (``model.shard(mesh, "tp")``) without importing this
# package; they are re-exported here.
from transformers_jax.partitioning import PRESETS, check_rules, rules_for_mesh  # noqa: F401
