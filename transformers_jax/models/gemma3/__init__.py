from transformers_jax.models.gemma3.configuration_gemma3 import Gemma3TextConfig
from transformers_jax.models.gemma3.modeling_gemma3 import (
    Gemma3ForCausalLM,
    Gemma3PreTrainedModel,
    Gemma3TextForSequenceClassification,
    Gemma3TextModel,
)

__all__ = ["Gemma3TextConfig", "Gemma3PreTrainedModel", "Gemma3TextModel", "Gemma3ForCausalLM",
           "Gemma3TextForSequenceClassification"]
