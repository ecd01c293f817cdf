"""MPNet: the shared encoder (``models/_encoder.py``) with the relative position bias of the config
(``attention_context``/``attention_bias``), RoBERTa's padding-offset positions and ``lm_head``, a
first-token ``classifier.dense``/``out_proj`` sequence head (multiple choice keeps the pooler +
``classifier``), under MPNet's checkpoint names (``attention.attn.{q,k,v,o}``)."""
from __future__ import annotations

from transformers_jax.models._encoder import build_encoder_family
from transformers_jax.models.mpnet.configuration_mpnet import MPNetConfig

_RENAMES = (
    (r"\.attention\.self\.query\.", ".attention.attn.q."),
    (r"\.attention\.self\.key\.", ".attention.attn.k."),
    (r"\.attention\.self\.value\.", ".attention.attn.v."),
    (r"\.attention\.output\.dense\.", ".attention.attn.o."),
    (r"\.attention\.output\.LayerNorm\.", ".attention.LayerNorm."),
    (r"^cls\.predictions\.transform\.dense\.", "lm_head.dense."),
    (r"^cls\.predictions\.transform\.LayerNorm\.", "lm_head.layer_norm."),
    (r"^cls\.predictions\.", "lm_head."),
)

# build_encoder_family defines MPNetPreTrainedModel, MPNetModel, MPNetForMaskedLM,
# MPNetForSequenceClassification, MPNetForTokenClassification, MPNetForQuestionAnswering,
# MPNetForMultipleChoice.
globals().update(build_encoder_family(
    "MPNet", MPNetConfig, __name__, base_model_prefix="mpnet", checkpoint_renames=_RENAMES,
    head_attributes={"multiple_choice": {"multiple_choice_summary": "pooler"}},
    register_tasks={"pretraining": "masked_lm"},
))
