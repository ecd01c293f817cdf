from transformers_jax.models.umt5 import modeling_umt5 as _modeling
from transformers_jax.models.umt5.configuration_umt5 import UMT5Config

__all__ = ["UMT5Config", *(f"UMT5{head}" for head in (
    "PreTrainedModel", "Model", "ForConditionalGeneration", "EncoderModel", "ForSequenceClassification",
    "ForQuestionAnswering", "ForTokenClassification"))]
globals().update({name: getattr(_modeling, name) for name in __all__ if name != "UMT5Config"})
