"""Qwen3-MoE: Qwen3 with sparse MoE blocks (routed experts only): the shared MoE decoder
(``models/_moe.py``) with :class:`Qwen3MoeConfig`."""
from __future__ import annotations

from transformers_jax.models._moe import build_moe_family
from transformers_jax.models.qwen3_moe.configuration_qwen3_moe import Qwen3MoeConfig

# build_moe_family defines Qwen3MoePreTrainedModel, Qwen3MoeModel, Qwen3MoeForCausalLM,
# Qwen3MoeForSequenceClassification, Qwen3MoeForTokenClassification, Qwen3MoeForQuestionAnswering.
globals().update(build_moe_family("Qwen3Moe", Qwen3MoeConfig, __name__,
                                 head_prefixes={"question_answering": "transformer"}))
