"""Causal self-attention by kernel: XLA, splash (TPU Pallas) or cuDNN (GPU), chosen by ``attn_implementation``.

The shared decoder calls :func:`causal_attention` once per layer with a :class:`CausalMaskSpec`: the
mask said by its structure (causal, a sliding window, padding and packed documents as segment ids)
rather than as a dense [B, 1, T, S] array, so that a kernel never forms the [T, S] scores.

Implementations (``config.attn_implementation``, Hugging Face's config name):

* ``"xla"``: :func:`~transformers_jax.layers.attention.dot_product_attention` on the dense mask
  (scores and probabilities in float32, [B, H, T, S]). Every feature: additive bias, head mask,
  attention dropout, the probabilities (``output_attentions``), a KV cache.
* ``"splash"``: ``jax.experimental.pallas.ops.tpu.splash_attention`` (blockwise, skips masked
  blocks, keeps no [T, S] buffer in the forward or the backward). A TPU kernel: on any other
  platform it runs only in Pallas interpret mode, switched on by ``config.pallas_interpret=True``
  (slow; meant for tests on a CPU). Takes causal, sliding-window, padding and packed-document masks,
  grouped key/value heads and logit soft-capping (Gemma 2). Any length (padded up to a multiple of
  128 inside); head dims 8 to 256 in bfloat16 and float32 compile for TPU v5e (checked ahead of time).
* ``"cudnn"``: ``jax.nn.dot_product_attention(..., implementation="cudnn")`` (cuDNN's fused flash
  attention; an NVIDIA GPU only). Needs bfloat16 or float16 ``compute_dtype``, a head dim that is a
  multiple of 8 and at most 128 (256 on Hopper and later, compute capability >= 9.0), no soft-capping.
  Causal and sliding-window masks are structural; padding and packed documents go to cuDNN as a
  dense [B, 1, T, T] mask (JAX's cuDNN call has no segment ids), which costs [T, T] memory again
  (and, by JAX's check, an even length in a backward pass).
* ``"auto"`` (the default): splash on TPU; cuDNN on an NVIDIA GPU when the cuDNN conditions above
  hold; XLA otherwise (CPU, other GPUs, float32 on GPU, ...). Also XLA for a call that needs what no
  kernel gives: ``output_attentions=True`` or attention dropout in training.

Neither kernel forms probabilities, applies an additive bias (ALiBi, relative positions), a head mask
or attention dropout: asked for explicitly, ``"splash"`` and ``"cudnn"`` refuse each such call with an
error naming the feature rather than quietly running XLA. Decode steps with a KV cache (generation,
serving: their prefill too, which writes the cache) always run XLA, whatever the setting.

The platform is that of the devices the program is built for: the mesh of an active
``logical_sharding`` context (so an ahead-of-time compile for a described TPU topology on a CPU host
picks the TPU kernels), else ``jax.default_backend()``.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp

from transformers_jax.layers.attention import dot_product_attention
from transformers_jax.layers.masks import causal_padding_mask, sliding_window_mask
from transformers_jax.partitioning import active_sharding, constrain, logical_to_partition_spec, target_platform

ATTN_IMPLEMENTATIONS = ("auto", "xla", "splash", "cudnn")
# Hugging Face's values: "eager" is the plain softmax(QK)V (our XLA path); "sdpa" lets torch pick a
# fused kernel where one applies, as "auto" does here.
HF_ATTN_IMPLEMENTATIONS = {"eager": "xla", "sdpa": "auto"}
SPLASH_LANES = 128  # splash's key blocks are multiples of the TPU's 128 lanes: lengths are padded to this
CUDNN_DTYPES = ("bfloat16", "float16")


def normalize_attn_implementation(value: str) -> str:
    """``value`` as one of :data:`ATTN_IMPLEMENTATIONS` (HF's "eager" -> "xla", "sdpa" -> "auto"); a clear error else."""
    if value in ATTN_IMPLEMENTATIONS:
        return value
    if value in HF_ATTN_IMPLEMENTATIONS:
        return HF_ATTN_IMPLEMENTATIONS[value]
    hint = ""
    if isinstance(value, str) and value.startswith(("flash_attention", "flex_attention", "paged")):
        hint = ": for a fused kernel use 'cudnn' on an NVIDIA GPU or 'splash' on TPU ('auto' picks one)"
    raise ValueError(f"attn_implementation={value!r} is not one of {', '.join(map(repr, ATTN_IMPLEMENTATIONS))} "
                     f"(Hugging Face's 'eager' and 'sdpa' are accepted as 'xla' and 'auto'){hint}")


def _cudnn_problems(dtype, head_dim: int, logit_softcap) -> list[str]:
    """What keeps cuDNN's fused attention from taking this call on the target platform ([] when it can)."""
    platform = target_platform()
    if platform != "gpu":
        return [f"a GPU (the platform is {platform!r})"]
    device = (active_sharding()[0].devices.flat[0] if active_sharding() is not None else jax.devices()[0])
    if "cuda" not in getattr(device.client, "platform_version", "").lower():
        return ["an NVIDIA GPU with cuDNN"]
    problems = []
    if jnp.dtype(dtype).name not in CUDNN_DTYPES:
        problems.append(f"compute_dtype bfloat16 or float16 (it is {jnp.dtype(dtype).name})")
    major = int(str(getattr(device, "compute_capability", "0")).split(".")[0])
    max_dim = 256 if major >= 9 else 128
    if head_dim % 8 or head_dim > max_dim:
        problems.append(f"a head dim that is a multiple of 8 and at most {max_dim} (it is {head_dim})")
    if logit_softcap:
        problems.append(f"no attention logit soft-capping (attn_logit_softcapping={logit_softcap})")
    return problems


def select_attention_implementation(requested: str, *, dtype, head_dim: int, logit_softcap=None, cached: bool = False,
                                    output_attentions: bool = False, dropout: bool = False, bias: bool = False,
                                    head_mask: bool = False, interpret: bool = False) -> str:
    """The implementation that runs: "xla", "splash" or "cudnn" (see the module's rule for "auto").

    ``cached``: a decode step over a KV cache (always XLA). ``output_attentions``, ``dropout``
    (attention dropout active, i.e. training with a positive rate), ``bias`` (an additive bias such
    as ALiBi) and ``head_mask``: features of this call that only XLA has. ``interpret``: Pallas
    interpret mode (``config.pallas_interpret``). An explicit "splash" or "cudnn" that cannot run
    this call is an error that names why; it never turns into XLA quietly.
    """
    requested = normalize_attn_implementation(requested)
    if cached or requested == "xla":
        return "xla"
    features = [name for name, used in (("output_attentions=True (the attention probabilities)", output_attentions),
                                        ("attention dropout (a positive attention dropout rate in training)", dropout),
                                        ("an additive attention bias (e.g. ALiBi)", bias),
                                        ("head_mask", head_mask)) if used]
    if requested == "auto":
        if features:
            return "xla"
        platform = target_platform()
        if platform == "tpu":
            return "splash"
        if platform == "gpu" and not _cudnn_problems(dtype, head_dim, logit_softcap):
            return "cudnn"
        return "xla"
    if features:
        raise ValueError(f"attn_implementation={requested!r} does not support {'; '.join(features)}: "
                         "use attn_implementation='xla' (or 'auto') for this call")
    if requested == "splash":
        platform = target_platform()
        if platform != "tpu" and not interpret:
            raise ValueError(f"attn_implementation='splash' is a TPU Pallas kernel and the platform is {platform!r}: "
                             "off TPU it runs only in Pallas interpret mode (slow, for tests); enable it with "
                             "pallas_interpret=True (config.replace(pallas_interpret=True) or "
                             "from_pretrained(..., pallas_interpret=True)), or use attn_implementation='xla'")
        return "splash"
    problems = _cudnn_problems(dtype, head_dim, logit_softcap)
    if problems:
        raise ValueError(f"attn_implementation='cudnn' needs {'; '.join(problems)}: use attn_implementation='xla' "
                         "(or 'auto')")
    return "cudnn"


@dataclasses.dataclass(frozen=True)
class CausalMaskSpec:
    """A causal self-attention mask by its structure.

    ``key_mask`` [B, S]: 1/0 padding, or document ids of packed rows (1, 2, ... per document, 0 for
    padding; see :func:`~transformers_jax.layers.masks.causal_padding_mask`); None: every key valid,
    one document. ``query_start``: the key slot of the first query (a KV cache; the kernels need 0,
    queries and keys the same T positions). ``window``: the layer's sliding window (a query at q sees
    keys k with q - window < k <= q, as Hugging Face's), possibly traced (a per-layer scan input);
    None for none. ``window_sizes``: the static values ``window`` can take (kernels build one mask
    per value and switch on ``window``; a value at least the length is plain causal). ``base``: the
    dense [B, 1, T, S] causal-and-padding mask when the caller made it once for every layer (XLA
    path); else it is built from ``key_mask``.

    Kernels see padding and documents as segment ids: a padded query then sees only padded keys
    (its row's output differs from XLA's, where it sees every valid earlier key; padded rows are
    undefined either way and reach no real token). One place where that shows: with left padding a
    row's first label is predicted from its last padding position (in Hugging Face too, where that
    output is just as arbitrary), so the loss differs between XLA and a kernel unless that label is
    -100 or the batch is padded on the right (the collators' default).
    """

    key_mask: Any = None
    query_start: Any = 0
    window: Any = None
    window_sizes: tuple[int, ...] = ()
    base: Any = None

    def dense(self, query_len: int, key_len: int, batch: int) -> jax.Array:
        """The boolean mask [B, 1, T, S] (True = may attend) for the XLA path."""
        mask = self.base
        if mask is None:
            key_mask = self.key_mask if self.key_mask is not None else jnp.ones((batch, key_len), jnp.int32)
            mask = causal_padding_mask(key_mask, query_len, self.query_start)
        if self.window is not None:
            mask = mask & sliding_window_mask(query_len, key_len, self.window, self.query_start)
        return mask


def causal_attention(q, k, v, mask: CausalMaskSpec, *, implementation: str, scale, logit_softcap=None,
                     dropout_rate: float = 0.0, dropout_rng=None, interpret: bool = False):
    """Causal self-attention by ``implementation`` (as :func:`select_attention_implementation` returns it).

    q: [B, T, H, D]; k, v: [B, S, K, D] (H a multiple of K); ``scale`` multiplies q.k (may be a
    traced per-layer value); ``logit_softcap`` caps the scaled scores as ``cap * tanh(s / cap)``.
    Dropout applies to the XLA path only (the others refuse it when selected).
    Returns (output [B, T, H, D], probabilities [B, H, T, S] from XLA, else None).
    """
    if implementation == "xla":
        dense = mask.dense(q.shape[1], k.shape[1], q.shape[0])
        return dot_product_attention(q, k, v, dense, scale=scale, logit_softcap=logit_softcap,
                                     dropout_rate=dropout_rate, dropout_rng=dropout_rng)
    if implementation not in ("splash", "cudnn"):
        raise ValueError(f"unknown attention implementation {implementation!r}; known: 'xla', 'splash', 'cudnn'")
    length = q.shape[1]
    if k.shape[1] != length or not (isinstance(mask.query_start, int) and mask.query_start == 0):
        raise ValueError(f"attn_implementation={implementation!r} takes self-attention without a KV cache "
                         f"(queries and keys the same positions); got {length} queries over {k.shape[1]} keys")
    # Pre-scaling q lets the kernels use a traced per-layer scale: (q * scale).k == (q.k) * scale.
    q = (q.astype(jnp.float32) * scale).astype(q.dtype)
    if implementation == "splash":
        def run(window):
            return splash_attention(q, k, v, mask.key_mask, window=window, logit_softcap=logit_softcap,
                                    interpret=interpret)
    else:
        def run(window):
            return cudnn_attention(q, k, v, mask.key_mask, window=window)
    out = _switch_on_window(run, mask.window, mask.window_sizes, length)
    return constrain(out, ("batch", "length", "act_heads", None)), None


def _switch_on_window(run, window, window_sizes: tuple[int, ...], length: int):
    """``run(static window or None)`` for a possibly traced ``window``: one branch per distinct static
    value (windows of at least ``length`` are plain causal: None), chosen by ``lax.switch``."""
    def static(w):
        return None if w is None or int(w) >= length else int(w)

    if window is None:
        return run(None)
    if not isinstance(window, jax.core.Tracer):  # a concrete window
        return run(static(int(window)))
    if not window_sizes:
        raise ValueError("a traced sliding window needs window_sizes, the static values it can take")
    choices = sorted({static(w) for w in window_sizes}, key=lambda w: -1 if w is None else w)
    if len(choices) == 1:
        return run(choices[0])
    sizes = jnp.asarray(window_sizes, jnp.int32)  # [N]
    branch_of_size = jnp.asarray([choices.index(static(w)) for w in window_sizes], jnp.int32)  # [N]
    branch = branch_of_size[jnp.argmax(sizes == window)]
    return jax.lax.switch(branch, [functools.partial(run, w) for w in choices])


# ----------------------------------------------------------------------------- splash (TPU)
def _splash_block(length: int) -> int:
    """The block size for a (padded) length: the largest of 512, 256, 128 that divides it."""
    return next(b for b in (512, 256, SPLASH_LANES) if length % b == 0)


def _splash_kernel(heads: int, length: int, window: int | None, logit_softcap: float | None, interpret: bool):
    """A splash kernel for ``heads`` query heads over ``length`` (a multiple of 128) positions, causal
    with an optional sliding ``window`` (q - window < k <= q). Built from the mask's structure: the
    mask info (which blocks are empty, full or partial) is computed in NumPy at trace time (splash
    keeps a cache of it); the kernel holds it as arrays of the trace, so it is built per trace."""
    from jax.experimental.pallas.ops.tpu import splash_attention as splash

    shape = (length, length)
    one = splash.CausalMask(shape) if window is None else splash.LocalMask(shape, window_size=(window - 1, 0), offset=0)
    block = _splash_block(length)
    sizes = splash.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block, block_q_dkv=block,
                              block_kv_dkv=block, block_kv_dkv_compute=block, block_q_dq=block, block_kv_dq=block)
    return splash.make_splash_mha(splash.MultiHeadMask([one] * heads), block_sizes=sizes, head_shards=1,
                                  q_seq_shards=1, attn_logits_soft_cap=logit_softcap, interpret=interpret)


