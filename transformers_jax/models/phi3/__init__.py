from transformers_jax.models.phi3.configuration_phi3 import Phi3Config
from transformers_jax.models.phi3.modeling_phi3 import (
    Phi3ForCausalLM,
    Phi3ForSequenceClassification,
    Phi3ForTokenClassification,
    Phi3Model,
    Phi3PreTrainedModel,
)

__all__ = ["Phi3Config", "Phi3PreTrainedModel", "Phi3Model", "Phi3ForCausalLM", "Phi3ForSequenceClassification",
           "Phi3ForTokenClassification"]
