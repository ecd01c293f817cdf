from transformers_jax.models.smollm3.configuration_smollm3 import SmolLM3Config
from transformers_jax.models.smollm3.modeling_smollm3 import (
    SmolLM3ForCausalLM,
    SmolLM3ForQuestionAnswering,
    SmolLM3ForSequenceClassification,
    SmolLM3ForTokenClassification,
    SmolLM3Model,
    SmolLM3PreTrainedModel,
)

__all__ = ["SmolLM3Config", "SmolLM3PreTrainedModel", "SmolLM3Model", "SmolLM3ForCausalLM",
           "SmolLM3ForSequenceClassification", "SmolLM3ForTokenClassification", "SmolLM3ForQuestionAnswering"]
