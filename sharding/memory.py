"""Per-device memory estimate of a training step, before anything is allocated.

Params, gradients and optimizer state are exact: each param's bytes come from its shard shape
under the mesh and rules (``NamedSharding(mesh, spec).shard_shape(shape)``). Activations are a
rough model, meant to tell a run that cannot fit from one that might, not to predict XLA's
buffer assignment:

* without remat, each layer keeps for the backward pass about ``B * T * (8 * D + 4 * F)`` values
  in the compute dtype (layer input, normed inputs, q/k/v, attention output, residuals; the MLP's
  pre-activation, activation, and for gated MLPs the up projection and product), plus the
  attention probabilities ``B * H * T * T`` in float32 (not under a fused attention kernel: splash, cuDNN);
* with full remat (``jax.checkpoint`` around each layer) only each layer's input ``B * T * D`` is
  kept, plus one layer's worth of the above, recomputed during the backward pass;
* the logits ``B * T * V`` once in the compute dtype and once in float32 (the loss's log-softmax and its
  gradient), ``T`` replaced by ``config.loss_chunk_size`` under a chunked loss; measured on XLA:TPU by scripts/aot_compile.py (docs/benchmarks.md).
* a mixture-of-experts layer replaces the ``4 * F`` MLP values by ``S * k * (4 * F_e + 2 * D)``
  for its ``k`` routed experts of width ``F_e`` and their dispatch buffers (rows sorted by expert,
  results), plus ``4 * F_s`` for a shared expert and ``E`` router logits. ``S`` is the size of the
  ``expert`` mesh axis: expert-parallel dispatch is dropless with a static bound, each device
  receiving room for every assignment of all ``S`` devices of its expert group. Params count
  every expert (their shards under the expert axis), activations only the top-k.

``B`` is the batch per device. Under sequence parallelism (a ``length`` rule) ``T`` is each device's
stretch of the length, except as the keys of the attention scores. Activation sharding over a ``tensor``
mesh axis is not modelled, so with tensor parallelism the activation figure is an upper bound.
"""
from __future__ import annotations

import dataclasses
import math
import os

import jax
import numpy as np
from jax.sharding import NamedSharding

from transformers_jax.params import flatten_tree
from transformers_jax.partitioning import logical_to_partition_spec, validate_rules

