"""``pipeline(task, model=...)``: Hugging Face's task pipelines over this library's JAX models.

The registry ``SUPPORTED_TASKS`` has one entry per task: ``impl`` (``"module:Class"`` inside this package,
imported when the task is first used), ``auto_model`` (the Auto class the task's model comes from),
``default`` (Hugging Face's default checkpoint: ``{"model": (repo id, revision)}``) and ``type``. A new task
is a module with a :class:`~transformers_jax.pipelines.base.Pipeline` subclass plus one entry here (or a
call to :func:`register_pipeline`); ``base.py`` says what the subclass defines.
"""
from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

from transformers_jax.pipelines.base import ChunkPipeline, KeyDataset, Pipeline, PipelineException

logger = logging.getLogger("transformers_jax")

# Hugging Face's defaults (transformers.pipelines.SUPPORTED_TASKS[task]["default"]); question answering,
# summarization, translation and text2text-generation, which transformers 5 dropped, keep those of transformers 4.57.
SUPPORTED_TASKS: dict[str, dict] = {
    "feature-extraction": {
        "impl": "feature_extraction:FeatureExtractionPipeline",
        "auto_model": "AutoModel",
        "default": {"model": ("distilbert/distilbert-base-cased", "6ea8117")},
        "type": "text",
    },
    "text-classification": {
        "impl": "text_classification:TextClassificationPipeline",
        "auto_model": "AutoModelForSequenceClassification",
        "default": {"model": ("distilbert/distilbert-base-uncased-finetuned-sst-2-english", "714eb0f")},
        "type": "text",
    },
    "fill-mask": {
        "impl": "fill_mask:FillMaskPipeline",
        "auto_model": "AutoModelForMaskedLM",
        "default": {"model": ("distilbert/distilroberta-base", "fb53ab8")},
        "type": "text",
    },
    "text-generation": {
        "impl": "text_generation:TextGenerationPipeline",
        "auto_model": "AutoModelForCausalLM",
        "default": {"model": ("HuggingFaceTB/SmolLM3-3B", "a07cc9a")},
        "type": "text",
    },
    "zero-shot-classification": {
        "impl": "zero_shot_classification:ZeroShotClassificationPipeline",
        "auto_model": "AutoModelForSequenceClassification",
        "default": {"model": ("facebook/bart-large-mnli", "d7645e1"), "config": ("facebook/bart-large-mnli", "d7645e1")},
        "type": "text",
    },
    "token-classification": {
        "impl": "token_classification:TokenClassificationPipeline",
        "auto_model": "AutoModelForTokenClassification",
        "default": {"model": ("dbmdz/bert-large-cased-finetuned-conll03-english", "4c53496")},
        "type": "text",
    },
    "question-answering": {
        "impl": "question_answering:QuestionAnsweringPipeline",
        "auto_model": "AutoModelForQuestionAnswering",
        "default": {"model": ("distilbert/distilbert-base-cased-distilled-squad", "564e9b5")},
        "type": "text",
    },
    "summarization": {
        "impl": "text2text_generation:SummarizationPipeline",
        "auto_model": "AutoModelForSeq2SeqLM",
        "default": {"model": ("sshleifer/distilbart-cnn-12-6", "a4f8f3e")},
        "type": "text",
    },
    # Parametrized by the languages: "translation_xx_to_yy" (see check_task); its defaults are per language pair.
    "translation": {
        "impl": "text2text_generation:TranslationPipeline",
        "auto_model": "AutoModelForSeq2SeqLM",
        "default": {
            ("en", "fr"): {"model": ("google-t5/t5-base", "a9723ea")},
            ("en", "de"): {"model": ("google-t5/t5-base", "a9723ea")},
            ("en", "ro"): {"model": ("google-t5/t5-base", "a9723ea")},
        },
        "type": "text",
    },
    "text2text-generation": {
        "impl": "text2text_generation:Text2TextGenerationPipeline",
        "auto_model": "AutoModelForSeq2SeqLM",
        "default": {"model": ("google-t5/t5-base", "a9723ea")},
        "type": "text",
    },
}
TASK_ALIASES: dict[str, str] = {"sentiment-analysis": "text-classification", "ner": "token-classification"}
# The task a model class is for when pipeline() is given a model but no task (by its Auto class).
_TASK_OF_AUTO_MODEL = {
    "AutoModelForSequenceClassification": "text-classification",
    "AutoModelForMaskedLM": "fill-mask",
    "AutoModelForTokenClassification": "token-classification",
    "AutoModelForQuestionAnswering": "question-answering",
    "AutoModelForCausalLM": "text-generation",
    "AutoModelForSeq2SeqLM": "text2text-generation",
    "AutoModel": "feature-extraction",
}
PARAMETRIZED_TASKS = ("translation_XX_to_YY",)  # task names accepted besides SUPPORTED_TASKS and TASK_ALIASES


