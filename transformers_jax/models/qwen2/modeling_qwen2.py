"""Qwen2: Llama with q/k/v biases and optional sliding-window layers: the shared decoder
(``models/_decoder.py``) with :class:`Qwen2Config`."""
from __future__ import annotations

from transformers_jax.models._decoder import build_family
from transformers_jax.models.qwen2.configuration_qwen2 import Qwen2Config

# build_family defines Qwen2PreTrainedModel, Qwen2Model, Qwen2ForCausalLM, Qwen2ForSequenceClassification,
# Qwen2ForTokenClassification, Qwen2ForQuestionAnswering.
globals().update(build_family("Qwen2", Qwen2Config, __name__, head_prefixes={"question_answering": "transformer"}))
