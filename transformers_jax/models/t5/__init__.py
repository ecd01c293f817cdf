from transformers_jax.models.t5 import modeling_t5 as _modeling
from transformers_jax.models.t5.configuration_t5 import T5Config

__all__ = ["T5Config", *(f"T5{head}" for head in (
    "PreTrainedModel", "Model", "ForConditionalGeneration", "EncoderModel", "ForSequenceClassification",
    "ForQuestionAnswering", "ForTokenClassification"))]
globals().update({name: getattr(_modeling, name) for name in __all__ if name != "T5Config"})
