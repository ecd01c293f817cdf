"""RoBERTa config (and XLM-RoBERTa's and CamemBERT's, which reuse it), with Hugging Face's field
names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models.bert.configuration_bert import BertConfig


@dataclasses.dataclass(frozen=True, eq=False)
class RobertaConfig(BertConfig):
    """BERT's encoder with positions counted from ``pad_token_id + 1`` over non-padding tokens, a
    first-token ``classifier.dense``/``out_proj`` sequence head and the ``lm_head`` MLM head."""

    model_type = "roberta"
    position_type = "padding_offset"
    sequence_summary = "dense"

    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list | None = 2

    def mlm_activation(self) -> str:
        return "gelu"  # RoBERTa's LM head applies exact GELU whatever hidden_act is


@dataclasses.dataclass(frozen=True, eq=False)
class XLMRobertaConfig(RobertaConfig):
    """XLM-RoBERTa: RoBERTa's architecture (a SentencePiece vocabulary)."""

    model_type = "xlm-roberta"


@dataclasses.dataclass(frozen=True, eq=False)
class CamembertConfig(RobertaConfig):
    """CamemBERT: RoBERTa's architecture (a SentencePiece vocabulary)."""

    model_type = "camembert"
