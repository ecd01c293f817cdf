"""MPNet config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from transformers_jax import layers as L
from transformers_jax.configuration_utils import PretrainedConfig
from transformers_jax.models._encoder import EncoderArchitecture
from transformers_jax.params import embedding_spec

# HF's MPNetEncoder.compute_position_bias buckets with its defaults (32 buckets, max distance 128)
# whatever relative_attention_num_buckets says; that field only sizes the table.
BUCKETS, MAX_DISTANCE = 32, 128


@dataclasses.dataclass(frozen=True, eq=False)
class MPNetConfig(EncoderArchitecture, PretrainedConfig):
    """Config of an MPNet encoder: BERT's post-LayerNorm layers without token types, positions counted
    over non-padding tokens from 2 (RoBERTa's, with the padding id fixed at 1 as HF's MPNet has it),
    and a bucketed relative position bias [buckets, heads] shared by all layers, added to the
    attention scores."""

    model_type = "mpnet"
    position_type = "padding_offset"
    sequence_summary = "dense"

    vocab_size: int = 30527
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    relative_attention_num_buckets: int = 32
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list | None = 2

    def __post_init__(self):
        super().__post_init__()
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads ({self.num_attention_heads})"
            )
        if self.relative_attention_num_buckets < BUCKETS:
            raise ValueError(
                f"relative_attention_num_buckets={self.relative_attention_num_buckets} is too small: MPNet's "
                f"relative positions fall into {BUCKETS} buckets"
            )

    @property
    def has_token_types(self) -> bool:
        return False

    @property
    def position_padding_id(self) -> int:
        return 1  # HF's MPNetEmbeddings.padding_idx, whatever pad_token_id says

    def mlm_activation(self) -> str:
        return "gelu"  # MPNet's LM head applies exact GELU whatever hidden_act is

    # -- the relative position bias ---------------------------------------------------------------------
    def relative_specs(self) -> dict:
        """``encoder.relative_attention_bias``: one bias per (bucket, head)."""
        return {"relative_attention_bias": embedding_spec(self.relative_attention_num_buckets, self.num_attention_heads,
                                                          self.initializer_range, (None, "heads"))}

    def attention_context(self, encoder_params: dict, input_ids, attention_mask):
        """The bias [1, H, T, T] of every layer, from the buckets of ``key - query`` (static ids)."""
        length = input_ids.shape[1]
        buckets = L.relative_position_buckets(length, length, BUCKETS, MAX_DISTANCE)  # [T, T]
        table = encoder_params["relative_attention_bias"]["embedding"]  # [buckets, H]
        return jnp.take(table, jnp.asarray(buckets), axis=0).transpose(2, 0, 1)[None]

    def attention_bias(self, attention_params: dict, hidden, q, k, context):
        return self.head_dim**-0.5, context
