from transformers_jax.models.mixtral.configuration_mixtral import MixtralConfig
from transformers_jax.models.mixtral.modeling_mixtral import (
    MixtralForCausalLM,
    MixtralForQuestionAnswering,
    MixtralForSequenceClassification,
    MixtralForTokenClassification,
    MixtralModel,
    MixtralPreTrainedModel,
)

__all__ = ["MixtralConfig", "MixtralPreTrainedModel", "MixtralModel", "MixtralForCausalLM",
           "MixtralForSequenceClassification", "MixtralForTokenClassification", "MixtralForQuestionAnswering"]
