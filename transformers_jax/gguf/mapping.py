"""What the per-architecture GGUF maps (:mod:`transformers_jax.gguf.architectures`) are made of.

* :class:`Meta` and :class:`Key`: a file's metadata as a map reads it (``{arch}.``-prefixed lookups,
  required or defaulted entries), and :func:`require`, whose error names the missing key and the file;
* the fix-ups several architectures share (tied embeddings, bias flags, RoPE scaling, special token
  ids, llama's q/k row un-permutation, Gemma's ``1 + w`` norms, GPT-2's transposed kernels);
* :class:`GGUFArchitecture`, the entry type: how one ``general.architecture`` value maps onto a Hugging
  Face model (config keys, tensor names, fix-ups, stacked experts, tensor groups, variants).
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------------------------
# Reading metadata
# ----------------------------------------------------------------------------------------------
REQUIRED = object()  # Key default: the metadata key must be present


class GGUFMetadataError(KeyError):
    """A metadata key the loader needs is missing from a GGUF file."""

    def __str__(self):
        return str(self.args[0])


def require(metadata: Mapping, key: str, path, needed_by: str = "the model") -> Any:
    """``metadata[key]``, or a :class:`GGUFMetadataError` naming the key and the file."""
    if key not in metadata:
        raise GGUFMetadataError(f"GGUF file {path} has no metadata key {key!r}, which {needed_by} needs")
    return metadata[key]


@dataclasses.dataclass(frozen=True)
class Meta:
    """The metadata of one file as the maps see it: ``{arch}.``-prefixed lookups and the tensor names."""

    metadata: Mapping[str, Any]
    arch: str
    tensor_names: frozenset
    path: str

    def need(self, key: str) -> Any:
        """``{arch}.{key}``, which must be present."""
        return require(self.metadata, f"{self.arch}.{key}", self.path, f"a {self.arch} model")

    def get(self, key: str, default: Any = None) -> Any:
        """``{arch}.{key}``, or ``default``."""
        return self.metadata.get(f"{self.arch}.{key}", default)


@dataclasses.dataclass(frozen=True)
class Key:
    """One config entry read from ``{arch}.{name}``, converted with ``cast``.

    ``default``: :data:`REQUIRED` (absent -> :class:`GGUFMetadataError`), a value, or a function
    ``(config so far, meta) -> value``; the entry is left out when the result is ``None``.
    """

    name: str
    cast: Callable[[Any], Any] = int
    default: Any = REQUIRED

    def read(self, config: dict, meta: Meta) -> Any:
        if self.default is REQUIRED:
            return self.cast(meta.need(self.name))
        value = meta.get(self.name)
        if value is None:
            value = self.default(config, meta) if callable(self.default) else self.default
        return None if value is None else self.cast(value)


# ----------------------------------------------------------------------------------------------
# Fix-ups shared by architectures
# ----------------------------------------------------------------------------------------------
def vocab_from_tokens(config: dict, meta: Meta) -> int:
    """Key default: the vocabulary size is the length of the tokenizer's token list."""
    return len(require(meta.metadata, "tokenizer.ggml.tokens", meta.path, f"a {meta.arch} model"))


def same_as(hf_key: str) -> Callable[[dict, Meta], Any]:
    """Key default: the value of another config entry (read before this one)."""
    return lambda config, meta: config[hf_key]


def other_key(name: str) -> Callable[[dict, Meta], Any]:
    """Key default: another ``{arch}.`` metadata key, or nothing."""
    return lambda config, meta: meta.get(name)


def tied_embeddings(config: dict, meta: Meta) -> None:
    """Input and output embeddings are tied when the file has no ``output.weight``."""
    config["tie_word_embeddings"] = "output.weight" not in meta.tensor_names


