from transformers_jax.models.bart import modeling_bart as _modeling
from transformers_jax.models.bart.configuration_bart import BartConfig

__all__ = ["BartConfig", *(f"Bart{head}" for head in (
    "PreTrainedModel", "Model", "ForConditionalGeneration", "ForSequenceClassification", "ForQuestionAnswering",
    "ForCausalLM"))]
globals().update({name: getattr(_modeling, name) for name in __all__ if name != "BartConfig"})