ACT_VALUES_PER_D = 8  # per layer per token, in units of hidden_size
ACT_VALUES_PER_F = 4  # per layer per token, in units of intermediate_size
OPTIMIZER_FLOAT32_COPIES = {"adamw": 2, "adam": 2, "lion": 1, "momentum": 1, "sgd": 0}
REMAT_MODES = ("none", "full")
COMPONENTS = ("params", "gradients", "optimizer_state", "activations", "logits")
_ADVICE = {
    "params": "shard params over more devices (a larger fsdp or tensor mesh axis) or store them in bfloat16",
    "gradients": "shard params (and so gradients) over more devices (a larger fsdp or tensor mesh axis)",
    "optimizer_state": "shard over more devices (a larger fsdp mesh axis) or use an optimizer with less state",
    "activations": "turn on remat (remat=True), lower batch_per_device or seq_len, or add tensor sharding",
    "activations with remat": "remat is already full: lower batch_per_device or seq_len, or add tensor sharding",
    "logits": "set loss_chunk_size (a chunked loss), lower batch_per_device or seq_len, or shard the vocab axis "
              "over a tensor mesh axis",
}


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Estimated bytes per device of each part of a training step; ``total`` sums them."""

    params: int
    gradients: int
    optimizer_state: int
    activations: int
    logits: int
    settings: dict = dataclasses.field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in COMPONENTS)

    def dominant(self) -> str:
        """The name of the largest component."""
        return max(COMPONENTS, key=lambda name: getattr(self, name))

    def advice(self) -> str:
        """What to try when the step does not fit: the remedies of the largest component, given the settings
        (with full remat, turning remat on is no remedy)."""
        top = self.dominant()
        if top == "activations" and self.settings.get("remat") == "full":
            return _ADVICE["activations with remat"]
        return _ADVICE[top]

    def format(self) -> str:
        """A readable table of the components and the total, in MiB or GiB."""
        head = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        lines = [f"memory per device ({head})" if head else "memory per device"]
        for name in (*COMPONENTS, "total"):
            if name == "total":
                lines.append("  " + "-" * 30)
            lines.append(f"  {name:<16}{format_bytes(getattr(self, name)):>14}")
        return "\n".join(lines)


def format_bytes(n: float) -> str:
    """Bytes as ``'12.34 MiB'`` (below 1 GiB) or ``'1.23 GiB'``."""
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.2f} MiB"


def _normalize_remat(remat) -> str:
    if remat is None or remat is False or remat == "none":
        return "none"
    if remat is True or remat == "full":
        return "full"
    raise ValueError(f"remat must be one of False/'none', True/'full'; got {remat!r}")


def _shard_bytes(spec, mesh, rules, param_dtype) -> tuple[int, int]:
    """(bytes of one device's shard, number of scalars in it) for one param spec."""
    shape = tuple(spec.shape)
    if mesh is not None:
        pspec = logical_to_partition_spec(spec.axes, rules, shape, mesh)
        shape = tuple(NamedSharding(mesh, pspec).shard_shape(shape))
    size = math.prod(shape)
    return size * np.dtype(jax.numpy.dtype(spec.dtype or param_dtype)).itemsize, size


def _positive_int(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def estimate_memory(config, specs, mesh=None, rules=(), *, batch_per_device: int, seq_len: int,
                    optimizer: str = "adamw", remat=None, param_dtype: str | None = None,
                    compute_dtype: str | None = None, lm_logits: bool = True,
                    attention_scores: bool | None = None) -> MemoryEstimate:
    """Estimate per-device bytes of a training step of the model with ``config`` and ``specs``.

    ``mesh`` None means one device. Sizes (hidden, layers, heads, intermediate, vocab) are read
    from ``config``; ``remat``, ``param_dtype`` and ``compute_dtype`` default to the config's.
    Gradients take the params' dtype and sharding; optimizer state is float32, ``adamw``/``adam``
    2 copies per param, ``lion``/``momentum`` 1, ``sgd`` 0. ``lm_logits`` adds the ``B*T*V``
    logits (off for classification heads). ``attention_scores`` says whether the attention keeps its
    [B, H, T, T] float32 scores (default: :func:`keeps_attention_scores`, False under a fused kernel). The
    activation model is in the module docstring.
    """
    _positive_int("batch_per_device", batch_per_device)
    _positive_int("seq_len", seq_len)
    if optimizer not in OPTIMIZER_FLOAT32_COPIES:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZER_FLOAT32_COPIES)}")
    stacks = _mlp_stacks(config, _expert_shards(mesh, rules))
    if getattr(config, "vocab_size", None) is None:
        raise ValueError(f"{type(config).__name__} lacks vocab_size, needed for the memory estimate")
    remat = _normalize_remat(getattr(config, "remat", False) if remat is None else remat)
    param_dtype = param_dtype or getattr(config, "param_dtype", "float32")
    compute_dtype = compute_dtype or getattr(config, "compute_dtype", "float32")

    param_bytes = scalars = 0
    for spec in flatten_tree(specs).values():
        nbytes, size = _shard_bytes(spec, mesh, rules, param_dtype)
        param_bytes, scalars = param_bytes + nbytes, scalars + size

    b, t = batch_per_device, seq_len
    local_t = t / _length_shards(mesh, rules)  # sequence parallelism: each device holds its stretch of the length
    act_item = np.dtype(jax.numpy.dtype(compute_dtype)).itemsize
    kept = largest_layer = activations = 0
    if attention_scores is None:
        attention_scores = keeps_attention_scores(config, mesh, rules)
    for layers, d, heads, mlp_values, attention_maps in stacks:
        attention_maps = attention_maps if attention_scores else 0
        one_layer = b * local_t * (ACT_VALUES_PER_D * d + mlp_values) * act_item
        one_layer += attention_maps * b * heads * local_t * t * 4
        kept += layers * b * local_t * d * act_item
        largest_layer = max(largest_layer, one_layer)
        activations += layers * one_layer
    if remat == "full":
        activations = kept + largest_layer
    # a chunked loss (config.loss_chunk_size) holds one chunk's logits at a time
    chunk = getattr(config, "loss_chunk_size", 0)
    logit_positions = min(local_t, chunk) if chunk else local_t
    settings = {"optimizer": optimizer, "remat": remat, "param_dtype": param_dtype,
                "compute_dtype": compute_dtype, "batch_per_device": b, "seq_len": t}
    return MemoryEstimate(
        params=param_bytes,
        gradients=param_bytes,
        optimizer_state=OPTIMIZER_FLOAT32_COPIES[optimizer] * 4 * scalars,
        activations=int(activations),
        logits=int(b * logit_positions * config.vocab_size * (4 + act_item)) if lm_logits else 0,
        settings=settings,
    )


def keeps_attention_scores(config, mesh=None, rules=()) -> bool:
    """Whether a training step of ``config`` on ``mesh`` holds [B, H, T, T] attention scores: True for the XLA
    attention, False where ``attn_implementation`` picks a fused kernel (splash on TPU, cuDNN on GPU) for the
    platform of ``mesh`` (see ``layers.attention_kernels``)."""
    if not getattr(type(config), "attention_kernels", False) or not hasattr(config, "attention_softcap"):
        return True  # families outside the shared decoder always run the XLA attention
    from transformers_jax.layers.attention_kernels import select_attention_implementation
    from transformers_jax.partitioning import logical_sharding

    def select():
        return select_attention_implementation(
            config.attn_implementation, dtype=jax.numpy.dtype(config.compute_dtype), head_dim=config.head_dim,
            logit_softcap=config.attention_softcap(), interpret=getattr(config, "pallas_interpret", False))

    try:
        if mesh is None:
            return select() == "xla"
        with logical_sharding(mesh, rules):
            return select() == "xla"
    except ValueError:  # a kernel that cannot run here; the step itself will say so
        return True


