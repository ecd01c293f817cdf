"""BERT: the shared encoder (``models/_encoder.py``) under BERT's own names, plus its pre-training
(masked LM + next sentence) and next-sentence heads."""
from __future__ import annotations

from transformers_jax import layers as L
from transformers_jax.losses import cross_entropy
from transformers_jax.modeling_outputs import NextSentencePredictorOutput, PreTrainingOutput
from transformers_jax.models._encoder import (
    EncoderPreTrainedModel,
    TiedMLMHead,
    build_encoder_family,
    mlm_head_specs,
    mlm_logits,
)
from transformers_jax.models._heads import extras
from transformers_jax.models.bert.configuration_bert import BertConfig
from transformers_jax.params import dense_spec


def _seq_relationship_spec(config) -> dict:
    return dense_spec(config.hidden_size, 2, "embed", None, True, config.initializer_range)


class EncoderForPreTraining(TiedMLMHead, EncoderPreTrainedModel):
    """BERT with the masked-LM and next-sentence heads; loss is their sum when both labels are given."""

    loss_averages_labels = False  # a sum of two means: not one mean over label tokens

    @classmethod
    def head_specs(cls, config):
        return {"cls": {"predictions": mlm_head_specs(config), "seq_relationship": _seq_relationship_spec(config)}}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, next_sentence_label=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        logits = mlm_logits(params["cls"]["predictions"], cls.word_embeddings(params), config, out.last_hidden_state)
        nsp = L.dense(params["cls"]["seq_relationship"], out.pooler_output)
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = cross_entropy(logits, labels) + cross_entropy(nsp, next_sentence_label.reshape(-1))
        return PreTrainingOutput(loss=loss, prediction_logits=logits, seq_relationship_logits=nsp, **extras(out))


class EncoderForNextSentencePrediction(EncoderPreTrainedModel):
    """BERT with the next-sentence head over the pooled [CLS] state."""

    @classmethod
    def head_specs(cls, config):
        return {"cls": {"seq_relationship": _seq_relationship_spec(config)}}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        logits = L.dense(params["cls"]["seq_relationship"], out.pooler_output)
        loss = cross_entropy(logits, labels.reshape(-1)) if labels is not None else None
        return NextSentencePredictorOutput(loss=loss, logits=logits, **extras(out))


# build_encoder_family defines BertPreTrainedModel, BertModel, BertForPreTraining, BertForMaskedLM,
# BertForNextSentencePrediction, BertForSequenceClassification, BertForTokenClassification,
# BertForQuestionAnswering, BertForMultipleChoice.
globals().update(build_encoder_family(
    "Bert", BertConfig, __name__,
    tasks=("base", "pretraining", "masked_lm", "next_sentence_prediction", "sequence_classification",
           "token_classification", "question_answering", "multiple_choice"),
    heads={"pretraining": ("ForPreTraining", EncoderForPreTraining),
           "next_sentence_prediction": ("ForNextSentencePrediction", EncoderForNextSentencePrediction)},
    base_model_prefix="bert",
))
