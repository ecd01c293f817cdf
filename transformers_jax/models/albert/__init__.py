from transformers_jax.models.albert.configuration_albert import AlbertConfig
from transformers_jax.models.albert.modeling_albert import (
    AlbertForMaskedLM,
    AlbertForMultipleChoice,
    AlbertForPreTraining,
    AlbertForPreTrainingOutput,
    AlbertForQuestionAnswering,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    AlbertModel,
    AlbertPreTrainedModel,
)

__all__ = [
    "AlbertConfig", "AlbertPreTrainedModel", "AlbertModel", "AlbertForPreTraining", "AlbertForPreTrainingOutput",
    "AlbertForMaskedLM", "AlbertForSequenceClassification", "AlbertForTokenClassification",
    "AlbertForQuestionAnswering", "AlbertForMultipleChoice",
]
