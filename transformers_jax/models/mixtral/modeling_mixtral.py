"""Mixtral: Mistral with a sparse mixture of experts in every layer: the shared MoE decoder
(``models/_moe.py``) with :class:`MixtralConfig`. The checkpoint names the block ``block_sparse_moe``
and the experts' projections ``w1`` (gate), ``w3`` (up) and ``w2`` (down): renames of our ``mlp``
and ``gate_proj``/``up_proj``/``down_proj``."""
from __future__ import annotations

from transformers_jax.models._moe import build_moe_family
from transformers_jax.models.mixtral.configuration_mixtral import MixtralConfig

MIXTRAL_RENAMES = (
    (r"(^|\.)layers\.(\d+)\.mlp\.experts\.(\d+)\.gate_proj\.", r"\1layers.\2.mlp.experts.\3.w1."),
    (r"(^|\.)layers\.(\d+)\.mlp\.experts\.(\d+)\.up_proj\.", r"\1layers.\2.mlp.experts.\3.w3."),
    (r"(^|\.)layers\.(\d+)\.mlp\.experts\.(\d+)\.down_proj\.", r"\1layers.\2.mlp.experts.\3.w2."),
    (r"(^|\.)layers\.(\d+)\.mlp\.", r"\1layers.\2.block_sparse_moe."),
)

# build_moe_family defines MixtralPreTrainedModel, MixtralModel, MixtralForCausalLM,
# MixtralForSequenceClassification, MixtralForTokenClassification, MixtralForQuestionAnswering.
globals().update(build_moe_family("Mixtral", MixtralConfig, __name__, checkpoint_renames=MIXTRAL_RENAMES))
