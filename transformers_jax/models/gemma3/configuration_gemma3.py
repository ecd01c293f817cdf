"""Gemma 3 text config, with Hugging Face's field names and defaults (``model_type`` "gemma3_text")."""
from __future__ import annotations

import dataclasses

from transformers_jax.models._decoder import FULL, SLIDING
from transformers_jax.models.gemma2.configuration_gemma2 import Gemma2Config

DEFAULT_THETA = {FULL: 1_000_000.0, SLIDING: 10_000.0}


@dataclasses.dataclass(frozen=True, eq=False)
class Gemma3TextConfig(Gemma2Config):
    """Config of Gemma 3's text decoder: Gemma 2 plus per-head RMSNorm of queries and keys, five
    local layers to one global (``layer_types``), and a RoPE per layer type: ``rope_parameters``
    is ``{"full_attention": {...}, "sliding_attention": {...}}`` (global layers may be scaled, e.g.
    linear by 8; local ones have their own base).

    Older config.json spellings are read: ``rope_theta`` (global base), ``rope_local_base_freq``
    (local base), ``rope_scaling`` (the global layers' scaling) and ``sliding_window_pattern``
    (kept and written back, as Hugging Face does); ``rope_parameters`` is written in the per-type form.

    ``attn_logit_softcapping`` is kept but not applied: Hugging Face's Gemma 3 attention never
    passes it on (the final logit soft-capping does apply).
    """

    model_type = "gemma3_text"
    qk_norm = True

    vocab_size: int = 262_208
    max_position_embeddings: int = 131_072
    final_logit_softcapping: float | None = None
    attn_logit_softcapping: float | None = None
    use_bidirectional_attention: bool | None = False

    def attention_softcap(self) -> float | None:
        return None  # as Hugging Face's Gemma 3: the field exists, the attention ignores it

    def default_sliding_pattern(self) -> int:
        return int(self.extra.get("sliding_window_pattern", 6))

    @classmethod
    def _normalize_legacy(cls, values: dict) -> dict:
        values = dict(values)
        scaling = values.pop("rope_scaling", None)
        theta = values.pop("rope_theta", None)
        local_theta = values.pop("rope_local_base_freq", None)
        rope = {k: dict(v) for k, v in (values.get("rope_parameters") or {}).items() if isinstance(v, dict)}
        if scaling:
            rope[FULL] = {**rope.get(FULL, {}), **scaling}
        if theta is not None:
            rope.setdefault(FULL, {}).setdefault("rope_theta", float(theta))
        if local_theta is not None:
            rope.setdefault(SLIDING, {}).setdefault("rope_theta", float(local_theta))
        if rope:
            values["rope_parameters"] = rope
        return values

    def __post_init__(self):
        given = self.rope_parameters or {}
        flat = [k for k, v in given.items() if not isinstance(v, dict)]
        if flat:
            raise ValueError(f"{type(self).__name__}: rope_parameters must map layer types ({FULL!r}, {SLIDING!r}) "
                             f"to RoPE dicts; got top-level keys {flat}")
        rope = {}
        for layer_type in (FULL, SLIDING):
            entry = dict(given.get(layer_type) or {})
            if "type" in entry:  # the legacy spelling of rope_type
                entry["rope_type"] = entry.pop("type")
            entry.setdefault("rope_type", "default")
            entry.setdefault("rope_theta", DEFAULT_THETA[layer_type])
            rope[layer_type] = entry
        object.__setattr__(self, "rope_parameters", rope)
        super().__post_init__()
