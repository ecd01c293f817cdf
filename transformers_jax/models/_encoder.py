"""The shared bidirectional encoder: BERT and the families built like it (RoBERTa, XLM-R,
CamemBERT, DistilBERT, ALBERT, ELECTRA, MPNet, DeBERTa-v2) are this skeleton plus their config and
key map.

The skeleton is a post-LayerNorm Transformer encoder (embeddings -> LayerNorm -> N x [attention ->
add & norm -> MLP -> add & norm]) with BERT's module names as our param tree. A family says how it
differs through its config class (:class:`EncoderArchitecture`):

* ``position_type`` (ClassVar): ``"absolute"`` (position ``i`` at index ``i``), ``"padding_offset"``
  (RoBERTa/MPNet: positions counted over non-padding tokens from ``pad_token_id + 1``) or ``"none"``
  (no position table; DeBERTa without ``position_biased_input``);
* ``has_token_types`` / ``embedding_dim`` (a factorised embedding projected to the hidden size:
  ELECTRA, ALBERT, DeBERTa's ``embedding_size``), ``project_before_norm`` (DeBERTa projects, then
  normalises), ``embeddings_project_bias``, ``mask_embeddings`` (DeBERTa zeroes the embedding
  output at padding);
* ``layer_groups()``: ALBERT's layers share the params of ``num_hidden_groups`` groups: the stacked
  tree holds one entry per group and each layer of the one scan picks its group;
* ``attention_context()`` / ``attention_bias()``: relative position terms added to the attention
  scores (MPNet's bucketed bias; DeBERTa's disentangled content-to-position terms), with
  ``attention_specs()`` (extra per-layer params under ``attention.self``) and
  ``layer_attention_context()`` (a layer's own view of the context in training: its dropout);
  ``attention_padding_mask()`` (which query/key pairs padding masks);
* ``first_layer_transform()`` (when ``has_first_layer_transform``): applied to the first layer's
  output inside the one scan (DeBERTa-v2's ConvLayer over the embeddings);
* heads: ``sequence_summary`` ("pooler": the base model's tanh pooler, or "dense": a dense layer
  and activation over the first token inside the classifier, as RoBERTa's ``classifier.dense`` /
  ``classifier.out_proj``), ``mlm_activation()``, ``dropout_rates()``.

How a checkpoint names the modules is the family's ``checkpoint_renames`` (DistilBERT's
``transformer.layer.N.attention.q_lin``, RoBERTa's ``lm_head``), never a branch in the forward.
"""
from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from transformers_jax import layers as L
from transformers_jax.losses import cross_entropy, sequence_classification_loss
from transformers_jax.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers_jax.modeling_utils import PreTrainedModel
from transformers_jax.models._heads import extras, span_head
from transformers_jax.params import ParamSpec, dense_spec, embedding_spec, layer_norm_spec, stack_specs
from transformers_jax.partitioning import constrain


