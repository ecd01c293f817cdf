"""Pieces of task heads that encoder and decoder families share."""
from __future__ import annotations

from transformers_jax import layers as L
from transformers_jax.losses import span_loss
from transformers_jax.modeling_outputs import QuestionAnsweringModelOutput
from transformers_jax.params import ParamSpec, dense_spec
from transformers_jax.partitioning import constrain


def extras(base_output) -> dict:
    """The hidden states and attentions of a base model's output, for a head's output."""
    return {"hidden_states": base_output.hidden_states, "attentions": base_output.attentions}


def span_head(qa_params: dict, base_output, start_positions=None, end_positions=None) -> QuestionAnsweringModelOutput:
    """Extractive question answering: start and end logits per token from ``qa_outputs`` ([D, 2]),
    and the span loss when both positions are given."""
    logits = L.dense(qa_params, base_output.last_hidden_state)  # [B, T, 2]
    start, end = logits[..., 0], logits[..., 1]
    loss = None
    if start_positions is not None and end_positions is not None:
        loss = span_loss(start, end, start_positions, end_positions)
    return QuestionAnsweringModelOutput(loss=loss, start_logits=start, end_logits=end, **extras(base_output))


def vocab_projection_specs(config, d_in: int) -> dict:
    """An output Linear to the vocabulary with one bias (DistilBERT's ``vocab_projector``, ELECTRA's
    ``generator_lm_head``): only its ``bias`` when tied to the word embeddings (the weight is the
    table), else ``kernel`` and ``bias``."""
    if config.tie_word_embeddings:
        return {"bias": ParamSpec((config.vocab_size,), ("vocab",), "zeros")}
    return dense_spec(d_in, config.vocab_size, "embed", "vocab", True, config.initializer_range)


def vocab_projection(params: dict, word_embeddings, x):
    """Logits [..., V] of :func:`vocab_projection_specs`' layer: tied (``x @ table.T + bias``) or not."""
    if "kernel" in params:
        logits = L.dense(params, x)
    else:
        logits = L.tied_logits(word_embeddings, x) + params["bias"].astype(x.dtype)
    return constrain(logits, ("batch", "length", "act_vocab"))