def bias_flags(config: dict, meta: Meta) -> None:
    """``attention_bias`` / ``mlp_bias`` when the file has those bias tensors."""
    if any(n.endswith(("attn_q.bias", "attn_output.bias")) for n in meta.tensor_names):
        config["attention_bias"] = True
    if any(n.endswith("ffn_up.bias") for n in meta.tensor_names):
        config["mlp_bias"] = True


def rope_scaling(config: dict, meta: Meta) -> None:
    """Hugging Face's ``rope_scaling`` from llama.cpp's ``{arch}.rope.scaling.*`` keys, if any."""
    kind, factor = meta.get("rope.scaling.type"), meta.get("rope.scaling.factor")
    if kind is None and meta.get("rope.scale_linear") is not None:  # older files
        kind, factor = "linear", meta.get("rope.scale_linear")
    if kind in (None, "none"):
        return
    scaling = {"rope_type": str(kind)}
    if factor is not None:
        scaling["factor"] = float(factor)
    original = meta.get("rope.scaling.original_context_length")
    if original is not None:
        scaling["original_max_position_embeddings"] = int(original)
    attn_factor = meta.get("rope.scaling.attn_factor")
    if attn_factor is not None:
        scaling["attention_factor"] = float(attn_factor)
    config["rope_scaling"] = scaling


def special_token_ids(config: dict, meta: Meta) -> None:
    """``bos_token_id`` / ``eos_token_id`` / ``pad_token_id`` from the tokenizer metadata."""
    for name, key in (("bos", "bos"), ("eos", "eos"), ("pad", "padding")):
        token_id = meta.metadata.get(f"tokenizer.ggml.{key}_token_id")
        if token_id is not None:
            config[f"{name}_token_id"] = int(token_id)