class EncoderArchitecture:
    """What the shared encoder reads from a config beyond BERT's fields: class switches and hooks.

    A family's config mixes this in and answers BERT's field names (``hidden_size``,
    ``num_hidden_layers``...) through ``attribute_map`` or properties where its config.json uses
    other names (DistilBERT's ``dim``, ``n_layers``)."""

    position_type: ClassVar[str] = "absolute"
    project_before_norm: ClassVar[bool] = False
    embeddings_project_bias: ClassVar[bool] = True  # the embedding-size -> hidden-size projection has a bias
    mask_embeddings: ClassVar[bool] = False  # multiply the embedding output by the attention mask (DeBERTa)
    # Sequence classification: "pooler" (the base pooler's output -> classifier) or "dense"
    # (classifier.dense + activation over the first token -> classifier.out_proj).
    sequence_summary: ClassVar[str] = "pooler"
    dense_summary_activation: ClassVar[str] = "tanh"  # of the "dense" summary (classifier.dense)
    has_pooler: ClassVar[bool] = True  # the base model has BERT's dense + tanh pooler

    @property
    def has_token_types(self) -> bool:
        return (getattr(self, "type_vocab_size", 0) or 0) > 0

    @property
    def embedding_dim(self) -> int:
        """The width of the embedding tables (``embedding_size`` where the family factorises them)."""
        return getattr(self, "embedding_size", None) or self.hidden_size

    @property
    def has_embeddings_project(self) -> bool:
        """Whether a dense layer maps the embeddings to the hidden size (ALBERT has one even when equal)."""
        return self.embedding_dim != self.hidden_size

    @property
    def position_embedding_init(self) -> str:
        """How a fresh position table is filled: "normal", or "sinusoidal" (DistilBERT's
        ``sinusoidal_pos_embds``: fixed sin/cos values, saved and trained like any table)."""
        return "normal"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def norm_eps(self) -> float:
        return self.layer_norm_eps

    def layer_groups(self) -> np.ndarray | None:
        """The param group of each layer [L] when layers share params (ALBERT), else None."""
        return None

    def mlm_activation(self) -> str:
        """The activation of the masked-LM head's transform."""
        return self.hidden_act

    def dropout_rates(self) -> tuple[float, float]:
        """(hidden, attention-probability) dropout rates in training."""
        return self.hidden_dropout_prob, self.attention_probs_dropout_prob

    def ffn_output_dropout_rate(self) -> float:
        """Dropout on the MLP's output before its residual add (ALBERT has none there)."""
        return self.dropout_rates()[0]

    @property
    def position_padding_id(self) -> int:
        """The padding id that ``"padding_offset"`` positions count from (MPNet fixes it at 1)."""
        return self.pad_token_id

    def summary_dropout_rates(self) -> tuple[float, float]:
        """Dropout (before ``classifier.dense``, before ``classifier.out_proj``) of the "dense" summary."""
        rate = self.classifier_dropout_rate()
        return rate, rate

    def sequence_classification_loss(self, logits, labels):
        """The loss of sequence classifiers (Hugging Face's problem types; a family may override)."""
        return sequence_classification_loss(logits, labels, self)

    def classifier_dropout_rate(self) -> float:
        """Dropout before classifier heads (``classifier_dropout``, else the hidden dropout)."""
        rate = getattr(self, "classifier_dropout", None)
        return self.dropout_rates()[0] if rate is None else rate

    # -- relative positions (MPNet, DeBERTa) ----------------------------------------------------------
    def relative_specs(self) -> dict:
        """Params of the encoder's relative-position terms (and other encoder-level extras, such as
        DeBERTa's ``conv``), under ``encoder`` (none by default)."""
        return {}

    def attention_specs(self) -> dict:
        """Extra params of every layer's ``attention.self`` (DeBERTa's ``pos_key_proj``), none by default."""
        return {}

    def attention_context(self, encoder_params: dict, input_ids, attention_mask):
        """What every layer's :meth:`attention_bias` needs, computed once per forward (None by default)."""
        return None

    def layer_attention_context(self, context, dropout_rng):
        """The context one layer's :meth:`attention_bias` sees; ``dropout_rng`` is that layer's key in
        training (None otherwise), for dropout on the shared context (DeBERTa's relative embeddings).
        The context unchanged by default."""
        return context

    @property
    def has_first_layer_transform(self) -> bool:
        """Whether :meth:`first_layer_transform` runs (off by default)."""
        return False

    def first_layer_transform(self, encoder_params: dict, embeddings, x, attention_mask, dropout_rng):
        """The first layer's output ``x`` [B, T, D] transformed, given the embedding output and the
        [B, T] mask (``dropout_rng``: training only); runs under ``lax.cond`` on the layer index, so
        the layers stay one scan. It is that layer's hidden state. Identity by default."""
        return x

    def attention_padding_mask(self, attention_mask):
        """Boolean mask broadcastable to [B, H, T, T] from the [B, T] 1/0 mask: by default padded keys
        are masked (DeBERTa masks padded query rows too)."""
        return L.padding_mask(attention_mask)

    def attention_bias(self, attention_params: dict, hidden, q, k, context):
        """(scale of q.k, additive bias [B or 1, H, T, T] or None) for one layer."""
        return self.head_dim**-0.5, None


# ----------------------------------------------------------------------------- specs
def embeddings_specs(config) -> dict:
    """``embeddings``: word (and position, token-type) tables of ``embedding_dim`` and a LayerNorm."""
    e, std = config.embedding_dim, config.initializer_range
    specs = {"word_embeddings": embedding_spec(config.vocab_size, e, std)}
    if config.position_type != "none":
        specs["position_embeddings"] = {"embedding": ParamSpec((config.max_position_embeddings, e), ("positions", "embed"),
                                                               config.position_embedding_init, std)}
    if config.has_token_types:
        specs["token_type_embeddings"] = embedding_spec(config.type_vocab_size, e, std, ("token_types", "embed"))
    specs["LayerNorm"] = layer_norm_spec(config.hidden_size if config.project_before_norm else e)
    return specs


