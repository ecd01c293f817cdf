"""Training checkpoints through orbax, and export of their params to Hugging Face directories.

A training checkpoint is one orbax step directory with two items:

* ``state``: the train-state pytree (``{"step", "params", "opt_state", "rng"}`` for the Trainer),
  written with orbax's PyTree handler and read back onto whatever shardings the caller asks for;
* ``metadata``: a JSON object (``model_class``, the Hugging Face ``config`` dict, ``data_state``,
  ``training_args``, ...).

Saves are atomic: orbax writes ``<step>.orbax-checkpoint-tmp`` and renames it to ``<step>`` only
once every file is committed, so a save that is interrupted (killed, out of disk) never shows up in
``latest_step``/``all_steps`` and is never restored. A writing manager removes such leftovers when
it opens the directory. Restores check the saved tree against the expected one first, so a
checkpoint of another model shape fails with a message naming the key, never half-loads.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

STATE_ITEM = "state"
METADATA_ITEM = "metadata"
# orbax splits the writing of an array replicated over several devices across those replicas, one
# slice each; every slice is a small compiled program and a dispatch. Below this many bytes per
# replica one replica writes the array whole, which is cheaper (biases, norms, small models).
REPLICA_PARALLEL_MIN_BYTES = 1 << 20


# ----------------------------------------------------------------------------- tree helpers
def _key_name(key) -> str:
    """One path entry of a jax key path as text (dict key, attribute name or index)."""
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def flat_with_paths(tree) -> dict[str, Any]:
    """{``"a/b/0/c"``: leaf} for every leaf of a pytree; namedtuple fields read as their names."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"/".join(_key_name(k) for k in path): leaf for path, leaf in leaves}


def _shape_dtype(leaf) -> tuple[tuple, np.dtype]:
    shape = getattr(leaf, "shape", None)
    dtype = getattr(leaf, "dtype", None)
    shape = tuple(np.shape(leaf)) if shape is None else tuple(shape)
    dtype = np.asarray(leaf).dtype if dtype is None else np.dtype(dtype)
    return shape, dtype


def _params_first(paths) -> list[str]:
    """Paths in tree order, those under ``params/`` first (they name the model's shape best)."""
    paths = list(paths)
    return [p for p in paths if p.startswith("params/")] + [p for p in paths if not p.startswith("params/")]


