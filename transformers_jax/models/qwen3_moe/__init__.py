from transformers_jax.models.qwen3_moe.configuration_qwen3_moe import Qwen3MoeConfig
from transformers_jax.models.qwen3_moe.modeling_qwen3_moe import (
    Qwen3MoeForCausalLM,
    Qwen3MoeForQuestionAnswering,
    Qwen3MoeForSequenceClassification,
    Qwen3MoeForTokenClassification,
    Qwen3MoeModel,
    Qwen3MoePreTrainedModel,
)

__all__ = ["Qwen3MoeConfig", "Qwen3MoePreTrainedModel", "Qwen3MoeModel", "Qwen3MoeForCausalLM", "Qwen3MoeForSequenceClassification",
           "Qwen3MoeForTokenClassification", "Qwen3MoeForQuestionAnswering"]
