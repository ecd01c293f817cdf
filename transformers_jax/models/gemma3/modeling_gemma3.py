"""Gemma 3 (text only, ``Gemma3ForCausalLM``): the shared decoder with Gemma 2's settings plus q/k
norms and a RoPE per layer type, all set by :class:`Gemma3TextConfig`. The classes carry HF's names:
``Gemma3TextModel``, ``Gemma3ForCausalLM``, ``Gemma3TextForSequenceClassification`` (HF has no
token-classification or question-answering head for the text model)."""
from __future__ import annotations

from transformers_jax.models._decoder import build_family
from transformers_jax.models.gemma3.configuration_gemma3 import Gemma3TextConfig

# build_family defines Gemma3PreTrainedModel, Gemma3TextModel, Gemma3ForCausalLM,
# Gemma3TextForSequenceClassification.
globals().update(build_family("Gemma3", Gemma3TextConfig, __name__, tasks=("base", "causal_lm", "sequence_classification"),
                        class_names={"base": "Gemma3TextModel", "sequence_classification": "Gemma3TextForSequenceClassification"}))
