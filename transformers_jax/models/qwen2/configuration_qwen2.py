"""Qwen2 config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models._decoder import FULL, SLIDING, DecoderConfig


@dataclasses.dataclass(frozen=True, eq=False)
class QwenSlidingConfig(DecoderConfig):
    """What Qwen2 and Qwen3 share: Hugging Face's defaults, and a sliding window (only with
    ``use_sliding_window``, else ``sliding_window`` is None) in layers ``max_window_layers`` and up,
    unless ``layer_types`` says which layers slide."""

    vocab_size: int = 151936
    intermediate_size: int = 22016
    num_key_value_heads: int | None = 32
    max_position_embeddings: int = 32768
    bos_token_id: int | None = None
    eos_token_id: int | list | None = None
    use_sliding_window: bool = False
    sliding_window: int | None = 4096
    max_window_layers: int = 28
    layer_types: list | None = None

    def __post_init__(self):
        if not self.use_sliding_window:
            object.__setattr__(self, "sliding_window", None)
        if self.layer_types is None:
            object.__setattr__(self, "layer_types", [
                SLIDING if self.sliding_window is not None and i >= self.max_window_layers else FULL
                for i in range(self.num_hidden_layers)])
        super().__post_init__()


@dataclasses.dataclass(frozen=True, eq=False)
class Qwen2Config(QwenSlidingConfig):
    """Config of a Qwen2 decoder: Llama's layers with biases on the q, k and v projections (not on
    o_proj); HF's config has no ``head_dim``, ``attention_bias`` or ``mlp_bias`` (not written)."""

    model_type = "qwen2"
    fields_absent_in_hf = ("head_dim", "attention_bias", "mlp_bias")

    attention_bias: bool = True  # q/k/v biases; fixed in HF's Qwen2

    @property
    def attention_out_bias(self) -> bool:
        return False