def layer_specs(config) -> dict:
    """One post-LayerNorm encoder layer under BERT's names."""
    d, ff, std = config.hidden_size, config.intermediate_size, config.initializer_range
    return {
        "attention": {
            "self": {
                "query": dense_spec(d, d, "embed", "heads", True, std),
                "key": dense_spec(d, d, "embed", "heads", True, std),
                "value": dense_spec(d, d, "embed", "heads", True, std),
                **config.attention_specs(),
            },
            "output": {"dense": dense_spec(d, d, "heads", "embed", True, std), "LayerNorm": layer_norm_spec(d)},
        },
        "intermediate": {"dense": dense_spec(d, ff, "embed", "mlp", True, std)},
        "output": {"dense": dense_spec(ff, d, "mlp", "embed", True, std), "LayerNorm": layer_norm_spec(d)},
    }


def encoder_specs(config, pooler: bool) -> dict:
    """Specs of the base model; ``pooler`` adds the dense + tanh pooler over the first token."""
    d, std = config.hidden_size, config.initializer_range
    groups = config.layer_groups()
    count = config.num_hidden_layers if groups is None else int(groups.max()) + 1
    specs = {"embeddings": embeddings_specs(config)}
    if config.has_embeddings_project:
        specs["embeddings_project"] = dense_spec(config.embedding_dim, d, "embed_in", "embed",
                                                 config.embeddings_project_bias, std)
    specs["encoder"] = {"layer": stack_specs(layer_specs(config), count), **config.relative_specs()}
    if pooler:
        specs["pooler"] = {"dense": dense_spec(d, d, "embed", "embed_out", True, std)}
    return specs


# ----------------------------------------------------------------------------- forward
def embedding_position_ids(config, input_ids):
    """Position ids [B, T] as HF computes them when none are given."""
    batch, length = input_ids.shape
    if config.position_type == "padding_offset":
        pad = config.position_padding_id
        real = (input_ids != pad).astype(jnp.int32)
        return jnp.cumsum(real, axis=1) * real + pad
    return jnp.broadcast_to(jnp.arange(length)[None], (batch, length))


def embed_inputs(params, config, input_ids, token_type_ids, position_ids, dropout_rng):
    """Embeddings summed, normalised, dropped out and projected to the hidden size: [B, T, D]."""
    dtype = jnp.dtype(config.compute_dtype)
    emb = params["embeddings"]
    x = L.embed(emb["word_embeddings"], input_ids, dtype)
    if config.position_type != "none":
        if position_ids is None:
            position_ids = embedding_position_ids(config, input_ids)
        x = x + L.embed(emb["position_embeddings"], position_ids, dtype)
    if config.has_token_types:
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        x = x + L.embed(emb["token_type_embeddings"], token_type_ids, dtype)
    project = "embeddings_project" in params
    if project and config.project_before_norm:
        x = L.dense(params["embeddings_project"], x)
    x = L.layer_norm(emb["LayerNorm"], x, config.norm_eps)
    x = L.dropout(x, config.dropout_rates()[0], dropout_rng)
    if project and not config.project_before_norm:
        x = L.dense(params["embeddings_project"], x)
    return x


