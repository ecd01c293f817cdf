"""ALBERT config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

import numpy as np

from transformers_jax.configuration_utils import PretrainedConfig
from transformers_jax.models._encoder import EncoderArchitecture


@dataclasses.dataclass(frozen=True, eq=False)
class AlbertConfig(EncoderArchitecture, PretrainedConfig):
    """Config of an ALBERT encoder: embeddings of ``embedding_size`` projected to the hidden size, and
    ``num_hidden_layers`` layers sharing the params of ``num_hidden_groups`` groups."""

    model_type = "albert"

    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 4096
    num_hidden_layers: int = 12
    num_hidden_groups: int = 1
    num_attention_heads: int = 64
    intermediate_size: int = 16384
    inner_group_num: int = 1
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    classifier_dropout_prob: float | None = 0.1
    pad_token_id: int | None = 0
    bos_token_id: int | None = 2
    eos_token_id: int | list | None = 3

    def __post_init__(self):
        super().__post_init__()
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads ({self.num_attention_heads})"
            )
        if self.inner_group_num != 1:
            raise ValueError(
                f"inner_group_num={self.inner_group_num} is not supported (only 1, as in every released ALBERT "
                "checkpoint): each layer group holds one layer here"
            )
        if not 1 <= self.num_hidden_groups <= self.num_hidden_layers:
            raise ValueError(
                f"num_hidden_groups={self.num_hidden_groups} must be between 1 and num_hidden_layers="
                f"{self.num_hidden_layers} (a group no layer uses is not supported)"
            )
        position_type = self.extra.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(f"position_embedding_type={position_type!r} is not supported (only 'absolute')")

    @property
    def embedding_dim(self) -> int:
        return self.embedding_size  # always factorised: HF's encoder.embedding_hidden_mapping_in exists even when equal

    def layer_groups(self) -> np.ndarray:
        """Layer ``i`` runs group ``int(i / (num_hidden_layers / num_hidden_groups))``, as Hugging Face computes it."""
        per_group = self.num_hidden_layers / self.num_hidden_groups
        return np.array([int(i / per_group) for i in range(self.num_hidden_layers)], np.int32)

    def ffn_output_dropout_rate(self) -> float:
        return 0.0  # HF's AlbertLayer adds the FFN output to the residual without dropout

    def classifier_dropout_rate(self) -> float:
        rate = self.classifier_dropout_prob
        return self.hidden_dropout_prob if rate is None else rate
