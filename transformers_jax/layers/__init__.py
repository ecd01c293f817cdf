"""Shared building blocks, written once (``from transformers_jax import layers as L``).

``basic`` (activations, dropout, dense, norms, embeddings, soft-capping, head splitting),
``positions`` (rotary embeddings, relative positions and buckets), ``masks`` (padding, causal, sliding window, packed documents),
``attention`` (``dot_product_attention``), ``attention_kernels`` (XLA, splash or cuDNN causal
attention chosen by ``attn_implementation``), ``kv_cache`` (the cache layout and its operations),
``mlp`` (gated and plain feed-forward blocks), ``moe`` (mixture-of-experts routing and grouped matmuls), ``stack`` (``run_layers``).
"""
from transformers_jax.layers import attention_kernels, kv_cache, moe
from transformers_jax.layers.attention import dot_product_attention
from transformers_jax.layers.attention_kernels import CausalMaskSpec, causal_attention, select_attention_implementation
from transformers_jax.layers.basic import (
    ACT2FN,
    activation,
    dense,
    dropout,
    dense_split,
    embed,
    fuse_dense,
    layer_norm,
    merge_heads,
    rms_norm,
    softcap,
    split_heads,
    split_key,
    take_positions,
    tied_logits,
)
from transformers_jax.layers.masks import (
    causal_padding_mask,
    padding_mask,
    query_key_padding_mask,
    query_key_slots,
    sliding_window_mask,
)
from transformers_jax.layers.mlp import gated_mlp, plain_mlp
from transformers_jax.layers.positions import (
    ROPE_TYPES,
    apply_rotary,
    gather_relative_scores,
    log_bucket_distances,
    relative_bucket_table,
    relative_distance_table,
    relative_position_bias,
    relative_position_buckets,
    relative_position_map,
    rope_cos_sin,
    rope_inverse_frequencies,
    rotary_cos_sin,
)
from transformers_jax.layers.stack import run_layers, unstack_layers


__all__ = [
    "ACT2FN", "activation", "apply_rotary", "attention_kernels", "causal_attention", "CausalMaskSpec",
    "causal_padding_mask", "select_attention_implementation", "dense", "dot_product_attention", "dropout",
    "embed", "gated_mlp", "gather_relative_scores", "kv_cache", "layer_norm", "log_bucket_distances", "merge_heads", "moe",
    "padding_mask", "plain_mlp", "query_key_padding_mask", "query_key_slots", "relative_distance_table",
    "relative_bucket_table", "relative_position_bias", "relative_position_buckets",
    "relative_position_map", "rms_norm", "ROPE_TYPES", "rope_cos_sin",
    "rope_inverse_frequencies", "rotary_cos_sin", "run_layers",
    "sliding_window_mask", "softcap",
    "split_heads", "split_key", "tied_logits", "unstack_layers",
]
