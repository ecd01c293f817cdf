"""Llama: decoder-only LM with grouped-query attention, RoPE, RMSNorm and a SwiGLU MLP."""
from __future__ import annotations

import jax.numpy as jnp

from transformers_jax import layers as L
from transformers_jax.losses import causal_lm_loss, sequence_classification_loss
from transformers_jax.modeling_outputs import BaseModelOutput, CausalLMOutput, SequenceClassifierOutput
from transformers_jax.generation.utils import GenerationMixin
from transformers_jax.modeling_utils import PreTrainedModel
from transformers_jax.models.auto import register
from transformers_jax.models.llama.configuration_llama import LlamaConfig
from transformers_jax.params import ParamSpec, dense_spec, embedding_spec, layer_norm_spec, stack_specs
from transformers_jax.partitioning import constrain


def decoder_specs(config: LlamaConfig) -> dict:
    """Specs of LlamaModel's params (the base model)."""
    d, std = config.hidden_size, config.initializer_range
    q_dim = config.num_attention_heads * config.head_dim
    kv_dim = config.num_key_value_heads * config.head_dim
    attn_bias, mlp_bias = config.attention_bias, config.mlp_bias
    layer = {
        "input_layernorm": layer_norm_spec(d, bias=False),
        "self_attn": {
            "q_proj": dense_spec(d, q_dim, "embed", "heads", attn_bias, std),
            "k_proj": dense_spec(d, kv_dim, "embed", "kv_heads", attn_bias, std),
            "v_proj": dense_spec(d, kv_dim, "embed", "kv_heads", attn_bias, std),
            "o_proj": dense_spec(q_dim, d, "heads", "embed", attn_bias, std),
        },
        "post_attention_layernorm": layer_norm_spec(d, bias=False),
        "mlp": {
            "gate_proj": dense_spec(d, config.intermediate_size, "embed", "mlp", mlp_bias, std),
            "up_proj": dense_spec(d, config.intermediate_size, "embed", "mlp", mlp_bias, std),
            "down_proj": dense_spec(config.intermediate_size, d, "mlp", "embed", mlp_bias, std),
        },
    }
    return {
        "embed_tokens": embedding_spec(config.vocab_size, d, std),
        "layers": stack_specs(layer, config.num_hidden_layers),
        "norm": layer_norm_spec(d, bias=False),
    }


def decoder_forward(params, config: LlamaConfig, input_ids, attention_mask, position_ids, output_hidden_states,
                    output_attentions, cache=None, cache_index=None, dropout_rng=None):
    """LlamaModel forward. Returns (BaseModelOutput, cache).

    hidden_states are the embeddings, every layer's output, and the last one after the final norm
    (as Hugging Face records them). With a KV ``cache`` ({"k", "v"}: [layers, B, S, K, D]) the
    new keys and values are written at slots ``cache_index ...`` and queries attend to every
    earlier slot; ``attention_mask`` is then the [B, S] mask of valid cache slots. Without a
    cache, ``attention_mask`` may hold document ids of packed rows (see ``causal_padding_mask``).
    With ``dropout_rng`` (training), attention probabilities get ``attention_dropout``.
    """
    dtype = jnp.dtype(config.compute_dtype)
    batch, length = input_ids.shape
    if attention_mask is None:
        attention_mask = jnp.ones((batch, length), jnp.int32)
    if position_ids is None:
        position_ids = jnp.broadcast_to(jnp.arange(length)[None], (batch, length))
    x = constrain(L.embed(params["embed_tokens"], input_ids, dtype), ("batch", "length", "act_embed"))  # [B, T, D]
    inv_freq, rope_scale = L.rope_inverse_frequencies(config.rope_parameters, config.head_dim, config.max_position_embeddings)
    cos, sin = L.rotary_cos_sin(position_ids, inv_freq, rope_scale, dtype)
    query_start = 0 if cache is None else cache_index
    mask = L.causal_padding_mask(attention_mask, length, query_start)  # [B, 1, T, S]
    eps = config.rms_norm_eps

    def layer(carry, p, layer_inputs):
        index, key = layer_inputs
        x, cache = carry
        h = L.rms_norm(p["input_layernorm"], x, eps)
        attn = p["self_attn"]
        q = L.apply_rotary(L.split_heads(L.dense(attn["q_proj"], h), config.num_attention_heads), cos, sin)
        k = L.apply_rotary(L.split_heads(L.dense(attn["k_proj"], h), config.num_key_value_heads), cos, sin)
        v = L.split_heads(L.dense(attn["v_proj"], h), config.num_key_value_heads)
        if cache is not None:
            cache, k, v = L.update_kv_cache(cache, index, cache_index, k, v)
        out, probs = L.dot_product_attention(q, k, v, mask, scale=config.head_dim**-0.5,
                                             dropout_rate=config.attention_dropout, dropout_rng=key)
        x = x + L.dense(attn["o_proj"], L.merge_heads(out))
        h = L.rms_norm(p["post_attention_layernorm"], x, eps)
        mlp = p["mlp"]
        gate = L.activation(config.hidden_act)(L.dense(mlp["gate_proj"], h)) * L.dense(mlp["up_proj"], h)
        x = x + L.dense(mlp["down_proj"], constrain(gate, ("batch", "length", "act_mlp")))
        return (x, cache), (x if output_hidden_states else None, probs if output_attentions else None)

    embeddings = x
    layer_index = jnp.arange(config.num_hidden_layers)
    (x, cache), (layer_outputs, attentions) = L.run_layers(layer, (x, cache), params["layers"], config,
                                                              (layer_index, L.split_key(dropout_rng, config.num_hidden_layers)))
    x = L.rms_norm(params["norm"], x, eps)
    hidden_states = None
    if output_hidden_states:
        hidden_states = (embeddings, *[layer_outputs[i] for i in range(config.num_hidden_layers - 1)], x)
    out = BaseModelOutput(
        last_hidden_state=x,
        hidden_states=hidden_states,
        attentions=tuple(attentions[i] for i in range(config.num_hidden_layers)) if output_attentions else None,
    )
    return out, cache


