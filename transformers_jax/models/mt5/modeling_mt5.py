"""mT5: T5's classes (``models/t5``) over :class:`MT5Config`: ``MT5Model``, ``MT5ForConditionalGeneration``,
``MT5EncoderModel``, ``MT5ForSequenceClassification``, ``MT5ForQuestionAnswering``,
``MT5ForTokenClassification``, with T5's checkpoint names."""
from transformers_jax.models._seq2seq import build_seq2seq_family
from transformers_jax.models.mt5.configuration_mt5 import MT5Config
from transformers_jax.models.t5.modeling_t5 import t5_family_attributes

globals().update(build_seq2seq_family("MT5", MT5Config, __name__, **t5_family_attributes()))
