"""BERT: a bidirectional encoder with post-LayerNorm residual blocks, and its task heads."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from transformers_jax import layers as L
from transformers_jax.losses import cross_entropy, sequence_classification_loss
from transformers_jax.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    NextSentencePredictorOutput,
    PreTrainingOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers_jax.models._heads import extras, span_head
from transformers_jax.modeling_utils import PreTrainedModel
from transformers_jax.models.auto import register
from transformers_jax.models.bert.configuration_bert import BertConfig
from transformers_jax.params import ParamSpec, dense_spec, embedding_spec, layer_norm_spec, stack_specs
from transformers_jax.partitioning import constrain


# ----------------------------------------------------------------------------- specs
def encoder_specs(config: BertConfig, pooler: bool) -> dict:
    """Specs of BertModel's params; ``pooler`` adds the dense+tanh pooler over [CLS]."""
    d, ff, std = config.hidden_size, config.intermediate_size, config.initializer_range
    layer = {
        "attention": {
            "self": {
                "query": dense_spec(d, d, "embed", "heads", True, std),
                "key": dense_spec(d, d, "embed", "heads", True, std),
                "value": dense_spec(d, d, "embed", "heads", True, std),
            },
            "output": {"dense": dense_spec(d, d, "heads", "embed", True, std), "LayerNorm": layer_norm_spec(d)},
        },
        "intermediate": {"dense": dense_spec(d, ff, "embed", "mlp", True, std)},
        "output": {"dense": dense_spec(ff, d, "mlp", "embed", True, std), "LayerNorm": layer_norm_spec(d)},
    }
    specs = {
        "embeddings": {
            "word_embeddings": embedding_spec(config.vocab_size, d, std),
            "position_embeddings": embedding_spec(config.max_position_embeddings, d, std, ("positions", "embed")),
            "token_type_embeddings": embedding_spec(config.type_vocab_size, d, std, ("token_types", "embed")),
            "LayerNorm": layer_norm_spec(d),
        },
        "encoder": {"layer": stack_specs(layer, config.num_hidden_layers)},
    }
    if pooler:
        specs["pooler"] = {"dense": dense_spec(d, d, "embed", "embed_out", True, std)}
    return specs


def lm_head_specs(config: BertConfig) -> dict:
    """Specs of ``cls.predictions``: transform, output bias, and a decoder only when untied."""
    d, std = config.hidden_size, config.initializer_range
    specs = {
        "transform": {"dense": dense_spec(d, d, "embed", "embed_out", True, std), "LayerNorm": layer_norm_spec(d)},
        "bias": ParamSpec((config.vocab_size,), ("vocab",), "zeros"),
    }
    if not config.tie_word_embeddings:
        specs["decoder"] = dense_spec(d, config.vocab_size, "embed", "vocab", True, std)
    return specs


def _linear(config: BertConfig, num_out: int) -> dict:
    return dense_spec(config.hidden_size, num_out, "embed", None, True, config.initializer_range)


# ----------------------------------------------------------------------------- forward pieces
def encoder_forward(params, config: BertConfig, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                    output_hidden_states, output_attentions, dropout_rng=None):
    """BertModel forward. ``head_mask`` ([H] or [layers, H], 1 keeps a head, 0 masks it) scales
    attention probabilities per head. With ``dropout_rng`` (training) dropout is applied where
    Hugging Face applies it: embeddings, attention probabilities, and each sub-layer's output.
    Returns a BaseModelOutputWithPooling."""
    dtype = jnp.dtype(config.compute_dtype)
    batch, length = input_ids.shape
    if attention_mask is None:
        attention_mask = jnp.ones((batch, length), jnp.int32)
    if token_type_ids is None:
        token_type_ids = jnp.zeros((batch, length), jnp.int32)
    if position_ids is None:
        position_ids = jnp.broadcast_to(jnp.arange(length)[None], (batch, length))
    emb = params["embeddings"]
    x = (L.embed(emb["word_embeddings"], input_ids, dtype) + L.embed(emb["token_type_embeddings"], token_type_ids, dtype)
         + L.embed(emb["position_embeddings"], position_ids, dtype))
    keys = L.split_key(dropout_rng, config.num_hidden_layers + 1)  # embeddings, then one per layer
    rate = config.hidden_dropout_prob
    x = L.layer_norm(emb["LayerNorm"], x, config.layer_norm_eps)
    x = constrain(L.dropout(x, rate, None if keys is None else keys[0]), ("batch", "length", "act_embed"))  # [B, T, D]
    mask = L.padding_mask(attention_mask)  # [B, 1, 1, T]
    if head_mask is not None:
        head_mask = jnp.broadcast_to(jnp.asarray(head_mask, jnp.float32), (config.num_hidden_layers, config.num_attention_heads))
    eps, heads = config.layer_norm_eps, config.num_attention_heads

    def layer(x, p, layer_inputs):
        layer_head_mask, key = layer_inputs
        k_probs, k_attn, k_out = L.split_key(key, 3) if key is not None else (None, None, None)
        a = p["attention"]["self"]
        q, k, v = (L.split_heads(L.dense(a[name], x), heads) for name in ("query", "key", "value"))
        ctx, probs = L.dot_product_attention(q, k, v, mask, scale=config.head_dim**-0.5, head_mask=layer_head_mask,
                                             dropout_rate=config.attention_probs_dropout_prob, dropout_rng=k_probs)
        out = p["attention"]["output"]
        x = L.layer_norm(out["LayerNorm"], L.dropout(L.dense(out["dense"], L.merge_heads(ctx)), rate, k_attn) + x, eps)
        h = L.activation(config.hidden_act)(L.dense(p["intermediate"]["dense"], x))
        h = constrain(h, ("batch", "length", "act_mlp"))
        x = L.layer_norm(p["output"]["LayerNorm"], L.dropout(L.dense(p["output"]["dense"], h), rate, k_out) + x, eps)
        return x, (x if output_hidden_states else None, probs if output_attentions else None)

    embeddings = x
    layer_keys = None if keys is None else keys[1:]
    x, (layer_outputs, attentions) = L.run_layers(layer, x, params["encoder"]["layer"], config, (head_mask, layer_keys))
    pooled = None
    if "pooler" in params:
        pooled = jnp.tanh(L.dense(params["pooler"]["dense"], x[:, 0]))
    n = config.num_hidden_layers
    return BaseModelOutputWithPooling(
        last_hidden_state=x,
        pooler_output=pooled,
        hidden_states=(embeddings, *[layer_outputs[i] for i in range(n)]) if output_hidden_states else None,
        attentions=tuple(attentions[i] for i in range(n)) if output_attentions else None,
    )


