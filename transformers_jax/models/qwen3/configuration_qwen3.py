"""Qwen3 config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models.qwen2.configuration_qwen2 import QwenSlidingConfig


@dataclasses.dataclass(frozen=True, eq=False)
class Qwen3Config(QwenSlidingConfig):
    """Config of a Qwen3 decoder: Qwen2's layout without its fixed biases (``attention_bias`` for
    all four projections), per-head RMSNorm of queries and keys, and an explicit ``head_dim``."""

    model_type = "qwen3"
    qk_norm = True
    fields_absent_in_hf = ("mlp_bias",)

    head_dim: int | None = 128
