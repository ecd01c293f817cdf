"""Mixtral config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models._moe import MoeArchitecture
from transformers_jax.models.mistral.configuration_mistral import MistralConfig


@dataclasses.dataclass(frozen=True, eq=False)
class MixtralConfig(MoeArchitecture, MistralConfig):
    """Config of a Mixtral decoder: Mistral's attention (a sliding window in every layer when
    ``sliding_window`` is set) and in every layer a sparse MoE block of ``num_local_experts`` gated
    experts of width ``intermediate_size``, ``num_experts_per_tok`` per token, top-k weights renormalised."""

    model_type = "mixtral"
    attribute_map = {"num_experts": "num_local_experts"}
    norm_topk_prob = True  # Mixtral always renormalises its top-k weights

    intermediate_size: int = 14336
    rms_norm_eps: float = 1e-5
    sliding_window: int | None = None
    num_local_experts: int = 8
    num_experts_per_tok: int = 2
    output_router_logits: bool = False
    router_aux_loss_coef: float = 0.001
    router_jitter_noise: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        self.check_experts()

    @property
    def moe_intermediate_size(self) -> int:
        return self.intermediate_size
