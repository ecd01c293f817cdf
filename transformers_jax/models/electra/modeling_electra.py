"""ELECTRA: the shared encoder (``models/_encoder.py``) under BERT's names with factorised
embeddings (``embedding_size`` -> ``embeddings_project`` -> ``hidden_size`` when they differ) and
no pooler, plus its heads: the discriminator (``ElectraForPreTraining``: per-token replaced-token
logits, BCE over real tokens), the generator (``ElectraForMaskedLM``: ``generator_predictions``
to ``embedding_size`` + ``generator_lm_head`` tied to the word embeddings), a GELU first-token
sequence classifier, and multiple choice through Hugging Face's "sequence summary"
(``summary_type``/``summary_use_proj``/``summary_activation``/``summary_*_dropout``).
ElectraForCausalLM (ELECTRA as a decoder) is not provided."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from transformers_jax import layers as L
from transformers_jax.losses import cross_entropy
from transformers_jax.modeling_outputs import (
    MaskedLMOutput,
    ModelOutput,
    MultipleChoiceModelOutput,
    _register,
)
from transformers_jax.models._encoder import (
    EncoderPreTrainedModel,
    build_encoder_family,
)
from transformers_jax.models._heads import extras, vocab_projection, vocab_projection_specs
from transformers_jax.models.electra.configuration_electra import ElectraConfig
from transformers_jax.params import dense_spec, layer_norm_spec


@_register
class ElectraForPreTrainingOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


def _fold(dropout_rng, salt: int):
    return None if dropout_rng is None else jax.random.fold_in(dropout_rng, salt)


class ElectraDiscriminatorHead(EncoderPreTrainedModel):
    """The ELECTRA discriminator: ``discriminator_predictions`` (dense -> ``hidden_act`` ->
    ``dense_prediction``) gives one replaced-token logit per token [B, T]. ``labels`` [B, T] (1:
    replaced) give the mean binary cross-entropy over the tokens where ``attention_mask`` is 1 (over
    every token without a mask), as Hugging Face computes it."""

    uses_pooler = False
    loss_averages_labels = False  # a mean over attended tokens, not over labels != -100

    @classmethod
    def head_specs(cls, config):
        d, std = config.hidden_size, config.initializer_range
        return {"discriminator_predictions": {"dense": dense_spec(d, d, "embed", "embed_out", True, std),
                                              "dense_prediction": dense_spec(d, 1, "embed_out", None, True, std)}}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        head = params["discriminator_predictions"]
        h = L.activation(config.hidden_act)(L.dense(head["dense"], out.last_hidden_state))
        logits = L.dense(head["dense_prediction"], h)[..., 0]  # [B, T]
        loss = None
        if labels is not None:
            x, y = logits.astype(jnp.float32), labels.astype(jnp.float32)
            per_token = jnp.maximum(x, 0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x)))
            if attention_mask is None:
                loss = jnp.mean(per_token)
            else:
                active = (attention_mask == 1).astype(jnp.float32)
                loss = jnp.sum(per_token * active) / jnp.sum(active)
        return ElectraForPreTrainingOutput(loss=loss, logits=logits, **extras(out))


class ElectraGeneratorHead(EncoderPreTrainedModel):
    """The ELECTRA generator: ``generator_predictions`` (dense to ``embedding_size`` -> GELU ->
    LayerNorm) and ``generator_lm_head``, whose weight is the word embedding table when tied."""

    uses_pooler = False

    @classmethod
    def head_specs(cls, config):
        d, e, std = config.hidden_size, config.embedding_dim, config.initializer_range
        return {"generator_predictions": {"dense": dense_spec(d, e, "embed", "embed_out", True, std),
                                          "LayerNorm": layer_norm_spec(e)},
                "generator_lm_head": vocab_projection_specs(config, e)}

    @classmethod
    def tied_weights(cls, config):
        if not config.tie_word_embeddings:
            return {}
        return {"generator_lm_head.weight": f"{cls.base_model_prefix}.embeddings.word_embeddings.weight"}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        head = params["generator_predictions"]
        h = L.activation(config.mlm_activation())(L.dense(head["dense"], out.last_hidden_state))
        h = L.layer_norm(head["LayerNorm"], h, config.norm_eps)
        logits = vocab_projection(params["generator_lm_head"], cls.word_embeddings(params), h)
        loss = cross_entropy(logits, labels) if labels is not None else None
        return MaskedLMOutput(loss=loss, logits=logits, **extras(out))


_SUMMARY_TYPES = ("first", "last", "mean", "cls_index")


def _summary_activation(config):
    name = config.summary_activation
    if not name or name == "linear":
        return lambda x: x
    return L.activation(name)


def _check_summary(config) -> None:
    """Refuse the sequence-summary settings this head does not compute, naming them."""
    if config.summary_type not in _SUMMARY_TYPES:
        raise ValueError(f"ElectraForMultipleChoice: summary_type={config.summary_type!r} is not supported "
                         f"(supported: {', '.join(_SUMMARY_TYPES)})")
    if config.summary_use_proj and getattr(config, "summary_proj_to_labels", False) and config.num_labels > 0:
        raise ValueError("ElectraForMultipleChoice: summary_proj_to_labels=True is not supported (the summary "
                         "must keep hidden_size for the choice classifier)")
    _summary_activation(config)  # an unknown activation is an error here, not at the first call


class ElectraMultipleChoiceHead(EncoderPreTrainedModel):
    """ELECTRA scoring each of C choices (inputs [B, C, T], logits [B, C]): Hugging Face's sequence
    summary of each choice (``summary_type`` "first": the first token; "last" and "cls_index" without
    an index: the last position; "mean": the mean over all positions, padding included) -> dropout
    (``summary_first_dropout``) -> ``sequence_summary.summary`` (when ``summary_use_proj``) ->
    ``summary_activation`` -> dropout (``summary_last_dropout``) -> ``classifier``."""

    uses_pooler = False
    per_sequence_modules = ("sequence_summary", "classifier")

    @classmethod
    def head_specs(cls, config):
        _check_summary(config)
        d, std = config.hidden_size, config.initializer_range
        specs = {}
        if config.summary_use_proj:
            specs["sequence_summary"] = {"summary": dense_spec(d, d, "embed", "embed_out", True, std)}
        specs["classifier"] = dense_spec(d, 1, "embed", None, True, std)
        return specs

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        _check_summary(config)
        batch, choices, length = input_ids.shape

        def flat(x):
            return None if x is None else x.reshape(batch * choices, length)  # [B * C, T]

        out = cls._base(params, config, flat(input_ids), flat(attention_mask), flat(token_type_ids),
                        flat(position_ids), head_mask, output_hidden_states, output_attentions, dropout_rng)
        h = out.last_hidden_state
        if config.summary_type == "first":
            x = h[:, 0]
        elif config.summary_type == "mean":
            x = h.mean(axis=1)
        else:  # "last", and "cls_index" without an index (Hugging Face's multiple choice passes none)
            x = h[:, -1]
        x = L.dropout(x, getattr(config, "summary_first_dropout", 0.0) or 0.0, _fold(dropout_rng, 1 << 30))
        if config.summary_use_proj:
            x = L.dense(params["sequence_summary"]["summary"], x)
        x = _summary_activation(config)(x)
        x = L.dropout(x, config.summary_last_dropout or 0.0, _fold(dropout_rng, (1 << 30) + 7))
        logits = L.dense(params["classifier"], x).reshape(batch, choices)
        loss = cross_entropy(logits, labels) if labels is not None else None
        return MultipleChoiceModelOutput(loss=loss, logits=logits, **extras(out))


# build_encoder_family defines ElectraPreTrainedModel, ElectraModel, ElectraForPreTraining,
# ElectraForMaskedLM, ElectraForSequenceClassification, ElectraForTokenClassification and
# ElectraForQuestionAnswering (the shared per-token heads), ElectraForMultipleChoice.
globals().update(build_encoder_family(
    "Electra", ElectraConfig, __name__,
    tasks=("base", "pretraining", "masked_lm", "sequence_classification", "token_classification",
           "question_answering", "multiple_choice"),
    heads={"pretraining": ("ForPreTraining", ElectraDiscriminatorHead),
           "masked_lm": ("ForMaskedLM", ElectraGeneratorHead),
           "multiple_choice": ("ForMultipleChoice", ElectraMultipleChoiceHead)},
    base_model_prefix="electra",
))
