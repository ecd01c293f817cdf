"""The shared encoder-decoder: BART, mBART, Marian, T5, mT5 and umT5 are this skeleton plus their config
(T5's through the hooks below).

One encoder stack (bidirectional self-attention + MLP) and one decoder stack (causal self-attention,
cross-attention over the encoder output, MLP), each one ``lax.scan`` over stacked layers, under
Hugging Face's BART module names: ``model.shared``, ``model.encoder.layers.N.self_attn.q_proj``,
``...self_attn_layer_norm``, ``...fc1``, ``model.decoder.layers.N.encoder_attn``,
``final_logits_bias``, ``lm_head``. A family says how it differs through its config class
(:class:`~transformers_jax.models._seq2seq_config.Seq2SeqArchitecture`):

* ``norm_position``: ``"post"`` (BART, Marian: add, then normalise) or ``"pre"`` (mBART, T5:
  normalise each sub-layer's input), with ``has_final_layer_norm`` (a ``layer_norm`` after each
  stack: mBART) and ``has_layernorm_embedding`` (a LayerNorm over the embeddings: BART, mBART);
* ``position_type``: ``"learned"`` (a table indexed from ``position_offset``: BART's offset 2) or
  ``"sinusoidal"`` (Marian's fixed table, computed, not a param; see ``static_weights``);
  ``scale_embedding`` (a field) multiplies token embeddings by sqrt(d_model);
* ``decoder_start``: how ``labels`` become ``decoder_input_ids`` (``"start_token"``: shift right
  behind ``decoder_start_token_id``; ``"last_token"``: mBART wraps each row's last non-padding
  token to the front); ``model_shifts_input_ids`` (the bare model builds its decoder inputs from
  ``input_ids`` when none are given: BART, mBART; Marian asks for them);
* embeddings: ``share_encoder_decoder_embeddings`` (Marian's field; True elsewhere) and
  ``tie_word_embeddings``: shared and tied, one ``shared`` table serves both stacks and the LM head;
  untied, each stack reads its own ``embed_tokens`` (Hugging Face v5 keeps ``shared`` as well);
  unshared (Marian), the decoder's table has ``decoder_vocab_size`` rows and no ``shared`` exists.

T5 (``models/t5``, mT5, umT5) joins through further switches and hooks: ``norm_type`` ("rms": no
bias, no mean), ``mlp_type`` ("gated": ``fc2(act(fc1_0(x)) * fc1_1(x))``), ``projection_bias``
(False: no biases), :meth:`~Seq2SeqArchitecture.stack_head_dim` (T5's ``d_kv``: the attention's inner width
``heads * head_dim`` need not be ``d_model``), :meth:`~Seq2SeqArchitecture.attention_scale` (T5 does
not scale q.k), ``position_type="relative"`` with :meth:`~Seq2SeqArchitecture.self_attention_bias`
and :meth:`~Seq2SeqArchitecture.stack_extra_specs` (a relative position bias owned by the stack,
which T5's checkpoints keep under the first layer: a ``checkpoint_renames`` entry) or
:meth:`~Seq2SeqArchitecture.self_attention_extra_specs` (umT5: one table per layer),
``stacks_always_read_shared`` (``tie_word_embeddings`` ties the LM head only),
``has_final_logits_bias``, ``final_norm_dropout``, :meth:`~Seq2SeqArchitecture.decoder_output_scale`
(T5 v1.0 scales the decoder output before its tied LM head) and
:meth:`~Seq2SeqArchitecture.param_std` (initialisers per weight). Besides BART's heads the skeleton
has the encoder alone (``EncoderModel``) and a token classifier over it. The config classes live in
``_seq2seq_config.py``. Generation's decoding steps keep their KV cache in ``layers/kv_cache.py``:
self-attention slots growing, and the encoder output's keys and values computed once per generation
(:func:`cross_attention_cache`) and read per layer (``kv_cache.cross_layer``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from transformers_jax import layers as L
from transformers_jax.generation.utils import GenerationMixin
from transformers_jax.losses import cross_entropy, sequence_classification_loss, span_loss
from transformers_jax.modeling_outputs import (
    BaseModelOutput,
    CausalLMOutputWithCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    Seq2SeqQuestionAnsweringModelOutput,
    Seq2SeqSequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers_jax.modeling_utils import PreTrainedModel
from transformers_jax.params import ParamSpec, dense_spec, embedding_spec, layer_norm_spec, sinusoidal_table, stack_specs
from transformers_jax.models._seq2seq_config import DECODER, ENCODER
from transformers_jax.partitioning import constrain


# ----------------------------------------------------------------------------- specs
def _attention_specs(config, side: str) -> dict:
    """q/k/v projections [d_model, heads * head_dim] and the output projection back to d_model."""
    d, inner, bias = config.d_model, config.stack_heads(side) * config.stack_head_dim(side), config.projection_bias
    std = config.param_std
    return {"q_proj": dense_spec(d, inner, "embed", "heads", bias, std("q_proj")),
            "k_proj": dense_spec(d, inner, "embed", "heads", bias, std("k_proj")),
            "v_proj": dense_spec(d, inner, "embed", "heads", bias, std("v_proj")),
            "out_proj": dense_spec(inner, d, "heads", "embed", bias, std("out_proj"))}


def _norm_spec(config) -> dict:
    """A LayerNorm (scale and bias) or T5's RMS norm (scale only)."""
    return layer_norm_spec(config.d_model, bias=config.norm_type == "layer")


