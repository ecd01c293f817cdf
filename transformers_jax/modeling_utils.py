"""The thin model classes: config + params, a jitted pure forward, checkpoints both ways.

A model file defines, per class: ``param_specs(config)`` (the spec tree, keys following the
Hugging Face module path), ``forward(params, config, ...)`` (a pure function returning an output
dataclass) and, where weights are tied, ``tied_weights(config)``. Everything else — init, the
strict conversion to and from PyTorch state dicts, ``from_pretrained``/``save_pretrained``, input
checks, resizing the vocabulary — lives here once.
"""
from __future__ import annotations

import dataclasses
import itertools
import functools
import inspect
import logging
import os
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from transformers_jax import hub
from transformers_jax.configuration_utils import CONFIG_NAME, PretrainedConfig, read_config_dict
from transformers_jax.params import (
    abstract_params,
    flatten_tree,
    init_params,
    is_spec,
    unflatten_tree,
)
from transformers_jax.partitioning import MeshRules, active_sharding, check_rules
from transformers_jax.partitioning import mesh_rules as place_on

logger = logging.getLogger("transformers_jax")

_LEAF_TO_TORCH = {"kernel": "weight", "scale": "weight", "embedding": "weight"}
_STATIC_FLAGS = ("output_hidden_states", "output_attentions", "output_router_logits")


def _np_dtype(name: str) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


@dataclasses.dataclass(frozen=True)
class CheckpointPart:
    """One of our param leaves (at ``layer`` of a stacked leaf) as it sits in a checkpoint tensor:
    ``shape`` in the checkpoint's layout, ``transpose`` between the two."""

    path: tuple
    layer: tuple[int, ...] | None  # the index into the leaf's stacked leading axes (layers, experts)
    transpose: bool
    shape: tuple

    @property
    def out_axis(self) -> int:
        """The output-feature axis in the checkpoint's layout ([out, in] when transposed, [..., out] else)."""
        return 0 if self.transpose else len(self.shape) - 1


@dataclasses.dataclass(frozen=True)
class CheckpointKey:
    """Where one checkpoint tensor comes from: one leaf, or several joined along their output features."""

    parts: tuple[CheckpointPart, ...]

    @property
    def axis(self) -> int:
        return self.parts[0].out_axis

    @property
    def sizes(self) -> list[int]:
        return [part.shape[self.axis] for part in self.parts]

    @property
    def shape(self) -> tuple:
        first = list(self.parts[0].shape)
        first[self.axis] = sum(self.sizes)
        return tuple(first)

    def describe(self) -> str:
        return " + ".join(f"{'.'.join(map(str, p.path[:-1]))} {p.shape}" for p in self.parts)


@dataclasses.dataclass(frozen=True)
class FusedWeight:
    """A checkpoint tensor that holds several of our leaves joined along their output features.

    ``fused`` and ``parts`` are key templates with ``{prefix}`` (any module path) and ``{leaf}``
    (``weight`` or ``bias``): ``FusedWeight("{prefix}.qkv_proj.{leaf}", ("{prefix}.q_proj.{leaf}",
    "{prefix}.k_proj.{leaf}", "{prefix}.v_proj.{leaf}"))`` is Phi-3's attention. Split on load,
    joined again on save.
    """

    fused: str
    parts: tuple[str, ...]

    def apply(self, keys: dict[str, CheckpointKey]) -> dict[str, CheckpointKey]:
        pattern = re.compile("^" + re.escape(self.parts[0]).replace(r"\{prefix\}", "(?P<prefix>.+)")
                             .replace(r"\{leaf\}", "(?P<leaf>weight|bias)") + "$")
        out = dict(keys)
        for key in keys:
            match = pattern.match(key)
            if not match:
                continue
            names = [template.format(**match.groupdict()) for template in self.parts]
            if not all(name in keys for name in names):
                raise ValueError(f"fused weight {self.fused!r}: {key!r} has no siblings {names}")
            out[self.fused.format(**match.groupdict())] = CheckpointKey(tuple(p for n in names for p in keys[n].parts))
            for name in names:
                del out[name]
        return out