def tree_mismatches(saved: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Differences between two flat trees (``flat_with_paths``) in keys, shapes and dtypes."""
    problems = []
    for path in _params_first(expected):
        if path not in saved:
            problems.append(f"{path}: missing from the checkpoint")
            continue
        (s_shape, s_dtype), (e_shape, e_dtype) = _shape_dtype(saved[path]), _shape_dtype(expected[path])
        if s_shape != e_shape:
            problems.append(f"{path}: checkpoint has shape {s_shape}, this model expects {e_shape}")
        elif s_dtype != e_dtype:
            problems.append(f"{path}: checkpoint has dtype {s_dtype}, this model expects {e_dtype}")
    for path in _params_first(saved):
        if path not in expected:
            problems.append(f"{path}: in the checkpoint but not in the expected state")
    return problems


def _raise_mismatch(problems: list[str], where: str) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more mismatches)" if len(problems) > 1 else ""
        raise ValueError(f"checkpoint {where} does not fit: {problems[0]}{more}")


def _default_sharding() -> jax.sharding.Sharding:
    return jax.sharding.SingleDeviceSharding(jax.devices()[0])


def _with_sharding(leaf, sharding=None) -> jax.ShapeDtypeStruct:
    """A ShapeDtypeStruct for ``leaf`` carrying ``sharding`` (its own, else the default device)."""
    shape, dtype = _shape_dtype(leaf)
    own = getattr(leaf, "sharding", None)  # orbax metadata carries a description, not a Sharding
    sharding = sharding or (own if isinstance(own, jax.sharding.Sharding) else None) or _default_sharding()
    return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)


# ----------------------------------------------------------------------------- the manager
class CheckpointManager:
    """Numbered training checkpoints in ``directory`` (``<directory>/<step>/{state,metadata}``).

    ``max_to_keep`` keeps only the newest N steps (None: keep all); an old step is deleted only
    after the new one is complete. With ``async_save`` a ``save`` returns once the arrays are
    copied off the devices, while files are written in the background; the state may be donated
    or changed right after. ``read_only`` opens an existing directory for restoring only (it never
    touches a save another process may have in flight).
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int | None = None, async_save: bool = True,
                 read_only: bool = False):
        self.directory = Path(directory).absolute()
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"max_to_keep must be at least 1 (or None to keep all), got {max_to_keep}")
        if read_only and not self.directory.is_dir():
            raise FileNotFoundError(f"checkpoint directory {self.directory} does not exist")
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(f"checkpoint directory {self.directory} is a file")
        options = ocp.CheckpointManagerOptions(
            preservation_policy=None if max_to_keep is None else ocp.checkpoint_managers.LatestN(max_to_keep),
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=not read_only,
            save_interval_steps=0 if read_only else 1,
            read_only=read_only,
            create=not read_only,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, handler_registry=_handler_registry())
        self._pending_step: int | None = None

    # ----- listing
    def all_steps(self) -> list[int]:
        """Steps whose checkpoints are complete, ascending (a save still being written is left out)."""
        steps = set(self._manager.all_steps())
        if self._pending_step is not None and self._manager.is_saving_in_progress():
            steps.discard(self._pending_step)
        return sorted(steps)

    def latest_step(self) -> int | None:
        """The newest complete step, or None when there is none."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    # ----- saving
    def save(self, step: int, state, metadata: dict | None = None, *, overwrite: bool = False) -> None:
        """Save ``state`` (a pytree of arrays) and JSON ``metadata`` as checkpoint ``step``.

        Saving a step that already exists is an error unless ``overwrite=True``, which deletes the
        old one first (unlike a new step, that replacement is not atomic). Unlike Hugging Face's
        Trainer, which writes over ``checkpoint-N``, we refuse by default: a second save of the same
        step usually means a resumed run that is about to lose the checkpoint it resumed from.
        """
        step = int(step)
        if step < 0:
            raise ValueError(f"checkpoint step must be non-negative, got {step}")
        metadata = {} if metadata is None else metadata
        _check_json(metadata)
        _check_no_typed_keys(state)
        self.wait_until_finished()
        if step in self._manager.all_steps():
            if not overwrite:
                raise ValueError(f"checkpoint step {step} already exists in {self.directory}; "
                                 "pass overwrite=True to replace it")
            self._manager.delete(step)
        args = ocp.args.Composite(**{STATE_ITEM: ocp.args.PyTreeSave(state), METADATA_ITEM: ocp.args.JsonSave(metadata)})
        self._manager.save(step, args=args, force=True)
        self._pending_step = step

    def wait_until_finished(self) -> None:
        """Block until a background save is fully written; raise its error if it failed."""
        self._manager.wait_until_finished()
        self._manager.check_for_errors()
        self._pending_step = None

    def close(self) -> None:
        """Finish any background save and release orbax's resources."""
        self.wait_until_finished()
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ----- restoring
    def _resolve_step(self, step: int | None) -> int:
        """The step to read (None: the latest), after a save in flight has finished."""
        if self._pending_step is not None:
            self.wait_until_finished()
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        if step is None:
            return steps[-1]
        if int(step) not in steps:
            raise FileNotFoundError(f"checkpoint step {step} not found in {self.directory}; available steps: {steps}")
        return int(step)

    def _saved_state(self, step: int):
        """The saved state tree of ``step``, with orbax's array metadata (shape, dtype) as leaves."""
        tree = self._manager.metadata(step).item_metadata[STATE_ITEM]
        tree = getattr(tree, "tree", tree)
        if tree is None:
            raise ValueError(f"checkpoint {self.directory / str(step)} has no train state")
        return tree

    def read_metadata(self, step: int | None = None) -> dict:
        """The JSON metadata saved with ``step`` (None: the latest)."""
        step = self._resolve_step(step)
        if not (self.directory / str(step) / METADATA_ITEM).exists():
            raise FileNotFoundError(f"checkpoint {self.directory / str(step)} has no metadata")
        restored = self._manager.restore(step, args=ocp.args.Composite(**{METADATA_ITEM: ocp.args.JsonRestore()}))
        return restored[METADATA_ITEM]

    def restore(self, step: int | None = None, abstract_state=None) -> tuple[Any, dict]:
        """Read checkpoint ``step`` (None: the latest); returns ``(state, metadata)``.

        ``abstract_state`` is the expected pytree (``jax.ShapeDtypeStruct`` leaves, or arrays); each
        leaf is restored onto its ``.sharding`` (leaves without one go to the default device). The
        saved keys, shapes and dtypes are checked against it before anything is read. Without it,
        every array goes to the default device and containers come back as orbax saved them
        (namedtuples such as optax states as lists of dicts).
        """
        step = self._resolve_step(step)
        saved = self._saved_state(step)
        if abstract_state is None:
            target = jax.tree.map(_with_sharding, saved)
        else:
            problems = tree_mismatches(flat_with_paths(saved), flat_with_paths(abstract_state))
            _raise_mismatch(problems, str(self.directory / str(step)))
            target = jax.tree.map(_with_sharding, abstract_state)
        metadata = self.read_metadata(step)
        args = ocp.args.PyTreeRestore(item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target))
        restored = self._manager.restore(step, args=ocp.args.Composite(**{STATE_ITEM: args}))
        return restored[STATE_ITEM], metadata

    def restore_params(self, step: int | None = None, shardings=None):
        """Read only the ``params`` subtree of checkpoint ``step`` (None: the latest).

        ``shardings`` is a tree of shardings with the params' structure (e.g. from
        ``param_shardings``); None puts every array on the default device. Optimizer state is
        not read from disk.
        """
        step = self._resolve_step(step)
        where = self.directory / str(step)
        saved_state = self._saved_state(step)
        params_meta = saved_state.get("params") if isinstance(saved_state, dict) else None
        if not params_meta:
            raise ValueError(f"checkpoint {where} has no 'params' in its state")
        saved = flat_with_paths(params_meta)
        flat_shardings = dict.fromkeys(saved) if shardings is None else _check_shardings(shardings, saved, where)
        abstract = _replace_leaves(params_meta, {p: _with_sharding(saved[p], s) for p, s in flat_shardings.items()})
        restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
        args = ocp.args.PyTreeRestore(item={"params": abstract}, restore_args={"params": restore_args},
                                      partial_restore=True)
        restored = self._manager.restore(step, args=ocp.args.Composite(**{STATE_ITEM: args}))
        return restored[STATE_ITEM]["params"]


