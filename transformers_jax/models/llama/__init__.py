from transformers_jax.models.llama.configuration_llama import LlamaConfig
from transformers_jax.models.llama.modeling_llama import (
    LlamaForCausalLM,
    LlamaForQuestionAnswering,
    LlamaForSequenceClassification,
    LlamaForTokenClassification,
    LlamaModel,
    LlamaPreTrainedModel,
)

__all__ = ["LlamaConfig", "LlamaPreTrainedModel", "LlamaModel", "LlamaForCausalLM", "LlamaForSequenceClassification",
           "LlamaForTokenClassification", "LlamaForQuestionAnswering"]
