"""GPT-2 config, with Hugging Face's field names (``n_embd``, ``n_layer`` ...) and defaults."""
from __future__ import annotations

import dataclasses

import numpy as np

from transformers_jax.configuration_utils import PretrainedConfig
from transformers_jax.models._decoder import DecoderArchitecture


@dataclasses.dataclass(frozen=True, eq=False)
class GPT2Config(DecoderArchitecture, PretrainedConfig):
    """Config of GPT-2: the shared decoder with LayerNorm, learned positions and a plain GELU MLP.

    config.json keeps GPT-2's names; the decoder's names (``hidden_size``, ``num_hidden_layers``,
    ``num_attention_heads``, ``max_position_embeddings``) are aliases (``attribute_map``, as in
    Hugging Face) and the rest are properties: ``intermediate_size`` is ``n_inner`` or
    ``4 * n_embd``, every projection has a bias, there is one key/value head per query head.

    ``scale_attn_weights`` (q.k / sqrt(head_dim)) and ``scale_attn_by_inverse_layer_idx`` (a further
    1 / (layer + 1)) make the per-layer attention scale. ``reorder_and_upcast_attn`` is accepted and
    kept: in Hugging Face it only changes how float16/bfloat16 attention scores are computed (scaled
    and upcast before the product); we always compute scores and softmax in float32, so it changes
    nothing here. ``summary_*`` configure ``GPT2DoubleHeadsModel``'s multiple-choice head.
    Cross-attention (``add_cross_attention=True``) is refused.
    """

    model_type = "gpt2"
    attribute_map = {
        "hidden_size": "n_embd",
        "max_position_embeddings": "n_positions",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }
    norm_type = "layer"
    position_type = "learned"
    mlp_type = "plain"

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    activation_function: str = "gelu_new"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    summary_type: str = "cls_index"
    summary_use_proj: bool = True
    summary_activation: str | None = None
    summary_proj_to_labels: bool = True
    summary_first_dropout: float = 0.1
    scale_attn_weights: bool = True
    use_cache: bool = True
    bos_token_id: int | None = 50256
    eos_token_id: int | list | None = 50256
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False
    add_cross_attention: bool = False
    tie_word_embeddings: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.n_embd % self.n_head:
            raise ValueError(f"GPT2Config: n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if self.add_cross_attention:
            raise ValueError("GPT2Config: add_cross_attention=True (GPT-2 as a decoder with cross-attention) is "
                             "not supported")
        if self.summary_type not in ("last", "first", "mean", "cls_index"):
            raise ValueError(f"GPT2Config: summary_type={self.summary_type!r} is not one of 'last', 'first', "
                             "'mean', 'cls_index' ('attn' is not implemented in Hugging Face either)")

    # ----- what the shared decoder reads -----
    @property
    def intermediate_size(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def num_key_value_heads(self) -> int:
        return self.n_head

    @property
    def hidden_act(self) -> str:
        return self.activation_function

    @property
    def norm_eps(self) -> float:
        return self.layer_norm_epsilon

    attention_bias = True
    mlp_bias = True

    def attention_scales(self) -> np.ndarray:
        scale = self.head_dim**-0.5 if self.scale_attn_weights else 1.0
        layers = np.arange(self.n_layer, dtype=np.float64)
        divisor = layers + 1 if self.scale_attn_by_inverse_layer_idx else np.ones_like(layers)
        return (scale / divisor).astype(np.float32)

    def dropout_rates(self) -> tuple[float, float, float]:
        return self.embd_pdrop, self.attn_pdrop, self.resid_pdrop
