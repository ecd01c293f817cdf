"""DistilBERT config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.configuration_utils import PretrainedConfig
from transformers_jax.models._encoder import EncoderArchitecture


@dataclasses.dataclass(frozen=True, eq=False)
class DistilBertConfig(EncoderArchitecture, PretrainedConfig):
    """Config of a DistilBERT encoder: BERT's post-LayerNorm layers under other names, no token
    types, no pooler, LayerNorm eps fixed at 1e-12, optionally a sinusoidal position table.

    Its config.json says ``dim``, ``n_layers``, ``n_heads``, ``hidden_dim``, ``activation``,
    ``dropout``, ``attention_dropout``; the shared encoder reads BERT's names (``hidden_size``,
    ``num_hidden_layers``, ``num_attention_heads`` are Hugging Face's own aliases; the others are
    properties here, so they are not config keys, as in Hugging Face)."""

    model_type = "distilbert"
    attribute_map = {"hidden_size": "dim", "num_attention_heads": "n_heads", "num_hidden_layers": "n_layers"}
    has_pooler = False
    sequence_summary = "dense"  # pre_classifier + ReLU over the first token, then classifier
    dense_summary_activation = "relu"

    vocab_size: int = 30522
    max_position_embeddings: int = 512
    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 4 * 768
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    initializer_range: float = 0.02
    qa_dropout: float = 0.1
    seq_classif_dropout: float = 0.2
    pad_token_id: int | None = 0

    def __post_init__(self):
        super().__post_init__()
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) is not a multiple of n_heads ({self.n_heads})")

    # -- BERT's names, read by the shared encoder ------------------------------------------------
    @property
    def intermediate_size(self) -> int:
        return self.hidden_dim

    @property
    def hidden_act(self) -> str:
        return self.activation

    @property
    def has_token_types(self) -> bool:
        return False

    @property
    def norm_eps(self) -> float:
        return 1e-12  # every DistilBERT LayerNorm is built with eps=1e-12; the config has no field for it

    @property
    def position_embedding_init(self) -> str:
        return "sinusoidal" if self.sinusoidal_pos_embds else "normal"

    def dropout_rates(self) -> tuple[float, float]:
        return self.dropout, self.attention_dropout

    def classifier_dropout_rate(self) -> float:
        return self.dropout  # the token classifier's dropout (the sequence heads use seq_classif_dropout)

    def summary_dropout_rates(self) -> tuple[float, float]:
        return 0.0, self.seq_classif_dropout  # none before pre_classifier, as in Hugging Face