def _check_shardings(shardings, saved: dict, where) -> dict:
    """Flat shardings, checked to cover exactly the saved params."""
    flat = flat_with_paths(shardings)
    missing, extra = sorted(set(saved) - set(flat)), sorted(set(flat) - set(saved))
    if missing or extra:
        bad = f"params/{missing[0]}: no sharding given" if missing else f"params/{extra[0]}: not in the checkpoint"
        raise ValueError(f"shardings do not fit checkpoint {where}: {bad}")
    return flat


def _replace_leaves(tree, flat: dict[str, Any]):
    """``tree`` with the leaf at each path of ``flat`` replaced."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    new = [flat["/".join(_key_name(k) for k in path)] for path, _ in leaves]
    return jax.tree_util.tree_unflatten(treedef, new)


def _handler_registry():
    """state: orbax's PyTree handler with :func:`_type_handlers`; metadata: JSON."""
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    pytree = ocp.handlers.PyTreeCheckpointHandler(type_handler_registry=_type_handlers())
    registry.add(STATE_ITEM, ocp.args.PyTreeSave, pytree)
    registry.add(STATE_ITEM, ocp.args.PyTreeRestore, pytree)
    json_handler = ocp.handlers.JsonCheckpointHandler()
    registry.add(METADATA_ITEM, ocp.args.JsonSave, json_handler)
    registry.add(METADATA_ITEM, ocp.args.JsonRestore, json_handler)
    return registry


