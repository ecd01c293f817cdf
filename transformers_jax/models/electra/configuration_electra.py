"""ELECTRA config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models.bert.configuration_bert import BertConfig


@dataclasses.dataclass(frozen=True, eq=False)
class ElectraConfig(BertConfig):
    """BERT's encoder with embeddings of ``embedding_size`` projected to ``hidden_size``
    (``embeddings_project``, only when the sizes differ), no pooler, a first-token
    ``classifier.dense``/``out_proj`` sequence head with GELU, and a "sequence summary" for multiple
    choice configured by the ``summary_*`` fields.

    ``summary_activation`` is Hugging Face's config field (the multiple-choice summary's
    activation); ELECTRA's sequence classifier always applies GELU, as in Hugging Face."""

    model_type = "electra"
    has_pooler = False
    sequence_summary = "dense"
    dense_summary_activation = "gelu"  # the sequence classifier's, whatever summary_activation says

    vocab_size: int = 30522
    embedding_size: int = 128
    hidden_size: int = 256
    num_hidden_layers: int = 12
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    hidden_act: str = "gelu"
    summary_type: str = "first"
    summary_use_proj: bool = True
    summary_activation: str | None = "gelu"
    summary_last_dropout: float = 0.1
    use_cache: bool = True
    is_decoder: bool = False
    add_cross_attention: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.is_decoder or self.add_cross_attention:
            raise ValueError("ElectraConfig: is_decoder=True / add_cross_attention=True (ElectraForCausalLM, "
                             "cross-attention) are not supported; only the bidirectional encoder is")

    def mlm_activation(self) -> str:
        return "gelu"  # ELECTRA's generator head applies exact GELU whatever hidden_act is
