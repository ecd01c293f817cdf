"""Training FLOPs per token, accelerator peak FLOP/s and model FLOPs utilisation (MFU).

The count follows the usual convention (Kaplan et al. 2020, "Scaling Laws for Neural Language
Models", section 2.1; PaLM, Chowdhery et al. 2022, appendix B):

    flops_per_token = 6 * N + 12 * num_layers * seq_len * (num_heads * head_dim)

* ``6 * N``: a matmul with N weights costs 2N FLOPs per token forward and 4N backward (gradients
  with respect to inputs and to weights). N counts the weights of matmuls only (see
  :func:`matmul_param_count`): biases, norm scales and the input embedding lookups (a gather, not
  a matmul) are left out; the LM head ``hidden -> vocab`` matmul is in, tied or not.
* Mixture of experts: a token runs ``k`` of each MoE layer's ``E`` experts, so an expert kernel
  (a leaf with an ``expert`` axis) counts ``k / E`` of its size; the router counts in full.
  :func:`param_counts` gives the total and the active (per token) number of params.
* ``12 * L * T * (H * d)``: per token per layer, the scores ``Q K^T`` and the weighted sum
  ``P V`` each cost ``2 * T * H * d`` forward, times 3 for forward plus backward. We count the
  full ``T x T`` score matrix even for causal models (as PaLM does); a causal kernel that skips
  the masked half does about half of this term, so MFU of such kernels reads slightly high.
"""
from __future__ import annotations

import math

import jax
import numpy as np

from transformers_jax.params import is_spec

# Dense (no structured sparsity) peak matmul FLOP/s per JAX device.
# NVIDIA numbers are the datasheets' Tensor Core figures divided by 2 (the datasheets quote
# "with sparsity"): H100 SXM5 BF16/FP16 1979 -> 989.4 TFLOPS, TF32 989 -> 494.7 TFLOPS; H100
# PCIe BF16 1513 -> 756, TF32 756 -> 378; H100 NVL BF16 1671 -> 835.5, TF32 835 -> 417.5
# (nvidia.com/en-us/data-center/h100, datasheet 2023). H200 SXM has the same compute as H100 SXM
# (nvidia.com/en-us/data-center/h200); H200 NVL the same as H100 NVL. A100 (SXM4 and PCIe) BF16/FP16
# 312, TF32 156 TFLOPS dense (A100 datasheet).
# TPU numbers are bf16 per chip, one JAX device per chip (cloud.google.com/tpu/docs/system-architecture
# and the v4/v5e/v5p/v6e pages): v4 275, v5e 197, v5p 459, v6e (Trillium) 918 TFLOPS.
# "float32" means the matmul peak XLA reaches at JAX's default precision: TF32 Tensor Cores on
# NVIDIA Ampere/Hopper, single-pass bf16 on TPU. With precision="highest" float32 is much slower.
_NVIDIA_PEAKS = (  # (substring of device_kind, lowercase), checked in order
    ("h100 pcie", {"bfloat16": 756e12, "float16": 756e12, "float32": 378e12}),
    ("h100 nvl", {"bfloat16": 835.5e12, "float16": 835.5e12, "float32": 417.5e12}),
    ("h200 nvl", {"bfloat16": 835.5e12, "float16": 835.5e12, "float32": 417.5e12}),
    ("h100", {"bfloat16": 989.4e12, "float16": 989.4e12, "float32": 494.7e12}),
    ("h200", {"bfloat16": 989.4e12, "float16": 989.4e12, "float32": 494.7e12}),
    ("a100", {"bfloat16": 312e12, "float16": 312e12, "float32": 156e12}),
)
_TPU_PEAKS = {  # exact device_kind, lowercase
    "tpu v4": 275e12,
    "tpu v5 lite": 197e12,
    "tpu v5e": 197e12,
    "tpu v5": 459e12,
    "tpu v5p": 459e12,
    "tpu v6 lite": 918e12,
    "tpu v6e": 918e12,
}
_DTYPES = ("bfloat16", "float16", "float32")


def param_count(specs_or_params) -> int:
    """Number of scalars in a tree of ``ParamSpec`` s, arrays or ``jax.ShapeDtypeStruct`` s."""
    total = 0
    for leaf in jax.tree.leaves(specs_or_params, is_leaf=is_spec):
        shape = getattr(leaf, "shape", None)
        if shape is None:
            raise ValueError(f"param_count: leaf of type {type(leaf).__name__} has no shape")
        total += math.prod(shape)
    return total


def _require(config, *names):
    missing = [n for n in names if getattr(config, n, None) is None]
    if missing:
        raise ValueError(f"{type(config).__name__} lacks {', '.join(missing)}, needed to count FLOPs")


def _pretraining_class(config):
    from transformers_jax.models.auto import MODEL_MAPPING

    kind = getattr(config, "model_type", None)
    for task in ("pretraining", "causal_lm", "masked_lm", "base"):
        if kind in MODEL_MAPPING[task]:
            return MODEL_MAPPING[task][kind]
    raise ValueError(f"no FLOP count for model_type {kind!r}: no model class is registered for it; pass num_params")


