from transformers_jax.models.mt5 import modeling_mt5 as _modeling
from transformers_jax.models.mt5.configuration_mt5 import MT5Config

__all__ = ["MT5Config", *(f"MT5{head}" for head in (
    "PreTrainedModel", "Model", "ForConditionalGeneration", "EncoderModel", "ForSequenceClassification",
    "ForQuestionAnswering", "ForTokenClassification"))]
globals().update({name: getattr(_modeling, name) for name in __all__ if name != "MT5Config"})
