from transformers_jax.models.deberta_v2 import modeling_deberta_v2 as _modeling
from transformers_jax.models.deberta_v2.configuration_deberta_v2 import DebertaV2Config

__all__ = ["DebertaV2Config", *(f"DebertaV2{head}" for head in (
    "PreTrainedModel", "Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
    "ForQuestionAnswering", "ForMultipleChoice"))]
globals().update({name: getattr(_modeling, name) for name in __all__ if not name.endswith("Config")})
