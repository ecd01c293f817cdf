"""T5 config, with Hugging Face's field names and defaults; :class:`T5ArchitectureConfig` is the part that
mT5 and umT5 share."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from transformers_jax import layers as L
from transformers_jax.configuration_utils import PretrainedConfig
from transformers_jax.models._seq2seq_config import ENCODER, Seq2SeqArchitecture
from transformers_jax.params import embedding_spec


@dataclasses.dataclass(frozen=True, eq=False)
class T5ArchitectureConfig(Seq2SeqArchitecture, PretrainedConfig):
    """The fields and skeleton settings of T5, mT5 and umT5 (Hugging Face's names; T5's defaults).

    Pre-norm layers with T5's RMS norm (``layer_norm_epsilon``) and a final norm after each stack, no
    biases, no position embeddings: a relative position bias (``relative_attention_num_buckets``
    buckets up to ``relative_attention_max_distance``; bidirectional in the encoder, causal in the
    decoder) is added to the unscaled q.k scores of every self-attention layer. Attention heads are
    ``d_kv`` wide, so their inner width ``num_heads * d_kv`` need not be ``d_model``.
    ``feed_forward_proj`` is ``"{act}"`` (``wi``, act, ``wo``) or ``"gated-{act}"`` (act(``wi_0``) *
    ``wi_1``, then ``wo``; ``"gated-gelu"`` means the tanh GELU), parsed into ``dense_act_fn`` and
    ``is_gated_act`` unless a config.json gives them. Dropout ``dropout_rate`` everywhere (embeddings,
    attention probabilities, sub-layer outputs, MLP hidden units, after each stack's final norm).
    Both stacks read the ``shared`` token table; ``tie_word_embeddings`` ties the LM head to it. The
    bare model needs ``decoder_input_ids``; the classification and QA heads build them from
    ``input_ids`` (shifted right behind ``decoder_start_token_id``) when none are given.
    """

    attribute_map: ClassVar[dict[str, str]] = {"hidden_size": "d_model", "num_attention_heads": "num_heads",
                                               "num_hidden_layers": "num_layers", "head_dim": "d_kv"}
    norm_position = "pre"
    norm_type = "rms"
    projection_bias = False
    position_type = "relative"
    has_layernorm_embedding = False
    has_final_layer_norm = True
    final_norm_dropout = True
    model_shifts_input_ids = False
    stacks_always_read_shared = True
    has_final_logits_bias = False
    per_layer_relative_bias: ClassVar[bool] = False  # umT5: every self-attention layer has its own bias table
    encoder_layerdrop: ClassVar[float] = 0.0  # T5 has no layer drop
    decoder_layerdrop: ClassVar[float] = 0.0

    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: int | None = None
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    initializer_factor: float = 1.0
    feed_forward_proj: str = "relu"
    dense_act_fn: str | None = None  # from feed_forward_proj unless given
    is_gated_act: bool | None = None  # from feed_forward_proj unless given
    is_encoder_decoder: bool = True
    use_cache: bool = True
    pad_token_id: int | None = 0
    eos_token_id: int | list | None = 1
    decoder_start_token_id: int | None = 0
    classifier_dropout: float = 0.0
    is_decoder: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.num_decoder_layers is None:
            object.__setattr__(self, "num_decoder_layers", self.num_layers)
        parts = self.feed_forward_proj.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise ValueError(f"feed_forward_proj={self.feed_forward_proj!r} is not of the form 'gated-{{act}}' or "
                             "'{act}' (e.g. 'gated-gelu' or 'relu')")
        if self.dense_act_fn is None:
            act = "gelu_new" if self.feed_forward_proj == "gated-gelu" else parts[-1]
            object.__setattr__(self, "dense_act_fn", act)
        if self.is_gated_act is None:
            object.__setattr__(self, "is_gated_act", parts[0] == "gated")
        L.activation(self.dense_act_fn)  # refuse unknown activations early
        for name in ("d_model", "d_kv", "d_ff", "num_heads", "num_layers", "num_decoder_layers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {getattr(self, name)!r}")
        buckets, distance = self.relative_attention_num_buckets, self.relative_attention_max_distance
        if buckets < 4 or distance <= buckets // 2:
            raise ValueError(
                f"{type(self).__name__}: relative_attention_max_distance ({distance}) must exceed "
                f"relative_attention_num_buckets // 2 ({buckets // 2}), with at least 4 buckets: T5's log buckets "
                "saturate only beyond the exact ones (Hugging Face computes bucket ids outside the table otherwise)")
        self.check_architecture()

    # -- what the shared encoder-decoder reads, in T5's terms --------------------------------------
    @property
    def mlp_type(self) -> str:
        return "gated" if self.is_gated_act else "plain"

    @property
    def activation_function(self) -> str:
        return self.dense_act_fn

    @property
    def dropout(self) -> float:
        return self.dropout_rate

    @property
    def attention_dropout(self) -> float:
        return self.dropout_rate

    @property
    def activation_dropout(self) -> float:
        return self.dropout_rate

    @property
    def init_std(self) -> float:
        return self.initializer_factor

    @property
    def initializer_range(self) -> float:
        return self.initializer_factor

    @property
    def norm_eps(self) -> float:
        return self.layer_norm_epsilon

    def stack_layers(self, side: str) -> int:
        return self.num_layers if side == ENCODER else self.num_decoder_layers

    def stack_heads(self, side: str) -> int:
        return self.num_heads

    def stack_ffn_dim(self, side: str) -> int:
        return self.d_ff

    def stack_head_dim(self, side: str) -> int:
        return self.d_kv

    def embedding_scale(self) -> float:
        return 1.0

    def attention_scale(self, side: str) -> float:
        return 1.0  # T5 folds the 1/sqrt(d_kv) into its initialisation

    def param_std(self, name: str) -> float:
        """Hugging Face's T5 initialiser: ``initializer_factor`` times 1 (token tables, LM head, token
        classifier) or one over the square root of the weight's fan-in."""
        factor, d, inner = self.initializer_factor, self.d_model, self.num_heads * self.d_kv
        fan_in = {"q_proj": d * self.d_kv, "k_proj": d, "v_proj": d, "out_proj": inner, "fc1": d, "fc2": self.d_ff,
                  "relative_attention_bias": d, "classification_head": d, "qa_outputs": d}
        return factor * (fan_in[name] ** -0.5 if name in fan_in else 1.0)


    # -- the relative position bias --------------------------------------------------------------
    def _bias_spec(self) -> dict:
        return {"relative_attention_bias": embedding_spec(self.relative_attention_num_buckets, self.num_heads,
                                                          self.param_std("relative_attention_bias"), (None, "heads"))}

    def stack_extra_specs(self, side: str) -> dict:
        """T5's relative bias table [buckets, heads], one per stack (the checkpoint keeps it in block 0)."""
        return {} if self.per_layer_relative_bias else self._bias_spec()

    def self_attention_extra_specs(self, side: str) -> dict:
        """umT5's relative bias table [buckets, heads] in every self-attention layer."""
        return self._bias_spec() if self.per_layer_relative_bias else {}

    def self_attention_bias(self, stack_params: dict, layer_params: dict, side: str, query_positions, key_positions):
        """The relative position bias [B or 1, H, T, S] of ``key - query`` (bidirectional buckets in the
        encoder, causal in the decoder), from the stack's table or (umT5) the layer's own."""
        owner = layer_params["self_attn"] if self.per_layer_relative_bias else stack_params
        return L.relative_position_bias(owner["relative_attention_bias"]["embedding"], query_positions, key_positions,
                                        num_buckets=self.relative_attention_num_buckets,
                                        max_distance=self.relative_attention_max_distance,
                                        bidirectional=side == ENCODER)


@dataclasses.dataclass(frozen=True, eq=False)
class T5Config(T5ArchitectureConfig):
    """Config of T5 (v1.0: ``feed_forward_proj="relu"``, a tied LM head over decoder outputs scaled by
    ``d_model ** -0.5``; v1.1 / FLAN-T5: ``"gated-gelu"``, ``tie_word_embeddings=False``, no scaling).
    ``scale_decoder_outputs`` follows ``tie_word_embeddings`` unless given (Hugging Face v5 writes it
    and then always writes ``tie_word_embeddings: true``; a checkpoint whose LM head differs from
    ``shared`` is read untied). ``decoder_start_token_id`` is 0 (the pad token), as T5's checkpoints
    say; Hugging Face's class has no default for it."""

    model_type = "t5"

    scale_decoder_outputs: bool | None = None

    def __post_init__(self):
        if self.scale_decoder_outputs is None:
            object.__setattr__(self, "scale_decoder_outputs", bool(self.tie_word_embeddings))
        super().__post_init__()

    def decoder_output_scale(self) -> float:
        """``d_model ** -0.5`` on the decoder output before the LM head when ``scale_decoder_outputs`` (v1.0)."""
        return self.d_model ** -0.5 if self.scale_decoder_outputs else 1.0
