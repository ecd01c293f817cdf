"""Feed-forward blocks."""
from __future__ import annotations

import jax

from transformers_jax.layers.basic import activation, dense, dense_split
from transformers_jax.partitioning import constrain


def gated_mlp(params: dict, x: jax.Array, act: str) -> jax.Array:
    """``down(act(gate(x)) * up(x))``: SwiGLU (Llama, act silu) or GeGLU (Gemma, act gelu_pytorch_tanh); gate and
    up from one product where decoding fused them (``gate_up_proj``, see ``layers.fuse_dense``)."""
    if "gate_up_proj" in params:
        gate, up = dense_split(params["gate_up_proj"], x, (params["down_proj"]["kernel"].shape[0],) * 2)
    else:
        gate, up = dense(params["gate_proj"], x), dense(params["up_proj"], x)
    hidden = activation(act)(gate) * up
    return dense(params["down_proj"], constrain(hidden, ("batch", "length", "act_mlp")))


def plain_mlp(params: dict, x: jax.Array, act: str, up: str = "up_proj", down: str = "down_proj") -> jax.Array:
    """``down(act(up(x)))``: the two-layer MLP of GPT-2 and BERT."""
    hidden = activation(act)(dense(params[up], x))
    return dense(params[down], constrain(hidden, ("batch", "length", "act_mlp")))
