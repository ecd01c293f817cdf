"""RoBERTa, XLM-RoBERTa and CamemBERT: the shared encoder (``models/_encoder.py``) with RoBERTa's
padding-offset positions (from the config), its ``lm_head`` names for the masked-LM head, and
``classifier.dense``/``out_proj`` over the first token for sequence classification (multiple
choice keeps BERT's pooler + ``classifier``)."""
from __future__ import annotations

from transformers_jax.models._encoder import build_encoder_family
from transformers_jax.models.roberta.configuration_roberta import CamembertConfig, RobertaConfig, XLMRobertaConfig

_LM_HEAD_RENAMES = (
    (r"^cls\.predictions\.transform\.dense\.", "lm_head.dense."),
    (r"^cls\.predictions\.transform\.LayerNorm\.", "lm_head.layer_norm."),
    (r"^cls\.predictions\.", "lm_head."),
)


def _family(prefix: str, config_class) -> dict[str, type]:
    return build_encoder_family(
        prefix, config_class, __name__, base_model_prefix="roberta", checkpoint_renames=_LM_HEAD_RENAMES,
        head_attributes={"multiple_choice": {"multiple_choice_summary": "pooler"}},
        register_tasks={"pretraining": "masked_lm"},
    )


# RobertaPreTrainedModel, RobertaModel, RobertaForMaskedLM, RobertaForSequenceClassification,
# RobertaForTokenClassification, RobertaForQuestionAnswering, RobertaForMultipleChoice; the same
# for XLMRoberta* and Camembert*.
globals().update(_family("Roberta", RobertaConfig))
globals().update(_family("XLMRoberta", XLMRobertaConfig))
globals().update(_family("Camembert", CamembertConfig))
