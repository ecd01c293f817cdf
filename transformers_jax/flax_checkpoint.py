"""Hugging Face Flax checkpoints: ``flax_model.msgpack`` (single or sharded) read and written.

transformers 4.x saved its Flax models as the params tree serialized with flax's msgpack, keys
following the Flax module path (``bert/encoder/layer/0/attention/self/query/kernel``); sharded
checkpoints add ``flax_model.msgpack.index.json`` mapping each '/'-joined path to its shard. Both
directions go through the PyTorch-named state dict, with the rules Hugging Face used between its
Flax and PyTorch classes, so the model classes' strict checks (missing, unexpected, mis-shaped
keys; tied weights; head swaps) apply unchanged:

- a Dense ``kernel`` [in, out] is PyTorch's ``weight`` [out, in];
- a LayerNorm ``scale`` and an Embed ``embedding`` are PyTorch's ``weight``;
- every other leaf (``bias``; FlaxLlama's RMSNorm ``weight``) keeps its name;
- repeated layers are keys "0".."N-1", and the base-model prefix ("bert", "model") is there only
  in head models, both as in PyTorch.

Reading is therefore generic. Writing needs each PyTorch key's Flax leaf name, which comes from the
model class's param tree and its ``flax_*`` declarations (see ``PreTrainedModel``). flax is
imported inside the functions, so importing transformers_jax stays fast.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from transformers_jax import hub
from transformers_jax.params import flatten_tree, unflatten_tree

logger = logging.getLogger("transformers_jax")

FLAX_WEIGHTS_NAME = hub.FLAX_WEIGHTS_NAME
FLAX_WEIGHTS_INDEX_NAME = hub.FLAX_WEIGHTS_INDEX_NAME
_FLAX_TO_TORCH_LEAF = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


# ----------------------------------------------------------------------------- files
def read_msgpack(path: Path) -> dict[str, np.ndarray]:
    """One Flax msgpack file -> {'/'-joined Flax path: numpy array}; bad files raise errors naming them."""
    from flax.serialization import msgpack_restore

    data = path.read_bytes()
    if data.startswith(b"version https://git-lfs"):
        raise ValueError(f"{path} is a Git LFS pointer, not the weights: fetch the file itself (git lfs pull)")
    try:
        tree = msgpack_restore(data)
    except (ValueError, TypeError, KeyError) as err:  # msgpack's errors are ValueErrors; flax's ext decoding others
        raise ValueError(f"{path} is not a readable Flax msgpack checkpoint (truncated or corrupt: {err})") from None
    if not isinstance(tree, dict):
        raise ValueError(f"{path} is not a Flax params tree: it holds a {type(tree).__name__}, not a dict")
    flat = {}
    for keys, leaf in flatten_tree(tree).items():
        name = "/".join(keys)
        if not isinstance(leaf, np.ndarray):
            raise ValueError(f"{path}: entry {name!r} is a {type(leaf).__name__}, not an array")
        flat[name] = leaf
    return flat


def write_msgpack(flat: dict[str, np.ndarray], path: Path) -> None:
    """{'/'-joined Flax path: array} -> one Flax msgpack file of the nested tree (keys in sorted order)."""
    from flax.serialization import msgpack_serialize

    tree = unflatten_tree({tuple(name.split("/")): flat[name] for name in sorted(flat)})
    path.write_bytes(msgpack_serialize(tree))


def load_flax_tree(directory: Path) -> tuple[dict[str, np.ndarray], str]:
    """The Flax checkpoint in ``directory`` as {'/'-joined path: array}, and the file it came from.

    A single ``flax_model.msgpack`` is read when present (as Hugging Face did), else the index and
    every shard it names.
    """
    single, index = directory / FLAX_WEIGHTS_NAME, directory / FLAX_WEIGHTS_INDEX_NAME
    if single.is_file():
        return read_msgpack(single), str(single)
    if index.is_file():
        return hub._load_sharded(directory, index, read_msgpack), str(index)
    raise FileNotFoundError(f"no Flax weights in {directory}: expected {FLAX_WEIGHTS_NAME} or {FLAX_WEIGHTS_INDEX_NAME}")


# ----------------------------------------------------------------------------- conversion
def flax_to_torch(flat: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """{'/'-joined Flax path: array} -> a PyTorch-named state dict, by Hugging Face's generic rules."""
    state = {}
    for name, value in flat.items():
        *module, leaf = name.split("/")
        if leaf == "kernel":
            if value.ndim != 2:
                raise ValueError(f"{source}: {name!r} has shape {value.shape}; only 2-D Dense kernels are supported")
            value = value.T
        key = ".".join([*module, _FLAX_TO_TORCH_LEAF.get(leaf, leaf)])
        if key in state:
            raise ValueError(f"{source}: {name!r} and another entry both give the PyTorch weight {key!r}")
        state[key] = np.ascontiguousarray(value)
    return state


