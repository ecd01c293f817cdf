"""Gemma 2 config, with Hugging Face's field names and defaults (``model_type`` "gemma2")."""
from __future__ import annotations

import dataclasses

import numpy as np

from transformers_jax.models._decoder import FULL, SLIDING
from transformers_jax.models.gemma.configuration_gemma import GemmaConfig


@dataclasses.dataclass(frozen=True, eq=False)
class Gemma2Config(GemmaConfig):
    """Config of a Gemma 2 decoder: Gemma plus norms after attention and around the MLP, sliding
    window attention on alternating layers (``layer_types``; the first layer is local), attention
    scaled by ``query_pre_attn_scalar ** -0.5``, and soft-capped attention and final logits.

    The MLP activation is ``hidden_activation``; a ``hidden_act`` key (older config.json files have
    both) is kept and written back but not used, as in Hugging Face.
    """

    model_type = "gemma2"
    sandwich_norms = True

    hidden_size: int = 2304
    intermediate_size: int = 9216
    num_hidden_layers: int = 26
    num_attention_heads: int = 8
    num_key_value_heads: int | None = 4
    hidden_act: str | None = None
    hidden_activation: str = "gelu_pytorch_tanh"
    query_pre_attn_scalar: float = 256
    sliding_window: int | None = 4096
    layer_types: list | None = None
    final_logit_softcapping: float | None = 30.0
    attn_logit_softcapping: float | None = 50.0

    def __post_init__(self):
        if self.layer_types is None:
            pattern = self.default_sliding_pattern()
            types = [SLIDING if (i + 1) % pattern else FULL for i in range(self.num_hidden_layers)]
            object.__setattr__(self, "layer_types", types)
        super().__post_init__()

    def default_sliding_pattern(self) -> int:
        """Without ``layer_types``, every ``n``-th layer is global and the others are local."""
        return 2

    def mlp_activation(self) -> str:
        return self.hidden_activation

    def attention_scales(self) -> np.ndarray:
        return np.full((self.num_hidden_layers,), float(self.query_pre_attn_scalar) ** -0.5, np.float32)
