from transformers_jax.models.mpnet.configuration_mpnet import MPNetConfig
from transformers_jax.models.mpnet.modeling_mpnet import (
    MPNetForMaskedLM,
    MPNetForMultipleChoice,
    MPNetForQuestionAnswering,
    MPNetForSequenceClassification,
    MPNetForTokenClassification,
    MPNetModel,
    MPNetPreTrainedModel,
)

__all__ = [
    "MPNetConfig", "MPNetPreTrainedModel", "MPNetModel", "MPNetForMaskedLM", "MPNetForSequenceClassification",
    "MPNetForTokenClassification", "MPNetForQuestionAnswering", "MPNetForMultipleChoice",
]
