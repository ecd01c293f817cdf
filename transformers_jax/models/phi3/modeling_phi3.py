"""Phi-3: the shared decoder (``models/_decoder.py``) with Llama's layout. Its checkpoint fuses the
attention's q/k/v into ``qkv_proj`` and the MLP's gate/up into ``gate_up_proj``; our tree keeps
them apart (so tensor parallelism shards each cleanly) and the fused tensors are split on load and
joined on save. Partial rotary embeddings, LongRoPE and the sliding window come from the config."""
from __future__ import annotations

from transformers_jax.modeling_utils import FusedWeight
from transformers_jax.models._decoder import build_family
from transformers_jax.models.phi3.configuration_phi3 import Phi3Config

FUSED = (
    FusedWeight("{prefix}.qkv_proj.{leaf}", ("{prefix}.q_proj.{leaf}", "{prefix}.k_proj.{leaf}", "{prefix}.v_proj.{leaf}")),
    FusedWeight("{prefix}.gate_up_proj.{leaf}", ("{prefix}.gate_proj.{leaf}", "{prefix}.up_proj.{leaf}")),
)

# build_family defines Phi3PreTrainedModel, Phi3Model, Phi3ForCausalLM, Phi3ForSequenceClassification,
# Phi3ForTokenClassification.
globals().update(build_family("Phi3", Phi3Config, __name__, tasks=("base", "causal_lm", "sequence_classification",
                                                             "token_classification"), fused_weights=FUSED))