def layer_specs(config, side: str) -> dict:
    """One encoder or decoder layer under BART's names (the gated MLP's two input projections are
    ``fc1_0``, activated, and ``fc1_1``)."""
    d, ff, bias = config.d_model, config.stack_ffn_dim(side), config.projection_bias
    specs = {"self_attn": {**_attention_specs(config, side), **config.self_attention_extra_specs(side)},
             "self_attn_layer_norm": _norm_spec(config)}
    if side == DECODER:
        specs["encoder_attn"] = _attention_specs(config, side)
        specs["encoder_attn_layer_norm"] = _norm_spec(config)
    for name in (("fc1_0", "fc1_1") if config.mlp_type == "gated" else ("fc1",)):
        specs[name] = dense_spec(d, ff, "embed", "mlp", bias, config.param_std("fc1"))
    specs["fc2"] = dense_spec(ff, d, "mlp", "embed", bias, config.param_std("fc2"))
    specs["final_layer_norm"] = _norm_spec(config)
    return specs


def stack_specs_of(config, side: str, own_embeddings: bool) -> dict:
    """``encoder`` or ``decoder``: its own token table when it has one, learned positions, layers, norms."""
    d = config.d_model
    specs = {}
    if own_embeddings:
        vocab = config.vocab_size if side == ENCODER else config.target_vocab_size
        specs["embed_tokens"] = embedding_spec(vocab, d, config.param_std("embed_tokens"))
    if config.position_type == "learned":
        specs["embed_positions"] = embedding_spec(config.max_position_embeddings + config.position_offset, d,
                                                  config.param_std("embed_positions"), axes=(None, "embed"))
    specs["layers"] = stack_specs(layer_specs(config, side), config.stack_layers(side))
    if config.has_layernorm_embedding:
        specs["layernorm_embedding"] = _norm_spec(config)
    if config.has_final_layer_norm:
        specs["layer_norm"] = _norm_spec(config)
    specs.update(config.stack_extra_specs(side))
    return specs


def stacks_own_embeddings(config) -> bool:
    """Whether each stack reads its own ``embed_tokens`` (untied BART, or Marian's unshared tables; T5's
    stacks always read ``shared``)."""
    tied = config.tie_word_embeddings or config.stacks_always_read_shared
    return not (config.share_embeddings and tied)


def model_specs(config, stacks: tuple[str, ...] = (ENCODER, DECODER)) -> dict:
    """The base model: ``shared`` (unless unshared) and the ``stacks`` (``encoder`` and ``decoder``;
    the encoder alone for ``EncoderModel``)."""
    specs = {}
    if config.share_embeddings:
        specs["shared"] = embedding_spec(config.vocab_size, config.d_model, config.param_std("shared"))
    own = stacks_own_embeddings(config)
    for side in stacks:
        specs[side] = stack_specs_of(config, side, own)
    return specs