def _active_size(spec, config) -> int:
    """Scalars of ``spec`` one token uses: ``k / E`` of an expert-stacked leaf (``k`` =
    ``config.num_experts_per_tok``, ``E`` its expert dim), all of any other."""
    size = math.prod(spec.shape)
    if "expert" not in spec.axes:
        return size
    _require(config, "num_experts_per_tok")
    return size // spec.shape[spec.axes.index("expert")] * config.num_experts_per_tok


def param_counts(config, model_class=None) -> dict:
    """``{"total": all params, "active": the params one token uses}`` of ``model_class`` (default:
    the family's pretraining class); they differ only for mixture-of-experts models, where a token
    uses ``k`` of each layer's ``E`` experts."""
    from transformers_jax.params import flatten_tree

    specs = flatten_tree((model_class or _pretraining_class(config)).param_specs(config)).values()
    return {"total": sum(math.prod(s.shape) for s in specs), "active": sum(_active_size(s, config) for s in specs)}


def matmul_param_count(config, lm_head: bool = True, model_class=None, active: bool = True) -> int:
    """N of ``6N``: the weights of the matmuls one token goes through in training, read from the
    spec tree of ``model_class`` (default: the family's pretraining class).

    Every ``kernel`` leaf counts (stacked layers included), except those of modules the class runs
    once per sequence (``per_sequence_modules``: BERT's pooler and next-sentence head). With
    ``lm_head``: the output projection to the vocabulary, tied to the input embeddings (then the
    table multiplies every token) or not; without it, kernels with a ``vocab`` axis are left out.
    Not counted: biases, norms, embedding lookups (a gather, not a matmul). Where layers share
    params (ALBERT's ``layer_groups``), a stacked kernel counts once per layer that runs it. With
    ``active`` (the default) an MoE expert kernel counts ``k / E`` of its size (the experts a token
    runs); ``active=False`` counts every expert.
    """
    from transformers_jax.params import flatten_tree

    cls = model_class or _pretraining_class(config)
    specs = flatten_tree(cls.param_specs(config))
    skip = set(getattr(cls, "per_sequence_modules", ()))
    layer_groups = getattr(config, "layer_groups", None)
    groups = layer_groups() if callable(layer_groups) else None
    total = 0
    for path, spec in specs.items():
        if path[-1] != "kernel" or skip & set(path) or (not lm_head and "vocab" in spec.axes):
            continue
        if groups is not None and spec.axes[:1] == ("layers",):
            total += math.prod(spec.shape[1:]) * len(groups)  # one group's kernel per layer that runs it
        else:
            total += _active_size(spec, config) if active else math.prod(spec.shape)
    if lm_head:
        keys = cls._torch_keys(config)
        for target in cls.tied_weights(config).values():
            entry = keys.get(target)
            if entry is not None and len(entry.shape) == 2 and "vocab" in specs[entry.parts[0].path].axes:
                total += math.prod(entry.shape)
    return total


def flops_per_token(config, seq_len: int, num_params: int | None = None, lm_head: bool = True,
                    model_class=None) -> float:
    """Training FLOPs (forward + backward) per token: ``6 * N + 12 * L * seq_len * H * head_dim``.

    ``N`` is :func:`matmul_param_count` (``lm_head`` says whether the vocab projection runs) unless
    ``num_params`` is given. The attention term counts the full score matrix (no causal halving);
    see the module docstring.
    """
    if not isinstance(seq_len, int) or seq_len <= 0:
        raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
    _require(config, "num_hidden_layers", "num_attention_heads", "head_dim")
    n = matmul_param_count(config, lm_head, model_class) if num_params is None else num_params
    if n < 0:
        raise ValueError(f"num_params must be non-negative, got {n}")
    attention_width = config.num_attention_heads * config.head_dim
    return float(6 * n + 12 * config.num_hidden_layers * seq_len * attention_width)


def peak_flops_per_device(device=None, dtype="float32") -> float | None:
    """Dense peak matmul FLOP/s of one device for ``dtype`` (bfloat16, float16 or float32).

    Looked up by ``device.device_kind`` (NVIDIA H100/H200/A100, TPU v4/v5e/v5p/v6e; sources in
    the module). Returns None for CPUs and unknown accelerators: pass your own peak to :func:`mfu`.
    """
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} has no peak FLOP/s entry; use one of {', '.join(_DTYPES)}")
    device = jax.local_devices()[0] if device is None else device
    kind = str(getattr(device, "device_kind", "")).lower().strip()
    if getattr(device, "platform", "") == "cpu":
        return None
    if kind in _TPU_PEAKS:
        return _TPU_PEAKS[kind] if name != "float16" else None
    for key, peaks in _NVIDIA_PEAKS:
        if key in kind:
            return peaks[name]
    return None


def mfu(tokens_per_second: float, flops_per_token: float, num_devices: int, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved ``tokens/s * flops/token`` over ``num_devices * peak``.

    ``tokens_per_second`` is the global throughput; ``peak`` is one device's FLOP/s (None -> None).
    """
    if peak is None:
        return None
    if peak <= 0 or num_devices <= 0:
        raise ValueError(f"peak ({peak}) and num_devices ({num_devices}) must be positive")
    if tokens_per_second < 0 or flops_per_token < 0:
        raise ValueError("tokens_per_second and flops_per_token must be non-negative")
    return tokens_per_second * flops_per_token / (num_devices * peak)
