"""GenerationConfig: Hugging Face's generation parameters, names and meanings, as an immutable value.

Every field defaults to ``None`` ("not set"), as in HF v5; ``resolve`` fills what is unset from the
model's generation config and then from :data:`GLOBAL_DEFAULTS`, and applies keyword overrides.
Keys of ``generation_config.json`` that this class does not know are kept in ``extra`` and written
back, so a round trip through HF's ``transformers.GenerationConfig`` loses nothing.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

GENERATION_CONFIG_NAME = "generation_config.json"

# HF's GenerationConfig._get_default_generation_params() for the fields we implement.
GLOBAL_DEFAULTS = {
    "max_length": 20,
    "min_length": 0,
    "do_sample": False,
    "early_stopping": False,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "repetition_penalty": 1.0,
    "length_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "num_return_sequences": 1,
}

_TOKEN_FIELDS = ("eos_token_id", "pad_token_id", "bos_token_id")


def _freeze(value):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int | None = None
    max_length: int | None = None
    min_new_tokens: int | None = None
    min_length: int | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    num_beams: int | None = None
    length_penalty: float | None = None
    early_stopping: bool | str | None = None
    num_return_sequences: int | None = None
    eos_token_id: int | tuple | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    decoder_start_token_id: int | tuple | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | tuple | None = None
    extra: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        for name in ("eos_token_id", "forced_eos_token_id", "decoder_start_token_id"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    @classmethod
    def from_dict(cls, values: dict, **overrides) -> "GenerationConfig":
        values = {**values, **overrides}
        names = set(cls.field_names())
        known = {k: v for k, v in values.items() if k in names}
        extra = {k: v for k, v in values.items() if k not in names and k != "extra"}
        extra.update(values.get("extra") or {})
        return cls(**known, extra=extra)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, config_file_name: str = GENERATION_CONFIG_NAME, **kwargs):
        """Read ``generation_config.json`` from a file, a model directory or a hub repo id (only that file is
        downloaded). Hub keywords (``revision``, ``token``, ``cache_dir``, ``local_files_only``,
        ``force_download``, ``subfolder``) as for models; other keyword arguments override values."""
        from transformers_jax import hub_download

        hub_kwargs = hub_download.pop_hub_kwargs(kwargs)
        path = Path(name_or_path) if isinstance(name_or_path, (str, os.PathLike)) else None
        if path is None or not path.is_file():
            path = hub_download.open_source(name_or_path, **hub_kwargs).get(config_file_name)
        return cls.from_dict(json.loads(path.read_text()), **kwargs)

    @classmethod
    def from_model_config(cls, config) -> "GenerationConfig":
        """The generation settings a model config carries: its special tokens and any generation
        field stored in it (older checkpoints keep ``max_length`` and such in config.json)."""
        values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        known = {k: values[k] for k in cls.field_names() if values.get(k) is not None}
        return cls(**known)

    def replace(self, **changes) -> "GenerationConfig":
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ValueError(
                f"unknown generation argument(s) {', '.join(map(repr, unknown))}; "
                f"known ones are: {', '.join(self.field_names())}"
            )
        return dataclasses.replace(self, **changes)

    def update(self, **changes) -> "GenerationConfig":
        return self.replace(**changes)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        """The set fields (not ``None``) and the kept unknown keys, JSON-ready."""
        out = {}
        for name in self.field_names():
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, tuple) else value
        out.update(self.extra)
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory: str | os.PathLike, config_file_name: str = GENERATION_CONFIG_NAME) -> None:
        from transformers_jax.file_utils import atomic_write, ensure_directory

        atomic_write(ensure_directory(save_directory) / config_file_name, self.to_json_string())

    def __hash__(self):
        return hash((tuple(_freeze(getattr(self, n)) for n in self.field_names()), _freeze(self.extra)))

    def __eq__(self, other):
        return isinstance(other, GenerationConfig) and self.to_dict() == other.to_dict()

    # ------------------------------------------------------------------ resolution
    def resolve(self, model_config: "GenerationConfig | None" = None, **kwargs) -> "GenerationConfig":
        """HF's precedence: ``self`` (the user's config), unset fields filled from the model's
        generation config, then from the global defaults, then ``kwargs`` on top."""
        values = {n: getattr(self, n) for n in self.field_names()}
        for source in ((model_config.to_dict() if model_config is not None else {}), GLOBAL_DEFAULTS):
            for name, value in source.items():
                if name in values and values[name] is None:
                    values[name] = value
        merged = GenerationConfig(**values, extra=dict(self.extra))
        return merged.replace(**kwargs) if kwargs else merged

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """``eos_token_id`` as a tuple of ints (empty when unset)."""
        return token_ids(self.eos_token_id)


def token_ids(value) -> tuple[int, ...]:
    """A token-id setting as HF stores it (``None``, one int, or a list of ints) as a tuple of ints."""
    if value is None:
        return ()
    if isinstance(value, (tuple, list)) or (hasattr(value, "ndim") and value.ndim > 0):
        return tuple(int(v) for v in value)
    return (int(value),)


def resolve_eos_token_ids(model=None, tokenizer=None, *, generation_config=None) -> tuple[int, ...]:
    """The end-of-sequence ids of a model: the first that is set of ``generation_config`` (else the
    model's ``generation_config``), the model's ``config`` and the tokenizer's ``eos_token_id``;
    each may be one id or a list. Empty when none is set."""
    if generation_config is None and model is not None:
        generation_config = getattr(model, "generation_config", None)
    sources = (generation_config, getattr(model, "config", None), tokenizer)
    for source in sources:
        eos = getattr(source, "eos_token_id", None) if source is not None else None
        if eos is not None:
            return token_ids(eos)
    return ()


__all__ = ["GenerationConfig", "GENERATION_CONFIG_NAME", "GLOBAL_DEFAULTS", "resolve_eos_token_ids", "token_ids"]
