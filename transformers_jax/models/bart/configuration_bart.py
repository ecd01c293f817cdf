"""BART config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from transformers_jax.models._seq2seq_config import Seq2SeqConfig


@dataclasses.dataclass(frozen=True, eq=False)
class BartConfig(Seq2SeqConfig):
    """Config of BART: post-LayerNorm encoder and decoder, learned positions from row 2, a LayerNorm
    over the embeddings, token embeddings optionally scaled by sqrt(d_model) (``scale_embedding``).
    Three labels by default, as Hugging Face's ``BartConfig``."""

    model_type = "bart"
    default_num_labels: ClassVar[int] = 3
