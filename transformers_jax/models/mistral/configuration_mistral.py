"""Mistral config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models._decoder import FULL, SLIDING, DecoderConfig


@dataclasses.dataclass(frozen=True, eq=False)
class MistralConfig(DecoderConfig):
    """Config of a Mistral decoder: Llama's layers, every one attending to the last ``sliding_window``
    tokens unless ``sliding_window`` is None (a ``layer_types`` key is kept but not used, as in HF)."""

    model_type = "mistral"
    fields_absent_in_hf = ("attention_bias", "mlp_bias")

    intermediate_size: int = 14336
    num_key_value_heads: int | None = 8
    max_position_embeddings: int = 4096 * 32
    sliding_window: int | None = 4096

    def decoder_layer_types(self) -> list[str]:
        return [FULL if self.sliding_window is None else SLIDING] * self.num_hidden_layers
