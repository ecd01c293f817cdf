"""Mistral: Llama with sliding-window attention in every layer: the shared decoder
(``models/_decoder.py``) with :class:`MistralConfig`."""
from __future__ import annotations

from transformers_jax.models._decoder import build_family
from transformers_jax.models.mistral.configuration_mistral import MistralConfig

_classes = build_family("Mistral", MistralConfig, __name__)
MistralPreTrainedModel = _classes["MistralPreTrainedModel"]
MistralModel = _classes["MistralModel"]
MistralForCausalLM = _classes["MistralForCausalLM"]
MistralForSequenceClassification = _classes["MistralForSequenceClassification"]
MistralForTokenClassification = _classes["MistralForTokenClassification"]
MistralForQuestionAnswering = _classes["MistralForQuestionAnswering"]
