"""Per-architecture maps from GGUF (llama.cpp names) to Hugging Face (config keys, PyTorch tensor names).

Each architecture is one declarative :class:`GGUFArchitecture` entry in :data:`ARCHITECTURES`:

* ``config``: Hugging Face config key -> :class:`Key`, a metadata key under the ``{arch}.`` prefix
  (``"llama.block_count"`` is ``Key("block_count")``) with its type and what to do when it is absent;
* ``config_fixups``: small functions ``(config, meta) -> None`` for the entries no single key gives
  (tied embeddings, bias flags, RoPE scaling, special token ids...);
* ``global_tensors`` / ``layer_tensors``: llama.cpp tensor stems -> Hugging Face module names
  (``blk.{i}.{stem}`` becomes ``model.layers.{i}.{name}``), plus ``ignored_tensors``;
* ``tensor_fixups``: layer tensor stem -> ``(weights, config) -> weights`` for layout changes
  (llama's q/k row un-permutation).

Adding an architecture means adding one entry here (reusing the fix-up functions that apply) and
listing it in :data:`ARCHITECTURES`; the reader needs no change.
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


# ----------------------------------------------------------------------------------------------
# The entry type
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GGUFArchitecture:
    """How one ``general.architecture`` value maps onto a Hugging Face model (see the module doc)."""

    name: str
    model_type: str
    hf_class: str
    config: Mapping[str, Key]
    config_fixups: tuple[Callable[[dict, Meta], None], ...] = ()
    global_tensors: Mapping[str, str] = dataclasses.field(default_factory=dict)
    layer_tensors: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ignored_tensors: tuple[str, ...] = ()
    tensor_fixups: Mapping[str, Callable[[np.ndarray, dict], np.ndarray]] = dataclasses.field(default_factory=dict)

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
            return f"model.layers.{layer}.{self.layer_tensors[stem]}.{suffix}"
        raise ValueError(f"GGUF file {path} has tensor {name!r}, which a {self.hf_class} has no place for")

    def fix_tensor(self, name: str, weights: np.ndarray, config: dict) -> np.ndarray:
        """Apply the layout fix-up of a layer tensor, if its stem has one."""
        layer, stem, _ = self._split(name)
        fixup = self.tensor_fixups.get(stem) if layer is not None else None
        return weights if fixup is None else fixup(weights, config)


# ----------------------------------------------------------------------------------------------
# The architectures
# ----------------------------------------------------------------------------------------------
LLAMA = GGUFArchitecture(
    name="llama",
    model_type="llama",
    hf_class="LlamaForCausalLM",
    config={
        "vocab_size": Key("vocab_size", int, vocab_from_tokens),
        "hidden_size": Key("embedding_length"),
        "intermediate_size": Key("feed_forward_length"),
        "num_hidden_layers": Key("block_count"),
        "num_attention_heads": Key("attention.head_count"),
        "num_key_value_heads": Key("attention.head_count_kv", int, same_as("num_attention_heads")),
        "max_position_embeddings": Key("context_length"),
        "rms_norm_eps": Key("attention.layer_norm_rms_epsilon", float),
        "rope_theta": Key("rope.freq_base", float, 10000.0),  # llama.cpp's default
        "head_dim": Key("attention.key_length", int, other_key("rope.dimension_count")),
    },
    config_fixups=(tied_embeddings, bias_flags, rope_scaling, special_token_ids),
    global_tensors={"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"},
    layer_tensors={
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    },
    # llama.cpp's precomputed RoPE frequency factors have no Hugging Face parameter.
    ignored_tensors=("rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight"),
    tensor_fixups={"attn_q": unpermute_rows("num_attention_heads"), "attn_k": unpermute_rows("num_key_value_heads")},
)

#: ``general.architecture`` value -> its entry.
ARCHITECTURES: dict[str, GGUFArchitecture] = {arch.name: arch for arch in (LLAMA,)}
SUPPORTED_ARCHITECTURES = tuple(ARCHITECTURES)


def architecture_for(metadata: Mapping, path) -> GGUFArchitecture:
    """The entry for a file's ``general.architecture``; one clear error naming file and architecture
    when there is none."""
    arch = require(metadata, "general.architecture", path)
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"GGUF file {path} holds a {arch!r} model, an architecture transformers_jax cannot load from GGUF; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    return ARCHITECTURES[arch]
