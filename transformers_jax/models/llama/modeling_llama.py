"""Llama: decoder-only LM with grouped-query attention, RoPE, RMSNorm and a SwiGLU MLP."""
from __future__ import annotations

import jax.numpy as jnp

from transformers_jax import layers as L
from transformers_jax.losses import causal_lm_loss, sequence_classification_loss
from transformers_jax.modeling_outputs import BaseModelOutput, CausalLMOutput, SequenceClassifierOutput
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


def decoder_forward(params, config: LlamaConfig, input_ids, attention_mask, position_ids, output_hidden_states, output_attentions):
    """LlamaModel forward. Returns a BaseModelOutput; hidden_states are the embeddings, every
    layer's output, and the last one after the final norm (as Hugging Face records them)."""
    dtype = jnp.dtype(config.compute_dtype)
    batch, length = input_ids.shape
    if attention_mask is None:
        attention_mask = jnp.ones((batch, length), jnp.int32)
    if position_ids is None:
        position_ids = jnp.broadcast_to(jnp.arange(length)[None], (batch, length))
    x = constrain(L.embed(params["embed_tokens"], input_ids, dtype), ("batch", "length", "embed"))  # [B, T, D]
    inv_freq, rope_scale = L.rope_inverse_frequencies(config.rope_parameters, config.head_dim, config.max_position_embeddings)
    cos, sin = L.rotary_cos_sin(position_ids, inv_freq, rope_scale, dtype)
    mask = L.causal_padding_mask(attention_mask, length)  # [B, 1, T, T]
    eps = config.rms_norm_eps

    def layer(x, p, _):
        h = L.rms_norm(p["input_layernorm"], x, eps)
        attn = p["self_attn"]
        q = L.apply_rotary(L.split_heads(L.dense(attn["q_proj"], h), config.num_attention_heads), cos, sin)
        k = L.apply_rotary(L.split_heads(L.dense(attn["k_proj"], h), config.num_key_value_heads), cos, sin)
        v = L.split_heads(L.dense(attn["v_proj"], h), config.num_key_value_heads)
        out, probs = L.dot_product_attention(q, k, v, mask, scale=config.head_dim**-0.5)
        x = x + L.dense(attn["o_proj"], L.merge_heads(out))
        h = L.rms_norm(p["post_attention_layernorm"], x, eps)
        mlp = p["mlp"]
        gate = L.activation(config.hidden_act)(L.dense(mlp["gate_proj"], h)) * L.dense(mlp["up_proj"], h)
        x = x + L.dense(mlp["down_proj"], constrain(gate, ("batch", "length", "mlp")))
        return x, (x if output_hidden_states else None, probs if output_attentions else None)

    embeddings = x
    x, (layer_outputs, attentions) = L.run_layers(layer, x, params["layers"], config)
    x = L.rms_norm(params["norm"], x, eps)
    hidden_states = None
    if output_hidden_states:
        hidden_states = (embeddings, *[layer_outputs[i] for i in range(config.num_hidden_layers - 1)], x)
    return BaseModelOutput(
        last_hidden_state=x,
        hidden_states=hidden_states,
        attentions=tuple(attentions[i] for i in range(config.num_hidden_layers)) if output_attentions else None,
    )


class LlamaPreTrainedModel(PreTrainedModel):
    config_class = LlamaConfig
    base_model_prefix = "model"
    stacked_layer_keys = ("layers",)


class LlamaModel(LlamaPreTrainedModel):
    """The bare Llama decoder: last hidden states (after the final RMSNorm)."""

    is_base_model = True

    @classmethod
    def param_specs(cls, config):
        return decoder_specs(config)

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, position_ids=None, output_hidden_states=False, output_attentions=False):
        return decoder_forward(params, config, input_ids, attention_mask, position_ids, output_hidden_states, output_attentions)


class LlamaForCausalLM(LlamaPreTrainedModel):
    """Llama with a language-modelling head (tied to the input embeddings when configured)."""

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
    def forward(params, config, input_ids, attention_mask=None, position_ids=None, labels=None, output_hidden_states=False, output_attentions=False):
        out = decoder_forward(params["model"], config, input_ids, attention_mask, position_ids, output_hidden_states, output_attentions)
        h = out.last_hidden_state
        if config.tie_word_embeddings:
            logits = L.tied_logits(params["model"]["embed_tokens"]["embedding"], h)
        else:
            logits = L.dense(params["lm_head"], h)
        logits = constrain(logits, ("batch", "length", "vocab"))
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return CausalLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)


class LlamaForSequenceClassification(LlamaPreTrainedModel):
    """Llama with a linear head on the last non-padding token."""

    @classmethod
    def param_specs(cls, config):
        return {
            "model": decoder_specs(config),
            "score": {"kernel": ParamSpec((config.hidden_size, config.num_labels), ("embed", None), "normal", config.initializer_range)},
        }

    @staticmethod
    def forward(params, config, input_ids, attention_mask=None, position_ids=None, labels=None, output_hidden_states=False, output_attentions=False):
        out = decoder_forward(params["model"], config, input_ids, attention_mask, position_ids, output_hidden_states, output_attentions)
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
