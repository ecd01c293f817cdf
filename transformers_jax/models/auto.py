"""Auto classes: pick the model class from ``model_type`` (and ``architectures``) of a checkpoint.

A model file registers its classes in one line: ``register(LlamaConfig, base=LlamaModel, ...)``.
Families are found, not listed: every package under ``transformers_jax/models/`` (names not
starting with ``_``) is imported the first time a mapping is read, so adding a family touches its
own folder only.
"""
from __future__ import annotations

import importlib
import os
import pkgutil

from transformers_jax.configuration_utils import CONFIG_NAME, PretrainedConfig, read_config_dict

TASKS = (
    "base",
    "pretraining",
    "masked_lm",
    "causal_lm",
    "seq2seq_lm",
    "sequence_classification",
    "token_classification",
    "question_answering",
    "multiple_choice",
    "next_sentence_prediction",
)
_families_loaded = False


def load_families() -> None:
    """Import every family package under ``transformers_jax/models/`` (each registers itself); once."""
    global _families_loaded
    if _families_loaded:
        return
    _families_loaded = True
    import transformers_jax.models as models

    for info in pkgutil.iter_modules(models.__path__):
        if info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"{models.__name__}.{info.name}")


def family_packages() -> list[str]:
    """The module names of the family packages (without importing them)."""
    import transformers_jax.models as models

    return [f"{models.__name__}.{i.name}" for i in pkgutil.iter_modules(models.__path__) if i.ispkg and not i.name.startswith("_")]


class _FamilyMapping(dict):
    """A dict that imports the family packages before it is first read."""

    def __getitem__(self, key):
        load_families()
        return super().__getitem__(key)

    def __contains__(self, key):
        load_families()
        return super().__contains__(key)

    def __iter__(self):
        load_families()
        return super().__iter__()

    def __len__(self):
        load_families()
        return super().__len__()

    def get(self, key, default=None):
        load_families()
        return super().get(key, default)

    def keys(self):
        load_families()
        return super().keys()

    def values(self):
        load_families()
        return super().values()

    def items(self):
        load_families()
        return super().items()


CONFIG_MAPPING: dict[str, type[PretrainedConfig]] = _FamilyMapping()
MODEL_MAPPING: dict[str, dict[str, type]] = _FamilyMapping({task: _FamilyMapping() for task in TASKS})


def register(config_class: type[PretrainedConfig], **task_classes) -> None:
    """Register a config class and its model classes by task (``base=``, ``causal_lm=``, ...)."""
    dict.__setitem__(CONFIG_MAPPING, config_class.model_type, config_class)
    for task, cls in task_classes.items():
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known: {TASKS}")
        dict.__getitem__(MODEL_MAPPING, task)[config_class.model_type] = cls


def _open(name_or_path, gguf_file, hub_kwargs: dict) -> tuple[dict, str, dict]:
    """(config dict, source name, where the model class loads from): a local GGUF file or an opened source."""
    from transformers_jax import hub_download

    gguf_path = hub_download.gguf_location(name_or_path, gguf_file, **hub_kwargs)
    if gguf_path is not None:
        from transformers_jax.gguf import read_gguf

        return read_gguf(gguf_path).config, str(gguf_path), {"name_or_path": gguf_path.parent, "gguf_file": gguf_path.name}
    files = hub_download.open_source(name_or_path, **hub_kwargs)
    return read_config_dict(files.get(CONFIG_NAME)), str(files), {"name_or_path": files}


def _config_class(model_type, source: str) -> type[PretrainedConfig]:
    if model_type is None:
        raise ValueError(f"config.json in {source} has no model_type")
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"unknown model_type {model_type!r} in {source}; supported: {sorted(CONFIG_MAPPING)}")
    return CONFIG_MAPPING[model_type]


class AutoConfig:
    """``AutoConfig.from_pretrained(path)`` and ``AutoConfig.for_model(model_type, **kwargs)``."""

    @staticmethod
    def from_pretrained(name_or_path: str | os.PathLike, gguf_file: str | None = None, **kwargs) -> PretrainedConfig:
        """The config class of the checkpoint's ``model_type``, read from config.json (or a GGUF file).

        Hub keywords (``revision``, ``token``, ``cache_dir``, ``local_files_only``, ``force_download``,
        ``subfolder``) as for models; other keyword arguments override config values.
        """
        from transformers_jax.hub_download import pop_hub_kwargs

        hub_kwargs = pop_hub_kwargs(kwargs)
        config_dict, source, _ = _open(name_or_path, gguf_file, hub_kwargs)
        return _config_class(config_dict.get("model_type"), source).from_dict(config_dict, **kwargs)

    @staticmethod
    def for_model(model_type: str, **kwargs) -> PretrainedConfig:
        return _config_class(model_type, "AutoConfig.for_model").from_dict(kwargs)


class _AutoModel:
    task = "base"

    @classmethod
    def _model_class(cls, config_dict: dict, source: str):
        model_type = config_dict.get("model_type")
        _config_class(model_type, source)
        candidates = MODEL_MAPPING[cls.task]
        if model_type not in candidates:
            raise ValueError(f"{cls.__name__} does not support model_type {model_type!r} (found in {source}); "
                             f"it supports {sorted(candidates)}")
        return candidates[model_type]

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, gguf_file: str | None = None, **kwargs):
        """Load the registered class of this task for the checkpoint's ``model_type``.

        Keyword arguments are those of ``PreTrainedModel.from_pretrained``; a hub repo is listed once
        and the model class reads the same commit.
        """
        from transformers_jax.hub_download import pop_hub_kwargs

        config_dict, source, location = _open(name_or_path, gguf_file, pop_hub_kwargs(kwargs))
        return cls._model_class(config_dict, source).from_pretrained(**location, **kwargs)

    @classmethod
    def from_config(cls, config: PretrainedConfig, seed: int = 0, attn_implementation: str | None = None):
        """A randomly initialised model of this task for ``config`` (``attn_implementation`` as Hugging Face's
        keyword: replaces the config's)."""
        model_class = cls._model_class({"model_type": config.model_type}, "the config")
        if attn_implementation is not None:
            config = config.replace(attn_implementation=attn_implementation)
        return model_class(config, seed=seed)


class AutoModel(_AutoModel):
    task = "base"


class AutoModelForPreTraining(_AutoModel):
    task = "pretraining"


class AutoModelForMaskedLM(_AutoModel):
    task = "masked_lm"


class AutoModelForCausalLM(_AutoModel):
    task = "causal_lm"


class AutoModelForSeq2SeqLM(_AutoModel):
    task = "seq2seq_lm"


class AutoModelForSequenceClassification(_AutoModel):
    task = "sequence_classification"


class AutoModelForTokenClassification(_AutoModel):
    task = "token_classification"


class AutoModelForQuestionAnswering(_AutoModel):
    task = "question_answering"


class AutoModelForMultipleChoice(_AutoModel):
    task = "multiple_choice"


class AutoModelForNextSentencePrediction(_AutoModel):
    task = "next_sentence_prediction"