def register_pipeline(task: str, impl: str | type, auto_model: str, default: dict | None = None,
                      type: str = "text") -> None:
    """Add (or replace) a task: ``impl`` a Pipeline subclass or ``"module:Class"``, ``auto_model`` the name of
    the Auto class in ``transformers_jax`` its models come from, ``default`` ``{"model": (repo id, revision)}``."""
    entry = {"impl": impl, "auto_model": auto_model, "type": type}
    if default is not None:
        entry["default"] = default if "model" in default else {"model": default}
    SUPPORTED_TASKS[task] = entry


def get_supported_tasks() -> list[str]:
    """Every task name and alias ``pipeline()`` accepts, sorted."""
    return sorted([*SUPPORTED_TASKS, *TASK_ALIASES])


def check_task(task: str) -> tuple[str, dict]:
    """(the task's normalized name, its registry entry); ``"translation_xx_to_yy"`` normalizes to
    ``"translation"`` (:func:`task_options` gives its languages). A ValueError listing the known tasks otherwise."""
    if not isinstance(task, str):
        raise TypeError(f"task must be a string, got {type(task).__name__}")
    name = TASK_ALIASES.get(task, task)
    if name not in SUPPORTED_TASKS and name.startswith("translation") and "translation" in SUPPORTED_TASKS:
        task_options(name)  # a malformed translation task is an error that says so
        name = "translation"
    if name not in SUPPORTED_TASKS:
        known = get_supported_tasks() + list(PARAMETRIZED_TASKS)
        raise ValueError(f"Unknown task {task!r}; available tasks are {known}")
    return name, SUPPORTED_TASKS[name]


def task_options(task: str) -> tuple[str, str] | None:
    """The (source, target) languages of ``"translation_xx_to_yy"``, None for any other task; a ValueError for a
    malformed ``translation...`` name (as Hugging Face's check_task, which raises a KeyError)."""
    if not task.startswith("translation") or task == "translation":
        return None
    parts = task.split("_")
    if len(parts) == 4 and parts[0] == "translation" and parts[2] == "to" and parts[1] and parts[3]:
        return parts[1], parts[3]
    raise ValueError(f"Invalid translation task {task}, use 'translation_XX_to_YY' format")


def _task_default(task: str, entry: dict, options) -> dict:
    """The registry entry whose ``default`` is the one for ``options`` (a translation's language pair)."""
    defaults = entry.get("default")
    if defaults is None or "model" in defaults:
        return entry
    if options is None:
        raise ValueError(f"The task defaults can't be correctly selected. You probably meant \"{task}_xx_to_yy\": "
                         f"the {task!r} task has default models for the language pairs {sorted(defaults)} only")
    if options not in defaults:
        raise ValueError(f"The task does not provide any default models for options {options}: the {task!r} task "
                         f"has default models for {sorted(defaults)}; pass model=")
    return {**entry, "default": defaults[options]}


def get_pipeline_class(task: str) -> type[Pipeline]:
    """The Pipeline subclass of ``task`` (its module imported on first use)."""
    name, entry = check_task(task)
    impl = entry["impl"]
    if isinstance(impl, str):
        module, cls = impl.split(":")
        try:
            impl = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{module}":
                raise
            raise NotImplementedError(f"the {name!r} pipeline is registered but its module "
                                      f"transformers_jax/pipelines/{module}.py is not there yet") from err
    return impl


def _auto_class(name: str):
    import transformers_jax

    return getattr(transformers_jax, name)


def _auto_tasks_of(model) -> list[str]:
    """The Auto-class tasks (``"sequence_classification"``...) under which the model's class is registered."""
    from transformers_jax.models.auto import MODEL_MAPPING

    model_type = getattr(model.config, "model_type", None)
    return [task for task, classes in MODEL_MAPPING.items() if classes.get(model_type) is type(model)]


def _check_head(model, task: str, auto_model: str) -> None:
    """Refuse a model object whose class is not one ``auto_model`` loads (its head does not fit ``task``)."""
    auto = _auto_class(auto_model)
    if auto.task in _auto_tasks_of(model):
        return
    from transformers_jax.models.auto import MODEL_MAPPING

    fitting = MODEL_MAPPING[auto.task].get(getattr(model.config, "model_type", None))
    hint = f" (for this model type: {fitting.__name__})" if fitting is not None else ""
    raise ValueError(f"the {task!r} pipeline needs a model that {auto_model} loads{hint}; "
                     f"got a {type(model).__name__}, whose head does not fit the task")


