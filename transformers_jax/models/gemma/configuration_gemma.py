"""Gemma config, with Hugging Face's field names and defaults (``model_type`` "gemma")."""
from __future__ import annotations

import dataclasses
import logging

from transformers_jax.models._decoder import DecoderConfig

logger = logging.getLogger("transformers_jax")


@dataclasses.dataclass(frozen=True, eq=False)
class GemmaConfig(DecoderConfig):
    """Config of a Gemma decoder: the Llama-style decoder with RMSNorm times ``1 + weight``,
    embeddings times sqrt(hidden_size), a GeGLU MLP (``hidden_act`` gelu_pytorch_tanh), an explicit
    ``head_dim`` and tied embeddings.

    As Hugging Face does, the legacy ``hidden_act="gelu"`` of the original releases means the tanh
    approximation and is read (and written back) as ``gelu_pytorch_tanh``. Bidirectional attention
    (``use_bidirectional_attention``, EmbeddingGemma) is not supported.
    """

    model_type = "gemma"
    norm_unit_offset = True
    scale_embeddings = True

    vocab_size: int = 256000
    hidden_size: int = 3072
    intermediate_size: int = 24576
    num_hidden_layers: int = 28
    num_attention_heads: int = 16
    num_key_value_heads: int | None = 16
    head_dim: int | None = 256
    hidden_act: str | None = "gelu_pytorch_tanh"
    max_position_embeddings: int = 8192
    pad_token_id: int | None = 0
    eos_token_id: int | list | None = 1
    bos_token_id: int | None = 2
    tie_word_embeddings: bool = True
    use_bidirectional_attention: bool | None = None

    def __post_init__(self):
        if self.model_type == "gemma" and self.hidden_act == "gelu":
            logger.warning('hidden_act="gelu" in a Gemma config means the tanh approximation (as in Hugging Face): '
                           'using "gelu_pytorch_tanh"')
            object.__setattr__(self, "hidden_act", "gelu_pytorch_tanh")
        if self.use_bidirectional_attention:
            raise ValueError(f"{type(self).__name__}: use_bidirectional_attention=True (bidirectional, "
                             "embedding-style Gemma) is not supported; only causal decoders are")
        if self.mlp_bias:
            raise ValueError(f"{type(self).__name__}: Gemma's MLP has no biases (mlp_bias must be False)")
        super().__post_init__()

    def to_dict(self) -> dict:
        """HF's keys; the shared decoder's ``mlp_bias`` (always False here) and an unset
        ``hidden_act`` (Gemma 2/3) are left out, as Hugging Face's config has neither."""
        out = super().to_dict()
        if "mlp_bias" not in self.extra:
            out.pop("mlp_bias", None)
        if out.get("hidden_act", "") is None:
            out.pop("hidden_act")
        return out
