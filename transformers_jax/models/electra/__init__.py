from transformers_jax.models.electra import modeling_electra as _modeling
from transformers_jax.models.electra.configuration_electra import ElectraConfig
from transformers_jax.models.electra.modeling_electra import ElectraForPreTrainingOutput

__all__ = ["ElectraConfig", "ElectraForPreTrainingOutput", *(f"Electra{head}" for head in (
    "PreTrainedModel", "Model", "ForPreTraining", "ForMaskedLM", "ForSequenceClassification",
    "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice"))]
globals().update({name: getattr(_modeling, name) for name in __all__ if name.startswith("Electra")
                  and name not in ("ElectraConfig", "ElectraForPreTrainingOutput")})