def _infer_task(model, hub_kwargs: dict, model_kwargs: dict) -> str:
    """The task of a model given without one: from its class (an object) or its config's architectures."""
    if isinstance(model, (str, os.PathLike)):
        from transformers_jax.models.auto import AutoConfig

        config = AutoConfig.from_pretrained(model, **hub_kwargs, **_hub_only(model_kwargs))
        from transformers_jax.models.auto import MODEL_MAPPING

        names = set(config.architectures or ())
        autos = [task for task, classes in MODEL_MAPPING.items()
                 if (cls := classes.get(config.model_type)) is not None and cls.__name__ in names]
        what = f"{model} (architectures {sorted(names)})"
    else:
        autos, what = _auto_tasks_of(model), type(model).__name__
    for auto_name, task in _TASK_OF_AUTO_MODEL.items():
        if _auto_class(auto_name).task in autos:
            return task
    raise ValueError(f"cannot infer the pipeline task of {what}: pass task= (one of {get_supported_tasks()})")


def _hub_only(model_kwargs: dict) -> dict:
    from transformers_jax.hub_download import HUB_KWARGS

    return {k: v for k, v in model_kwargs.items() if k in HUB_KWARGS}


def _load_default(task: str, entry: dict, auto, revision, hub_kwargs: dict, model_kwargs: dict, dtype):
    """The task's default checkpoint (through the hub cache) and its repo id; a clear error when it is not there."""
    if "default" not in entry:
        raise ValueError(f"the {task!r} pipeline has no default model: pass model=")
    model_id, default_revision = entry["default"]["model"]
    revision = revision or default_revision
    logger.warning("No model was supplied, defaulted to %s and revision %s. Using a pipeline without specifying a "
                   "model name and revision in production is not recommended.", model_id, revision)
    try:
        return auto.from_pretrained(model_id, revision=revision, dtype=dtype, **hub_kwargs, **model_kwargs), model_id, revision
    except ValueError as err:
        raise ValueError(f"the default model of the {task!r} pipeline, {model_id!r} at revision {revision!r}, cannot "
                         f"be loaded here: {err}. Pass model= (a local directory, a hub id or a model object).") from err
    except OSError as err:
        raise OSError(
            f"the default model of the {task!r} pipeline, {model_id!r} at revision {revision!r}, could not be "
            f"loaded: {err}\nFetch it into the Hugging Face cache with `hf download {model_id} --revision {revision}` "
            f"(where the hub is reachable), or pass model= (a local directory, a hub id or a model object)."
        ) from err