def encoder_forward(params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                    head_mask=None, output_hidden_states=False, output_attentions=False, dropout_rng=None,
                    inputs_embeds_hook=None):
    """The base encoder. ``head_mask`` ([H] or [layers, H], 1 keeps a head, 0 masks it) scales
    attention probabilities per head. With ``dropout_rng`` (training) dropout is applied where
    Hugging Face applies it: embeddings, attention probabilities, and each sub-layer's output.
    Returns a BaseModelOutputWithPooling (``pooler_output`` when the params have a pooler)."""
    batch, length = input_ids.shape
    if attention_mask is None:
        attention_mask = jnp.ones((batch, length), jnp.int32)
    keys = L.split_key(dropout_rng, config.num_hidden_layers + 1)  # embeddings, then one per layer
    x = embed_inputs(params, config, input_ids, token_type_ids, position_ids, None if keys is None else keys[0])
    if config.mask_embeddings:
        x = x * attention_mask[..., None].astype(x.dtype)
    if inputs_embeds_hook is not None:
        x = inputs_embeds_hook(x, attention_mask)
    x = constrain(x, ("batch", "length", "act_embed"))  # [B, T, D]
    mask = config.attention_padding_mask(attention_mask)  # [B, 1, 1 or T, T]
    if head_mask is not None:
        head_mask = jnp.broadcast_to(jnp.asarray(head_mask, jnp.float32),
                                     (config.num_hidden_layers, config.num_attention_heads))
    eps, heads = config.norm_eps, config.num_attention_heads
    hidden_rate, attention_rate = config.dropout_rates()
    ffn_rate = config.ffn_output_dropout_rate()
    context = config.attention_context(params["encoder"], input_ids, attention_mask)

    transform_first = config.has_first_layer_transform

    def layer(x, p, layer_inputs):
        layer_head_mask, key, index = layer_inputs
        k_probs, k_attn, k_out = L.split_key(key, 3) if key is not None else (None, None, None)
        a = p["attention"]["self"]
        q, k, v = (L.split_heads(L.dense(a[name], x), heads) for name in ("query", "key", "value"))  # [B, T, H, Dh]
        layer_context = config.layer_attention_context(context, None if key is None else jax.random.fold_in(key, 3))
        scale, bias = config.attention_bias(p["attention"], x, q, k, layer_context)
        ctx, probs = L.dot_product_attention(q, k, v, mask, scale=scale, bias=bias, head_mask=layer_head_mask,
                                             dropout_rate=attention_rate, dropout_rng=k_probs)
        out = p["attention"]["output"]
        x = L.layer_norm(out["LayerNorm"], L.dropout(L.dense(out["dense"], L.merge_heads(ctx)), hidden_rate, k_attn) + x, eps)
        h = L.activation(config.hidden_act)(L.dense(p["intermediate"]["dense"], x))
        h = constrain(h, ("batch", "length", "act_mlp"))
        x = L.layer_norm(p["output"]["LayerNorm"], L.dropout(L.dense(p["output"]["dense"], h), ffn_rate, k_out) + x, eps)
        if transform_first:
            k_first = None if key is None else jax.random.fold_in(key, 4)
            x = jax.lax.cond(index == 0, lambda y: config.first_layer_transform(
                params["encoder"], embeddings, y, attention_mask, k_first), lambda y: y, x)
        return x, (x if output_hidden_states else None, probs if output_attentions else None)

    embeddings = x
    layer_inputs = (head_mask, None if keys is None else keys[1:],
                    jnp.arange(config.num_hidden_layers) if transform_first else None)
    stacked = params["encoder"]["layer"]
    groups = config.layer_groups()
    if groups is None:
        x, (layer_outputs, attentions) = L.run_layers(layer, x, stacked, config, layer_inputs)
    else:  # ALBERT: the scan runs over each layer's group index; the layer reads its group's params
        def shared_layer(x, group, layer_inputs):
            return layer(x, jax.tree.map(lambda a: a[group], stacked), layer_inputs)

        x, (layer_outputs, attentions) = L.run_layers(shared_layer, x, jnp.asarray(groups), config, layer_inputs)
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


def classifier_dropout(config, x, dropout_rng):
    """Dropout before a classifier head, with a key of its own (the encoder uses another split of
    ``dropout_rng``)."""
    return L.dropout(x, config.classifier_dropout_rate(),
                     None if dropout_rng is None else jax.random.fold_in(dropout_rng, 1 << 30))


# ----------------------------------------------------------------------------- heads
def mlm_head_specs(config) -> dict:
    """``cls.predictions``: a transform (dense to ``embedding_dim`` + LayerNorm), the output bias,
    and a decoder only when it is not tied to the word embeddings."""
    d, e, std = config.hidden_size, config.embedding_dim, config.initializer_range
    specs = {
        "transform": {"dense": dense_spec(d, e, "embed", "embed_out", True, std), "LayerNorm": layer_norm_spec(e)},
        "bias": ParamSpec((config.vocab_size,), ("vocab",), "zeros"),
    }
    if not config.tie_word_embeddings:
        specs["decoder"] = dense_spec(e, config.vocab_size, "embed", "vocab", True, std)
    return specs


def mlm_logits(head, word_embeddings, config, sequence_output):
    """The masked-LM head: transform, then the (tied) decoder and output bias. [B, T, V]"""
    t = head["transform"]
    h = L.activation(config.mlm_activation())(L.dense(t["dense"], sequence_output))
    h = L.layer_norm(t["LayerNorm"], h, config.norm_eps)
    if config.tie_word_embeddings:
        logits = L.tied_logits(word_embeddings, h) + head["bias"].astype(h.dtype)
    else:
        logits = L.dense(head["decoder"], h)
    return constrain(logits, ("batch", "length", "act_vocab"))


def _linear(config, num_out: int) -> dict:
    return dense_spec(config.hidden_size, num_out, "embed", None, True, config.initializer_range)


