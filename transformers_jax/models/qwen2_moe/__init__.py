from transformers_jax.models.qwen2_moe.configuration_qwen2_moe import Qwen2MoeConfig
from transformers_jax.models.qwen2_moe.modeling_qwen2_moe import (
    Qwen2MoeForCausalLM,
    Qwen2MoeForQuestionAnswering,
    Qwen2MoeForSequenceClassification,
    Qwen2MoeForTokenClassification,
    Qwen2MoeModel,
    Qwen2MoePreTrainedModel,
)

__all__ = ["Qwen2MoeConfig", "Qwen2MoePreTrainedModel", "Qwen2MoeModel", "Qwen2MoeForCausalLM", "Qwen2MoeForSequenceClassification",
           "Qwen2MoeForTokenClassification", "Qwen2MoeForQuestionAnswering"]
