"""DeBERTa-v2/v3 config, with Hugging Face's field names and defaults.

Hugging Face's ``DebertaV2Config`` declares some fields and reads others with ``getattr(config,
name, default)`` (``position_buckets``, ``share_att_key``, ``norm_rel_ebd``, ``embedding_size``,
``conv_kernel_size``/``conv_groups``/``conv_act``, ``cls_dropout``, ``pooler_hidden_size``): those live in ``extra`` here (written
back only when the config.json had them) and read through properties with HF's defaults.
"""
from __future__ import annotations

import dataclasses

from transformers_jax.configuration_utils import PretrainedConfig
from transformers_jax.models._encoder import EncoderArchitecture

@dataclasses.dataclass(frozen=True, eq=False)
class DebertaV2Config(EncoderArchitecture, PretrainedConfig):
    """Config of a DeBERTa-v2/v3 encoder: disentangled attention (content-to-position ``c2p`` and
    position-to-content ``p2c`` terms over relative embeddings, optionally log-bucketed), absolute
    positions only with ``position_biased_input``, a factorised ``embedding_size`` projected before
    the embedding LayerNorm."""

    model_type = "deberta-v2"
    project_before_norm = True
    embeddings_project_bias = False  # embeddings.embed_proj is a Linear without bias
    mask_embeddings = True
    has_pooler = False  # the base model has no pooler; the classifiers own a ContextPooler (``pooler.dense``)
    sequence_summary = "dense"  # the ContextPooler: the shared "dense" summary under DeBERTa's names

    vocab_size: int = 128100
    hidden_size: int = 1536
    num_hidden_layers: int = 24
    num_attention_heads: int = 24
    intermediate_size: int = 6144
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-7
    relative_attention: bool = False
    max_relative_positions: int = -1
    pad_token_id: int | None = 0
    position_biased_input: bool = True
    pos_att_type: list | str | None = None
    pooler_dropout: float = 0.0
    pooler_hidden_act: str = "gelu"
    legacy: bool = True

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.pos_att_type, str):  # HF's older spelling "p2c|c2p"
            object.__setattr__(self, "pos_att_type", [x.strip() for x in self.pos_att_type.lower().split("|")])
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads ({self.num_attention_heads})"
            )
        head_size = self.extra.get("attention_head_size")
        if head_size is not None and head_size != self.hidden_size // self.num_attention_heads:
            raise ValueError(f"attention_head_size={head_size} (other than hidden_size // num_attention_heads) "
                             "is not supported")
        if self.conv_kernel_size > 0 and self.conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size={self.conv_kernel_size}: an even kernel changes the length "
                             "(Hugging Face's ConvLayer fails on it too); use an odd size")
        if self.conv_kernel_size > 0 and self.hidden_size % self.conv_groups:
            raise ValueError(f"conv_groups={self.conv_groups} does not divide hidden_size ({self.hidden_size})")
        if self.pooler_hidden_size != self.hidden_size:
            raise ValueError(f"pooler_hidden_size={self.pooler_hidden_size} other than hidden_size "
                             f"({self.hidden_size}) is not supported (Hugging Face's classifier cannot run it either)")
        if self.relative_attention and self.position_buckets > 0 and self.max_relative_positions - 1 == self.position_buckets // 2:
            raise ValueError(f"position_buckets={self.position_buckets} with max_relative_positions="
                             f"{self.max_relative_positions}: the log buckets divide by log(1) (no valid buckets)")
        if not self.legacy and self.embedding_dim != self.hidden_size:
            raise ValueError("legacy=False (the lm_predictions MLM head) needs embedding_size == hidden_size")

    # ----- HF's getattr-read options, from extra -----
    @property
    def position_buckets(self) -> int:
        return self.extra.get("position_buckets", -1)

    @property
    def share_att_key(self) -> bool:
        return bool(self.extra.get("share_att_key", False))

    @property
    def norm_rel_ebd(self) -> list[str]:
        return [x.strip() for x in str(self.extra.get("norm_rel_ebd", "none")).lower().split("|")]

    @property
    def pooler_hidden_size(self) -> int:
        return self.extra.get("pooler_hidden_size", self.hidden_size)

    @property
    def conv_kernel_size(self) -> int:
        return self.extra.get("conv_kernel_size", 0) or 0

    @property
    def conv_groups(self) -> int:
        return self.extra.get("conv_groups", 1)

    @property
    def conv_act(self) -> str:
        return self.extra.get("conv_act", "tanh")

    @property
    def cls_dropout(self) -> float | None:
        return self.extra.get("cls_dropout")

    # ----- derived values -----
    @property
    def position_type(self) -> str:
        return "absolute" if self.position_biased_input else "none"

    @property
    def relative_terms(self) -> tuple[str, ...]:
        """The disentangled terms in use, of ``c2p`` and ``p2c`` (others in ``pos_att_type`` do nothing in v2)."""
        return tuple(t for t in ("c2p", "p2c") if t in (self.pos_att_type or ()))

    @property
    def max_relative(self) -> int:
        """``max_relative_positions``, where values below 1 mean ``max_position_embeddings``."""
        return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings

    @property
    def attention_span(self) -> int:
        """Half the number of relative embeddings: ``position_buckets`` when bucketed, else ``max_relative``."""
        return self.position_buckets if self.position_buckets > 0 else self.max_relative

    def classifier_dropout_rate(self) -> float:
        """Token classification's dropout: ``hidden_dropout_prob`` (HF reads no classifier_dropout)."""
        return self.hidden_dropout_prob

    @property
    def dense_summary_activation(self) -> str:
        return self.pooler_hidden_act

    def summary_dropout_rates(self) -> tuple[float, float]:
        """``pooler_dropout`` before the ContextPooler's dense layer; ``cls_dropout`` (else the hidden
        dropout) between it and the classifier."""
        return self.pooler_dropout, (self.hidden_dropout_prob if self.cls_dropout is None else self.cls_dropout)

    def sequence_classification_loss(self, logits, labels):
        from transformers_jax.models.deberta_v2 import modeling_deberta_v2 as m

        return m.deberta_sequence_loss(logits, labels, self)

    # ----- the shared encoder's relative-position hooks (numerics in modeling_deberta_v2) -----
    def relative_specs(self) -> dict:
        from transformers_jax.models.deberta_v2 import modeling_deberta_v2 as m

        return m.relative_specs(self)

    def attention_specs(self) -> dict:
        from transformers_jax.models.deberta_v2 import modeling_deberta_v2 as m

        return m.attention_specs(self)

    def attention_context(self, encoder_params: dict, input_ids, attention_mask):
        from transformers_jax.models.deberta_v2 import modeling_deberta_v2 as m

        return m.attention_context(self, encoder_params, input_ids)

    def layer_attention_context(self, context, dropout_rng):
        from transformers_jax.models.deberta_v2 import modeling_deberta_v2 as m

        return m.layer_attention_context(self, context, dropout_rng)

    def attention_bias(self, attention_params: dict, hidden, q, k, context):
        from transformers_jax.models.deberta_v2 import modeling_deberta_v2 as m

        return m.disentangled_attention_bias(self, attention_params, q, k, context)

    @property
    def has_first_layer_transform(self) -> bool:
        return self.conv_kernel_size > 0

    def first_layer_transform(self, encoder_params: dict, embeddings, x, attention_mask, dropout_rng):
        from transformers_jax.models.deberta_v2 import modeling_deberta_v2 as m

        return m.conv_layer(self, encoder_params["conv"], embeddings, x, attention_mask, dropout_rng)

    def attention_padding_mask(self, attention_mask):
        from transformers_jax import layers as L

        return L.query_key_padding_mask(attention_mask)
