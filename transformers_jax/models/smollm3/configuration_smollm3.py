"""SmolLM3 config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

import numpy as np

from transformers_jax.models._decoder import FULL, SLIDING, DecoderConfig

DEFAULT_THETA = 2_000_000.0  # HF's SmolLM3Config.default_theta


@dataclasses.dataclass(frozen=True, eq=False)
class SmolLM3Config(DecoderConfig):
    """Config of a SmolLM3 decoder: Llama's layers (GQA, SwiGLU, tied embeddings by default) where
    some layers use no rotary embedding at all (NoPE).

    ``no_rope_layers``: one 0/1 entry per layer (1 = RoPE, 0 = NoPE); when absent, every
    ``no_rope_layer_interval``-th layer (the 4th, 8th, ... by default) is a NoPE layer.
    ``layer_types``: when absent, a layer is ``sliding_attention`` if ``use_sliding_window`` is set,
    ``sliding_window`` is not None and the layer is a NoPE layer; else ``full_attention``. As in
    Hugging Face's eager and SDPA attention, a ``sliding_attention`` layer attends to the last
    ``sliding_window`` tokens (``sliding_window`` must then be set). HF's config has no ``head_dim``
    (it is ``hidden_size // num_attention_heads``). A ``max_window_layers`` key that some
    checkpoints carry is not read by HF's SmolLM3 and is kept only to be written back.
    """

    model_type = "smollm3"
    fields_absent_in_hf = ("head_dim",)

    vocab_size: int = 128256
    hidden_size: int = 2048
    intermediate_size: int = 11008
    num_hidden_layers: int = 36
    num_attention_heads: int = 16
    num_key_value_heads: int | None = 4
    max_position_embeddings: int = 32768
    pad_token_id: int | None = 128004
    bos_token_id: int | None = 128000
    eos_token_id: int | list | None = 128001
    use_sliding_window: bool = False
    sliding_window: int | None = None
    no_rope_layers: list | None = None
    no_rope_layer_interval: int = 4
    layer_types: list | None = None
    tie_word_embeddings: bool = True

    @classmethod
    def _normalize_legacy(cls, values: dict) -> dict:
        values = dict(values)
        if values.get("rope_parameters") is None and values.get("rope_scaling") and values.get("rope_theta") is None:
            values["rope_theta"] = DEFAULT_THETA  # a rope_scaling without rope_theta gets SmolLM3's default base
        return super()._normalize_legacy(values)

    def __post_init__(self):
        layers = self.num_hidden_layers
        if self.no_rope_layers is None:
            if self.no_rope_layer_interval < 1:
                raise ValueError(f"SmolLM3Config: no_rope_layer_interval={self.no_rope_layer_interval} must be >= 1")
            object.__setattr__(self, "no_rope_layers",
                               [int((i + 1) % self.no_rope_layer_interval != 0) for i in range(layers)])
        elif len(self.no_rope_layers) < layers or any(v not in (0, 1) for v in self.no_rope_layers):
            raise ValueError(f"SmolLM3Config: no_rope_layers must hold a 0 (NoPE) or 1 (RoPE) for each of the "
                             f"{layers} layers; got {self.no_rope_layers}")
        if self.layer_types is None:
            slide = self.use_sliding_window and self.sliding_window is not None
            object.__setattr__(self, "layer_types", [SLIDING if slide and not self.no_rope_layers[i] else FULL
                                                     for i in range(layers)])
        unknown = sorted(set(self.layer_types) - {FULL, SLIDING})
        if unknown:
            raise ValueError(f"SmolLM3Config: layer_types has unsupported entries {unknown} "
                             f"(supported: {FULL!r}, {SLIDING!r})")
        if SLIDING in self.layer_types and self.sliding_window is None:
            raise ValueError("SmolLM3Config: layer_types has sliding_attention layers but sliding_window is None")
        rope = dict(self.rope_parameters or {"rope_type": "default"})
        rope.setdefault("rope_theta", DEFAULT_THETA)
        object.__setattr__(self, "rope_parameters", rope)
        super().__post_init__()

    def rope_layers(self) -> np.ndarray:
        return np.asarray(self.no_rope_layers[: self.num_hidden_layers], np.int32)