def mlm_logits(params, config: BertConfig, sequence_output):
    """``cls.predictions``: transform, then the (tied) decoder and output bias."""
    head = params["cls"]["predictions"]
    t = head["transform"]
    h = L.activation(config.hidden_act)(L.dense(t["dense"], sequence_output))
    h = L.layer_norm(t["LayerNorm"], h, config.layer_norm_eps)
    if config.tie_word_embeddings:
        logits = L.tied_logits(params["bert"]["embeddings"]["word_embeddings"]["embedding"], h) + head["bias"].astype(h.dtype)
    else:
        logits = L.dense(head["decoder"], h)
    return constrain(logits, ("batch", "length", "act_vocab"))


def classifier_dropout(config: BertConfig, x, dropout_rng):
    """Dropout before a classifier head (``classifier_dropout``, else ``hidden_dropout_prob``),
    with a key of its own (the encoder uses the other split of ``dropout_rng``)."""
    rate = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    return L.dropout(x, rate, None if dropout_rng is None else jax.random.fold_in(dropout_rng, 1 << 30))



# ----------------------------------------------------------------------------- classes
class BertPreTrainedModel(PreTrainedModel):
    config_class = BertConfig
    base_model_prefix = "bert"
    stacked_layer_keys = ("layer",)
    optional_base_modules = ("pooler",)
    per_sequence_modules = ("pooler", "seq_relationship")  # matmuls on [CLS] only (left out of FLOPs per token)
    uses_pooler = True

    @classmethod
    def param_specs(cls, config):
        return {"bert": encoder_specs(config, pooler=cls.uses_pooler), **cls.head_specs(config)}

    @classmethod
    def head_specs(cls, config) -> dict:
        return {}


class BertModel(BertPreTrainedModel):
    """The bare BERT encoder with its pooler."""

    is_base_model = True

    @classmethod
    def param_specs(cls, config):
        return encoder_specs(config, pooler=True)

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                output_hidden_states=False, output_attentions=False,
                dropout_rng=None):
        return encoder_forward(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                               output_hidden_states, output_attentions, dropout_rng)


class _TiedLMHead:
    # HF Flax's LM head has no decoder bias: it adds cls.predictions.bias, tied or not.
    flax_shared_weights = (("cls.predictions.decoder.bias", "cls.predictions.bias"),)

    @classmethod
    def tied_weights(cls, config):
        if not config.tie_word_embeddings:
            return {}
        return {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
                "cls.predictions.decoder.bias": "cls.predictions.bias"}


class BertForPreTraining(_TiedLMHead, BertPreTrainedModel):
    """BERT with the masked-LM and next-sentence heads; loss is their sum when both labels are given."""

    loss_averages_labels = False  # a sum of two means: not one mean over label tokens

    @classmethod
    def head_specs(cls, config):
        return {"cls": {"predictions": lm_head_specs(config), "seq_relationship": _linear(config, 2)}}

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                labels=None, next_sentence_label=None, output_hidden_states=False, output_attentions=False,
                dropout_rng=None):
        out = encoder_forward(params["bert"], config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                              output_hidden_states, output_attentions, dropout_rng)
        logits = mlm_logits(params, config, out.last_hidden_state)
        nsp = L.dense(params["cls"]["seq_relationship"], out.pooler_output)
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = cross_entropy(logits, labels) + cross_entropy(nsp, next_sentence_label.reshape(-1))
        return PreTrainingOutput(loss=loss, prediction_logits=logits, seq_relationship_logits=nsp, **extras(out))


