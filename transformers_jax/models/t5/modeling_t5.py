"""T5: the shared encoder-decoder (``models/_seq2seq.py``) as configured by :class:`T5Config`, with every
Hugging Face class: ``T5Model``, ``T5ForConditionalGeneration``, ``T5EncoderModel``,
``T5ForSequenceClassification``, ``T5ForQuestionAnswering`` and ``T5ForTokenClassification``.

The params keep the skeleton's (BART's) names; T5's checkpoint names are renames of them
(:data:`T5_RENAMES`): ``encoder.layers.N.self_attn.q_proj`` is ``encoder.block.N.layer.0.SelfAttention.q``,
the feed-forward sub-layer is ``layer.1`` of an encoder block and ``layer.2`` of a decoder block
(``DenseReluDense.wi`` / ``wi_0`` / ``wi_1`` / ``wo``), each stack's final norm is ``final_layer_norm``,
and the stack's relative bias table sits in block 0 (``...SelfAttention.relative_attention_bias``).
As in Hugging Face, the base model is nested under ``transformer.`` in the checkpoints of the
sequence and token classifiers only; the others keep ``shared``, ``encoder``, ``decoder`` at the top.
"""
from __future__ import annotations

import logging

import numpy as np

from transformers_jax.modeling_utils import PreTrainedModel
from transformers_jax.models._seq2seq import build_seq2seq_family
from transformers_jax.models.t5.configuration_t5 import T5Config

_LAYER = r"(^|\.)(encoder|decoder)\.layers\.(\d+)\."
T5_RENAMES: tuple[tuple[str, str], ...] = (
    # Sub-layers of a block: self-attention is layer.0; cross-attention layer.1 (decoder); the MLP last.
    (_LAYER + r"self_attn(_layer_norm)?\.", r"\1\2.block.\3.layer.0.self_attn\4."),
    (r"(^|\.)decoder\.layers\.(\d+)\.encoder_attn(_layer_norm)?\.", r"\1decoder.block.\2.layer.1.encoder_attn\3."),
    (r"(^|\.)encoder\.layers\.(\d+)\.(fc|final_layer_norm)", r"\1encoder.block.\2.layer.1.\3"),
    (r"(^|\.)decoder\.layers\.(\d+)\.(fc|final_layer_norm)", r"\1decoder.block.\2.layer.2.\3"),
    # Inside a sub-layer: T5's module names.
    (r"\.(self_attn|encoder_attn|final)_layer_norm\.", ".layer_norm."),
    (r"\.self_attn\.", ".SelfAttention."),
    (r"\.encoder_attn\.", ".EncDecAttention."),
    (r"Attention\.([qkv])_proj\.", r"Attention.\1."),
    (r"Attention\.out_proj\.", "Attention.o."),
    (r"\.fc1(_[01])?\.", r".DenseReluDense.wi\1."),
    (r"\.fc2\.", ".DenseReluDense.wo."),
    # Stack-level params: the final norm, and the shared relative bias table (kept by block 0).
    (r"(^|\.)(encoder|decoder)\.layer_norm\.", r"\1\2.final_layer_norm."),
    (r"(^|\.)(encoder|decoder)\.relative_attention_bias\.",
     r"\1\2.block.0.layer.0.SelfAttention.relative_attention_bias."),
)
T5_TASKS = ("base", "seq2seq_lm", "encoder", "sequence_classification", "question_answering", "token_classification")


def untie_differing_lm_head(cls, config, state_dict: dict, source: str):
    """``config`` untied (``tie_word_embeddings=False``) when the checkpoint holds an LM head that differs
    from ``shared``: Hugging Face v5 writes ``tie_word_embeddings: true`` for every T5 and keeps such a
    head untied on load (FLAN-T5 re-saved by it)."""
    head, table = cls.checkpoint_name("lm_head.weight"), cls.checkpoint_name(f"{cls.base_model_prefix}.shared.weight")
    if not (config.tie_word_embeddings and head in state_dict and table in state_dict):
        return config
    head_value, table_value = np.asarray(state_dict[head]), np.asarray(state_dict[table])
    if head_value.shape == table_value.shape and np.array_equal(head_value, table_value):
        return config
    logging.getLogger("transformers_jax").warning(
        "%s: %s holds an lm_head.weight that differs from shared.weight; loading it untied "
        "(tie_word_embeddings=False), as Hugging Face does", cls.__name__, source)
    return config.replace(tie_word_embeddings=False)


def t5_family_attributes(renames=T5_RENAMES) -> dict:
    """``build_seq2seq_family`` keywords of the T5-like families (T5, mT5, umT5): the checkpoint names,
    the base model under ``transformer`` (nested in the classifiers' checkpoints only), the keys to
    skip (old checkpoints hold an unused relative bias in the decoder's first cross-attention)."""
    flat = {"checkpoint_nests_base": False, "checkpoint_renames": ((r"^transformer\.", ""), *renames)}
    return dict(
        tasks=T5_TASKS,
        head_attributes={"seq2seq_lm": {**flat, "config_for_checkpoint": classmethod(untie_differing_lm_head)},
                         "question_answering": {**flat, "shifts_input_ids": True},
                         "sequence_classification": {"shifts_input_ids": True}},
        base_model_prefix="transformer",
        checkpoint_renames=renames,
        checkpoint_head_modules=("decoder", "lm_head", "qa_outputs"),
        ignore_on_load=(*PreTrainedModel.ignore_on_load, r"EncDecAttention\.relative_attention_bias\.weight$"),
    )


globals().update(build_seq2seq_family("T5", T5Config, __name__, **t5_family_attributes()))
