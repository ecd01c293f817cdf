"""Gemma 2: the shared decoder with Gemma's norms and embeddings, sandwich norms, alternating
sliding-window/global layers, ``query_pre_attn_scalar`` and logit soft-capping, all set by
:class:`Gemma2Config`. HF has no question-answering head."""
from __future__ import annotations

from transformers_jax.models._decoder import build_family
from transformers_jax.models.gemma2.configuration_gemma2 import Gemma2Config

# build_family defines Gemma2PreTrainedModel, Gemma2Model, Gemma2ForCausalLM, Gemma2ForSequenceClassification,
# Gemma2ForTokenClassification.
globals().update(build_family("Gemma2", Gemma2Config, __name__,
                        tasks=("base", "causal_lm", "sequence_classification", "token_classification")))
