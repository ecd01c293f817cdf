"""Qwen3: Llama with per-head q/k RMSNorm and optional sliding-window layers: the shared decoder
(``models/_decoder.py``) with :class:`Qwen3Config`."""
from __future__ import annotations

from transformers_jax.models._decoder import build_family
from transformers_jax.models.qwen3.configuration_qwen3 import Qwen3Config

# build_family defines Qwen3PreTrainedModel, Qwen3Model, Qwen3ForCausalLM, Qwen3ForSequenceClassification,
# Qwen3ForTokenClassification, Qwen3ForQuestionAnswering.
globals().update(build_family("Qwen3", Qwen3Config, __name__, head_prefixes={"question_answering": "transformer"}))
