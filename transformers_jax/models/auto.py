"""Auto classes: pick the model class from ``model_type`` (and ``architectures``) of a checkpoint.

A model file registers its classes in one line: ``register(LlamaConfig, base=LlamaModel, ...)``.
"""
from __future__ import annotations

import os
from pathlib import Path

from transformers_jax import hub
from transformers_jax.configuration_utils import CONFIG_NAME, PretrainedConfig, read_config_dict

TASKS = (
    "base",
    "pretraining",
    "masked_lm",
    "causal_lm",
    "sequence_classification",
    "token_classification",
    "question_answering",
    "multiple_choice",
    "next_sentence_prediction",
)
CONFIG_MAPPING: dict[str, type[PretrainedConfig]] = {}
MODEL_MAPPING: dict[str, dict[str, type]] = {task: {} for task in TASKS}


def register(config_class: type[PretrainedConfig], **task_classes) -> None:
    """Register a config class and its model classes by task (``base=``, ``causal_lm=``, ...)."""
    CONFIG_MAPPING[config_class.model_type] = config_class
    for task, cls in task_classes.items():
        if task not in MODEL_MAPPING:
            raise ValueError(f"unknown task {task!r}; known: {TASKS}")
        MODEL_MAPPING[task][config_class.model_type] = cls


def _config_dict(name_or_path, gguf_file=None) -> tuple[dict, str]:
    path = Path(name_or_path)
    if gguf_file is not None or str(name_or_path).endswith(".gguf"):
        from transformers_jax.gguf_utils import read_gguf

        path = path / gguf_file if gguf_file is not None else path
        return read_gguf(path).config, str(path)
    directory = hub.resolve_model_dir(name_or_path)
    return read_config_dict(directory / CONFIG_NAME), str(directory)


def _config_class(model_type, source: str) -> type[PretrainedConfig]:
    if model_type is None:
        raise ValueError(f"config.json in {source} has no model_type")
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"unknown model_type {model_type!r} in {source}; supported: {sorted(CONFIG_MAPPING)}")
    return CONFIG_MAPPING[model_type]


class AutoConfig:
    """``AutoConfig.from_pretrained(path)`` and ``AutoConfig.for_model(model_type, **kwargs)``."""

    @staticmethod
    def from_pretrained(name_or_path: str | os.PathLike, gguf_file: str | None = None, **overrides) -> PretrainedConfig:
        config_dict, source = _config_dict(name_or_path, gguf_file)
        return _config_class(config_dict.get("model_type"), source).from_dict(config_dict, **overrides)

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
        """Load the registered class of this task for the checkpoint's ``model_type``."""
        config_dict, source = _config_dict(name_or_path, gguf_file)
        model_class = cls._model_class(config_dict, source)
        return model_class.from_pretrained(name_or_path, gguf_file=gguf_file, **kwargs)

    @classmethod
    def from_config(cls, config: PretrainedConfig, seed: int = 0):
        """A randomly initialised model of this task for ``config``."""
        model_class = cls._model_class({"model_type": config.model_type}, "the config")
        return model_class(config, seed=seed)


class AutoModel(_AutoModel):
    task = "base"


class AutoModelForPreTraining(_AutoModel):
    task = "pretraining"


class AutoModelForMaskedLM(_AutoModel):
    task = "masked_lm"


class AutoModelForCausalLM(_AutoModel):
    task = "causal_lm"


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
