from transformers_jax.models.gemma2.configuration_gemma2 import Gemma2Config
from transformers_jax.models.gemma2.modeling_gemma2 import (
    Gemma2ForCausalLM,
    Gemma2ForSequenceClassification,
    Gemma2ForTokenClassification,
    Gemma2Model,
    Gemma2PreTrainedModel,
)

__all__ = ["Gemma2Config", "Gemma2PreTrainedModel", "Gemma2Model", "Gemma2ForCausalLM", "Gemma2ForSequenceClassification",
           "Gemma2ForTokenClassification"]
