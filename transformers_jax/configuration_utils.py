"""Model configs: frozen, hashable dataclasses that read and write Hugging Face ``config.json``.

A config is a static argument of ``jax.jit``, so it must be hashable and compare by value. Fields
hold plain JSON values (dicts included); hashing goes through the canonical JSON text. Keys that a
config class does not know are kept in ``extra`` and written back, so a round trip loses nothing.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import ClassVar

CONFIG_NAME = "config.json"

# Fields that describe how we run a model, not the checkpoint; never written to config.json.
RUNTIME_FIELDS = ("compute_dtype", "param_dtype", "scan_layers", "remat", "moe_implementation", "attn_implementation",
                  "pallas_interpret", "loss_chunk_size")


@dataclasses.dataclass(frozen=True, eq=False)
class PretrainedConfig:
    """Base config. Subclasses add architecture fields with Hugging Face's names and defaults."""

    model_type: ClassVar[str] = ""
    # True where the model's attention runs through ``layers.attention_kernels`` (the shared decoder):
    # only there may ``attn_implementation`` ask for a kernel ("splash", "cudnn").
    attention_kernels: ClassVar[bool] = False
    # Hugging Face's aliases, {alias: stored field}: GPT-2 stores ``n_embd`` and answers to ``hidden_size``.
    # Aliases read like attributes and are accepted as config keys and overrides; config.json keeps the stored name.
    attribute_map: ClassVar[dict[str, str]] = {}

    architectures: list | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list | None = None
    tie_word_embeddings: bool = True
    id2label: dict | None = None
    problem_type: str | None = None
    # Runtime fields (ours, never written to config.json): the dtype of the math, the dtype params are
    # stored in, layers under lax.scan (False: an unrolled loop, same numbers), rematerialisation.
    compute_dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = True
    remat: bool = False
    # Grouped matmuls of mixture-of-experts layers: "auto", "ragged_dot" or "tiled" (``layers.moe``).
    moe_implementation: str = "auto"
    # The attention kernel (Hugging Face's name): "auto", "xla", "splash" (TPU) or "cudnn" (GPU); HF's
    # "eager" reads as "xla" and "sdpa" as "auto". The rule "auto" follows and what each kernel accepts:
    # ``layers.attention_kernels``.
    attn_implementation: str = "auto"
    # Run Pallas kernels (attn_implementation="splash") in interpret mode: how they run on a CPU (tests).
    pallas_interpret: bool = False
    # Causal LMs that support it (``loss_chunks``) compute their training loss over chunks of this many
    # positions, never holding the whole [B, T, vocab] logits (0: one piece; ``losses.chunked_causal_lm_loss``).
    loss_chunk_size: int = 0
    # Every config.json key this class does not model, written back unchanged.
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.id2label is None:
            object.__setattr__(self, "id2label", {0: "LABEL_0", 1: "LABEL_1"})
        else:
            object.__setattr__(self, "id2label", {int(k): str(v) for k, v in self.id2label.items()})
        if self.moe_implementation != "auto":
            from transformers_jax.layers.moe import GROUPED_MATMUL_IMPLEMENTATIONS as known

            if self.moe_implementation not in known:
                raise ValueError(f"moe_implementation={self.moe_implementation!r} is not one of {', '.join(map(repr, known))}")
        from transformers_jax.layers.attention_kernels import normalize_attn_implementation

        implementation = normalize_attn_implementation(self.attn_implementation)
        if implementation not in ("auto", "xla") and not self.attention_kernels:
            raise ValueError(f"{type(self).__name__}: attn_implementation={self.attn_implementation!r} is not available "
                             "for this model (attention kernels serve the shared decoder families, Llama and those "
                             "built like it); use 'xla' or 'auto'")
        object.__setattr__(self, "attn_implementation", implementation)
        if self.problem_type not in (None, "regression", "single_label_classification", "multi_label_classification"):
            raise ValueError(
                f"problem_type={self.problem_type!r} is not one of 'regression', "
                "'single_label_classification', 'multi_label_classification'"
            )

    # ----- derived values -----
    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def label2id(self) -> dict:
        return {v: k for k, v in self.id2label.items()}

    def __getattr__(self, name):
        # Unknown config.json keys read like attributes, as in Hugging Face.
        target = type(self).attribute_map.get(name)
        if target is not None:
            return getattr(self, target)
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    # ----- hashing: configs are static jit arguments -----
    def _key(self) -> str:
        return json.dumps(self._all_values(), sort_keys=True, default=str)

    def __hash__(self):
        return hash((type(self).__name__, self._key()))

    def __eq__(self, other):
        return type(self) is type(other) and self._key() == other._key()

    def _all_values(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # ----- construction -----
    @classmethod
    def from_dict(cls, config_dict: dict, **overrides) -> "PretrainedConfig":
        """Build a config from a ``config.json`` dict; ``overrides`` replace values (HF's kwargs)."""
        values = dict(config_dict)
        values.update(overrides)
        values.pop("model_type", None)
        for alias, target in cls.attribute_map.items():
            if alias in values:
                value = values.pop(alias)
                if target in values and values[target] != value and alias not in overrides:
                    raise ValueError(f"{cls.__name__}: {alias}={value!r} and {target}={values[target]!r} disagree "
                                     f"({alias} is another name for {target})")
                values[target] = value
        if "num_labels" in values:
            num_labels = int(values.pop("num_labels"))
            id2label = values.get("id2label")
            if id2label is None or len(id2label) != num_labels:
                values["id2label"] = {i: f"LABEL_{i}" for i in range(num_labels)}
        values.pop("label2id", None)
        values = cls._normalize_legacy(values)
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in values.items() if k in names and k != "extra"}
        extra = dict(values.get("extra") or {})
        extra.update({k: v for k, v in values.items() if k not in names})
        return cls(**known, extra=extra)

    @classmethod
    def _normalize_legacy(cls, values: dict) -> dict:
        """Hook for subclasses: map older config.json spellings to current ones."""
        return values

    def replace(self, **changes) -> "PretrainedConfig":
        """A copy with some fields changed (runtime fields such as ``compute_dtype`` included)."""
        return type(self).from_dict({**self._all_values(), **changes})

    def to_dict(self) -> dict:
        """The ``config.json`` dict, in Hugging Face's current spelling."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in RUNTIME_FIELDS or f.name == "extra":
                continue
            out[f.name] = getattr(self, f.name)
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["label2id"] = {v: k for k, v in self.id2label.items()}
        out.update(self.extra)
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "PretrainedConfig":
        return cls.from_dict(read_config_dict(path))

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs) -> "PretrainedConfig":
        """Read ``config.json`` from a local directory or a hub repo id (only that file is downloaded).

        Hub keywords (``revision``, ``token``, ``cache_dir``, ``local_files_only``, ``force_download``,
        ``subfolder``) as in :func:`transformers_jax.hub_download.open_source`; other keyword
        arguments override config values.
        """
        from transformers_jax import hub_download

        files = hub_download.open_source(name_or_path, **hub_download.pop_hub_kwargs(kwargs))
        config_dict = read_config_dict(files.get(CONFIG_NAME))
        model_type = config_dict.get("model_type")
        if cls.model_type and model_type not in (None, cls.model_type):
            raise ValueError(
                f"{CONFIG_NAME} of {files} has model_type={model_type!r}, but {cls.__name__} expects "
                f"{cls.model_type!r}"
            )
        return cls.from_dict(config_dict, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write ``config.json`` into ``save_directory`` (created if needed)."""
        from transformers_jax.hub import atomic_write_text, ensure_directory

        directory = ensure_directory(save_directory)
        atomic_write_text(directory / CONFIG_NAME, self.to_json_string())

    def __repr__(self):
        return f"{type(self).__name__} {self.to_json_string()}"


def read_config_dict(path: str | os.PathLike) -> dict:
    """Read a config.json with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config.json at {path}: a model directory needs a config.json")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, found {type(data).__name__}")
    return data

