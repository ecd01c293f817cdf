from transformers_jax.models.mistral.configuration_mistral import MistralConfig
from transformers_jax.models.mistral.modeling_mistral import (
    MistralForCausalLM,
    MistralForQuestionAnswering,
    MistralForSequenceClassification,
    MistralForTokenClassification,
    MistralModel,
    MistralPreTrainedModel,
)

__all__ = ["MistralConfig", "MistralPreTrainedModel", "MistralModel", "MistralForCausalLM",
           "MistralForSequenceClassification", "MistralForTokenClassification", "MistralForQuestionAnswering"]