def _as_arrays(value):
    """An input as arrays: nested lists become one array; an output object or a tuple of arrays (a
    seq2seq model's ``encoder_outputs``) keeps its structure with each leaf an array."""
    from transformers_jax.modeling_outputs import ModelOutput

    if isinstance(value, ModelOutput) or (isinstance(value, tuple) and any(hasattr(x, "shape") for x in value)):
        return jax.tree.map(jnp.asarray, value)
    return jnp.asarray(value)


class PreTrainedModel:
    """Base of every model class. Subclasses set the class attributes below and define
    ``param_specs`` and ``forward``."""

    config_class: type[PretrainedConfig] = PretrainedConfig
    base_model_prefix: str = ""  # where the base model lives in head models ("bert", "model")
    is_base_model: bool = False  # True for BertModel / LlamaModel: params *are* the base tree
    stacked_layer_keys: tuple[str, ...] = ()  # containers of repeated layers ("layer", "layers")
    ignore_on_load: tuple[str, ...] = (r"(^|\.)position_ids$", r"(^|\.)rotary_emb\.inv_freq$")
    legacy_renames: tuple[tuple[str, str], ...] = ((r"LayerNorm\.gamma$", "LayerNorm.weight"), (r"LayerNorm\.beta$", "LayerNorm.bias"))
    optional_base_modules: tuple[str, ...] = ()  # base sub-modules a checkpoint may lack (BERT's pooler)
    # Whether this class's checkpoint keys hold the base model under ``base_model_prefix`` (None: head
    # classes do, the base class does not; T5's conditional-generation and QA classes keep ``shared``,
    # ``encoder`` and ``decoder`` at the top, beside their head, as Hugging Face's do).
    checkpoint_nests_base: bool | None = None
    # Top-level checkpoint modules of the family's other classes, beside the base modules (T5's
    # ``lm_head``, ``qa_outputs``, and ``decoder`` for its encoder-only classes): reported and not used
    # by a class that lacks them, like another head's weights.
    checkpoint_head_modules: tuple[str, ...] = ()
    per_sequence_modules: tuple[str, ...] = ()  # modules that run once per sequence, not per token (FLOPs)
    loss_averages_labels: bool = True  # the loss is a mean over labels != -100 (False: over rows)
    # How Hugging Face's Flax twin of the class stored its params (read by flax_checkpoint.py):
    flax_leaf_names: tuple[tuple[str, str], ...] = ()  # (our leaf, HF Flax's) where they differ: RMSNorm "weight"
    flax_shared_weights: tuple[tuple[str, str], ...] = ()  # (PyTorch key HF Flax did not store, key it used instead)
    flax_untied_weights: tuple[str, ...] = ()  # tied PyTorch keys HF Flax stored anyway, as a copy (FlaxLlama's lm_head)
    # How the PyTorch checkpoint differs from our tree, declared (applied in this order by _torch_keys):
    fused_weights: tuple["FusedWeight", ...] = ()  # several of our leaves stored as one tensor (Phi-3's qkv_proj)
    checkpoint_renames: tuple[tuple[str, str], ...] = ()  # (regex on our key, replacement): GPT-2's module names

    def __init__(self, config: PretrainedConfig, params=None, *, seed: int = 0):
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        if params is None:
            params = init_params(self.param_specs(config), jax.random.PRNGKey(seed), config.param_dtype)
        self.params = params

    # ------------------------------------------------------------------ to be defined by model classes
    @classmethod
    def param_specs(cls, config) -> dict:
        raise NotImplementedError(f"{cls.__name__} must define param_specs")

    @staticmethod
    def forward(params, config, **inputs):
        raise NotImplementedError

    @classmethod
    def tied_weights(cls, config) -> dict[str, str]:
        """{PyTorch key left out of our params: the PyTorch key it is tied to}."""
        return {}

    @classmethod
    def config_for_checkpoint(cls, config, state_dict: dict, source: str):
        """The config to build this class with for ``state_dict`` (a checkpoint's tensors, its own names):
        ``config`` itself unless the family reads something from the weights (T5 unties an LM head
        whose checkpoint holds one that differs from ``shared``, as Hugging Face does)."""
        return config

    @classmethod
    def _nests_base(cls) -> bool:
        """Whether this class's checkpoint keys hold the base model under ``base_model_prefix``."""
        return (not cls.is_base_model) if cls.checkpoint_nests_base is None else cls.checkpoint_nests_base

    @classmethod
    def static_weights(cls, config) -> dict[str, np.ndarray]:
        """{PyTorch key: value} of checkpoint tensors that are functions of the config, not params
        (Marian's fixed sinusoidal position tables). A checkpoint may hold them: they are checked
        against these values on load (a difference is an error naming the key); they are written on
        save when ``saves_static_weights``, as Hugging Face's class does."""
        return {}

    saves_static_weights: bool = True

    # ------------------------------------------------------------------ calling
    @classmethod
    @functools.cache
    def _jitted_forward(cls):
        def run(params, config, _sharding, **inputs):
            # _sharding (the active mesh and rules) is part of the compile key: a trace made inside
            # a sharding context carries its constraints, one made outside does not.
            return cls.forward(params, config, **inputs)

        return jax.jit(run, static_argnames=("config", *_STATIC_FLAGS, "_sharding"))

    @classmethod
    @functools.cache
    def _input_names(cls) -> list[str]:
        """The forward's input names (all but params and config), read once per class."""
        return [n for n in inspect.signature(cls.forward).parameters if n not in ("params", "config")]

    def __call__(self, *args, params=None, return_dict: bool = True, **kwargs):
        """Run the model as Hugging Face does: ``model(input_ids, attention_mask=..., labels=...)``."""
        names = self._input_names()
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional inputs")
        inputs = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{type(self).__name__}() got an unexpected argument {key!r}")
            if key in inputs:
                raise TypeError(f"{type(self).__name__}() got multiple values for {key!r}")
            inputs[key] = value
        for flag in _STATIC_FLAGS:
            if flag in names:
                value = inputs.get(flag)  # an explicit value wins over the config's, as in HF
                inputs[flag] = bool(getattr(self.config, flag, False) if value is None else value)
        self.check_inputs(inputs)
        arrays = {k: (v if v is None or isinstance(v, bool) else _as_arrays(v)) for k, v in inputs.items()}
        out = self._jitted_forward()(
            self.params if params is None else params, self.config, **arrays, _sharding=active_sharding()
        )
        return out if return_dict else out.to_tuple()

    def check_inputs(self, inputs: dict) -> None:
        """Refuse token ids outside the vocabulary and sequences longer than the position table."""
        ids = inputs.get("input_ids")
        if ids is None:
            return
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"input_ids must be integers, got dtype {ids.dtype}")
        vocab = self.config.vocab_size
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
            raise ValueError(f"input_ids contains token id {bad}, outside the vocabulary [0, {vocab})")
        limit = getattr(self.config, "max_position_embeddings", None)
        if limit is not None and ids.ndim >= 1 and ids.shape[-1] > limit:
            raise ValueError(
                f"input length {ids.shape[-1]} exceeds max_position_embeddings={limit} of this model"
            )

    # ------------------------------------------------------------------ placement on a mesh
    mesh_rules: MeshRules | None = None  # set by shard(): generate and the serving engine then run on the mesh

    def shard(self, mesh, rules="tp"):
        """Place the params on ``mesh`` by ``rules`` (a preset name such as ``"tp"`` or ``"fsdp_tp"``, or a
        rules table; see ``partitioning.PRESETS``) and keep the placement as ``self.mesh_rules``: ``generate``
        and the serving engine then run sharded, the params by the rules, the KV cache's rows over the batch
        axes (``data``, ``fsdp``) and its KV heads over ``tensor``. A model larger than one device serves this
        way. Returns ``self``. Refuses an unknown preset, a table that uses one mesh axis twice within a param,
        and KV heads that the tensor axes do not divide (errors name both numbers)."""
        placement = place_on(mesh, rules)
        self.check_placement(self.config, placement)
        self.params = placement.place_params(self.params, self.param_specs(self.config))
        self.mesh_rules = placement
        return self

    @classmethod
    def check_placement(cls, config, placement: MeshRules) -> None:
        """The checks of :meth:`shard`: the rules against every param, and the KV cache's split (for classes
        with one)."""
        check_rules(placement.rules, placement.mesh, cls.param_specs(config))
        init_cache = getattr(cls, "init_cache", None)
        if init_cache is not None:
            from transformers_jax.layers import kv_cache

            rows = placement.split("batch")[1]  # a batch the rows split evenly: only the KV heads are checked here
            kv_cache.shardings(jax.eval_shape(lambda: init_cache(config, rows, 1)), placement)

    # ------------------------------------------------------------------ conversion
    @classmethod
    def _torch_keys(cls, config) -> dict[str, "CheckpointKey"]:
        """{PyTorch key: where its value lives in our params} for every param of ``config``.

        Our keys follow the spec tree (stacked layers get their index back); then the class's
        declarations apply: ``fused_weights`` joins several of our leaves into one PyTorch tensor,
        ``checkpoint_renames`` maps our module names to the checkpoint's.
        """
        specs = flatten_tree(cls.param_specs(config))
        numbers = cls.stacked_layer_numbers(config)
        keys: dict[str, CheckpointKey] = {}
        for path, spec in specs.items():
            leaf = path[-1]
            transpose = spec.torch_transposed if spec.torch_transposed is not None else leaf == "kernel"
            names = list(path[:-1]) + [_LEAF_TO_TORCH.get(leaf, leaf)]
            # Each stacked container on the path (layers, then an MoE layer's experts) owns one leading axis.
            stacked_at = [i for i, p in enumerate(path[:-1]) if p in cls.stacked_layer_keys]
            for index in itertools.product(*(range(n) for n in spec.shape[: len(stacked_at)])):
                shape = spec.shape[len(stacked_at):]
                key_names = list(names)
                for at, i in reversed(list(zip(stacked_at, index))):
                    container, number = numbers.get(path[at], (path[at], None))
                    key_names[at: at + 1] = [container, str(i if number is None else number[i])]
                part = CheckpointPart(path, index or None, transpose, tuple(reversed(shape)) if transpose else tuple(shape))
                keys[".".join(key_names)] = CheckpointKey((part,))
        for fused in cls.fused_weights:
            keys = fused.apply(keys)
        return {cls.checkpoint_name(k): v for k, v in keys.items()}

    @classmethod
    def stacked_layer_numbers(cls, config) -> dict:
        """{stacked container: (the checkpoint's container, its layer number for each entry)} for
        stacks that hold only some of the checkpoint's layers (the MoE layers of a mixed stack)."""
        return {}

    @classmethod
    def checkpoint_name(cls, key: str) -> str:
        """The checkpoint's name for one of our PyTorch-style keys (``checkpoint_renames`` applied):
        GPT-2's ``transformer.embed_tokens.weight`` is ``transformer.wte.weight``."""
        for pattern, replacement in cls.checkpoint_renames:
            key = re.sub(pattern, replacement, key)
        return key

    @classmethod
    def params_to_state_dict(cls, params, config) -> dict[str, np.ndarray]:
        """Our param tree -> a PyTorch-named state dict of numpy arrays (in the checkpoint's layouts)."""
        flat = {path: np.asarray(jax.device_get(v)) for path, v in flatten_tree(params).items()}
        state = {}
        for key, entry in cls._torch_keys(config).items():
            values = []
            for part in entry.parts:
                value = flat[part.path] if part.layer is None else flat[part.path][part.layer]
                values.append(value.T if part.transpose else value)
            value = values[0] if len(values) == 1 else np.concatenate(values, axis=entry.axis)
            state[key] = np.ascontiguousarray(value)
        if cls.saves_static_weights:
            dtype = _np_dtype(config.param_dtype)
            state.update({k: np.ascontiguousarray(v.astype(dtype)) for k, v in cls.static_weights(config).items()})
        return state

    @classmethod
    def state_dict_to_params(cls, state_dict: dict[str, np.ndarray], config, source: str = "checkpoint", seed: int = 0,
                             placement: MeshRules | None = None):
        """A PyTorch-named state dict -> our param tree, strictly.

        Missing, unexpected or mis-shaped keys are errors naming the key. Tied weights, buffers and
        older spellings are accepted; a head that the checkpoint lacks is initialised and reported.
        With ``placement`` each param goes from the host straight into its shards on the mesh.
        """
        state = cls._normalize_checkpoint_keys(state_dict, config, source)
        expected = cls._torch_keys(config)
        specs = flatten_tree(cls.param_specs(config))
        unexpected = sorted(set(state) - set(expected))
        if unexpected:
            raise ValueError(
                f"unexpected weight {unexpected[0]!r} in {source} for {cls.__name__}"
                + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
            )
        missing = sorted(set(expected) - set(state))
        missing_paths = {part.path for k in missing for part in expected[k].parts}
        initialisable = cls._initialisable_paths(specs, missing_paths)
        fatal = [k for k in missing if any(part.path not in initialisable for part in expected[k].parts)]
        if fatal:
            raise ValueError(
                f"missing weight {fatal[0]!r} in {source} for {cls.__name__}"
                + (f" (and {len(fatal) - 1} more)" if len(fatal) > 1 else "")
            )
        dtype = _np_dtype(config.param_dtype)
        gathered: dict[tuple, list] = {}
        for key, entry in expected.items():
            if key not in state:
                continue
            value = np.asarray(state[key])
            if value.shape != entry.shape:
                what = "fused weight" if len(entry.parts) > 1 else "weight"
                raise ValueError(f"{what} {key!r} in {source} has shape {value.shape}, {cls.__name__} expects "
                                 f"{entry.shape}" + (f" ({entry.describe()})" if len(entry.parts) > 1 else ""))
            pieces = [value] if len(entry.parts) == 1 else np.split(value, np.cumsum(entry.sizes)[:-1], axis=entry.axis)
            for part, piece in zip(entry.parts, pieces):
                piece = (piece.T if part.transpose else piece).astype(dtype)
                if part.layer is None:
                    gathered[part.path] = piece
                else:
                    if part.path not in gathered:
                        gathered[part.path] = np.empty(specs[part.path].shape, dtype)
                    gathered[part.path][part.layer] = piece
        flat = gathered
        if initialisable:
            fresh = flatten_tree(init_params(unflatten_tree({p: specs[p] for p in initialisable}), jax.random.PRNGKey(seed), config.param_dtype))
            logger.warning(
                "%s: weights not in %s were newly initialised: %s",
                cls.__name__, source, ", ".join(k for k in missing if expected[k].parts[0].path in initialisable),
            )
            flat.update(fresh)
        if placement is not None:
            return placement.place_params(unflatten_tree(flat), cls.param_specs(config))
        return jax.tree.map(jnp.asarray, unflatten_tree(flat))

    @classmethod
    def _initialisable_paths(cls, specs: dict, missing: set) -> set:
        """Missing paths that form whole heads (or optional base modules) are initialised."""
        def group(path):
            if cls.is_base_model:
                return path[:1] if path[0] in cls.optional_base_modules else None
            if path[0] != cls.base_model_prefix:
                return path[:1]
            return path[:2] if len(path) > 1 and path[1] in cls.optional_base_modules else None

        groups: dict = {}
        for path in specs:
            g = group(path)
            if g is not None:
                groups.setdefault(g, set()).add(path)
        out = set()
        for members in groups.values():
            if members <= missing:
                out |= members
        return out

    @classmethod
    def _normalize_checkpoint_keys(cls, state_dict: dict, config, source: str) -> dict:
        """Older spellings, buffers, tied copies and the base-model prefix, resolved."""
        state = {}
        for key, value in state_dict.items():
            if any(re.search(p, key) for p in cls.ignore_on_load):
                continue
            for pattern, repl in cls.legacy_renames:
                key = re.sub(pattern, repl, key)
            state[key] = value
        prefix = cls.base_model_prefix + "." if cls.base_model_prefix else ""
        nests = cls._nests_base()
        if prefix:
            has_prefix = any(k.startswith(prefix) for k in state)
            if not nests and has_prefix:  # a head checkpoint read by the base class (or a class without the prefix)
                dropped = sorted(k for k in state if not k.startswith(prefix))
                if dropped:
                    logger.warning("%s: weights of heads in %s were not used: %s", cls.__name__, source, ", ".join(dropped))
                state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            elif nests and not has_prefix:
                state = {prefix + k: v for k, v in state.items()}  # a base-model checkpoint
        for tied in cls.tied_weights(config):
            state.pop(tied, None)
        for key, value in cls.static_weights(config).items():
            if key in state:
                held = np.asarray(state.pop(key), np.float32)
                if held.shape != value.shape or not np.allclose(held, value, rtol=0, atol=1e-4):
                    raise ValueError(f"{key!r} in {source} differs from the fixed table {cls.__name__} computes "
                                     f"(shape {held.shape}, expected {value.shape} of the config's values)")
        # Weights of modules this class does not have: other task heads, or optional base modules
        # such as the pooler that BertForMaskedLM leaves out. Reported, not used.
        ours = cls._torch_keys(config)
        our_modules = {k.rsplit(".", 1)[0] for k in ours}

        def relative(key):  # a key of the base model, relative to it
            return key[len(prefix):] if nests else key

        our_tops = {relative(k).split(".")[0] for k in ours if not nests or k.startswith(prefix)}

        def foreign(key):
            if key in ours or key.rsplit(".", 1)[0] in our_modules:
                return False
            if nests and not key.startswith(prefix):
                return True  # another class's head
            top = relative(key).split(".")[0]
            return top in cls.optional_base_modules or (top in cls.checkpoint_head_modules and top not in our_tops)

        unused = sorted(k for k in state if foreign(k))
        if unused:
            logger.warning("%s: weights of modules it does not have in %s were not used: %s", cls.__name__, source, ", ".join(unused))
            state = {k: v for k, v in state.items() if k not in unused}
        return state

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        dtype=None,
        param_dtype=None,
        use_safetensors: bool | None = None,
        from_flax: bool | None = None,
        gguf_file: str | None = None,
        seed: int = 0,
        mesh=None,
        sharding_rules=None,
        **kwargs,
    ):
        """Load a Hugging Face checkpoint: a local directory, or a hub repo id (downloaded into the HF cache).

        ``dtype`` is the compute dtype, ``param_dtype`` the dtype params are kept in (default
        float32). ``use_safetensors=False`` opts in to ``pytorch_model.bin``. ``from_flax=True``
        reads Hugging Face Flax weights (``flax_model.msgpack``, single or sharded); they are read
        without asking when they are the only weights (``from_flax=False`` refuses them).
        ``gguf_file`` names a GGUF file inside the directory or repo (or pass a local file's path
        directly). The hub keywords ``revision``, ``token``, ``cache_dir``, ``local_files_only``,
        ``force_download`` and ``subfolder`` are those of :func:`transformers_jax.hub_download.open_source`;
        other keyword arguments override config values (``num_labels=3``) before params are built.
        ``mesh`` (a ``jax.sharding.Mesh``) with ``sharding_rules`` (a preset name, default ``"tp"``, or a
        rules table) loads each param straight into its shards and keeps the placement, as :meth:`shard`.
        From a hub repo only the files needed are downloaded: config.json, the weights chosen,
        generation_config.json for models that generate.
        """
        from transformers_jax import hub_download

        if sharding_rules is not None and mesh is None:
            raise ValueError("sharding_rules needs a mesh: pass mesh= too (e.g. sharding.create_mesh({'tensor': 8}))")
        placement = None if mesh is None else place_on(mesh, "tp" if sharding_rules is None else sharding_rules)
        hub_kwargs = hub_download.pop_hub_kwargs(kwargs)
        runtime = {}
        if dtype is not None:
            runtime["compute_dtype"] = jnp.dtype(dtype).name
        if param_dtype is not None:
            runtime["param_dtype"] = jnp.dtype(param_dtype).name
        if from_flax and (gguf_file is not None or str(name_or_path).endswith(".gguf")):
            raise ValueError("from_flax=True reads flax_model.msgpack: do not pass a GGUF file with it")
        gguf_path = hub_download.gguf_location(name_or_path, gguf_file, **hub_kwargs)
        if gguf_path is not None:
            from transformers_jax.gguf import read_gguf

            checkpoint = read_gguf(gguf_path)
            config_dict, state, source = checkpoint.config, checkpoint.state_dict, str(gguf_path)
        else:
            files = hub_download.open_source(name_or_path, **hub_kwargs)
            config_dict, state, source = read_config_dict(files.get(CONFIG_NAME)), None, str(files)
        cls._check_model_type(config_dict, source)
        config = cls.config_class.from_dict(config_dict, **kwargs, **runtime)
        if state is None:
            directory = hub_download.fetch_weights(files, use_safetensors=use_safetensors, from_flax=from_flax)
            state, source = cls._load_weights(directory, config, use_safetensors, from_flax)
        config = cls.config_for_checkpoint(config, state, source)
        if placement is not None:
            cls.check_placement(config, placement)
        params = cls.state_dict_to_params(state, config, source=source, seed=seed, placement=placement)
        model = cls(config, params)
        model.mesh_rules = placement
        if cls.can_generate() and gguf_path is None:
            from transformers_jax.generation.configuration_utils import GENERATION_CONFIG_NAME, GenerationConfig

            if files.has(GENERATION_CONFIG_NAME):
                model.generation_config = GenerationConfig.from_pretrained(files.get(GENERATION_CONFIG_NAME))
        return model

    @classmethod
    def _load_weights(cls, directory: Path, config, use_safetensors: bool | None, from_flax: bool | None):
        """The weights in local ``directory`` (as :func:`hub.select_weights` chooses them) as a
        PyTorch-named state dict, and their source for error messages."""
        name = hub.select_weights(lambda n: (directory / n).is_file(), str(directory), use_safetensors, from_flax)
        if name in (hub.FLAX_WEIGHTS_NAME, hub.FLAX_WEIGHTS_INDEX_NAME):
            from transformers_jax import flax_checkpoint

            return flax_checkpoint.load_flax_state_dict(cls, config, directory)
        return hub.load_state_dict(directory, use_safetensors=use_safetensors), str(directory)

    @classmethod
    def can_generate(cls) -> bool:
        """True for classes with ``generate`` (those built on GenerationMixin)."""
        return False

    @classmethod
    def _check_model_type(cls, config_dict: dict, source: str) -> None:
        model_type = config_dict.get("model_type")
        expected = cls.config_class.model_type
        if model_type is None:
            raise ValueError(f"config.json in {source} has no model_type")
        if model_type != expected:
            raise ValueError(f"{source} holds a {model_type!r} model, but {cls.__name__} loads {expected!r} models")

    def save_pretrained(self, save_directory: str | os.PathLike, max_shard_size: int | str = "5GB",
                        save_format: str = "safetensors") -> None:
        """Write config.json and the weights, loadable by Hugging Face.

        ``save_format="safetensors"`` writes PyTorch names and layouts (Hugging Face PyTorch loads
        them); ``"flax"`` writes ``flax_model.msgpack`` as Hugging Face's Flax class of the same name
        did (transformers 4.x ``FlaxBertModel.from_pretrained`` loads it). Weights above
        ``max_shard_size`` are sharded with an index. Files are written to a staging directory
        first, so an error leaves nothing half-written; weight files of an earlier save in the
        directory (either format) that this save did not write are removed.
        """
        if save_format not in ("safetensors", "flax"):
            raise ValueError(f"save_format={save_format!r} is not one of 'safetensors', 'flax'")
        state = self.params_to_state_dict(self.params, self.config)
        config = self.config.replace(architectures=[type(self).__name__], extra={**self.config.extra, "dtype": self.config.param_dtype})
        with hub.staged_directory(Path(save_directory)) as stage:
            (stage / CONFIG_NAME).write_text(config.to_json_string())
            if self.can_generate():
                self.generation_config.save_pretrained(stage)
            if save_format == "flax":
                from transformers_jax.flax_checkpoint import save_flax_state_dict

                written = set(save_flax_state_dict(type(self), self.config, state, stage, max_shard_size))
            else:
                written = set(hub.save_state_dict(state, stage, max_shard_size=max_shard_size))
        # A previous save with another sharding or format leaves weight files this save did not write.
        for pattern in ("model*.safetensors*", "flax_model*.msgpack*"):
            for stale in Path(save_directory).glob(pattern):
                if stale.name not in written:
                    stale.unlink()

    # ------------------------------------------------------------------ conveniences
    def num_parameters(self) -> int:
        return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.params))

    @classmethod
    def abstract_params(cls, config):
        """ShapeDtypeStructs of every param, without allocating anything."""
        return abstract_params(cls.param_specs(config), config.param_dtype)

    def resize_token_embeddings(self, new_num_tokens: int):
        """Grow or shrink every vocabulary-sized param (embeddings, untied output layers, biases).

        New embedding rows and output columns start at the mean of the existing ones; new biases
        at zero. ``config.vocab_size`` follows. Returns the input embedding table.
        """
        old = self.config.vocab_size
        if new_num_tokens <= 0:
            raise ValueError(f"new_num_tokens must be positive, got {new_num_tokens}")
        new_config = self.config.replace(vocab_size=new_num_tokens)
        old_specs = flatten_tree(self.param_specs(self.config))
        flat = flatten_tree(self.params)
        for path, spec in old_specs.items():
            if "vocab" not in spec.axes:
                continue
            axis = spec.axes.index("vocab")
            value = flat[path]
            if new_num_tokens <= old:
                flat[path] = jax.lax.slice_in_dim(value, 0, new_num_tokens, axis=axis)
                continue
            extra_shape = list(value.shape)
            extra_shape[axis] = new_num_tokens - old
            if spec.init == "normal":
                fill = jnp.mean(value.astype(jnp.float32), axis=axis, keepdims=True).astype(value.dtype)
            else:
                fill = jnp.zeros((1,) * value.ndim, value.dtype)
            flat[path] = jnp.concatenate([value, jnp.broadcast_to(fill, extra_shape)], axis=axis)
        self.params = unflatten_tree(flat)
        self.config = new_config
        check = jax.tree.map(lambda s: s.shape, self.param_specs(new_config), is_leaf=is_spec)
        got = jax.tree.map(lambda a: tuple(a.shape), self.params)
        assert check == got, "resize_token_embeddings produced shapes that differ from the specs"
        return self.get_input_embeddings()

    def get_input_embeddings(self):
        """The input token embedding table [V, D]."""
        for path, value in flatten_tree(self.params).items():
            if path[-1] == "embedding" and path[-2] in ("word_embeddings", "embed_tokens"):
                return value
        raise AttributeError(f"{type(self).__name__} has no input embedding table")

    def __repr__(self):
        return f"{type(self).__name__}({self.num_parameters():,} parameters, config={self.config.to_dict()})"


__all__ = ["PreTrainedModel"]
