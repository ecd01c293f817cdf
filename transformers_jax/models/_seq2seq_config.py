"""The encoder-decoder's configuration: :class:`Seq2SeqArchitecture` (how a family differs from BART, as class
attributes and hooks; see ``models/_seq2seq.py``) and :class:`Seq2SeqConfig` (the BART-style fields)."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from transformers_jax import layers as L
from transformers_jax.configuration_utils import PretrainedConfig

ENCODER, DECODER = "encoder", "decoder"


class Seq2SeqArchitecture:
    """What the shared encoder-decoder reads from a config beyond BART's fields: switches and hooks."""

    norm_position: ClassVar[str] = "post"
    norm_type: ClassVar[str] = "layer"  # "rms": T5's RMS norm (a scale, no bias, no mean subtracted)
    mlp_type: ClassVar[str] = "plain"  # "gated": T5 v1.1 (act(fc1_0(x)) * fc1_1(x))
    projection_bias: ClassVar[bool] = True  # biases on attention projections and fc1/fc2 (T5 has none)
    position_type: ClassVar[str] = "learned"  # "learned", "sinusoidal"; "relative": T5 (a bias on the scores)
    position_offset: ClassVar[int] = 2  # BART's learned table starts at row 2
    has_layernorm_embedding: ClassVar[bool] = True
    has_final_layer_norm: ClassVar[bool] = False
    final_norm_dropout: ClassVar[bool] = False  # dropout after each stack's final norm (T5)
    decoder_start: ClassVar[str] = "start_token"  # or "last_token" (mBART)
    model_shifts_input_ids: ClassVar[bool] = True
    stacks_always_read_shared: ClassVar[bool] = False  # T5: the stacks read ``shared`` even with an untied LM head
    has_final_logits_bias: ClassVar[bool] = True  # BART's ``final_logits_bias`` buffer (T5 has none)

    # -- shapes ----------------------------------------------------------------------------------
    @property
    def share_embeddings(self) -> bool:
        """One token table for both stacks (Marian's ``share_encoder_decoder_embeddings``)."""
        return bool(getattr(self, "share_encoder_decoder_embeddings", True))

    @property
    def target_vocab_size(self) -> int:
        """Rows of the decoder's token table and columns of the LM head."""
        if self.share_embeddings:
            return self.vocab_size
        return getattr(self, "decoder_vocab_size", None) or self.vocab_size

    def stack_layers(self, side: str) -> int:
        return self.encoder_layers if side == ENCODER else self.decoder_layers

    def stack_heads(self, side: str) -> int:
        return self.encoder_attention_heads if side == ENCODER else self.decoder_attention_heads

    def stack_ffn_dim(self, side: str) -> int:
        return self.encoder_ffn_dim if side == ENCODER else self.decoder_ffn_dim

    def stack_head_dim(self, side: str) -> int:
        """The width of one attention head: ``d_model // heads`` (BART); T5's ``d_kv``."""
        heads = self.stack_heads(side)
        if self.d_model % heads:
            raise ValueError(f"d_model ({self.d_model}) is not a multiple of {side}_attention_heads ({heads})")
        return self.d_model // heads

    def layer_stacks(self) -> list[tuple[int, int, int, int, int]]:
        """(layers, d_model, heads, MLP width, attention maps per layer) of the encoder and the decoder
        (self- and cross-attention), for the memory estimate (``sharding/memory.py``)."""
        return [(self.stack_layers(side), self.d_model, self.stack_heads(side), self.stack_ffn_dim(side),
                 1 if side == ENCODER else 2) for side in (ENCODER, DECODER)]

    @property
    def norm_eps(self) -> float:
        return 1e-5  # torch.nn.LayerNorm's default: BART's LayerNorms take no eps from the config

    def embedding_scale(self) -> float:
        return float(np.sqrt(self.d_model)) if self.scale_embedding else 1.0

    # -- hooks (T5) ------------------------------------------------------------------------------
    def attention_scale(self, side: str) -> float:
        """The factor on q.k (``head_dim ** -0.5``; T5 uses 1)."""
        return self.stack_head_dim(side) ** -0.5

    def param_std(self, name: str) -> float:
        """The initialiser's standard deviation of the weights named ``name`` (``shared``, ``q_proj``,
        ``fc1``, ``lm_head``, ``classification_head``, ...): ``init_std`` for all (BART); T5 scales by fan-in."""
        return self.init_std

    def decoder_output_scale(self) -> float:
        """The factor on the decoder's output before the LM head (T5 v1.0: ``d_model ** -0.5``)."""
        return 1.0

    def stack_extra_specs(self, side: str) -> dict:
        """Extra params of a stack (T5's relative attention bias table); none by default."""
        return {}

    def self_attention_extra_specs(self, side: str) -> dict:
        """Extra params of each layer's self-attention (umT5's relative attention bias table); none by default."""
        return {}

    def self_attention_bias(self, stack_params: dict, layer_params: dict, side: str, query_positions, key_positions):
        """An additive self-attention bias [B or 1, H, T, S] for one layer (T5: from the stack's relative
        bias table, shared by its layers; umT5: from the layer's own table), or None. ``query_positions``
        [B or 1, T] and ``key_positions`` [B or 1, S] are int32 positions in the sequence (traced while
        decoding with a cache, where the query is one new token and the keys are the cache slots)."""
        return None

    def check_architecture(self) -> None:
        """Refuse switch values the skeleton does not implement, and head counts that do not fit."""
        for name, value, supported in (("norm_type", self.norm_type, ("layer", "rms")),
                                       ("mlp_type", self.mlp_type, ("plain", "gated")),
                                       ("position_type", self.position_type, ("learned", "sinusoidal", "relative")),
                                       ("norm_position", self.norm_position, ("post", "pre")),
                                       ("decoder_start", self.decoder_start, ("start_token", "last_token"))):
            if value not in supported:
                raise ValueError(f"{type(self).__name__}: {name}={value!r} is not supported by the shared "
                                 f"encoder-decoder (supported: {supported})")
        for side in (ENCODER, DECODER):
            self.stack_head_dim(side)  # raises when the heads do not divide the width

    # -- decoder inputs --------------------------------------------------------------------------
    def decoder_inputs_from_labels(self, labels):
        """``decoder_input_ids`` [B, T] from ``labels`` (-100 read as padding), as Hugging Face shifts them."""
        if self.pad_token_id is None:
            raise ValueError(f"{type(self).__name__}: pad_token_id must be set to build decoder_input_ids from "
                             "labels or input_ids")
        labels = jnp.where(labels == -100, self.pad_token_id, labels)
        if self.decoder_start == "last_token":  # mBART: each row's last non-padding token (its language id) first
            last = jnp.sum(labels != self.pad_token_id, axis=1) - 1
            start = jnp.take_along_axis(labels, jnp.maximum(last, 0)[:, None], axis=1)
        else:
            if self.decoder_start_token_id is None:
                raise ValueError(f"{type(self).__name__}: decoder_start_token_id must be set in the config to build "
                                 "decoder_input_ids from labels or input_ids (or pass decoder_input_ids)")
            start = jnp.full_like(labels[:, :1], self.decoder_start_token_id)
        return jnp.concatenate([start, labels[:, :-1]], axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class Seq2SeqConfig(Seq2SeqArchitecture, PretrainedConfig):
    """Fields of the BART-like encoder-decoders (Hugging Face's BART names and defaults)."""

    attribute_map: ClassVar[dict[str, str]] = {"num_attention_heads": "encoder_attention_heads",
                                               "hidden_size": "d_model", "num_hidden_layers": "encoder_layers"}
    default_num_labels: ClassVar[int] = 2

    vocab_size: int = 50265
    max_position_embeddings: int = 1024
    encoder_layers: int = 12
    encoder_ffn_dim: int = 4096
    encoder_attention_heads: int = 16
    decoder_layers: int = 12
    decoder_ffn_dim: int = 4096
    decoder_attention_heads: int = 16
    encoder_layerdrop: float = 0.0
    decoder_layerdrop: float = 0.0
    activation_function: str = "gelu"
    d_model: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    classifier_dropout: float = 0.0
    scale_embedding: bool = False
    use_cache: bool = True
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list | None = 2
    is_encoder_decoder: bool = True
    decoder_start_token_id: int | None = 2
    forced_eos_token_id: int | list | None = 2
    is_decoder: bool = False
    tie_word_embeddings: bool = True

    def __post_init__(self):
        if self.id2label is None:
            object.__setattr__(self, "id2label", {i: f"LABEL_{i}" for i in range(self.default_num_labels)})
        super().__post_init__()
        L.activation(self.activation_function)  # refuse unknown activations early
        self.check_architecture()

    @property
    def initializer_range(self) -> float:
        return self.init_std
