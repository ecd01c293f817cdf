"""Llama: decoder-only LM with grouped-query attention, RoPE, RMSNorm and a SwiGLU MLP: the shared
decoder (``models/_decoder.py``) with its defaults."""
from __future__ import annotations

from transformers_jax.models._decoder import build_family
from transformers_jax.models.llama.configuration_llama import LlamaConfig

# build_family defines LlamaPreTrainedModel, LlamaModel, LlamaForCausalLM, LlamaForSequenceClassification,
# LlamaForTokenClassification, LlamaForQuestionAnswering.
globals().update(build_family("Llama", LlamaConfig, __name__, head_prefixes={"question_answering": "transformer"}))
