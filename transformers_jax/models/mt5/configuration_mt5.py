"""mT5 config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models.t5.configuration_t5 import T5ArchitectureConfig


@dataclasses.dataclass(frozen=True, eq=False)
class MT5Config(T5ArchitectureConfig):
    """Config of mT5: T5 v1.1 (gated GELU, no scaling of the decoder output, whatever
    ``tie_word_embeddings`` says) with a 250112-token vocabulary. Its checkpoints say
    ``tie_word_embeddings: false`` and hold their own ``lm_head``; Hugging Face v5's default is tied."""

    model_type = "mt5"

    vocab_size: int = 250112
    d_ff: int = 1024
    num_layers: int = 8
    num_heads: int = 6
    feed_forward_proj: str = "gated-gelu"
