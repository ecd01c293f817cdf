"""DeBERTa-v2/v3: the shared encoder (``models/_encoder.py``) with disentangled attention.

What differs from BERT, and where:

* embeddings (config switches): absolute positions only with ``position_biased_input``, token types
  only when ``type_vocab_size > 0``, ``embedding_size`` projected by a bias-free ``embed_proj``
  BEFORE the LayerNorm, the output multiplied by the attention mask;
* attention (the encoder's hooks, here): every layer adds a content-to-position (``c2p``: query
  against projected relative embeddings, gathered at ``q - k``) and/or position-to-content
  (``p2c``: key against projected relative embeddings, gathered at ``k - q``) term, and all scores
  are scaled by ``1 / sqrt(head_dim * (1 + number of terms))``. Relative embeddings
  (``encoder.rel_embeddings``, ``2 * span`` rows) are normalised by ``encoder.LayerNorm`` when
  ``norm_rel_ebd`` says ``layer_norm`` and projected by the layer's own query/key projections
  (``share_att_key``) or by ``pos_query_proj``/``pos_key_proj``; distances are log-bucketed with
  ``position_buckets`` (``layers/positions.py``). Padded queries are masked as well as padded keys;
* heads: sequence classification and multiple choice run a ContextPooler (``pooler.dense`` +
  ``pooler_hidden_act`` over the first token, ``pooler_dropout`` before it, ``cls_dropout`` after)
  and ``classifier``: the shared "dense" summary under those names; the masked-LM head is ``cls.predictions`` (``legacy``, tied to the word
  embeddings) or ``lm_predictions.lm_head`` (``legacy=False``: dense + LayerNorm + bias, logits
  against the word embeddings); the sequence loss is DeBERTa's (labels < 0 ignored, soft labels).

* ``conv_kernel_size`` > 0 (v2 xlarge/xxlarge): the ConvLayer ``encoder.conv`` (a grouped 1-D
  convolution over the embedding output, ``conv_act``, added to the first layer's output and
  normalised) through the encoder's ``first_layer_transform`` hook.

Checkpoint names: ``deberta.`` prefix, ``attention.self.{query,key,value}_proj``,
``embeddings.embed_proj``.
"""
from __future__ import annotations

import math

import jax
import numpy as np
import jax.numpy as jnp

from transformers_jax import layers as L
from transformers_jax.losses import cross_entropy, sequence_classification_loss
from transformers_jax.modeling_outputs import MaskedLMOutput
from transformers_jax.models._encoder import (
    EncoderForMaskedLM,
    EncoderPreTrainedModel,
    build_encoder_family,
)
from transformers_jax.models._heads import extras
from transformers_jax.models.deberta_v2.configuration_deberta_v2 import DebertaV2Config
from transformers_jax.params import ParamSpec, dense_spec, embedding_spec, layer_norm_spec
from transformers_jax.partitioning import constrain


