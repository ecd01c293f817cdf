"""Gemma: the shared decoder (``models/_decoder.py``) with Gemma's norms (``1 + weight``), scaled
embeddings and GeGLU MLP, all set by :class:`GemmaConfig`'s switches. HF has no question-answering head."""
from __future__ import annotations

from transformers_jax.models._decoder import build_family
from transformers_jax.models.gemma.configuration_gemma import GemmaConfig

_classes = build_family("Gemma", GemmaConfig, __name__,
                        tasks=("base", "causal_lm", "sequence_classification", "token_classification"))
GemmaPreTrainedModel = _classes["GemmaPreTrainedModel"]
GemmaModel = _classes["GemmaModel"]
GemmaForCausalLM = _classes["GemmaForCausalLM"]
GemmaForSequenceClassification = _classes["GemmaForSequenceClassification"]
GemmaForTokenClassification = _classes["GemmaForTokenClassification"]
