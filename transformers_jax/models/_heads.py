"""Pieces of task heads that encoder and decoder families share."""
from __future__ import annotations

from transformers_jax import layers as L
from transformers_jax.losses import span_loss
from transformers_jax.modeling_outputs import QuestionAnsweringModelOutput


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