def pipeline(task: str | None = None, model=None, config=None, tokenizer=None, revision: str | None = None,
             token=None, dtype=None, trust_remote_code: bool | None = None, model_kwargs: dict | None = None,
             pipeline_class: type | None = None, batch_size: int | None = None, mesh=None, device=None,
             **kwargs) -> Pipeline:
    """Build the pipeline of ``task``, as ``transformers.pipeline`` does.

    Args:
        task: a task name or alias (``"text-classification"``/``"sentiment-analysis"``, ``"fill-mask"``,
            ``"feature-extraction"``, ``"zero-shot-classification"``, ``"token-classification"``/``"ner"``,
            ``"question-answering"``, ``"text-generation"``, ``"summarization"``, ``"translation"`` /
            ``"translation_xx_to_yy"``, ``"text2text-generation"``). When None, it is read from the model (its
            class, or the ``architectures`` in its config.json).
        model: a local directory or hub repo id (loaded with the Auto class the task needs), or a model
            object of this library (whose head must fit the task). None: the task's default checkpoint
            (Hugging Face's, at its pinned revision), read through the hub cache.
        config: a config object, or a directory / hub id to read one from; its values override the
            checkpoint's (``id2label``...) when the model is loaded here.
        tokenizer: a tokenizer object or a directory / hub id. None: the model's own directory or repo
            (required when ``model`` is an object).
        revision, token: hub keywords for everything loaded here (``cache_dir``, ``local_files_only`` may go
            in ``model_kwargs``).
        dtype: the compute dtype (``"bfloat16"``, ``jnp.float32``...); params keep their own dtype.
        model_kwargs: more keyword arguments for the model's ``from_pretrained``.
        pipeline_class: use this Pipeline subclass instead of the task's.
        batch_size: examples per forward pass (default 1).
        mesh: a ``jax.sharding.Mesh``: params replicated over it and each batch split over its ``data`` axis.
        device: accepted for compatibility and ignored (JAX places arrays on its default device; use ``mesh``),
            as are ``device_map`` and ``use_fast``; ``torch_dtype`` is read as ``dtype``.
        kwargs: the task's parameters (``top_k``, ``function_to_apply``...), defaults for every call.
    """
    model_kwargs = dict(model_kwargs or {})
    if "torch_dtype" in kwargs:  # Hugging Face's older name of dtype
        torch_dtype = kwargs.pop("torch_dtype")
        if dtype is not None and torch_dtype is not None:
            raise ValueError("pass dtype= or torch_dtype=, not both")
        dtype = dtype if torch_dtype is None else torch_dtype
    kwargs.pop("use_fast", None)  # every tokenizer here is a fast (Rust) one
    if kwargs.pop("device_map", None) is not None:
        logger.warning("pipeline(device_map=...) is ignored: pass mesh= (a jax.sharding.Mesh) to use several devices")
    for name in ("feature_extractor", "image_processor", "processor"):
        if kwargs.pop(name, None) is not None:
            raise ValueError(f"pipeline({name}=...) is not supported: the pipelines here take text (a tokenizer)")
    if trust_remote_code:
        raise ValueError("trust_remote_code=True is not supported: transformers_jax runs no code from the hub")
    if device is not None:
        logger.warning("pipeline(device=%r) is ignored: JAX places arrays on its default device; pass mesh= "
                       "(a jax.sharding.Mesh) to run on several devices", device)
    if task is None and model is None:
        raise RuntimeError("Impossible to instantiate a pipeline without either a task or a model being specified. "
                           "Please provide a task class or a model")
    if model is None and tokenizer is not None:
        raise RuntimeError("Impossible to instantiate a pipeline with tokenizer specified but not the model as the "
                           "provided tokenizer may not be compatible with the default model. Please provide a model "
                           "object or a path/identifier to a pretrained model when providing tokenizer.")
    if isinstance(model, Path):
        model = str(model)
    hub_kwargs = {k: v for k, v in (("revision", revision), ("token", token)) if v is not None}
    for key in ("cache_dir", "local_files_only", "force_download"):
        if key in kwargs:
            model_kwargs.setdefault(key, kwargs.pop(key))
    if task is None:
        task = _infer_task(model, hub_kwargs, model_kwargs)
    requested_task = TASK_ALIASES.get(task, task) if isinstance(task, str) else task
    task, entry = check_task(task)
    options = task_options(requested_task) if task == "translation" else None
    if model is None:
        entry = _task_default(task, entry, options)
    if task == "translation":  # the pipeline gets "translation_xx_to_yy" itself: its languages and prefix
        task = requested_task
    impl = pipeline_class or get_pipeline_class(task)
    auto = _auto_class(entry["auto_model"])

    if isinstance(config, (str, os.PathLike)):
        from transformers_jax.models.auto import AutoConfig

        config_source = str(config)
        config = AutoConfig.from_pretrained(config, **hub_kwargs, **_hub_only(model_kwargs))
    else:
        config_source = None
    overrides = _config_overrides(config) if config is not None else {}

    tokenizer_source = None
    if model is None:
        model, tokenizer_source, default_revision = _load_default(task, entry, auto, revision, hub_kwargs,
                                                                  {**model_kwargs, **overrides}, dtype)
        hub_kwargs = {**hub_kwargs, "revision": default_revision}
    elif isinstance(model, str):
        tokenizer_source = model
        model = auto.from_pretrained(model, dtype=dtype, **hub_kwargs, **model_kwargs, **overrides)
    else:
        if not hasattr(model, "params") or not hasattr(model, "config"):
            raise TypeError(f"model must be a directory, a hub id or a transformers_jax model, got {type(model).__name__}")
        if config is not None:
            raise ValueError("config= applies when the model is loaded from a directory or hub id, not to a model object")
        _check_head(model, task, entry["auto_model"])
        if dtype is not None:
            import jax.numpy as jnp

            model = type(model)(model.config.replace(compute_dtype=jnp.dtype(dtype).name), model.params)
    tokenizer_source = tokenizer_source or config_source

    if tokenizer is None:
        if tokenizer_source is None:
            raise ValueError(f"pass tokenizer= to pipeline(): it cannot be inferred from a {type(model).__name__} "
                             "object (give a tokenizer object, or a directory or hub id holding the tokenizer files)")
        tokenizer = tokenizer_source
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers_jax.tokenization import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer, **hub_kwargs, **_hub_only(model_kwargs))
    return impl(model=model, tokenizer=tokenizer, task=task, batch_size=batch_size, mesh=mesh, **kwargs)


def _config_overrides(config) -> dict:
    """A config's values as ``from_pretrained`` overrides (its identity fields left out)."""
    values = config.to_dict()
    for key in ("model_type", "architectures", "transformers_version", "label2id", "dtype", "torch_dtype"):
        values.pop(key, None)
    return values


__all__ = [
    "SUPPORTED_TASKS",
    "TASK_ALIASES",
    "ChunkPipeline",
    "KeyDataset",
    "Pipeline",
    "PipelineException",
    "check_task",
    "get_supported_tasks",
    "task_options",
    "pipeline",
    "get_pipeline_class",
    "register_pipeline",
]
