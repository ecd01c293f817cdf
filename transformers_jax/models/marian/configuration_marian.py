"""Marian config, with Hugging Face's field names and defaults."""
from __future__ import annotations

import dataclasses

from transformers_jax.models._seq2seq_config import Seq2SeqConfig


@dataclasses.dataclass(frozen=True, eq=False)
class MarianConfig(Seq2SeqConfig):
    """Config of Marian (OPUS-MT): BART's post-norm layers with fixed sinusoidal positions (sines in the
    first half of each vector, cosines in the second; computed, not params) and no LayerNorm over the
    embeddings. ``share_encoder_decoder_embeddings=False`` gives the decoder its own table of
    ``decoder_vocab_size`` rows (and the LM head that many outputs). The bare model needs
    ``decoder_input_ids``."""

    model_type = "marian"
    position_type = "sinusoidal"
    has_layernorm_embedding = False
    model_shifts_input_ids = False

    vocab_size: int = 58101
    decoder_vocab_size: int | None = None
    pad_token_id: int | None = 58100
    bos_token_id: int | None = None
    eos_token_id: int | list | None = 0
    decoder_start_token_id: int | None = 58100
    forced_eos_token_id: int | list | None = 0
    share_encoder_decoder_embeddings: bool = True

    def __post_init__(self):
        if self.decoder_vocab_size is None:
            object.__setattr__(self, "decoder_vocab_size", self.vocab_size)
        super().__post_init__()