def static_position_weights(config, stacks: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Marian's fixed sinusoidal tables under each stack's ``embed_positions.weight`` (keys relative to the
    base model); none for learned positions."""
    if config.position_type != "sinusoidal":
        return {}
    table = sinusoidal_table(config.max_position_embeddings, config.d_model, layout="halves")
    return {f"{stack}.embed_positions.weight": table for stack in stacks}


# ----------------------------------------------------------------------------- forward
def _norm(params, x, config):
    """The configured norm over the last axis (float32 inside): LayerNorm, or T5's RMS norm."""
    if config.norm_type == "rms":
        return L.rms_norm(params, x, config.norm_eps)
    return L.layer_norm(params, x, config.norm_eps)


def _mlp_block(p, config, h, act, keys):
    """The feed-forward sub-layer on (normalised) ``h`` [B, T, D]: ``fc2(act(fc1(h)))``, or gated
    ``fc2(act(fc1_0(h)) * fc1_1(h))`` (T5 v1.1's wi_0, wi_1, wo); dropout on the hidden units
    (``activation_dropout``, ``keys[0]``) and on the output (``dropout``, ``keys[1]``)."""
    if config.mlp_type == "gated":
        hidden = act(L.dense(p["fc1_0"], h)) * L.dense(p["fc1_1"], h)  # [B, T, F]
    else:
        hidden = act(L.dense(p["fc1"], h))  # [B, T, F]
    hidden = L.dropout(hidden, config.activation_dropout, keys[0])
    return L.dropout(L.dense(p["fc2"], hidden), config.dropout, keys[1])  # [B, T, D]


def _keys_values(p, heads: int, kv):
    """The keys and values [B, S, H, Dh] of ``kv`` [B, S, D] under one attention block's params."""
    return L.split_heads(L.dense(p["k_proj"], kv), heads), L.split_heads(L.dense(p["v_proj"], kv), heads)


def _attention(p, config, side, h, k, v, mask, bias, key, scale):
    """One attention block: the queries of ``h`` [B, T, D] over keys/values ``k``, ``v`` [B, S, H, Dh]
    (from :func:`_keys_values`, or read from a cache), then the output projection. Returns (output
    [B, T, D], probabilities [B, H, T, S])."""
    q = L.split_heads(L.dense(p["q_proj"], h), config.stack_heads(side))
    out, probs = L.dot_product_attention(q, k, v, mask, scale=scale, bias=bias, dropout_rate=config.attention_dropout,
                                         dropout_rng=key)
    return L.dense(p["out_proj"], L.merge_heads(out)), probs


def cross_attention_cache(decoder_params: dict, config, encoder_hidden, encoder_mask) -> dict:
    """The cross-attention entries of a decoding cache (``layers.kv_cache``), computed once per
    generation: every decoder layer's keys and values of the encoder output ``encoder_hidden``
    [B, S, D] ([L, B, S, H, Dh] under ``cross_k`` / ``cross_v``) and the encoder's padding mask."""
    heads = config.stack_heads(DECODER)
    k, v = jax.vmap(lambda p: _keys_values(p["encoder_attn"], heads, encoder_hidden))(decoder_params["layers"])
    dtype = jnp.dtype(config.compute_dtype)
    return L.kv_cache.cross_entries(k.astype(dtype), v.astype(dtype), encoder_mask)


def stack_forward(stack_params, config, side: str, embed_table: dict, input_ids, attention_mask,
                  encoder_hidden=None, encoder_mask=None, output_hidden_states=False, output_attentions=False,
                  dropout_rng=None, cache=None, cache_index=None, position_ids=None):
    """The encoder or the decoder (with cross-attention when ``encoder_hidden`` is given).

    ``hidden_states`` are the embedding output, each layer's output, and the last one after the
    stack's final norm (as Hugging Face records them). Returns (BaseModelOutput, the per-layer
    cross-attention maps when there is cross-attention and ``output_attentions``, else None).

    Decoding (the decoder only): with a ``cache`` (``layers.kv_cache``: self-attention slots plus the
    ``cross_*`` entries of :func:`cross_attention_cache`), the new keys and values are written at
    slots ``cache_index ...``, ``attention_mask`` is the [B, S] mask of valid cache slots,
    ``position_ids`` [B, T] the new tokens' positions, and the cross-attention reads the cached
    encoder keys and values; the second value returned is then the updated cache."""
    dtype = jnp.dtype(config.compute_dtype)
    batch, length = input_ids.shape
    num_layers = config.stack_layers(side)
    if dropout_rng is not None and getattr(config, f"{side}_layerdrop"):
        raise ValueError(f"{type(config).__name__}: {side}_layerdrop > 0 is not supported in training")
    rngs = L.split_key(dropout_rng, 2)
    embed_rng, layer_rng = (None, None) if rngs is None else rngs
    decoding = cache is not None
    visible = L.kv_cache.visible_slots(cache_index, length) if decoding else None
    if attention_mask is None:
        attention_mask = jnp.ones((batch, length), jnp.int32)
    attention_mask = attention_mask[:, :visible]  # [B, S']: the cache slots these queries can see
    if position_ids is None:
        position_ids = jnp.arange(length, dtype=jnp.int32)[None]  # [1, T]
    x = L.embed(embed_table, input_ids, dtype)
    scale = config.embedding_scale()
    if scale != 1.0:
        x = x * jnp.asarray(scale, dtype)
    if config.position_type == "learned":
        x = x + L.embed(stack_params["embed_positions"], position_ids + config.position_offset, dtype)
    elif config.position_type == "sinusoidal":
        table = jnp.asarray(sinusoidal_table(config.max_position_embeddings, config.d_model, "halves"), dtype)
        x = x + table[position_ids]  # [B or 1, T, D]
    if config.has_layernorm_embedding:
        x = _norm(stack_params["layernorm_embedding"], x, config)
    x = constrain(L.dropout(x, config.dropout, embed_rng), ("batch", "length", "act_embed"))
    if side == ENCODER:
        self_mask = L.padding_mask(attention_mask)
    else:
        self_mask = L.causal_padding_mask(attention_mask, length, cache_index if decoding else 0)
    # positions of the keys: the sequence itself, or every cache slot (each row's valid slots count from 0)
    key_positions = jnp.cumsum(attention_mask, axis=-1, dtype=jnp.int32) - 1 if decoding else position_ids
    cross = encoder_hidden is not None or decoding
    if decoding:
        cross_mask = L.kv_cache.cross_mask(cache)
    elif cross:
        if encoder_mask is None:
            encoder_mask = jnp.ones(encoder_hidden.shape[:2], jnp.int32)
        cross_mask = L.padding_mask(encoder_mask)
    attention_scale = config.attention_scale(side)
    pre = config.norm_position == "pre"
    act = L.activation(config.activation_function)

    def sublayer(x, norm, block):
        """Residual around ``block`` with the norm before (pre) or after (post) it."""
        if pre:
            return x + block(_norm(norm, x, config))
        return _norm(norm, x + block(x), config)

    heads = config.stack_heads(side)

    def layer(carry, p, layer_in):
        x, layer_cache = carry
        keys = L.split_key(layer_in["rng"], 7) if "rng" in layer_in else [None] * 7
        probs = {}

        def self_block(h):
            nonlocal layer_cache
            k, v = _keys_values(p["self_attn"], heads, h)
            if decoding:
                layer_cache, k, v = L.kv_cache.write(layer_cache, layer_in["index"], cache_index, k, v)
                k, v = k[:, :visible], v[:, :visible]  # [B, S', K, D]
            self_bias = config.self_attention_bias(stack_params, p, side, position_ids, key_positions)
            out, probs["self"] = _attention(p["self_attn"], config, side, h, k, v, self_mask, self_bias, keys[0],
                                            attention_scale)
            return L.dropout(out, config.dropout, keys[1])

        def cross_block(h):
            if decoding:
                k, v = L.kv_cache.cross_layer(cache, layer_in["index"])
            else:
                k, v = _keys_values(p["encoder_attn"], heads, encoder_hidden)
            out, probs["cross"] = _attention(p["encoder_attn"], config, side, h, k, v, cross_mask, None, keys[2],
                                             attention_scale)
            return L.dropout(out, config.dropout, keys[3])

        x = sublayer(x, p["self_attn_layer_norm"], self_block)
        if cross:
            x = sublayer(x, p["encoder_attn_layer_norm"], cross_block)
        x = sublayer(x, p["final_layer_norm"], lambda h: _mlp_block(p, config, h, act, keys[4:6]))
        x = constrain(x, ("batch", "length", "act_embed"))
        return (x, layer_cache), (x if output_hidden_states else None,
                                  probs["self"] if output_attentions else None,
                                  probs.get("cross") if output_attentions else None)

    layer_inputs = {"index": np.arange(num_layers)}  # a layer's index: a KV cache writes its slice by it (static unrolled)
    if layer_rng is not None:
        layer_inputs["rng"] = jax.random.split(layer_rng, num_layers)
    self_cache = L.kv_cache.self_entries(cache) if decoding else None  # the cross entries are read-only
    embeddings = x
    (x, self_cache), (layer_outputs, attentions, cross_attentions) = L.run_layers(
        layer, (x, self_cache), stack_params["layers"], config, layer_inputs)
    if config.has_final_layer_norm:
        x = _norm(stack_params["layer_norm"], x, config)
        if config.final_norm_dropout:
            x = L.dropout(x, config.dropout, None if embed_rng is None else jax.random.fold_in(embed_rng, 1))
    hidden_states = None
    if output_hidden_states:
        hidden_states = (embeddings, *[layer_outputs[i] for i in range(num_layers - 1)], x)
    out = BaseModelOutput(last_hidden_state=x, hidden_states=hidden_states,
                          attentions=tuple(attentions[i] for i in range(num_layers)) if output_attentions else None)
    if decoding:
        return out, {**cache, **self_cache}
    crossed = (tuple(cross_attentions[i] for i in range(num_layers))
               if output_attentions and cross else None)
    return out, crossed


def token_tables(model_params: dict) -> tuple[dict | None, dict | None]:
    """(encoder's, decoder's) token embedding params: their own ``embed_tokens`` or ``shared`` (None for a
    stack the model lacks)."""
    shared = model_params.get("shared")
    return tuple(model_params[side].get("embed_tokens", shared) if side in model_params else None
                 for side in (ENCODER, DECODER))


def _as_encoder_output(encoder_outputs) -> BaseModelOutput:
    """``encoder_outputs`` as given: a BaseModelOutput, or a tuple (last hidden state, hidden states,
    attentions), or the last hidden state alone."""
    if isinstance(encoder_outputs, BaseModelOutput):
        return encoder_outputs
    if hasattr(encoder_outputs, "ndim"):
        return BaseModelOutput(last_hidden_state=encoder_outputs)
    items = tuple(encoder_outputs)
    return BaseModelOutput(last_hidden_state=items[0], hidden_states=items[1] if len(items) > 1 else None,
                           attentions=items[2] if len(items) > 2 else None)


def seq2seq_forward(model_params, config, input_ids=None, attention_mask=None, decoder_input_ids=None,
                    decoder_attention_mask=None, encoder_outputs=None, output_hidden_states=False,
                    output_attentions=False, dropout_rng=None, class_name: str = "the model") -> Seq2SeqModelOutput:
    """The base encoder-decoder: encode (unless ``encoder_outputs`` are given), then decode
    ``decoder_input_ids`` attending to the encoder output (padding masked by ``attention_mask``)."""
    if decoder_input_ids is None:
        if not config.model_shifts_input_ids:
            raise ValueError(f"{class_name} needs decoder_input_ids (or labels, for the heads that take them)")
        if input_ids is None:
            raise ValueError(f"{class_name}: pass input_ids or decoder_input_ids")
        decoder_input_ids = config.decoder_inputs_from_labels(input_ids)
    rngs = L.split_key(dropout_rng, 2)
    enc_rng, dec_rng = (None, None) if rngs is None else rngs
    enc_table, dec_table = token_tables(model_params)
    if encoder_outputs is None:
        if input_ids is None:
            raise ValueError(f"{class_name}: pass input_ids or encoder_outputs")
        encoder_outputs, _ = stack_forward(model_params[ENCODER], config, ENCODER, enc_table, input_ids, attention_mask,
                                           output_hidden_states=output_hidden_states,
                                           output_attentions=output_attentions, dropout_rng=enc_rng)
    else:
        encoder_outputs = _as_encoder_output(encoder_outputs)
    decoded, cross = stack_forward(model_params[DECODER], config, DECODER, dec_table, decoder_input_ids,
                                   decoder_attention_mask, encoder_outputs.last_hidden_state, attention_mask,
                                   output_hidden_states, output_attentions, dec_rng)
    return Seq2SeqModelOutput(
        last_hidden_state=decoded.last_hidden_state,
        decoder_hidden_states=decoded.hidden_states,
        decoder_attentions=decoded.attentions,
        cross_attentions=cross,
        encoder_last_hidden_state=encoder_outputs.last_hidden_state,
        encoder_hidden_states=encoder_outputs.hidden_states,
        encoder_attentions=encoder_outputs.attentions,
    )


def _seq2seq_extras(out: Seq2SeqModelOutput) -> dict:
    return {name: getattr(out, name) for name in ("decoder_hidden_states", "decoder_attentions", "cross_attentions",
                                                  "encoder_last_hidden_state", "encoder_hidden_states",
                                                  "encoder_attentions")}


def _head_rng(dropout_rng):
    return None if dropout_rng is None else jax.random.fold_in(dropout_rng, 1 << 30)


# ----------------------------------------------------------------------------- classes
class Seq2SeqPreTrainedModel(PreTrainedModel):
    """Base of the classes built on the shared encoder-decoder; the base model lives at ``params["model"]``."""

    base_model_prefix = "model"
    stacked_layer_keys = ("layers",)
    stacks: tuple[str, ...] = (ENCODER, DECODER)  # the stacks this class has (their tied tables, fixed positions)
    shifts_input_ids: bool = False  # decoder inputs from input_ids when none are given, whatever the config says

    @classmethod
    def base_specs(cls, config):
        return model_specs(config)

    @classmethod
    def param_specs(cls, config):
        return {cls.base_model_prefix: cls.base_specs(config), **cls.head_specs(config)}

    @classmethod
    def head_specs(cls, config) -> dict:
        return {}

    @classmethod
    def _prefix(cls) -> str:
        return "" if cls.is_base_model else f"{cls.base_model_prefix}."

    @classmethod
    def tied_weights(cls, config):
        if stacks_own_embeddings(config):
            return {}
        p = cls._prefix()
        return {cls.checkpoint_name(f"{p}{stack}.embed_tokens.weight"): cls.checkpoint_name(f"{p}shared.weight")
                for stack in cls.stacks}

    @classmethod
    def static_weights(cls, config):
        p = cls._prefix()
        return {cls.checkpoint_name(p + k): v for k, v in static_position_weights(config, cls.stacks).items()}

    @classmethod
    def _base(cls, params, config, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask,
              encoder_outputs, output_hidden_states, output_attentions, dropout_rng):
        if decoder_input_ids is None and input_ids is not None and cls.shifts_input_ids:
            decoder_input_ids = config.decoder_inputs_from_labels(input_ids)
        return seq2seq_forward(params[cls.base_model_prefix], config, input_ids, attention_mask, decoder_input_ids,
                               decoder_attention_mask, encoder_outputs, output_hidden_states, output_attentions,
                               dropout_rng, class_name=cls.__name__)

    def check_inputs(self, inputs: dict) -> None:
        super().check_inputs(inputs)
        limit = getattr(self.config, "max_position_embeddings", None)  # None: relative positions (T5)
        if limit is None:
            return
        for name in ("decoder_input_ids", "labels"):
            value = inputs.get(name)
            if value is not None and np.ndim(value) >= 2 and np.shape(value)[-1] > limit:
                raise ValueError(f"{name} length {np.shape(value)[-1]} exceeds max_position_embeddings={limit} "
                                 "of this model")

    def get_input_embeddings(self):
        """The encoder's token table (``shared`` where both stacks share one)."""
        base = self.params if self.is_base_model else self.params[self.base_model_prefix]
        if ENCODER not in base:  # the decoder-only causal LM
            return base[DECODER]["embed_tokens"]["embedding"]
        return token_tables(base)[0]["embedding"]


class Seq2SeqModel(Seq2SeqPreTrainedModel):
    """The bare encoder-decoder: the decoder's last hidden states, and the encoder's."""

    is_base_model = True

    @classmethod
    def param_specs(cls, config):
        return model_specs(config)

    @classmethod
    def forward(cls, params, config, input_ids=None, attention_mask=None, decoder_input_ids=None,
                decoder_attention_mask=None, encoder_outputs=None, output_hidden_states=False, output_attentions=False,
                dropout_rng=None):
        return seq2seq_forward(params, config, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask,
                               encoder_outputs, output_hidden_states, output_attentions, dropout_rng,
                               class_name=cls.__name__)


def _lm_head_specs(config, vocab: int) -> dict:
    return {"kernel": ParamSpec((config.d_model, vocab), ("embed", "vocab"), "normal", config.param_std("lm_head"))}


class Seq2SeqForConditionalGeneration(GenerationMixin, Seq2SeqPreTrainedModel):
    """The encoder-decoder with its LM head (tied to the decoder's token table when configured) and, where
    the family has it, ``final_logits_bias`` (a buffer in Hugging Face: loaded and saved, never trained,
    so its gradient is stopped here); the decoder output is scaled first where the family says so (T5
    v1.0). The loss is the mean cross entropy over ``labels`` != -100, from which the decoder inputs are
    built (shifted right) when none are given.

    ``generate`` (``GenerationMixin``) runs the encoder once (:meth:`encode`), computes every decoder
    layer's cross-attention keys and values once (:meth:`cross_attention_cache`), and then decodes
    with :meth:`decode` over a self-attention cache that grows inside one compiled loop."""

    saves_static_weights = False  # Hugging Face's MarianMTModel leaves its position tables out when saving
    is_causal_lm = False  # labels are the decoder's targets as given (the decoder inputs are shifted)

    @classmethod
    def head_specs(cls, config):
        vocab = config.target_vocab_size
        specs = {}
        if config.has_final_logits_bias:
            specs["final_logits_bias"] = ParamSpec((1, vocab), (None, "vocab"), "zeros")
        if not config.tie_word_embeddings:
            specs["lm_head"] = _lm_head_specs(config, vocab)
        return specs

    @classmethod
    def tied_weights(cls, config):
        tied = dict(super().tied_weights(config))
        if config.tie_word_embeddings:
            table = "shared.weight" if config.share_embeddings else "decoder.embed_tokens.weight"
            tied[cls.checkpoint_name("lm_head.weight")] = cls.checkpoint_name(f"{cls.base_model_prefix}.{table}")
        return tied

    @classmethod
    def lm_logits(cls, params, config, hidden):
        scale = config.decoder_output_scale()
        if scale != 1.0:
            hidden = hidden * jnp.asarray(scale, hidden.dtype)
        if "lm_head" in params:
            logits = L.dense(params["lm_head"], hidden)
        else:
            logits = L.tied_logits(token_tables(params[cls.base_model_prefix])[1]["embedding"], hidden)
        if "final_logits_bias" in params:
            logits = logits + jax.lax.stop_gradient(params["final_logits_bias"][0]).astype(logits.dtype)
        return constrain(logits, ("batch", "length", "act_vocab"))

    @classmethod
    def forward(cls, params, config, input_ids=None, attention_mask=None, decoder_input_ids=None,
                decoder_attention_mask=None, encoder_outputs=None, labels=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = config.decoder_inputs_from_labels(labels)
        out = cls._base(params, config, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask,
                        encoder_outputs, output_hidden_states, output_attentions, dropout_rng)
        logits = cls.lm_logits(params, config, out.last_hidden_state)
        loss = cross_entropy(logits, labels) if labels is not None else None
        return Seq2SeqLMOutput(loss=loss, logits=logits, **_seq2seq_extras(out))

    # -- generation ------------------------------------------------------------------------------
    @classmethod
    def init_cache(cls, config, batch: int, length: int) -> dict:
        """An empty decoder self-attention cache of ``length`` slots per row (``generate`` adds the
        cross-attention entries)."""
        return L.kv_cache.init_cache(config.stack_layers(DECODER), batch, length, config.stack_heads(DECODER),
                                     config.stack_head_dim(DECODER), jnp.dtype(config.compute_dtype))

    @classmethod
    def encode(cls, params, config, input_ids, attention_mask):
        """The encoder's last hidden state [B, S, D]."""
        base = params[cls.base_model_prefix]
        out, _ = stack_forward(base[ENCODER], config, ENCODER, token_tables(base)[0], input_ids, attention_mask)
        return out.last_hidden_state

    @classmethod
    def cross_attention_cache(cls, params, config, encoder_hidden, encoder_mask) -> dict:
        """The cache's cross-attention entries for the encoder output ``encoder_hidden`` [B, S, D]."""
        return cross_attention_cache(params[cls.base_model_prefix][DECODER], config, encoder_hidden, encoder_mask)

    @classmethod
    def decode_params(cls, params):
        """The params every decoding step reads, laid out once before the loop: on XLA:CPU the decoder's
        layers unstacked (see ``DecoderForCausalLM.decode_params``), elsewhere as they are."""
        if jax.default_backend() != "cpu":
            return params
        base = params[cls.base_model_prefix]
        decoder = {**base[DECODER], "layers": L.unstack_layers(base[DECODER]["layers"])}
        return {**params, cls.base_model_prefix: {**base, DECODER: decoder}}

    @classmethod
    def decode(cls, params, config, input_ids, position_ids, cache_mask, cache, cache_index, logits_index=None):
        """One cached decoder step: ``input_ids`` [B, T] at self-attention slots ``cache_index ...``,
        ``cache_mask`` [B, S] the valid slots, the encoder keys/values read from the cache. Returns
        (logits [B, T, V], updated cache); with ``logits_index`` (int or [B]) only that position's, [B, 1, V]."""
        base = params[cls.base_model_prefix]
        out, cache = stack_forward(base[DECODER], config, DECODER, token_tables(base)[1], input_ids, cache_mask,
                                   cache=cache, cache_index=cache_index, position_ids=position_ids)
        hidden = out.last_hidden_state if logits_index is None else L.take_positions(out.last_hidden_state, logits_index)
        return cls.lm_logits(params, config, hidden), cache


class Seq2SeqForSequenceClassification(Seq2SeqPreTrainedModel):
    """The encoder-decoder with ``classification_head`` (dropout, dense, tanh, dropout, out_proj) over the
    decoder's hidden state at each row's last ``eos_token_id`` of ``input_ids``; every row must hold the
    same number of eos tokens, at least one (as Hugging Face requires)."""

    @classmethod
    def head_specs(cls, config):
        d, std = config.d_model, config.param_std("classification_head")
        return {"classification_head": {"dense": dense_spec(d, d, "embed", "embed_out", True, std),
                                        "out_proj": dense_spec(d, config.num_labels, "embed", None, True, std)}}

    def check_inputs(self, inputs: dict) -> None:
        super().check_inputs(inputs)
        ids = inputs.get("input_ids")
        if ids is None:
            raise ValueError(f"{type(self).__name__} needs input_ids (it pools at their eos tokens)")
        counts = (np.asarray(ids) == self.config.eos_token_id).sum(-1).reshape(-1)
        if len(set(counts.tolist())) > 1:
            raise ValueError("All examples must have the same number of <eos> tokens "
                             f"(eos_token_id={self.config.eos_token_id}; counts per row: {counts.tolist()})")
        if counts.size and counts[0] < 1:
            raise ValueError(f"Each example must contain at least one <eos> token (eos_token_id={self.config.eos_token_id})")

    @classmethod
    def forward(cls, params, config, input_ids=None, attention_mask=None, decoder_input_ids=None,
                decoder_attention_mask=None, encoder_outputs=None, labels=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask,
                        encoder_outputs, output_hidden_states, output_attentions, dropout_rng)
        hidden = out.last_hidden_state
        length = input_ids.shape[1]
        last_eos = jnp.argmax(jnp.where(input_ids == config.eos_token_id, jnp.arange(length)[None], -1), axis=-1)
        pooled = hidden[jnp.arange(hidden.shape[0]), last_eos]  # [B, D]
        head = params["classification_head"]
        keys = (None, None) if dropout_rng is None else L.split_key(_head_rng(dropout_rng), 2)
        x = jnp.tanh(L.dense(head["dense"], L.dropout(pooled, config.classifier_dropout, keys[0])))
        logits = L.dense(head["out_proj"], L.dropout(x, config.classifier_dropout, keys[1]))
        loss = sequence_classification_loss(logits, labels, config) if labels is not None else None
        return Seq2SeqSequenceClassifierOutput(loss=loss, logits=logits, **_seq2seq_extras(out))


class Seq2SeqForQuestionAnswering(Seq2SeqPreTrainedModel):
    """The encoder-decoder with a span head (``qa_outputs``) over the decoder's hidden states."""

    @classmethod
    def head_specs(cls, config):
        return {"qa_outputs": dense_spec(config.d_model, 2, "embed", None, True, config.param_std("qa_outputs"))}

    @classmethod
    def forward(cls, params, config, input_ids=None, attention_mask=None, decoder_input_ids=None,
                decoder_attention_mask=None, encoder_outputs=None, start_positions=None, end_positions=None,
                output_hidden_states=False, output_attentions=False, dropout_rng=None):
        out = cls._base(params, config, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask,
                        encoder_outputs, output_hidden_states, output_attentions, dropout_rng)
        logits = L.dense(params["qa_outputs"], out.last_hidden_state)
        start, end = logits[..., 0], logits[..., 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start, end, start_positions, end_positions)
        return Seq2SeqQuestionAnsweringModelOutput(loss=loss, start_logits=start, end_logits=end, **_seq2seq_extras(out))


class Seq2SeqForCausalLM(Seq2SeqPreTrainedModel):
    """The decoder alone (``model.decoder``, with its own token table) and an LM head tied to that table
    when configured; cross-attention runs when ``encoder_hidden_states`` are given. The labels are not
    shifted (``labels[:, t]`` is the target of ``logits[:, t]``), as in Hugging Face."""

    stacks = (DECODER,)

    @classmethod
    def base_specs(cls, config):
        if config.tie_word_embeddings and config.target_vocab_size != config.vocab_size:
            raise ValueError(f"{cls.__name__}: a tied LM head needs decoder_vocab_size ({config.target_vocab_size}) "
                             f"equal to vocab_size ({config.vocab_size})")
        return {DECODER: stack_specs_of(config, DECODER, own_embeddings=True)}

    @classmethod
    def head_specs(cls, config):
        return {} if config.tie_word_embeddings else {"lm_head": _lm_head_specs(config, config.vocab_size)}

    @classmethod
    def tied_weights(cls, config):
        if not config.tie_word_embeddings:
            return {}
        return {cls.checkpoint_name("lm_head.weight"):
                cls.checkpoint_name(f"{cls.base_model_prefix}.decoder.embed_tokens.weight")}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, labels=None, output_hidden_states=False, output_attentions=False,
                dropout_rng=None):
        decoder = params[cls.base_model_prefix][DECODER]
        out, cross = stack_forward(decoder, config, DECODER, decoder["embed_tokens"], input_ids, attention_mask,
                                   encoder_hidden_states, encoder_attention_mask, output_hidden_states,
                                   output_attentions, dropout_rng)
        hidden = out.last_hidden_state
        if "lm_head" in params:
            logits = L.dense(params["lm_head"], hidden)
        else:
            logits = L.tied_logits(decoder["embed_tokens"]["embedding"], hidden)
        logits = constrain(logits, ("batch", "length", "act_vocab"))
        loss = cross_entropy(logits, labels) if labels is not None else None
        return CausalLMOutputWithCrossAttentions(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                                 attentions=out.attentions, cross_attentions=cross)


class Seq2SeqEncoderModel(Seq2SeqPreTrainedModel):
    """The encoder alone (``shared`` and ``encoder``; T5's ``EncoderModel``): its last hidden state, and
    every hidden state and attention map on request."""

    is_base_model = True
    stacks = (ENCODER,)

    @classmethod
    def param_specs(cls, config):
        return model_specs(config, stacks=(ENCODER,))

    @classmethod
    def encode(cls, model_params, config, input_ids, attention_mask, output_hidden_states, output_attentions,
               dropout_rng) -> BaseModelOutput:
        """The encoder stack over ``input_ids`` [B, T] with ``attention_mask`` [B, T]."""
        out, _ = stack_forward(model_params[ENCODER], config, ENCODER, token_tables(model_params)[0], input_ids,
                               attention_mask, output_hidden_states=output_hidden_states,
                               output_attentions=output_attentions, dropout_rng=dropout_rng)
        return out

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        return cls.encode(params, config, input_ids, attention_mask, output_hidden_states, output_attentions,
                          dropout_rng)


class Seq2SeqForTokenClassification(Seq2SeqPreTrainedModel):
    """The encoder alone (as ``EncoderModel``, under ``base_model_prefix``) with a per-token linear
    ``classifier`` after dropout (``classifier_dropout``); the loss is the mean cross entropy over
    ``labels`` != -100."""

    stacks = (ENCODER,)

    @classmethod
    def base_specs(cls, config):
        return model_specs(config, stacks=(ENCODER,))

    @classmethod
    def head_specs(cls, config):
        return {"classifier": dense_spec(config.d_model, config.num_labels, "embed", None, True,
                                         config.param_std("classifier"))}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, labels=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        rngs = L.split_key(dropout_rng, 2)
        enc_rng, head_rng = (None, None) if rngs is None else rngs
        out = Seq2SeqEncoderModel.encode(params[cls.base_model_prefix], config, input_ids, attention_mask,
                                         output_hidden_states, output_attentions, enc_rng)
        hidden = L.dropout(out.last_hidden_state, config.classifier_dropout, head_rng)  # [B, T, D]
        logits = L.dense(params["classifier"], hidden)  # [B, T, num_labels]
        loss = cross_entropy(logits, labels) if labels is not None else None
        return TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                     attentions=out.attentions)


