from transformers_jax.models.llama.configuration_llama import LlamaConfig
from transformers_jax.models.llama.modeling_llama import LlamaForCausalLM, LlamaForSequenceClassification, LlamaModel

__all__ = ["LlamaConfig", "LlamaModel", "LlamaForCausalLM", "LlamaForSequenceClassification"]
