from transformers_jax.models.mbart import modeling_mbart as _modeling
from transformers_jax.models.mbart.configuration_mbart import MBartConfig

__all__ = ["MBartConfig", *(f"MBart{head}" for head in (
    "PreTrainedModel", "Model", "ForConditionalGeneration", "ForSequenceClassification", "ForQuestionAnswering",
    "ForCausalLM"))]
globals().update({name: getattr(_modeling, name) for name in __all__ if name != "MBartConfig"})
