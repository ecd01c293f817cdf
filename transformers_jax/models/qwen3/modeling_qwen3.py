"""Qwen3: Llama with per-head q/k RMSNorm and optional sliding-window layers: the shared decoder
(``models/_decoder.py``) with :class:`Qwen3Config`."""
from __future__ import annotations

from transformers_jax.models._decoder import build_family
from transformers_jax.models.qwen3.configuration_qwen3 import Qwen3Config

_classes = build_family("Qwen3", Qwen3Config, __name__, head_prefixes={"question_answering": "transformer"})
Qwen3PreTrainedModel = _classes["Qwen3PreTrainedModel"]
Qwen3Model = _classes["Qwen3Model"]
Qwen3ForCausalLM = _classes["Qwen3ForCausalLM"]
Qwen3ForSequenceClassification = _classes["Qwen3ForSequenceClassification"]
Qwen3ForTokenClassification = _classes["Qwen3ForTokenClassification"]
Qwen3ForQuestionAnswering = _classes["Qwen3ForQuestionAnswering"]
