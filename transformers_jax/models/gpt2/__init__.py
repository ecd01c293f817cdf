from transformers_jax.models.gpt2.configuration_gpt2 import GPT2Config
from transformers_jax.models.gpt2.modeling_gpt2 import (
    GPT2DoubleHeadsModel,
    GPT2ForQuestionAnswering,
    GPT2ForSequenceClassification,
    GPT2ForTokenClassification,
    GPT2LMHeadModel,
    GPT2Model,
    GPT2PreTrainedModel,
)

__all__ = ["GPT2Config", "GPT2PreTrainedModel", "GPT2Model", "GPT2LMHeadModel", "GPT2DoubleHeadsModel",
           "GPT2ForSequenceClassification", "GPT2ForTokenClassification", "GPT2ForQuestionAnswering"]
