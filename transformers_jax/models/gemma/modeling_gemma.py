"""Gemma: the shared decoder (``models/_decoder.py``) with Gemma's norms (``1 + weight``), scaled
embeddings and GeGLU MLP, all set by :class:`GemmaConfig`'s switches. HF has no question-answering head."""
from __future__ import annotations

from transformers_jax.models._decoder import build_family
from transformers_jax.models.gemma.configuration_gemma import GemmaConfig

# build_family defines GemmaPreTrainedModel, GemmaModel, GemmaForCausalLM, GemmaForSequenceClassification,
# GemmaForTokenClassification.
globals().update(build_family("Gemma", GemmaConfig, __name__,
                        tasks=("base", "causal_lm", "sequence_classification", "token_classification")))