HEADS = {
    "base": ("Model", Seq2SeqModel),
    "seq2seq_lm": ("ForConditionalGeneration", Seq2SeqForConditionalGeneration),
    "sequence_classification": ("ForSequenceClassification", Seq2SeqForSequenceClassification),
    "question_answering": ("ForQuestionAnswering", Seq2SeqForQuestionAnswering),
    "causal_lm": ("ForCausalLM", Seq2SeqForCausalLM),
    "encoder": ("EncoderModel", Seq2SeqEncoderModel),  # not an Auto task: made, not registered
    "token_classification": ("ForTokenClassification", Seq2SeqForTokenClassification),
}
BART_TASKS = ("base", "seq2seq_lm", "sequence_classification", "question_answering", "causal_lm")


def build_seq2seq_family(prefix: str, config_class: type, module: str, tasks=BART_TASKS,
                         class_names: dict | None = None, head_attributes: dict | None = None,
                         **class_attributes) -> dict[str, type]:
    """The classes of an encoder-decoder family named as Hugging Face names them (``{prefix}Model``,
    ``{prefix}ForConditionalGeneration``, ...; ``class_names`` ({task: name}) for others, as Marian's
    ``MarianMTModel``) for ``tasks`` (keys of :data:`HEADS`), over a shared ``{prefix}PreTrainedModel``
    with ``class_attributes``; ``head_attributes`` ({task: {name: value}}) sets attributes on one head
    (T5's checkpoint layout per class). Registered with the Auto classes. Returns {class name: class}."""
    from transformers_jax.models._family import build_classes

    return build_classes(prefix, config_class, module, HEADS, tasks, Seq2SeqPreTrainedModel, class_attributes,
                         class_names=class_names, head_attributes=head_attributes)