def init_cache(config: LlamaConfig, batch: int, max_length: int) -> dict:
    """An empty KV cache: {"k", "v"} of shape [layers, B, max_length, kv_heads, head_dim]."""
    shape = (config.num_hidden_layers, batch, max_length, config.num_key_value_heads, config.head_dim)
    dtype = jnp.dtype(config.compute_dtype)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def lm_logits(params, config: LlamaConfig, hidden):
    """The LM head: tied to the input embeddings or its own ``lm_head``."""
    if config.tie_word_embeddings:
        logits = L.tied_logits(params["model"]["embed_tokens"]["embedding"], hidden)
    else:
        logits = L.dense(params["lm_head"], hidden)
    return constrain(logits, ("batch", "length", "act_vocab"))


class LlamaPreTrainedModel(PreTrainedModel):
    config_class = LlamaConfig
    base_model_prefix = "model"
    stacked_layer_keys = ("layers",)
    flax_leaf_names = (("scale", "weight"),)  # FlaxLlamaRMSNorm's param is "weight"


class LlamaModel(LlamaPreTrainedModel):
    """The bare Llama decoder: last hidden states (after the final RMSNorm)."""

    is_base_model = True

    @classmethod
    def param_specs(cls, config):
        return decoder_specs(config)

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, position_ids=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        return decoder_forward(params, config, input_ids, attention_mask, position_ids, output_hidden_states,
                               output_attentions, dropout_rng=dropout_rng)[0]


class LlamaForCausalLM(GenerationMixin, LlamaPreTrainedModel):
    """Llama with a language-modelling head (tied to the input embeddings when configured)."""

    flax_untied_weights = ("lm_head.weight",)  # FlaxLlamaForCausalLM always has its own lm_head

    @classmethod
    def param_specs(cls, config):
        specs = {"model": decoder_specs(config)}
        if not config.tie_word_embeddings:
            specs["lm_head"] = {"kernel": ParamSpec((config.hidden_size, config.vocab_size), ("embed", "vocab"), "normal", config.initializer_range)}
        return specs

    @classmethod
    def tied_weights(cls, config):
        return {"lm_head.weight": "model.embed_tokens.weight"} if config.tie_word_embeddings else {}

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, position_ids=None, labels=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        out, _ = decoder_forward(params["model"], config, input_ids, attention_mask, position_ids, output_hidden_states,
                                 output_attentions, dropout_rng=dropout_rng)
        logits = lm_logits(params, config, out.last_hidden_state)
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return CausalLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)

    init_cache = staticmethod(init_cache)

    @staticmethod
    def decode(params, config, input_ids, position_ids, cache_mask, cache, cache_index):
        """One cached step for generation: feed ``input_ids`` [B, T] at cache slots
        ``cache_index ... cache_index + T - 1``; ``cache_mask`` [B, S] marks valid slots (the new
        ones included). Returns (logits [B, T, V], updated cache)."""
        out, cache = decoder_forward(params["model"], config, input_ids, cache_mask, position_ids, False, False,
                                     cache=cache, cache_index=cache_index)
        return lm_logits(params, config, out.last_hidden_state), cache


class LlamaForSequenceClassification(LlamaPreTrainedModel):
    """Llama with a linear head on the last non-padding token."""

    @classmethod
    def param_specs(cls, config):
        return {
            "model": decoder_specs(config),
            "score": {"kernel": ParamSpec((config.hidden_size, config.num_labels), ("embed", None), "normal", config.initializer_range)},
        }

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, position_ids=None, labels=None, output_hidden_states=False,
                output_attentions=False, dropout_rng=None):
        out, _ = decoder_forward(params["model"], config, input_ids, attention_mask, position_ids, output_hidden_states,
                                 output_attentions, dropout_rng=dropout_rng)
        logits = L.dense(params["score"], out.last_hidden_state)  # [B, T, num_labels]
        batch, length = input_ids.shape
        if config.pad_token_id is None:
            if batch != 1:
                raise ValueError("LlamaForSequenceClassification needs config.pad_token_id for batches larger than 1")
            last = jnp.full((batch,), length - 1)
        else:
            positions = jnp.arange(length)[None] * (input_ids != config.pad_token_id)
            last = jnp.argmax(positions, axis=-1)  # the rightmost non-padding token
        pooled = logits[jnp.arange(batch), last]
        loss = sequence_classification_loss(pooled, labels, config) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=pooled, hidden_states=out.hidden_states, attentions=out.attentions)


register(LlamaConfig, base=LlamaModel, pretraining=LlamaForCausalLM, causal_lm=LlamaForCausalLM,
         sequence_classification=LlamaForSequenceClassification)
