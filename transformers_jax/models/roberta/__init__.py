from transformers_jax.models.roberta import modeling_roberta as _modeling
from transformers_jax.models.roberta.configuration_roberta import CamembertConfig, RobertaConfig, XLMRobertaConfig

_HEADS = ("PreTrainedModel", "Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
          "ForQuestionAnswering", "ForMultipleChoice")
__all__ = ["RobertaConfig", "XLMRobertaConfig", "CamembertConfig",
           *(f"{prefix}{head}" for prefix in ("Roberta", "XLMRoberta", "Camembert") for head in _HEADS)]
globals().update({name: getattr(_modeling, name) for name in __all__ if not name.endswith("Config")})
