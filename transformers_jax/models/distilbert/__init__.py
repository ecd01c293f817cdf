from transformers_jax.models.distilbert import modeling_distilbert as _modeling
from transformers_jax.models.distilbert.configuration_distilbert import DistilBertConfig

__all__ = ["DistilBertConfig", *(f"DistilBert{head}" for head in (
    "PreTrainedModel", "Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
    "ForQuestionAnswering", "ForMultipleChoice"))]
globals().update({name: getattr(_modeling, name) for name in __all__ if name != "DistilBertConfig"})
