"""Param specs: every leaf's shape, logical axes and initializer, declared once per model.

``init_params`` and ``abstract_params`` both come from the same spec tree, so the shape, dtype and
logical axes (hence the sharding) of every param are known before anything is allocated.
"""
from __future__ import annotations

import dataclasses
import zlib

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One param leaf: ``shape``, logical ``axes`` (one name per dim), and how to initialise it.

    ``init`` is ``"normal"`` (std ``std``), ``"zeros"``, ``"ones"`` or ``"sinusoidal"`` (a fixed
    [positions, dim] table: sine on even columns, cosine on odd ones, as XLM and DistilBERT fill it). ``dtype`` None means the
    model's ``param_dtype``. ``torch_transposed``: whether the PyTorch checkpoint stores this leaf
    transposed (None: a ``kernel`` is, as ``nn.Linear`` keeps [out, in]; GPT-2's ``Conv1D`` keeps
    [in, out] like us and says False).
    """

    shape: tuple[int, ...]
    axes: tuple[str | None, ...]
    init: str = "normal"
    std: float = 0.02
    dtype: str | None = None
    torch_transposed: bool | None = None

    def __post_init__(self):
        if len(self.shape) != len(self.axes):
            raise ValueError(f"ParamSpec shape {self.shape} and axes {self.axes} differ in rank")
        if self.init not in ("normal", "zeros", "ones", "sinusoidal"):
            raise ValueError(f"unknown initializer {self.init!r}")


def sinusoidal_table(num_positions: int, dim: int, layout: str = "interleaved") -> np.ndarray:
    """[num_positions, dim] float32 of the angles ``pos / 10000 ** (2 * (j // 2) / dim)``, computed in
    float64. ``layout="interleaved"``: sin on even columns ``j``, cos on odd ones (Hugging Face's
    XLM/DistilBERT table); ``"halves"``: the sines of the even columns first, then the cosines of the
    odd ones (Marian's table)."""
    angles = np.arange(num_positions)[:, None] / np.power(10000.0, 2 * (np.arange(dim) // 2) / dim)[None]
    table = np.empty((num_positions, dim), np.float64)
    if layout == "interleaved":
        table[:, 0::2] = np.sin(angles[:, 0::2])
        table[:, 1::2] = np.cos(angles[:, 1::2])
    elif layout == "halves":
        half = (dim + 1) // 2
        table[:, :half] = np.sin(angles[:, 0::2])
        table[:, half:] = np.cos(angles[:, 1::2])
    else:
        raise ValueError(f"unknown sinusoidal layout {layout!r}; known: 'interleaved', 'halves'")
    return table.astype(np.float32)


def is_spec(x) -> bool:
    return isinstance(x, ParamSpec)


def stacked(spec: ParamSpec, num_layers: int) -> ParamSpec:
    """The spec of ``num_layers`` copies of ``spec`` stacked along a leading ``layers`` axis."""
    return dataclasses.replace(spec, shape=(num_layers, *spec.shape), axes=("layers", *spec.axes))


def stack_specs(tree, num_layers: int):
    """Stack every spec of a per-layer spec tree along a leading ``layers`` axis."""
    return jax.tree.map(lambda s: stacked(s, num_layers), tree, is_leaf=is_spec)


def dense_spec(d_in: int, d_out: int, in_axis: str, out_axis: str, bias: bool, std: float,
               torch_transposed: bool = True) -> dict:
    """Specs of a Linear layer: ``kernel`` [in, out] and ``bias``. PyTorch's ``nn.Linear`` stores the
    transpose (``torch_transposed``); GPT-2's ``Conv1D`` stores [in, out] as we do."""
    spec = {"kernel": ParamSpec((d_in, d_out), (in_axis, out_axis), "normal", std, torch_transposed=torch_transposed)}
    if bias:
        spec["bias"] = ParamSpec((d_out,), (out_axis,), "zeros")
    return spec


def layer_norm_spec(dim: int, bias: bool = True) -> dict:
    """Specs of a LayerNorm (``scale`` and ``bias``) or RMSNorm (``scale`` only)."""
    spec = {"scale": ParamSpec((dim,), ("norm",), "ones")}
    if bias:
        spec["bias"] = ParamSpec((dim,), ("norm",), "zeros")
    return spec


def embedding_spec(num: int, dim: int, std: float, axes=("vocab", "embed")) -> dict:
    return {"embedding": ParamSpec((num, dim), axes, "normal", std)}


def _path_str(path) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in path)


def init_params(specs, rng: jax.Array, param_dtype: str = "float32"):
    """Initialise a param tree from its specs; each leaf's key is derived from its path."""

    def init_leaf(path, spec: ParamSpec):
        dtype = jnp.dtype(spec.dtype or param_dtype)
        if spec.init == "zeros":
            return jnp.zeros(spec.shape, dtype)
        if spec.init == "ones":
            return jnp.ones(spec.shape, dtype)
        if spec.init == "sinusoidal":
            return jnp.asarray(sinusoidal_table(*spec.shape), dtype)
        key = jax.random.fold_in(rng, zlib.crc32(_path_str(path).encode()) & 0x7FFFFFFF)
        return (spec.std * jax.random.normal(key, spec.shape, jnp.float32)).astype(dtype)

    return jax.tree_util.tree_map_with_path(init_leaf, specs, is_leaf=is_spec)


def abstract_params(specs, param_dtype: str = "float32"):
    """``jax.ShapeDtypeStruct`` for every leaf, without allocating (what ``jax.eval_shape`` gives)."""
    return jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, jnp.dtype(s.dtype or param_dtype)), specs, is_leaf=is_spec
    )


def logical_axes(specs):
    """The logical axis names of every leaf, as a tree of tuples."""
    return jax.tree.map(lambda s: s.axes, specs, is_leaf=is_spec)


def flatten_tree(tree, prefix: tuple = ()) -> dict[tuple, object]:
    """Nested dict -> {path tuple: leaf}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten_tree(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


def unflatten_tree(flat: dict[tuple, object]) -> dict:
    """{path tuple: leaf} -> nested dict."""
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree
