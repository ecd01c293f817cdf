from transformers_jax.models.qwen3.configuration_qwen3 import Qwen3Config
from transformers_jax.models.qwen3.modeling_qwen3 import (
    Qwen3ForCausalLM,
    Qwen3ForQuestionAnswering,
    Qwen3ForSequenceClassification,
    Qwen3ForTokenClassification,
    Qwen3Model,
    Qwen3PreTrainedModel,
)

__all__ = ["Qwen3Config", "Qwen3PreTrainedModel", "Qwen3Model", "Qwen3ForCausalLM", "Qwen3ForSequenceClassification",
           "Qwen3ForTokenClassification", "Qwen3ForQuestionAnswering"]
