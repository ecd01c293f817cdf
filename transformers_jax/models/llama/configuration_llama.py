"""Llama config, with Hugging Face's field names and defaults (also carries Mistral-style variants)."""
from __future__ import annotations

import dataclasses

from transformers_jax.configuration_utils import PretrainedConfig


@dataclasses.dataclass(frozen=True, eq=False)
class LlamaConfig(PretrainedConfig):
    """Config of a Llama decoder: GQA, RoPE (``rope_parameters``), RMSNorm, SwiGLU."""

    model_type = "llama"

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    rope_parameters: dict | None = None
    attention_bias: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    bos_token_id: int | None = 1
    eos_token_id: int | list | None = 2
    tie_word_embeddings: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.num_key_value_heads is None:
            object.__setattr__(self, "num_key_value_heads", self.num_attention_heads)
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        if self.rope_parameters is None:
            object.__setattr__(self, "rope_parameters", {"rope_theta": 10000.0, "rope_type": "default"})
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )

    @classmethod
    def _normalize_legacy(cls, values: dict) -> dict:
        """Older configs keep ``rope_theta`` and ``rope_scaling`` at the top level; fold them into
        ``rope_parameters`` (the current spelling, which is what gets written back)."""
        values = dict(values)
        theta = values.pop("rope_theta", None)
        scaling = values.pop("rope_scaling", None)
        if values.get("rope_parameters") is None and (theta is not None or scaling is not None):
            rope = dict(scaling or {})
            if "type" in rope:
                rope["rope_type"] = rope.pop("type")
            rope.setdefault("rope_type", "default")
            rope["rope_theta"] = float(theta if theta is not None else 10000.0)
            values["rope_parameters"] = rope
        return values

    @property
    def rope_theta(self) -> float:
        return self.rope_parameters.get("rope_theta", 10000.0)
