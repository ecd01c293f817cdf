"""Qwen2-MoE: Qwen2 with sparse MoE blocks (routed experts plus a gated shared expert): the shared MoE
decoder (``models/_moe.py``) with :class:`Qwen2MoeConfig`."""
from __future__ import annotations

from transformers_jax.models._moe import build_moe_family
from transformers_jax.models.qwen2_moe.configuration_qwen2_moe import Qwen2MoeConfig

# build_moe_family defines Qwen2MoePreTrainedModel, Qwen2MoeModel, Qwen2MoeForCausalLM,
# Qwen2MoeForSequenceClassification, Qwen2MoeForTokenClassification, Qwen2MoeForQuestionAnswering.
globals().update(build_moe_family("Qwen2Moe", Qwen2MoeConfig, __name__))
