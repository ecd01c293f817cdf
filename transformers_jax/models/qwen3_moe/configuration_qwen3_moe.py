"""Qwen3-MoE config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models._decoder import FULL, SLIDING
from transformers_jax.models._moe import MoeArchitecture
from transformers_jax.models.qwen3.configuration_qwen3 import Qwen3Config


@dataclasses.dataclass(frozen=True, eq=False)
class Qwen3MoeConfig(MoeArchitecture, Qwen3Config):
    """Config of a Qwen3-MoE decoder: Qwen3's attention (q/k RMSNorm, ``attention_bias`` on all four
    projections, a sliding window in every layer with ``use_sliding_window``) and sparse MoE blocks
    without a shared expert (``num_local_experts`` of width ``moe_intermediate_size``, ``norm_topk_prob``)
    in the layers ``decoder_sparse_step`` and ``mlp_only_layers`` leave sparse."""

    model_type = "qwen3_moe"
    attribute_map = {"num_experts": "num_local_experts"}  # HF v5 writes num_local_experts; older files num_experts
    fields_absent_in_hf = ("head_dim", "mlp_bias", "max_window_layers", "layer_types")

    hidden_size: int = 2048
    intermediate_size: int = 6144
    num_hidden_layers: int = 24
    num_attention_heads: int = 32
    num_key_value_heads: int | None = 4
    head_dim: int | None = None
    decoder_sparse_step: int = 1
    moe_intermediate_size: int = 768
    num_experts_per_tok: int = 8
    num_local_experts: int = 128
    norm_topk_prob: bool = False
    output_router_logits: bool = False
    router_aux_loss_coef: float = 0.001
    mlp_only_layers: list | None = None

    def __post_init__(self):
        if self.mlp_only_layers is None:
            object.__setattr__(self, "mlp_only_layers", [])
        super().__post_init__()
        self.check_experts()

    def decoder_layer_types(self) -> list[str]:
        return [FULL if self.sliding_window is None else SLIDING] * self.num_hidden_layers

    def to_dict(self) -> dict:
        out = super().to_dict()
        for name in ("max_window_layers", "layer_types"):  # HF's Qwen3-MoE config has neither
            out.pop(name, None)
        return out
