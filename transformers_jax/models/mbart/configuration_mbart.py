"""mBART config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models._seq2seq_config import Seq2SeqConfig


@dataclasses.dataclass(frozen=True, eq=False)
class MBartConfig(Seq2SeqConfig):
    """Config of mBART: BART with pre-LayerNorm layers and a final ``layer_norm`` after each stack. Its
    decoder inputs start with each row's last non-padding token (the target language id), so it has no
    ``decoder_start_token_id`` by default."""

    model_type = "mbart"
    norm_position = "pre"
    has_final_layer_norm = True
    decoder_start = "last_token"

    decoder_start_token_id: int | None = None
