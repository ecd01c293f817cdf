"""umT5: T5's classes (``models/t5``) over :class:`UMT5Config`, whose every self-attention layer has its own
relative bias table (``encoder.block.N.layer.0.SelfAttention.relative_attention_bias``, a per-layer
param here): ``UMT5Model``, ``UMT5ForConditionalGeneration``, ``UMT5EncoderModel``,
``UMT5ForSequenceClassification``, ``UMT5ForQuestionAnswering``, ``UMT5ForTokenClassification``."""
from transformers_jax.models._seq2seq import build_seq2seq_family
from transformers_jax.models.t5.modeling_t5 import t5_family_attributes
from transformers_jax.models.umt5.configuration_umt5 import UMT5Config

globals().update(build_seq2seq_family("UMT5", UMT5Config, __name__, **t5_family_attributes()))
