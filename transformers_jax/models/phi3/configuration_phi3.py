"""Phi-3 config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models._decoder import FULL, SLIDING, DecoderConfig


@dataclasses.dataclass(frozen=True, eq=False)
class Phi3Config(DecoderConfig):
    """Config of a Phi-3 decoder: Llama's layout with fused ``qkv_proj``/``gate_up_proj`` in the
    checkpoint, optional partial rotary embeddings (``partial_rotary_factor``), LongRoPE scaling
    (``rope_type: longrope`` with ``short_factor``/``long_factor``), a sliding window on every layer
    when ``sliding_window`` is set, and residual dropout (``resid_pdrop``).

    As in Hugging Face: the top-level ``original_max_position_embeddings`` wins over the one inside
    ``rope_parameters``; legacy rope types ``su`` and ``yarn`` mean ``longrope``; a top-level
    ``partial_rotary_factor`` is copied into ``rope_parameters``. ``embd_pdrop`` is kept for the round
    trip but unused, as in Hugging Face's Phi-3 (it applies no embedding dropout).
    """

    model_type = "phi3"

    vocab_size: int = 32064
    hidden_size: int = 3072
    intermediate_size: int = 8192
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    resid_pdrop: float = 0.0
    embd_pdrop: float = 0.0
    max_position_embeddings: int = 4096
    original_max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-5
    bos_token_id: int | None = 1
    eos_token_id: int | list | None = 32000
    pad_token_id: int | None = 32000
    sliding_window: int | None = None

    def __post_init__(self):
        rope = dict(self.rope_parameters or {"rope_theta": 10000.0})
        rope.setdefault("rope_type", rope.pop("type", "default"))
        if rope["rope_type"] in ("su", "yarn"):
            rope["rope_type"] = "longrope"
        if rope["rope_type"] == "longrope":
            rope["original_max_position_embeddings"] = self.original_max_position_embeddings
        object.__setattr__(self, "rope_parameters", rope)
        super().__post_init__()

    @classmethod
    def _normalize_legacy(cls, values: dict) -> dict:
        partial = values.get("partial_rotary_factor")
        values = super()._normalize_legacy(values)
        if partial is not None:
            rope = dict(values.get("rope_parameters") or {"rope_theta": 10000.0, "rope_type": "default"})
            rope.setdefault("partial_rotary_factor", partial)
            values["rope_parameters"] = rope
        return values

    def decoder_layer_types(self) -> list[str]:
        """Every layer uses the sliding window when ``sliding_window`` is set (HF's Phi-3 has no ``layer_types``)."""
        return [FULL if self.sliding_window is None else SLIDING] * self.num_hidden_layers

    def check_sliding_window(self) -> None:
        """Phi-3 configs may carry a window longer than the position table (Phi-3-mini-128k: 262144 for
        131072 positions): that window is every earlier token, so nothing is refused."""

    def dropout_rates(self) -> tuple[float, float, float]:
        return 0.0, self.attention_dropout, self.resid_pdrop


__all__ = ["Phi3Config"]
