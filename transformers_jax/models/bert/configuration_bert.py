"""BERT config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.configuration_utils import PretrainedConfig
from transformers_jax.models._encoder import EncoderArchitecture


@dataclasses.dataclass(frozen=True, eq=False)
class BertConfig(EncoderArchitecture, PretrainedConfig):
    """Config of a BERT encoder (absolute position embeddings, post-LayerNorm)."""

    model_type = "bert"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    classifier_dropout: float | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads ({self.num_attention_heads})"
            )
        position_type = self.extra.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(f"position_embedding_type={position_type!r} is not supported (only 'absolute')")
