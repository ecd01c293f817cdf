from transformers_jax.models.qwen2.configuration_qwen2 import Qwen2Config
from transformers_jax.models.qwen2.modeling_qwen2 import (
    Qwen2ForCausalLM,
    Qwen2ForQuestionAnswering,
    Qwen2ForSequenceClassification,
    Qwen2ForTokenClassification,
    Qwen2Model,
    Qwen2PreTrainedModel,
)

__all__ = ["Qwen2Config", "Qwen2PreTrainedModel", "Qwen2Model", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification",
           "Qwen2ForTokenClassification", "Qwen2ForQuestionAnswering"]
