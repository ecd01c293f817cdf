"""GPT-2: the shared decoder (``models/_decoder.py``) with LayerNorm, learned positions and a plain
GELU MLP, plus the double-heads model (language modelling and multiple choice).

Our param tree uses the shared decoder's names under ``transformer``; how GPT-2's checkpoints
differ is declared: ``c_attn`` holds q, k and v joined along the output features (``FusedWeight``);
the module names (``wte``, ``h.N.ln_1``, ``attn.c_proj`` ...) are ``checkpoint_renames``; GPT-2's
``Conv1D`` stores kernels [in, out] as we do (``torch_transposed=False``); ``lm_head`` is tied to
``wte``. Older checkpoints without the ``transformer.`` prefix load (the base-prefix rule), and
their ``attn.bias`` / ``attn.masked_bias`` causal-mask buffers are ignored.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from transformers_jax import layers as L
from transformers_jax.losses import causal_lm_loss, cross_entropy
from transformers_jax.modeling_outputs import ModelOutput, _register
from transformers_jax.modeling_utils import FusedWeight, PreTrainedModel
from transformers_jax.models._decoder import DecoderForCausalLM, DecoderPreTrainedModel, build_family, decoder_specs
from transformers_jax.models.gpt2.configuration_gpt2 import GPT2Config
from transformers_jax.params import dense_spec, is_spec


class _GPT2Base(DecoderPreTrainedModel):
    """The shared decoder whose projections are GPT-2 ``Conv1D`` s: kernels stored [in, out] in the checkpoint."""

    @classmethod
    def base_specs(cls, config):
        return jax.tree.map(lambda spec: dataclasses.replace(spec, torch_transposed=False), decoder_specs(config),
                            is_leaf=is_spec)


_CHECKPOINT_RENAMES = (
    (r"(^|\.)embed_tokens\.", r"\1wte."),
    (r"(^|\.)embed_positions\.", r"\1wpe."),
    (r"(^|\.)layers\.(\d+)\.", r"\1h.\2."),
    (r"\.input_layernorm\.", ".ln_1."),
    (r"\.post_attention_layernorm\.", ".ln_2."),
    (r"\.self_attn\.o_proj\.", ".attn.c_proj."),
    (r"\.self_attn\.", ".attn."),
    (r"\.mlp\.up_proj\.", ".mlp.c_fc."),
    (r"\.mlp\.down_proj\.", ".mlp.c_proj."),
    (r"(^|\.)norm\.", r"\1ln_f."),
)

# build_family defines GPT2PreTrainedModel, GPT2Model, GPT2LMHeadModel, GPT2ForSequenceClassification,
# GPT2ForTokenClassification, GPT2ForQuestionAnswering.
globals().update(build_family(
    "GPT2", GPT2Config, __name__, base=_GPT2Base, class_names={"causal_lm": "GPT2LMHeadModel"},
    base_model_prefix="transformer",
    fused_weights=(FusedWeight("{prefix}.c_attn.{leaf}",
                               ("{prefix}.q_proj.{leaf}", "{prefix}.k_proj.{leaf}", "{prefix}.v_proj.{leaf}")),),
    checkpoint_renames=_CHECKPOINT_RENAMES,
    # The causal-mask buffers older checkpoints carry (HF ignores them too).
    ignore_on_load=(*PreTrainedModel.ignore_on_load, r"(^|\.)attn\.bias$", r"(^|\.)attn\.masked_bias$"),
))
# HF names the token classifier ``classifier`` (the shared head's is ``score``).
GPT2ForTokenClassification.checkpoint_renames = (*_CHECKPOINT_RENAMES, (r"^score\.", "classifier."))


@_register
class GPT2DoubleHeadsModelOutput(ModelOutput):
    """Hugging Face's fields and order: the LM loss, the multiple-choice loss, LM logits
    [..., T, V], multiple-choice logits [B, C]."""

    loss: Any = None
    mc_loss: Any = None
    logits: Any = None
    mc_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


def _summary_classes(config) -> int:
    """Output width of the summary projection. Hugging Face's ``GPT2DoubleHeadsModel`` sets
    ``num_labels = 1`` on its config, so with ``summary_proj_to_labels`` it is 1."""
    return 1 if config.summary_proj_to_labels else config.hidden_size


class GPT2DoubleHeadsModel(DecoderForCausalLM, GPT2PreTrainedModel):
    """GPT-2 with the (tied) LM head and a multiple-choice head (``multiple_choice_head.summary``).

    ``input_ids`` are [batch, num_choices, T] (any leading shape: they are flattened to rows of T
    tokens as Hugging Face does). The multiple-choice head reads each row's hidden state at
    ``mc_token_ids`` [batch, num_choices] (``summary_type="cls_index"``; the last token when not
    given; or ``last``/``first``/``mean``, see :meth:`multiple_choice_logits`), projects it (``summary_use_proj``), applies
    ``summary_activation``, and gives ``mc_logits`` [batch, num_choices]. ``labels`` give the LM loss
    (``loss``), ``mc_labels`` [batch] the cross entropy over choices (``mc_loss``). As in Hugging
    Face, the hidden states of the layers come per flattened row, the last one (after ``ln_f``) in
    the input's leading shape; the config's ``num_labels`` becomes 1.
    """

    def __init__(self, config, params=None, *, seed: int = 0):
        if isinstance(config, GPT2Config) and config.num_labels != 1:
            config = config.replace(num_labels=1)  # as Hugging Face's __init__ does
        super().__init__(config, params, seed=seed)

    @classmethod
    def param_specs(cls, config):
        specs = super().param_specs(config)
        if config.summary_use_proj:
            specs["multiple_choice_head"] = {"summary": dense_spec(config.hidden_size, _summary_classes(config),
                                                                   "embed", None, True, config.initializer_range)}
        return specs

    @classmethod
    def multiple_choice_logits(cls, params, config, hidden, mc_token_ids, rng):
        """The sequence summary of ``hidden`` [..., T, D] -> [...] (or [..., D] without a projection to labels).

        ``last``, ``first`` and ``mean`` index axis 1 as Hugging Face's ``GPT2SequenceSummary`` does:
        the token axis for [B, T] inputs, but the *choices* axis for [B, C, T] inputs (there HF's
        ``mc_logits`` come out [B, T]); we keep HF's numbers. ``cls_index`` (GPT-2's setting) gathers
        the token at ``mc_token_ids`` for any leading shape."""
        if config.summary_type == "last":
            pooled = hidden[:, -1]
        elif config.summary_type == "first":
            pooled = hidden[:, 0]
        elif config.summary_type == "mean":
            pooled = jnp.mean(hidden, axis=1)
        else:  # cls_index
            if mc_token_ids is None:
                mc_token_ids = jnp.full(hidden.shape[:-2], hidden.shape[-2] - 1)
            pooled = jnp.take_along_axis(hidden, mc_token_ids[..., None, None], axis=-2)[..., 0, :]
        first_rng, last_rng = (None, None) if rng is None else L.split_key(rng, 2)
        pooled = L.dropout(pooled, config.summary_first_dropout, first_rng)
        if config.summary_use_proj:
            pooled = L.dense(params["multiple_choice_head"]["summary"], pooled)
        if config.summary_activation:
            pooled = L.activation(config.summary_activation)(pooled)
        pooled = L.dropout(pooled, getattr(config, "summary_last_dropout", 0.0) or 0.0, last_rng)
        return pooled[..., 0] if pooled.shape[-1] == 1 else pooled

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, position_ids=None, mc_token_ids=None,
                labels=None, mc_labels=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        shape = input_ids.shape
        rows = lambda x: None if x is None else x.reshape(-1, shape[-1])  # noqa: E731
        base_rng, head_rng = (None, None) if dropout_rng is None else L.split_key(dropout_rng, 2)
        out = cls._base(params, config, rows(input_ids), rows(attention_mask), rows(position_ids),
                        output_hidden_states, output_attentions, base_rng)
        hidden = out.last_hidden_state.reshape(*shape, -1)  # [..., T, D]
        logits = cls.lm_logits(params, config, out.last_hidden_state).reshape(*shape, -1)  # rows: [B, T, V] axes
        mc_logits = cls.multiple_choice_logits(params, config, hidden, mc_token_ids, head_rng)
        loss = mc_loss = None
        if labels is not None:
            loss = causal_lm_loss(logits.reshape(-1, shape[-1], logits.shape[-1]), rows(labels))
        if mc_labels is not None:
            mc_loss = cross_entropy(mc_logits.reshape(-1, mc_logits.shape[-1]), mc_labels.reshape(-1))
        hidden_states = None
        if output_hidden_states:
            hidden_states = (*out.hidden_states[:-1], hidden)
        return GPT2DoubleHeadsModelOutput(loss=loss, mc_loss=mc_loss, logits=logits, mc_logits=mc_logits,
                                          hidden_states=hidden_states, attentions=out.attentions)