def torch_to_flax(model_cls, config, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A state dict of ``model_cls`` (from ``params_to_state_dict``) -> {'/'-joined Flax path: array},
    the tree Hugging Face's Flax twin of the class holds."""
    state = dict(state)
    for tied, target in model_cls.tied_weights(config).items():
        if tied in model_cls.flax_untied_weights:
            state[tied] = state[target]
    for alias, stored_key in model_cls.flax_shared_weights:
        if alias in state:
            state[stored_key] = state.pop(alias)
    keys = model_cls._torch_keys(config)
    if model_cls.flax_untied_weights:
        keys = {**model_cls._torch_keys(config.replace(tie_word_embeddings=False)), **keys}
    leaf_names = dict(model_cls.flax_leaf_names)
    flat = {}
    for key, value in state.items():
        path = keys[key].parts[0].path
        leaf = leaf_names.get(path[-1], path[-1])
        flat["/".join([*key.split(".")[:-1], leaf])] = value.T if leaf == "kernel" else value
    return flat


# ----------------------------------------------------------------------------- what the model classes call
def load_flax_state_dict(model_cls, config, directory: Path) -> tuple[dict[str, np.ndarray], str]:
    """The Flax checkpoint in ``directory`` as a state dict for ``model_cls``, and a description of
    its source for error messages (which name PyTorch keys and [out, in] shapes)."""
    flat, path = load_flax_tree(directory)
    source = f"{path} (read as PyTorch names, Dense kernels transposed)"
    state = flax_to_torch(flat, source)
    for alias, stored_key in model_cls.flax_shared_weights:
        if alias not in state and stored_key in state:
            state[alias] = state[stored_key]
    _warn_on_unused_copies(model_cls, config, state, path)
    return state, source


def _warn_on_unused_copies(model_cls, config, state: dict, path: str) -> None:
    """A tied weight that the file holds with values of its own (FlaxLlama never tied its lm_head)
    is replaced by its tie target: say so."""
    for tied, target in model_cls.tied_weights(config).items():
        ours, theirs = state.get(tied), state.get(target)
        if ours is not None and theirs is not None and not np.array_equal(ours, theirs):
            logger.warning(
                "%s: %s holds %s with values of its own, but the config ties it to %s "
                "(tie_word_embeddings=True): the file's %s is not used",
                model_cls.__name__, path, tied, target, tied,
            )


def save_flax_state_dict(model_cls, config, state: dict[str, np.ndarray], directory: Path,
                         max_shard_size: int | str) -> list[str]:
    """Write ``state`` as flax_model.msgpack, or shards and an index above ``max_shard_size``.
    Returns the names of the files written."""
    flat = torch_to_flax(model_cls, config, state)
    return hub.save_sharded(flat, directory, max_shard_size, FLAX_WEIGHTS_NAME, FLAX_WEIGHTS_INDEX_NAME, write_msgpack)


__all__ = [
    "FLAX_WEIGHTS_INDEX_NAME",
    "FLAX_WEIGHTS_NAME",
    "flax_to_torch",
    "load_flax_state_dict",
    "load_flax_tree",
    "read_msgpack",
    "save_flax_state_dict",
    "torch_to_flax",
    "write_msgpack",
]