def _layer_stacks(config) -> list[tuple[int, int, int, int, int]]:
    """(layers, hidden size, heads, MLP width, attention maps per layer) of each stack of layers: the
    config's ``layer_stacks()`` where it has several (an encoder-decoder: the decoder's layers hold a
    self- and a cross-attention map, both taken at ``seq_len``), else the one stack of its fields."""
    if hasattr(config, "layer_stacks"):
        return list(config.layer_stacks())
    fields = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    missing = [f for f in fields if getattr(config, f, None) is None]
    if missing:
        raise ValueError(f"{type(config).__name__} lacks {', '.join(missing)}, needed for the memory estimate")
    return [(config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size, 1)]


def _length_shards(mesh, rules) -> int:
    """How many devices the activations' ``length`` axis is split over (sequence parallelism; 1 without)."""
    if mesh is None:
        return 1
    return math.prod(mesh.shape[a] for a in validate_rules(rules).get("length", ()) if a in mesh.shape)


def _expert_shards(mesh, rules) -> int:
    """How many devices the ``expert`` axis is split over (1 without a mesh or an expert rule)."""
    if mesh is None:
        return 1
    return math.prod(mesh.shape[a] for a in validate_rules(rules).get("expert", ()) if a in mesh.shape)


def _mlp_stacks(config, expert_shards: int) -> list[tuple[int, int, int, int, int]]:
    """(layers, hidden size, heads, MLP values kept per token, attention maps) of each stack: the
    :func:`_layer_stacks` with ``4 * F`` values, and for a mixture-of-experts config its dense and
    sparse layers apart (the sparse ones with the values of the module docstring)."""
    if not hasattr(config, "num_experts_per_tok") or not hasattr(config, "sparse_layers"):
        return [(n, d, h, ACT_VALUES_PER_F * f, m) for n, d, h, f, m in _layer_stacks(config)]
    (layers, d, heads, dense_f, maps), = _layer_stacks(config)
    sparse = int(np.sum(config.sparse_layers()))
    k, width = config.num_experts_per_tok, config.moe_intermediate_size
    moe_values = (expert_shards * k * (ACT_VALUES_PER_F * width + 2 * d) + config.num_experts
                  + ACT_VALUES_PER_F * (getattr(config, "shared_expert_intermediate_size", 0) or 0))
    stacks = [(layers - sparse, d, heads, ACT_VALUES_PER_F * dense_f, maps), (sparse, d, heads, moe_values, maps)]
    return [stack for stack in stacks if stack[0]]


def _host_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import psutil

        return psutil.virtual_memory().total
    except ImportError:
        return None


def device_memory_bytes(device=None) -> int | None:
    """Memory of one device: ``memory_stats()["bytes_limit"]`` when the backend reports it; for
    CPU devices the host's RAM divided by the number of local CPU devices; else None."""
    device = jax.local_devices()[0] if device is None else device
    try:
        stats = device.memory_stats()
    except (NotImplementedError, RuntimeError):  # backends without memory stats (XlaRuntimeError is a RuntimeError)
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    if getattr(device, "platform", None) == "cpu":
        host = _host_memory_bytes()
        if host is not None:
            return host // max(1, len(jax.local_devices(backend="cpu")))
    return None


def check_fits(estimate: MemoryEstimate, available: int | None = None, headroom: float = 0.9) -> float:
    """Raise ValueError when ``estimate.total`` exceeds ``headroom * available`` bytes per device.

    ``available`` defaults to :func:`device_memory_bytes`. The message shows the breakdown, the
    component that dominates and what to try. Returns the fraction of ``available`` used.
    """
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom must be in (0, 1], got {headroom}")
    if available is None:
        available = device_memory_bytes()
        if available is None:
            raise ValueError("could not read this device's memory size; pass available= (bytes per device)")
    if available <= 0:
        raise ValueError(f"available must be positive, got {available}")
    if estimate.total > headroom * available:
        top = estimate.dominant()
        share = getattr(estimate, top) / estimate.total
        raise ValueError(
            f"estimated {format_bytes(estimate.total)} per device does not fit in {headroom:.0%} of "
            f"{format_bytes(available)} available\n{estimate.format()}\n"
            f"{top} dominates ({share:.0%} of the total); try: {estimate.advice()}"
        )
    return estimate.total / available
