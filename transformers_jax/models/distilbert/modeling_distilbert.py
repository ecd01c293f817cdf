"""DistilBERT: the shared encoder (``models/_encoder.py``) without token types or pooler, under
DistilBERT's checkpoint names (``transformer.layer.N.attention.q_lin``, ``sa_layer_norm``,
``ffn.lin1``...), with its own heads: the masked-LM head (``vocab_transform`` -> activation ->
``vocab_layer_norm`` -> ``vocab_projector`` tied to the word embeddings), sequence classification
and multiple choice through the shared "dense" summary (``pre_classifier`` + ReLU over the first
token, then ``classifier``), question answering with ``qa_dropout``. DistilBERT has no causal-LM head."""
from __future__ import annotations

import dataclasses

import jax

from transformers_jax import layers as L
from transformers_jax.losses import cross_entropy
from transformers_jax.modeling_outputs import MaskedLMOutput
from transformers_jax.models._encoder import EncoderPreTrainedModel, build_encoder_family
from transformers_jax.models._heads import extras, span_head, vocab_projection, vocab_projection_specs
from transformers_jax.models.distilbert.configuration_distilbert import DistilBertConfig
from transformers_jax.params import dense_spec, layer_norm_spec

_LAYER = r"(transformer\.layer\.\d+\.)"
_RENAMES = (
    (r"(^|\.)encoder\.layer\.(\d+)\.", r"\1transformer.layer.\2."),
    (_LAYER + r"attention\.self\.query\.", r"\1attention.q_lin."),
    (_LAYER + r"attention\.self\.key\.", r"\1attention.k_lin."),
    (_LAYER + r"attention\.self\.value\.", r"\1attention.v_lin."),
    (_LAYER + r"attention\.output\.dense\.", r"\1attention.out_lin."),
    (_LAYER + r"attention\.output\.LayerNorm\.", r"\1sa_layer_norm."),
    (_LAYER + r"intermediate\.dense\.", r"\1ffn.lin1."),
    (_LAYER + r"output\.dense\.", r"\1ffn.lin2."),
    (_LAYER + r"output\.LayerNorm\.", r"\1output_layer_norm."),
    (r"^classifier\.dense\.", "pre_classifier."),  # the shared "dense" summary's names
    (r"^classifier\.out_proj\.", "classifier."),
)


def _dropout(x, rate, dropout_rng):
    """Dropout of a head, with a key apart from the encoder's splits of ``dropout_rng``."""
    return L.dropout(x, rate, None if dropout_rng is None else jax.random.fold_in(dropout_rng, 1 << 30))


class DistilBertMaskedLMHead(EncoderPreTrainedModel):
    """DistilBERT with its masked-LM head; ``vocab_projector`` is the word embedding table when tied."""

    uses_pooler = False

    @classmethod
    def head_specs(cls, config):
        d, std = config.hidden_size, config.initializer_range
        return {"vocab_transform": dense_spec(d, d, "embed", "embed_out", True, std),
                "vocab_layer_norm": layer_norm_spec(d),
                "vocab_projector": vocab_projection_specs(config, d)}

    @classmethod
    def tied_weights(cls, config):
        if not config.tie_word_embeddings:
            return {}
        return {"vocab_projector.weight": f"{cls.base_model_prefix}.embeddings.word_embeddings.weight"}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        h = L.activation(config.activation)(L.dense(params["vocab_transform"], out.last_hidden_state))
        h = L.layer_norm(params["vocab_layer_norm"], h, config.norm_eps)
        logits = vocab_projection(params["vocab_projector"], cls.word_embeddings(params), h)
        loss = cross_entropy(logits, labels) if labels is not None else None
        return MaskedLMOutput(loss=loss, logits=logits, **extras(out))


class DistilBertQuestionAnsweringHead(EncoderPreTrainedModel):
    """DistilBERT with a span head: dropout (``qa_dropout``), then start and end logits per token."""

    uses_pooler = False

    @classmethod
    def head_specs(cls, config):
        if config.num_labels != 2:
            raise ValueError(f"DistilBERT question answering needs num_labels=2 (start, end), got {config.num_labels}")
        return {"qa_outputs": dense_spec(config.hidden_size, 2, "embed", None, True, config.initializer_range)}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, start_positions=None, end_positions=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        dropped = dataclasses.replace(out, last_hidden_state=_dropout(out.last_hidden_state, config.qa_dropout,
                                                                      dropout_rng))
        return span_head(params["qa_outputs"], dropped, start_positions, end_positions)


# build_encoder_family defines DistilBertPreTrainedModel, DistilBertModel, DistilBertForMaskedLM,
# DistilBertForSequenceClassification, DistilBertForTokenClassification (the shared per-token
# classifier, dropout = ``dropout``), DistilBertForQuestionAnswering, DistilBertForMultipleChoice.
globals().update(build_encoder_family(
    "DistilBert", DistilBertConfig, __name__,
    heads={"masked_lm": ("ForMaskedLM", DistilBertMaskedLMHead),
           "question_answering": ("ForQuestionAnswering", DistilBertQuestionAnsweringHead)},
    register_tasks={"pretraining": "masked_lm"},
    base_model_prefix="distilbert", checkpoint_renames=_RENAMES,
))