def _type_handlers():
    """orbax's default type handlers, with replica-parallel writing only above REPLICA_PARALLEL_MIN_BYTES."""
    handlers = ocp.type_handlers
    scalar = handlers.ScalarHandler()
    return handlers.create_type_handler_registry(
        (int, scalar), (float, scalar), (bytes, scalar), (np.number, scalar), (np.ndarray, handlers.NumpyHandler()),
        (jax.Array, handlers.ArrayHandler(min_slice_bytes_for_replica_parallel=REPLICA_PARALLEL_MIN_BYTES)),
        (str, handlers.StringHandler()),
    )


def _check_no_typed_keys(state) -> None:
    """Typed PRNG keys (``jax.random.key``) are refused; orbax saves raw key data."""
    for path, leaf in flat_with_paths(state).items():
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            raise TypeError(f"state leaf {path!r} is a typed PRNG key; save jax.random.key_data(key) "
                            "(or use jax.random.PRNGKey) instead")


def _check_json(metadata) -> None:
    if not isinstance(metadata, dict):
        raise TypeError(f"checkpoint metadata must be a dict, got {type(metadata).__name__}")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as err:
        raise TypeError(f"checkpoint metadata must be JSON-serializable: {err}") from None


# ----------------------------------------------------------------------------- Hugging Face export
def model_class_from_name(name: str) -> type:
    """Our model class called ``name`` (Hugging Face's class names, e.g. ``LlamaForCausalLM``)."""
    known = _model_classes()
    if name not in known:
        raise ValueError(f"unknown model class {name!r}; known: {sorted(known)}")
    return known[name]


def _model_classes() -> dict[str, type]:
    import transformers_jax
    from transformers_jax.modeling_utils import PreTrainedModel
    from transformers_jax.models.auto import MODEL_MAPPING

    classes = {c.__name__: c for task in MODEL_MAPPING.values() for c in task.values()}
    for name in dir(transformers_jax):
        obj = getattr(transformers_jax, name, None)
        if isinstance(obj, type) and issubclass(obj, PreTrainedModel) and obj is not PreTrainedModel:
            classes.setdefault(obj.__name__, obj)
    return classes


def params_dtype(params) -> str | None:
    """The one dtype of all floating params, or None when they are mixed or there are none."""
    dtypes = {np.dtype(x.dtype).name for x in jax.tree.leaves(params) if np.issubdtype(np.dtype(x.dtype), np.floating)
              or np.dtype(x.dtype).name == "bfloat16"}
    return dtypes.pop() if len(dtypes) == 1 else None


def export_to_hf(model_class, config, params, out_dir: str | os.PathLike, tokenizer=None) -> Path:
    """Write ``params`` as a Hugging Face directory (config.json + safetensors) at ``out_dir``.

    ``model_class`` is one of our classes or its name; ``config`` a config object or the Hugging
    Face config dict saved in the checkpoint metadata (its ``param_dtype`` is then taken from the
    params). ``tokenizer`` (anything with ``save_pretrained``) is saved alongside when given.
    """
    if isinstance(model_class, str):
        model_class = model_class_from_name(model_class)
    if isinstance(config, dict):
        dtype = params_dtype(params)
        config = model_class.config_class.from_dict(config, **({"param_dtype": dtype} if dtype else {}))
    model_class(config, params).save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


__all__ = ["CheckpointManager", "export_to_hf", "model_class_from_name", "flat_with_paths", "tree_mismatches"]
