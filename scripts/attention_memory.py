#!/usr/bin/env python
"""Memory of XLA attention against the splash kernel on one TPU chip, compiled ahead of time on a CPU host.

Compiles the forward and backward (the gradient of the causal-LM loss wrt every param) of a one-layer
Llama-shaped model for one chip of a described TPU topology (``jax.experimental.topologies`` with
libtpu; no TPU needed) with ``attn_implementation`` "xla" and "splash" (the real Mosaic kernel, not
interpret mode) and prints the compiled program's temporary bytes (``memory_analysis()``): XLA keeps
[H, T, T] float32 scores and probabilities for the backward, splash keeps none.

The layer is Llama 3 8B's (hidden 4096, 32 query heads and 8 key/value heads of 128, MLP 14336), with
a 32000-token vocabulary, bfloat16 params and math, batch 1. A length that does not fit a chip's
memory shows the compiler's error instead of a number.

    JAX_PLATFORMS=cpu python scripts/attention_memory.py                      # v5e and v5p, 8k and 32k
    JAX_PLATFORMS=cpu python scripts/attention_memory.py --chips v5e --lengths 4096
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # a CPU host only compiles: no chip to lock
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import topologies  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

import transformers_jax as tj  # noqa: E402
from transformers_jax.params import abstract_params  # noqa: E402
from transformers_jax.partitioning import logical_sharding  # noqa: E402

LAYER = dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=1, num_attention_heads=32,
             num_key_value_heads=8, head_dim=128, max_position_embeddings=32768, compute_dtype="bfloat16",
             param_dtype="bfloat16")
TOPOLOGIES = {"v5e": "v5e:2x2", "v5p": "v5p:2x2x1"}


def compile_step(device, length: int, implementation: str):
    """The compiled loss gradient for one ``device`` (a TPU described by its topology)."""
    config = tj.LlamaConfig(**LAYER, attn_implementation=implementation)
    mesh = Mesh(np.array([device]), ("data",))
    replicated = NamedSharding(mesh, PartitionSpec())
    params = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated),
                          abstract_params(tj.LlamaForCausalLM.param_specs(config), config.param_dtype))
    ids = jax.ShapeDtypeStruct((1, length), jnp.int32, sharding=replicated)

    def loss(p, ids):
        return tj.LlamaForCausalLM.forward(p, config, ids, labels=ids).loss

    with logical_sharding(mesh, ()):  # the mesh says the platform is TPU (layers.attention_kernels.target_platform)
        return jax.jit(jax.grad(loss)).lower(params, ids).compile()


def refusal(message: str) -> str:
    """The table cell for a program the compiler refused: the temporaries it needed, when it says."""
    needed = re.search(r"required for HLO temporaries \(([\d.]+)([KMGT])\)", message)
    if needed:
        return f"{needed.group(1)}{needed.group(2)} needed: out of HBM, does not compile"
    return "does not compile: " + message.strip().splitlines()[0][:120]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chips", nargs="+", default=list(TOPOLOGIES), choices=list(TOPOLOGIES))
    parser.add_argument("--lengths", nargs="+", type=int, default=[8192, 32768])
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__}; one-layer Llama-3-8B-shaped loss gradient, batch 1, bfloat16")
    print("| chip | tokens | attn_implementation | temp (GiB) | args (GiB) | compile (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for chip in args.chips:
        device = topologies.get_topology_desc(topology_name=TOPOLOGIES[chip], platform="tpu").devices[0]
        for length in args.lengths:
            for implementation in ("xla", "splash"):
                start = time.perf_counter()
                try:
                    stats = compile_step(device, length, implementation).memory_analysis()
                    temp = f"{stats.temp_size_in_bytes / 2**30:.2f}"
                    arguments = f"{stats.argument_size_in_bytes / 2**30:.2f}"
                except Exception as err:  # noqa: BLE001 - the compiler's refusal is the result
                    temp, arguments = refusal(str(err)), ""
                print(f"| {chip} ({device.device_kind}) | {length} | {implementation} | {temp} | {arguments} | "
                      f"{time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
