"""umT5 config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models.t5.configuration_t5 import T5Config


@dataclasses.dataclass(frozen=True, eq=False)
class UMT5Config(T5Config):
    """Config of umT5: mT5 with a relative position bias table in every self-attention layer (not one per
    stack). ``scale_decoder_outputs`` follows ``tie_word_embeddings`` unless given, as in T5 (umT5's
    checkpoints say ``tie_word_embeddings: false``: no scaling, their own ``lm_head``)."""

    model_type = "umt5"
    per_layer_relative_bias = True

    vocab_size: int = 250112
    d_ff: int = 1024
    num_layers: int = 8
    num_heads: int = 6
    feed_forward_proj: str = "gated-gelu"
