from transformers_jax.models.gemma.configuration_gemma import GemmaConfig
from transformers_jax.models.gemma.modeling_gemma import (
    GemmaForCausalLM,
    GemmaForSequenceClassification,
    GemmaForTokenClassification,
    GemmaModel,
    GemmaPreTrainedModel,
)

__all__ = ["GemmaConfig", "GemmaPreTrainedModel", "GemmaModel", "GemmaForCausalLM", "GemmaForSequenceClassification",
           "GemmaForTokenClassification"]