def summary_specs(config, num_out: int, summary: str | None = None) -> dict:
    """The ``classifier`` of a sequence-level head: a linear layer over the pooler's output, or
    (``summary == "dense"``, default ``config.sequence_summary``) ``dense`` + ``out_proj`` over the
    first token."""
    if (summary or config.sequence_summary) == "dense":
        return {"dense": _linear(config, config.hidden_size), "out_proj": _linear(config, num_out)}
    return _linear(config, num_out)


def summary_logits(classifier, config, base_output, dropout_rng, summary: str | None = None):
    """Sequence-level logits [B, num_out] from the base output (see :func:`summary_specs`). The
    "dense" summary is dropout -> ``dense`` -> ``dense_summary_activation`` -> dropout ->
    ``out_proj`` over the first token, with the rates of ``config.summary_dropout_rates()``."""
    if (summary or config.sequence_summary) == "dense":
        before, after = config.summary_dropout_rates()
        keys = (None, None) if dropout_rng is None else (jax.random.fold_in(dropout_rng, 1 << 30),
                                                         jax.random.fold_in(dropout_rng, 7))
        x = L.dropout(base_output.last_hidden_state[:, 0], before, keys[0])
        x = L.activation(config.dense_summary_activation)(L.dense(classifier["dense"], x))
        return L.dense(classifier["out_proj"], L.dropout(x, after, keys[1]))
    return L.dense(classifier, classifier_dropout(config, base_output.pooler_output, dropout_rng))


# ----------------------------------------------------------------------------- classes
class EncoderPreTrainedModel(PreTrainedModel):
    """Base of the classes built on the shared encoder; the base model lives at ``params[base_model_prefix]``."""

    base_model_prefix = "bert"
    stacked_layer_keys = ("layer",)
    optional_base_modules = ("pooler",)
    per_sequence_modules = ("pooler", "seq_relationship")  # matmuls on the first token only (left out of FLOPs per token)
    uses_pooler = True  # this head runs the base model's pooler (when the family has one)

    @classmethod
    def base_specs(cls, config):
        return encoder_specs(config, pooler=cls.uses_pooler and config.has_pooler)

    @classmethod
    def param_specs(cls, config):
        return {cls.base_model_prefix: cls.base_specs(config), **cls.head_specs(config)}

    @classmethod
    def head_specs(cls, config) -> dict:
        return {}

    @classmethod
    def _base(cls, params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
              output_hidden_states, output_attentions, dropout_rng):
        return encoder_forward(params[cls.base_model_prefix], config, input_ids, attention_mask, token_type_ids,
                               position_ids, head_mask, output_hidden_states, output_attentions, dropout_rng)

    @classmethod
    def word_embeddings(cls, params):
        return params[cls.base_model_prefix]["embeddings"]["word_embeddings"]["embedding"]


class EncoderModel(EncoderPreTrainedModel):
    """The bare encoder (with its pooler where the family has one)."""

    is_base_model = True

    @classmethod
    def param_specs(cls, config):
        return encoder_specs(config, pooler=config.has_pooler)

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        return encoder_forward(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                               output_hidden_states, output_attentions, dropout_rng)


class TiedMLMHead:
    """Mixin: the masked-LM decoder is tied to the word embeddings when configured."""

    flax_shared_weights = (("cls.predictions.decoder.bias", "cls.predictions.bias"),)

    @classmethod
    def tied_weights(cls, config):
        if not config.tie_word_embeddings:
            return {}
        return {cls.checkpoint_name("cls.predictions.decoder.weight"):
                cls.checkpoint_name(f"{cls.base_model_prefix}.embeddings.word_embeddings.weight"),
                cls.checkpoint_name("cls.predictions.decoder.bias"): cls.checkpoint_name("cls.predictions.bias")}


class EncoderForMaskedLM(TiedMLMHead, EncoderPreTrainedModel):
    """The encoder with the masked-LM head (no pooler)."""

    uses_pooler = False

    @classmethod
    def head_specs(cls, config):
        return {"cls": {"predictions": mlm_head_specs(config)}}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        logits = mlm_logits(params["cls"]["predictions"], cls.word_embeddings(params), config, out.last_hidden_state)
        loss = cross_entropy(logits, labels) if labels is not None else None
        return MaskedLMOutput(loss=loss, logits=logits, **extras(out))