def unpermute_rows(heads_key: str) -> Callable[[np.ndarray, dict], np.ndarray]:
    """Tensor fix-up: undo llama.cpp's q/k row order, which within each of ``config[heads_key]``
    heads interleaves the two rotary halves."""

    def fix(weights: np.ndarray, config: dict) -> np.ndarray:
        n_heads, rows = config[heads_key], weights.shape[0]
        w = weights.reshape(n_heads, rows // n_heads // 2, 2, *weights.shape[1:])
        return np.ascontiguousarray(w.swapaxes(1, 2)).reshape(weights.shape)

    return fix


def minus_one(weights: np.ndarray, config: dict) -> np.ndarray:
    """Tensor fix-up: Gemma's RMSNorm multiplies by ``1 + w``; llama.cpp stores ``1 + w``, Hugging Face ``w``."""
    return weights - np.float32(1.0)


def transposed(weights: np.ndarray, config: dict) -> np.ndarray:
    """Tensor fix-up: GPT-2's ``Conv1D`` kernels are [in, out]; llama.cpp stores them [out, in]."""
    return np.ascontiguousarray(weights.T) if weights.ndim == 2 else weights




# ----------------------------------------------------------------------------------------------
# The entry type
# ----------------------------------------------------------------------------------------------
EXPERT = "{expert}"  # in a Hugging Face name: the tensor holds every expert, stacked on its first axis


@dataclasses.dataclass(frozen=True)
class GGUFArchitecture:
    """How one ``general.architecture`` value maps onto a Hugging Face model (the fields are described in
    :mod:`transformers_jax.gguf.architectures`)."""

    name: str
    model_type: str
    hf_class: str
    config: Mapping[str, Key]
    config_fixups: tuple[Callable[[dict, Meta], None], ...] = ()
    global_tensors: Mapping[str, str] = dataclasses.field(default_factory=dict)
    layer_tensors: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ignored_tensors: tuple[str, ...] = ()
    tensor_fixups: Mapping[str, Callable[[np.ndarray, dict], np.ndarray]] = dataclasses.field(default_factory=dict)
    tensor_config: Mapping[str, Callable[[dict, np.ndarray], None]] = dataclasses.field(default_factory=dict)
    layer_prefix: str = "model.layers"
    tensor_groups: tuple[tuple[str, ...], ...] = ()
    expert_count_key: str = "num_experts"  # the config entry a stacked-experts tensor's first axis must match
    when: Callable[[Meta], bool] | None = None

    def hf_config(self, metadata: Mapping, tensor_names, path) -> dict:
        """A ``config.json``-style dict from the file's metadata and tensor names."""
        meta = Meta(metadata, self.name, frozenset(tensor_names), str(path))
        config: dict[str, Any] = {"architectures": [self.hf_class], "model_type": self.model_type}
        for hf_key, key in self.config.items():
            value = key.read(config, meta)
            if value is not None:
                config[hf_key] = value
        for fixup in self.config_fixups:
            fixup(config, meta)
        return config

    def _split(self, name: str) -> tuple[str | None, str, str]:
        """``blk.3.attn_q.weight`` -> ("3", "attn_q", "weight"); ``output.weight`` -> (None, "output", "weight")."""
        stem, _, suffix = name.rpartition(".")
        match = re.fullmatch(r"blk\.(\d+)\.(\w+)", stem)
        return (match.group(1), match.group(2), suffix) if match else (None, stem, suffix)

    def hf_tensor_name(self, name: str, path) -> str:
        """Hugging Face PyTorch name of a llama.cpp tensor name such as ``blk.3.attn_q.weight``."""
        layer, stem, suffix = self._split(name)
        if layer is None and stem in self.global_tensors:
            return f"{self.global_tensors[stem]}.{suffix}"
        if layer is not None and stem in self.layer_tensors:
            return f"{self.layer_prefix}.{layer}.{self.layer_tensors[stem]}.{suffix}"
        raise ValueError(f"GGUF file {path} has tensor {name!r}, which a {self.hf_class} has no place for")

    def hf_tensors(self, name: str, weights: np.ndarray, config: dict, path) -> list[tuple[str, np.ndarray]]:
        """``(Hugging Face name, weights)`` pairs of one (fixed-up) tensor: one pair, or one per expert for
        a tensor of stacked experts, whose first axis must be the config's expert count."""
        target = self.hf_tensor_name(name, path)
        if EXPERT not in target:
            return [(target, weights)]
        count = config[self.expert_count_key]
        if weights.ndim != 3 or weights.shape[0] != count:
            raise ValueError(f"GGUF file {path} has tensor {name!r} of shape {tuple(weights.shape)}, which should "
                             f"stack {count} experts' matrices ({self.expert_count_key}={count})")
        return [(target.replace(EXPERT, str(e)), weights[e]) for e in range(count)]

    def check_tensor_groups(self, names, path) -> None:
        """Every layer holds all or none of each of :attr:`tensor_groups`; the error names a missing tensor."""
        names = set(names)
        layers = {self._split(n)[0] for n in names} - {None}
        for group in self.tensor_groups:
            for layer in sorted(layers, key=int):
                present = [stem for stem in group if f"blk.{layer}.{stem}.weight" in names]
                missing = [stem for stem in group if stem not in present]
                if present and missing:
                    raise ValueError(
                        f"GGUF file {path} has no tensor 'blk.{layer}.{missing[0]}.weight', which layer {layer}'s "
                        f"mixture-of-experts block needs beside {', '.join(present)}")

    def fix_tensor(self, name: str, weights: np.ndarray, config: dict) -> np.ndarray:
        """Apply the fix-up of a tensor's stem (``attn_q``, ``output_norm``...), if it has one (weights and
        biases alike: llama.cpp permutes a q bias as it permutes q's rows)."""
        _, stem, _ = self._split(name)
        fixup = self.tensor_fixups.get(stem)
        return weights if fixup is None else fixup(weights, config)

    def config_tensor(self, name: str):
        """The ``(config, weights) -> None`` function of a tensor that holds config, not weights, or None."""
        layer, stem, _ = self._split(name)
        return self.tensor_config.get(stem) if layer is None else None
