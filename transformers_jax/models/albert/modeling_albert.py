"""ALBERT: the shared encoder (``models/_encoder.py``) with factorised embeddings projected to the
hidden size, layers sharing the params of ``num_hidden_groups`` groups (the config's
``layer_groups``: one scan over the layers, each reading its group's slice of the stacked params),
and ALBERT's checkpoint names; plus its pre-training head (masked LM + sentence-order prediction)."""
from __future__ import annotations

from typing import Any

from transformers_jax import layers as L
from transformers_jax.losses import cross_entropy
from transformers_jax.modeling_outputs import ModelOutput, _register
from transformers_jax.models._encoder import (
    EncoderPreTrainedModel,
    TiedMLMHead,
    build_encoder_family,
    classifier_dropout,
    mlm_head_specs,
    mlm_logits,
)
from transformers_jax.models._heads import extras
from transformers_jax.models.albert.configuration_albert import AlbertConfig
from transformers_jax.params import dense_spec

# Our (BERT-named) keys -> ALBERT's. The stacked index is the group's: group G's one layer is
# ``encoder.albert_layer_groups.G.albert_layers.0``.
_RENAMES = (
    (r"(^|\.)encoder\.layer\.(\d+)\.", r"\1encoder.albert_layer_groups.\2.albert_layers.0."),
    (r"\.albert_layers\.0\.attention\.(self|output)\.", ".albert_layers.0.attention."),
    (r"\.albert_layers\.0\.intermediate\.dense\.", ".albert_layers.0.ffn."),
    (r"\.albert_layers\.0\.output\.dense\.", ".albert_layers.0.ffn_output."),
    (r"\.albert_layers\.0\.output\.LayerNorm\.", ".albert_layers.0.full_layer_layer_norm."),
    (r"(^|\.)embeddings_project\.", r"\1encoder.embedding_hidden_mapping_in."),
    (r"(^|\.)pooler\.dense\.", r"\1pooler."),
    (r"^cls\.predictions\.transform\.", "predictions."),
    (r"^cls\.predictions\.", "predictions."),
    (r"^cls\.sop_classifier\.", "sop_classifier.classifier."),
)


@_register
class AlbertForPreTrainingOutput(ModelOutput):
    loss: Any = None
    prediction_logits: Any = None
    sop_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


class EncoderForSentenceOrderPreTraining(TiedMLMHead, EncoderPreTrainedModel):
    """ALBERT with the masked-LM head and the sentence-order head over the pooled first token; the
    loss is their sum when both ``labels`` and ``sentence_order_label`` are given."""

    loss_averages_labels = False  # a sum of two means: not one mean over label tokens
    per_sequence_modules = ("pooler", "sop_classifier")

    @classmethod
    def head_specs(cls, config):
        sop = dense_spec(config.hidden_size, config.num_labels, "embed", None, True, config.initializer_range)
        return {"cls": {"predictions": mlm_head_specs(config), "sop_classifier": sop}}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, sentence_order_label=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        logits = mlm_logits(params["cls"]["predictions"], cls.word_embeddings(params), config, out.last_hidden_state)
        sop = L.dense(params["cls"]["sop_classifier"], classifier_dropout(config, out.pooler_output, dropout_rng))
        loss = None
        if labels is not None and sentence_order_label is not None:
            if config.num_labels != 2:
                raise ValueError(f"sentence_order_label needs num_labels=2 (the sentence-order head's two classes), "
                                 f"got num_labels={config.num_labels}")
            loss = cross_entropy(logits, labels) + cross_entropy(sop, sentence_order_label.reshape(-1))
        return AlbertForPreTrainingOutput(loss=loss, prediction_logits=logits, sop_logits=sop, **extras(out))


# build_encoder_family defines AlbertPreTrainedModel, AlbertModel, AlbertForPreTraining,
# AlbertForMaskedLM, AlbertForSequenceClassification, AlbertForTokenClassification,
# AlbertForQuestionAnswering, AlbertForMultipleChoice.
globals().update(build_encoder_family(
    "Albert", AlbertConfig, __name__,
    tasks=("base", "pretraining", "masked_lm", "sequence_classification", "token_classification",
           "question_answering", "multiple_choice"),
    heads={"pretraining": ("ForPreTraining", EncoderForSentenceOrderPreTraining)},
    base_model_prefix="albert", checkpoint_renames=_RENAMES,
))