# ----------------------------------------------------------------------------- disentangled attention
def relative_specs(config) -> dict:
    """``encoder.rel_embeddings`` ([2 * span, D], with relative attention), ``encoder.LayerNorm``
    (when ``norm_rel_ebd`` has ``layer_norm``; HF builds it even without relative attention) and
    ``encoder.conv`` (with ``conv_kernel_size``)."""
    d, std = config.hidden_size, config.initializer_range
    specs = {}
    if config.conv_kernel_size > 0:
        # Kept [width, in / groups, out] (XLA's WIO); PyTorch's Conv1d stores the reverse [out, in / groups, width].
        width, groups = config.conv_kernel_size, config.conv_groups
        specs["conv"] = {"conv": {"kernel": ParamSpec((width, d // groups, d), ("conv_width", None, "embed"), "normal", std),
                                  "bias": ParamSpec((d,), ("embed",), "zeros")},
                         "LayerNorm": layer_norm_spec(d)}
    if config.relative_attention:
        specs["rel_embeddings"] = embedding_spec(2 * config.attention_span, d, std, ("relative_positions", "embed"))
    if "layer_norm" in config.norm_rel_ebd:
        specs["LayerNorm"] = layer_norm_spec(d)
    return specs


def attention_specs(config) -> dict:
    """Per-layer ``pos_key_proj`` (c2p) / ``pos_query_proj`` (p2c) when positions are not projected
    by the layer's own key/query projections (``share_att_key``)."""
    if not config.relative_attention or config.share_att_key:
        return {}
    d, std = config.hidden_size, config.initializer_range
    names = {"c2p": "pos_key_proj", "p2c": "pos_query_proj"}
    return {names[t]: dense_spec(d, d, "embed", "heads", True, std) for t in config.relative_terms}


def attention_context(config, encoder_params: dict, input_ids):
    """Once per forward: the (normalised) relative embeddings [2 * span, D] and, for a length-T
    input, the column of each (query, key) pair in the c2p scores and in the p2c scores ([T, T])."""
    if not config.relative_attention:
        return None
    dtype = jnp.dtype(config.compute_dtype)
    rel = encoder_params["rel_embeddings"]["embedding"].astype(dtype)
    if "layer_norm" in config.norm_rel_ebd:
        rel = L.layer_norm(encoder_params["LayerNorm"], rel, config.norm_eps)
    length, span = input_ids.shape[1], config.attention_span
    relative = L.relative_position_map(length, length, config.position_buckets, config.max_relative)  # q - k
    return {
        "rel_embeddings": rel,
        "c2p_index": jnp.clip(relative + span, 0, 2 * span - 1),
        "p2c_index": jnp.clip(-relative + span, 0, 2 * span - 1),
    }


def layer_attention_context(config, context, dropout_rng):
    """Each layer drops out the relative embeddings on its own (HF's ``pos_dropout``, hidden rate)."""
    if context is None or dropout_rng is None:
        return context
    return {**context, "rel_embeddings": L.dropout(context["rel_embeddings"], config.hidden_dropout_prob, dropout_rng)}


def disentangled_attention_bias(config, attention_params: dict, q, k, context):
    """(scale of q.k, the c2p + p2c bias [B, H, T, T] or None) for one layer.

    q, k: [B, T, H, Dh]. c2p[b, h, i, j] = q_i . Kr[c2p_index[i, j]] and p2c[b, h, i, j] =
    k_j . Qr[p2c_index[j, i]], where Kr / Qr are the relative embeddings projected by the key /
    query projection of this layer (``share_att_key``) or by ``pos_key_proj`` / ``pos_query_proj``.
    All terms share the scale ``1 / sqrt(head_dim * (1 + number of terms))``."""
    terms = config.relative_terms
    scale = 1.0 / math.sqrt(config.head_dim * (1 + len(terms)))
    if context is None or not terms:
        return scale, None
    a, heads, rel = attention_params["self"], config.num_attention_heads, context["rel_embeddings"]
    bias = None
    if "c2p" in terms:
        pos_key = L.split_heads(L.dense(a["key"] if config.share_att_key else a["pos_key_proj"], rel), heads)  # [R, H, Dh]
        c2p = jnp.einsum("bthd,rhd->bhtr", q, pos_key)  # [B, H, T, R]
        bias = L.gather_relative_scores(c2p, context["c2p_index"])
    if "p2c" in terms:
        pos_query = L.split_heads(L.dense(a["query"] if config.share_att_key else a["pos_query_proj"], rel), heads)
        p2c = jnp.einsum("bshd,rhd->bhsr", k, pos_query)  # [B, H, S, R]: keys as rows
        p2c = jnp.swapaxes(L.gather_relative_scores(p2c, context["p2c_index"]), -1, -2)  # [B, H, T, S]
        bias = p2c if bias is None else bias + p2c
    return scale, bias * scale


def grouped_conv1d(x, kernel, groups: int):
    """PyTorch's ``Conv1d`` with ``padding=(width - 1) // 2`` (odd width: same length) and ``groups``:
    x [B, T, C_in], kernel [width, C_in / groups, C_out] -> [B, T, C_out].

    Written as ``width`` shifted views and one einsum rather than ``lax.conv_general_dilated`` with
    ``feature_group_count``: under FSDP sharding of the output channels, XLA:CPU (jax 0.10.2) gave
    that grouped convolution's kernel gradient twice its value."""
    width, in_per_group, out = kernel.shape
    batch, length, _ = x.shape
    pad = (width - 1) // 2
    padded = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)))
    windows = jnp.stack([padded[:, i:i + length] for i in range(width)], axis=2)  # [B, T, W, C_in]
    windows = windows.reshape(batch, length, width, groups, in_per_group)
    kernel = kernel.reshape(width, in_per_group, groups, out // groups)  # output channel o is in group o // (C_out / G)
    return jnp.einsum("btwgc,wcgo->btgo", windows, kernel).reshape(batch, length, out)


def conv_layer(config, params: dict, embeddings, x, attention_mask, dropout_rng):
    """HF's ConvLayer after the first layer: conv1d over the embedding output [B, T, D] (same
    padding, ``conv_groups``), zeroed at padding, dropout, ``conv_act``, added to the first layer's
    output ``x``, LayerNorm, times the mask."""
    mask = attention_mask[..., None].astype(x.dtype)  # [B, T, 1]
    out = grouped_conv1d(embeddings, params["conv"]["kernel"].astype(embeddings.dtype), config.conv_groups)
    out = out + params["conv"]["bias"].astype(embeddings.dtype)
    out = L.activation(config.conv_act)(L.dropout(out * mask, config.hidden_dropout_prob, dropout_rng))
    return L.layer_norm(params["LayerNorm"], x + out, config.norm_eps) * mask


# ----------------------------------------------------------------------------- heads
def deberta_sequence_loss(logits, labels, config):
    """HF DeBERTa's sequence loss. With ``problem_type`` unset: one label is MSE regression; labels
    [B] (or [B, 1]) are cross entropy over the rows whose label is >= 0 (0 when there is none);
    labels shaped like the logits are soft targets, ``-(log_softmax(logits) * labels).sum(-1).mean()``.
    A set ``problem_type`` gives the usual regression / single-label / multi-label losses."""
    if config.problem_type is not None or config.num_labels == 1:
        return sequence_classification_loss(logits, labels, config)
    logits = logits.astype(jnp.float32)
    if labels.ndim == 1 or labels.shape[-1] == 1:
        labels = labels.reshape(-1)
        valid = labels >= 0
        nll = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, jnp.where(valid, labels, 0)[:, None], -1)[:, 0]
        count = jnp.sum(valid)
        return jnp.where(count > 0, jnp.sum(jnp.where(valid, nll, 0.0)) / jnp.maximum(count, 1), 0.0)
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits, -1) * labels.astype(jnp.float32), -1))