class BertForMaskedLM(_TiedLMHead, BertPreTrainedModel):
    """BERT with the masked-LM head (no pooler)."""

    uses_pooler = False

    @classmethod
    def head_specs(cls, config):
        return {"cls": {"predictions": lm_head_specs(config)}}

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                labels=None, output_hidden_states=False, output_attentions=False,
                dropout_rng=None):
        out = encoder_forward(params["bert"], config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                              output_hidden_states, output_attentions, dropout_rng)
        logits = mlm_logits(params, config, out.last_hidden_state)
        loss = cross_entropy(logits, labels) if labels is not None else None
        return MaskedLMOutput(loss=loss, logits=logits, **extras(out))


class BertForNextSentencePrediction(BertPreTrainedModel):
    """BERT with the next-sentence head over the pooled [CLS] state."""

    @classmethod
    def head_specs(cls, config):
        return {"cls": {"seq_relationship": _linear(config, 2)}}

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                labels=None, output_hidden_states=False, output_attentions=False,
                dropout_rng=None):
        out = encoder_forward(params["bert"], config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                              output_hidden_states, output_attentions, dropout_rng)
        logits = L.dense(params["cls"]["seq_relationship"], out.pooler_output)
        loss = cross_entropy(logits, labels.reshape(-1)) if labels is not None else None
        return NextSentencePredictorOutput(loss=loss, logits=logits, **extras(out))


class BertForSequenceClassification(BertPreTrainedModel):
    """BERT with a linear classifier (or regressor) over the pooled [CLS] state."""

    @classmethod
    def head_specs(cls, config):
        return {"classifier": _linear(config, config.num_labels)}

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                labels=None, output_hidden_states=False, output_attentions=False,
                dropout_rng=None):
        out = encoder_forward(params["bert"], config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                              output_hidden_states, output_attentions, dropout_rng)
        logits = L.dense(params["classifier"], classifier_dropout(config, out.pooler_output, dropout_rng))
        loss = sequence_classification_loss(logits, labels, config) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits, **extras(out))


class BertForTokenClassification(BertPreTrainedModel):
    """BERT with a per-token linear classifier (no pooler)."""

    uses_pooler = False

    @classmethod
    def head_specs(cls, config):
        return {"classifier": _linear(config, config.num_labels)}

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                labels=None, output_hidden_states=False, output_attentions=False,
                dropout_rng=None):
        out = encoder_forward(params["bert"], config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                              output_hidden_states, output_attentions, dropout_rng)
        logits = L.dense(params["classifier"], classifier_dropout(config, out.last_hidden_state, dropout_rng))
        loss = cross_entropy(logits, labels) if labels is not None else None
        return TokenClassifierOutput(loss=loss, logits=logits, **extras(out))


class BertForQuestionAnswering(BertPreTrainedModel):
    """BERT with a span head: start and end logits per token (no pooler)."""

    uses_pooler = False

    @classmethod
    def head_specs(cls, config):
        return {"qa_outputs": _linear(config, 2)}

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                start_positions=None, end_positions=None, output_hidden_states=False, output_attentions=False,
                dropout_rng=None):
        out = encoder_forward(params["bert"], config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                              output_hidden_states, output_attentions, dropout_rng)
        return span_head(params["qa_outputs"], out, start_positions, end_positions)


class BertForMultipleChoice(BertPreTrainedModel):
    """BERT scoring each of C choices: inputs [B, C, T], logits [B, C]."""

    @classmethod
    def head_specs(cls, config):
        return {"classifier": _linear(config, 1)}

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                labels=None, output_hidden_states=False, output_attentions=False,
                dropout_rng=None):
        batch, choices, length = input_ids.shape

        def flat(x):
            return None if x is None else x.reshape(batch * choices, length)  # [B * C, T]

        out = encoder_forward(params["bert"], config, flat(input_ids), flat(attention_mask), flat(token_type_ids),
                              flat(position_ids), head_mask, output_hidden_states, output_attentions, dropout_rng)
        pooled = classifier_dropout(config, out.pooler_output, dropout_rng)
        logits = L.dense(params["classifier"], pooled).reshape(batch, choices)
        loss = cross_entropy(logits, labels) if labels is not None else None
        return MultipleChoiceModelOutput(loss=loss, logits=logits, **extras(out))


register(BertConfig, base=BertModel, pretraining=BertForPreTraining, masked_lm=BertForMaskedLM,
         sequence_classification=BertForSequenceClassification, token_classification=BertForTokenClassification,
         question_answering=BertForQuestionAnswering, multiple_choice=BertForMultipleChoice,
         next_sentence_prediction=BertForNextSentencePrediction)