def splash_attention(q, k, v, key_mask=None, *, window: int | None = None, logit_softcap=None, interpret: bool = False):
    """Causal self-attention with the splash kernel; q already scaled.

    q: [B, T, H, D]; k, v: [B, T, K, D] (grouped heads: query head h reads key head h // (H/K), as
    Hugging Face's ``repeat_kv``); ``key_mask`` [B, T] 1/0 or document ids (0 = padding), None for
    none; ``window``: a static sliding window or None. T is padded up to a multiple of 128 (splash's
    key blocks are whole 128-lane tiles) and the output cut back; the padded tail sits after every
    real token, so the causal mask hides it from them. Under an active ``logical_sharding`` the kernel
    runs per device (``shard_map``) over the batch and head shards of the mesh (the sequence stays
    whole: splash needs every key). Returns [B, T, H, D].
    """
    from jax.experimental.pallas.ops.tpu.splash_attention import SegmentIds

    batch, length, heads, head_dim = q.shape
    kv_heads = k.shape[2]
    padded = -(-length // SPLASH_LANES) * SPLASH_LANES
    pad = ((0, 0), (0, 0), (0, padded - length), (0, 0))
    q, k, v = (jnp.pad(x.transpose(0, 2, 1, 3), pad) for x in (q, k, v))  # [B, H or K, T', D]
    segments = None
    if key_mask is not None:  # padding and the length padding get segment 0: they attend only among themselves
        segments = jnp.pad(key_mask.astype(jnp.int32), ((0, 0), (0, padded - length)))  # [B, T']
    cap = float(logit_softcap) if logit_softcap else None

    def local(q, k, v, segments=None):  # one device's [b, h, T', D] (all of it without a mesh)
        kernel = _splash_kernel(q.shape[1], padded, window, cap, interpret)
        if segments is None:
            return jax.vmap(kernel)(q, k, v)
        return jax.vmap(lambda q, k, v, s: kernel(q, k, v, segment_ids=SegmentIds(s, s)))(q, k, v, segments)

    args = (q, k, v) if segments is None else (q, k, v, segments)
    out = _per_device(local, args, heads, kv_heads)  # [B, H, T', D]
    return out[:, :, :length].transpose(0, 2, 1, 3)  # [B, T, H, D]


def _per_device(fn, args, heads: int, kv_heads: int):
    """``fn(q, k, v[, segments])`` under ``shard_map`` over the active mesh's batch and head shards
    ([B, H, T, D] layout; heads split only where the axes divide both H and K), or plainly without
    an active ``logical_sharding`` or when the mesh splits neither."""
    active = active_sharding()
    if active is None:
        return fn(*args)
    mesh, rules = active
    q_spec = logical_to_partition_spec(("batch", "act_heads", None, None), rules, args[0].shape, mesh)
    k_spec = logical_to_partition_spec(("batch", "act_heads", None, None), rules, args[1].shape, mesh)
    heads_axes = q_spec[1] if q_spec[1] == k_spec[1] else None
    batch_axes = q_spec[0]
    if batch_axes is None and heads_axes is None:
        return fn(*args)
    from jax.sharding import PartitionSpec as P

    spec = P(batch_axes, heads_axes, None, None)
    in_specs = (spec,) * 3 + ((P(batch_axes, None),) if len(args) == 4 else ())
    if hasattr(jax, "shard_map"):
        mapped = jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=spec, check_vma=False)
    else:
        from jax.experimental.shard_map import shard_map

        mapped = shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=spec, check_rep=False)
    return mapped(*args)


# ----------------------------------------------------------------------------- cuDNN (GPU)
def cudnn_attention(q, k, v, key_mask=None, *, window: int | None = None):
    """Causal self-attention with cuDNN's fused kernel (``jax.nn.dot_product_attention``); q already scaled.

    q: [B, T, H, D]; k, v: [B, T, K, D]; ``key_mask`` [B, T] 1/0 or document ids (0 = padding),
    None for none: given, it becomes a dense [B, 1, T, T] same-segment mask. ``window``: a static
    sliding window (q - window < k <= q) or None. Returns [B, T, H, D].
    """
    dense = None
    if key_mask is not None:
        ids = key_mask.astype(jnp.int32)
        dense = ids[:, None, :, None] == ids[:, None, None, :]  # [B, 1, T, T]
    local = None if window is None else (window - 1, 0)
    return jax.nn.dot_product_attention(q, k, v, mask=dense, scale=1.0, is_causal=True, local_window_size=local,
                                        implementation="cudnn")