class DebertaV2Base(EncoderPreTrainedModel):
    """Shared by the DeBERTa-v2 classes. Without ``position_biased_input`` no position table limits
    the length (relative positions clamp), and a checkpoint may still hold
    ``embeddings.position_embeddings`` (HF ignores it; so do we, with a log line)."""

    def check_inputs(self, inputs: dict) -> None:
        if self.config.position_type != "none":
            return super().check_inputs(inputs)
        ids = inputs.get("input_ids")
        if ids is not None and np.asarray(ids).ndim >= 1:  # the vocabulary check only, on one position
            ids = np.asarray(ids)
            super().check_inputs({**inputs, "input_ids": ids.reshape(-1, 1)})

    @classmethod
    def _normalize_checkpoint_keys(cls, state_dict: dict, config, source: str) -> dict:
        if config.position_type == "none":
            import logging
            import re

            unused = [k for k in state_dict if re.search(r"(^|\.)embeddings\.position_embeddings\.weight$", k)]
            if unused:
                logging.getLogger(__name__).info("%s: %s not used (position_biased_input=False)",
                                                 cls.__name__, ", ".join(unused))
                state_dict = {k: v for k, v in state_dict.items() if k not in unused}
        return super()._normalize_checkpoint_keys(state_dict, config, source)


class DebertaV2MaskedLMHead(EncoderForMaskedLM):
    """The masked-LM head: ``cls.predictions`` (``legacy``: transform to ``embedding_size``, decoder
    tied to the word embeddings) or ``lm_predictions.lm_head`` (dense + LayerNorm at the hidden size
    and an output bias, logits against the word embeddings; nothing tied in the checkpoint)."""

    @classmethod
    def head_specs(cls, config):
        if config.legacy:
            return super().head_specs(config)
        d, std = config.hidden_size, config.initializer_range
        return {"lm_predictions": {"lm_head": {"dense": dense_spec(d, d, "embed", "embed_out", True, std),
                                               "LayerNorm": layer_norm_spec(d),
                                               "bias": ParamSpec((config.vocab_size,), ("vocab",), "zeros")}}}

    @classmethod
    def tied_weights(cls, config):
        return super().tied_weights(config) if config.legacy else {}

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                head_mask=None, labels=None, output_hidden_states=False, output_attentions=False, dropout_rng=None):
        if config.legacy:
            return super().forward(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                                   labels, output_hidden_states, output_attentions, dropout_rng)
        out = cls._base(params, config, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                        output_hidden_states, output_attentions, dropout_rng)
        head = params["lm_predictions"]["lm_head"]
        h = L.activation(config.hidden_act)(L.dense(head["dense"], out.last_hidden_state))
        h = L.layer_norm(head["LayerNorm"], h, config.norm_eps)
        logits = L.tied_logits(cls.word_embeddings(params), h) + head["bias"].astype(h.dtype)
        logits = constrain(logits, ("batch", "length", "act_vocab"))
        loss = cross_entropy(logits, labels) if labels is not None else None
        return MaskedLMOutput(loss=loss, logits=logits, **extras(out))


_RENAMES = (
    (r"(^|\.)attention\.self\.(query|key|value)\.", r"\1attention.self.\2_proj."),
    (r"(^|\.)embeddings_project\.", r"\1embeddings.embed_proj."),
    (r"^classifier\.dense\.", "pooler.dense."),  # the shared "dense" summary is the ContextPooler
    (r"^classifier\.out_proj\.", "classifier."),
)

# DebertaV2PreTrainedModel, DebertaV2Model, DebertaV2ForMaskedLM, DebertaV2ForSequenceClassification,
# DebertaV2ForTokenClassification, DebertaV2ForQuestionAnswering, DebertaV2ForMultipleChoice.
# (HF has no DeBERTa-v2 pre-training or causal-LM class; the Auto pre-training task maps to masked LM.)
globals().update(build_encoder_family(
    "DebertaV2", DebertaV2Config, __name__, base=DebertaV2Base,
    heads={"masked_lm": ("ForMaskedLM", DebertaV2MaskedLMHead)},
    register_tasks={"pretraining": "masked_lm"},
    base_model_prefix="deberta", checkpoint_renames=_RENAMES,
))