class EncoderForSequenceClassification(EncoderPreTrainedModel):
    """The encoder with a sequence classifier (or regressor) over its first token (see :func:`summary_logits`)."""

    per_sequence_modules = ("pooler", "classifier")

    @classmethod
    def base_specs(cls, config):
        return encoder_specs(config, pooler=config.has_pooler and config.sequence_summary == "pooler")

    @classmethod
    def head_specs(cls, config):
        return {"classifier": summary_specs(config, config.num_labels)}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        logits = summary_logits(params["classifier"], config, out, dropout_rng)
        loss = config.sequence_classification_loss(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits, **extras(out))


class EncoderForTokenClassification(EncoderPreTrainedModel):
    """The encoder with a per-token linear classifier (no pooler)."""

    uses_pooler = False

    @classmethod
    def head_specs(cls, config):
        return {"classifier": _linear(config, config.num_labels)}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        logits = L.dense(params["classifier"], classifier_dropout(config, out.last_hidden_state, dropout_rng))
        loss = cross_entropy(logits, labels) if labels is not None else None
        return TokenClassifierOutput(loss=loss, logits=logits, **extras(out))


class EncoderForQuestionAnswering(EncoderPreTrainedModel):
    """The encoder with a span head: start and end logits per token (no pooler)."""

    uses_pooler = False

    @classmethod
    def head_specs(cls, config):
        return {"qa_outputs": _linear(config, 2)}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, start_positions=None, end_positions=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        return span_head(params["qa_outputs"], out, start_positions, end_positions)


class EncoderForMultipleChoice(EncoderPreTrainedModel):
    """The encoder scoring each of C choices: inputs [B, C, T], logits [B, C]. The choice summary
    is the pooler's output (or the family's ``multiple_choice_summary``)."""

    multiple_choice_summary: ClassVar[str | None] = None  # None: the config's sequence_summary
    per_sequence_modules = ("pooler", "classifier")

    @classmethod
    def _summary(cls, config) -> str:
        return cls.multiple_choice_summary or config.sequence_summary

    @classmethod
    def base_specs(cls, config):
        return encoder_specs(config, pooler=config.has_pooler and cls._summary(config) == "pooler")

    @classmethod
    def head_specs(cls, config):
        return {"classifier": summary_specs(config, 1, cls._summary(config))}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        batch, choices, length = input_ids.shape

        def flat(x):
            return None if x is None else x.reshape(batch * choices, length)  # [B * C, T]

        out = cls._base(params, config, flat(input_ids), flat(attention_mask), flat(token_type_ids),
                        flat(position_ids), head_mask, output_hidden_states, output_attentions, dropout_rng)
        logits = summary_logits(params["classifier"], config, out, dropout_rng, cls._summary(config))
        logits = logits.reshape(batch, choices)
        loss = cross_entropy(logits, labels) if labels is not None else None
        return MultipleChoiceModelOutput(loss=loss, logits=logits, **extras(out))


HEADS = {
    "base": ("Model", EncoderModel),
    "masked_lm": ("ForMaskedLM", EncoderForMaskedLM),
    "sequence_classification": ("ForSequenceClassification", EncoderForSequenceClassification),
    "token_classification": ("ForTokenClassification", EncoderForTokenClassification),
    "question_answering": ("ForQuestionAnswering", EncoderForQuestionAnswering),
    "multiple_choice": ("ForMultipleChoice", EncoderForMultipleChoice),
}


def build_encoder_family(prefix: str, config_class: type, module: str, tasks=tuple(HEADS),
                         base: type[EncoderPreTrainedModel] = EncoderPreTrainedModel, heads: dict | None = None,
                         head_attributes: dict | None = None, register_tasks: dict | None = None,
                         **class_attributes) -> dict[str, type]:
    """The classes of an encoder family named as Hugging Face names them (``{prefix}Model``,
    ``{prefix}ForMaskedLM``, ...) for the ``tasks`` HF has, each over ``config_class``, with
    ``class_attributes`` (base_model_prefix, checkpoint_renames...) set on a shared
    ``{prefix}PreTrainedModel``. ``heads`` ({task: (suffix, class)}) adds or replaces head classes
    (BERT's pre-training and next-sentence heads); ``head_attributes`` ({task: {name: value}}) sets
    attributes on one head (its own renames). All are registered with the Auto classes
    (``register_tasks`` adds extra task names: {auto task: task}). Returns {class name: class}."""
    from transformers_jax.models._family import build_classes

    return build_classes(prefix, config_class, module, {**HEADS, **(heads or {})}, tasks, base, class_attributes,
                         head_attributes=head_attributes, register_tasks=register_tasks)
