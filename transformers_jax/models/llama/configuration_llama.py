"""Llama config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models._decoder import DecoderConfig


@dataclasses.dataclass(frozen=True, eq=False)
class LlamaConfig(DecoderConfig):
    """Config of a Llama decoder: GQA, RoPE (``rope_parameters``), RMSNorm, SwiGLU (the shared
    decoder's defaults)."""

    model_type = "llama"
