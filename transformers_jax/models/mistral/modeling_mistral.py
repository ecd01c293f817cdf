"""Mistral: Llama with sliding-window attention in every layer: the shared decoder
(``models/_decoder.py``) with :class:`MistralConfig`."""
from __future__ import annotations

from transformers_jax.models._decoder import build_family
from transformers_jax.models.mistral.configuration_mistral import MistralConfig

# build_family defines MistralPreTrainedModel, MistralModel, MistralForCausalLM,
# MistralForSequenceClassification, MistralForTokenClassification, MistralForQuestionAnswering.
globals().update(build_family("Mistral", MistralConfig, __name__))
