"""Qwen2-MoE config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models._decoder import FULL, SLIDING
from transformers_jax.models._moe import MoeArchitecture
from transformers_jax.models.qwen2.configuration_qwen2 import QwenSlidingConfig


@dataclasses.dataclass(frozen=True, eq=False)
class Qwen2MoeConfig(MoeArchitecture, QwenSlidingConfig):
    """Config of a Qwen2-MoE decoder: Qwen2's attention (q/k/v biases by ``qkv_bias``, none on o_proj)
    and sparse MoE blocks (``num_experts`` experts of width ``moe_intermediate_size``, a shared expert
    of width ``shared_expert_intermediate_size`` behind a sigmoid gate) in the layers
    ``decoder_sparse_step`` and ``mlp_only_layers`` leave sparse; the others are dense MLPs of width
    ``intermediate_size``."""

    model_type = "qwen2_moe"
    fields_absent_in_hf = ("head_dim", "attention_bias", "mlp_bias")

    intermediate_size: int = 5632
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    num_key_value_heads: int | None = 16
    hidden_size: int = 2048
    decoder_sparse_step: int = 1
    moe_intermediate_size: int = 1408
    shared_expert_intermediate_size: int = 5632
    num_experts_per_tok: int = 4
    num_experts: int = 60
    norm_topk_prob: bool = False
    output_router_logits: bool = False
    router_aux_loss_coef: float = 0.001
    mlp_only_layers: list | None = None
    qkv_bias: bool = True

    def __post_init__(self):
        if self.mlp_only_layers is None:
            object.__setattr__(self, "mlp_only_layers", [])
        object.__setattr__(self, "attention_bias", self.qkv_bias)
        if self.layer_types is None:  # HF's rule for this family: every other layer below max_window_layers
            object.__setattr__(self, "layer_types", [
                SLIDING if self.use_sliding_window and (i + 1) % 2 and i < self.max_window_layers else FULL
                for i in range(self.num_hidden_layers)])
        super().__post_init__()
        self.check_experts()

    @property
    def attention_out_bias(self) -> bool:
        return False

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.pop("attention_bias", None)  # HF's field is qkv_bias
        return out
