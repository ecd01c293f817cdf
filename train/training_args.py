"""TrainingArguments: Hugging Face's names and defaults where they exist, plus mesh, sharding and remat."""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import yaml

from train.optim import OPTIMIZERS, SCHEDULES

class _Loader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 scalars: ``1e-4`` is a float, and only true/false are booleans
    (PyYAML's YAML 1.1 reads ``1e-4`` as a string and ``no`` / ``off`` as False)."""


_BOOL, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(_FLOAT, re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def yaml_load(text: str) -> Any:
    """Parse YAML text with the float rule above."""
    return yaml.load(text, Loader=_Loader)


STRATEGIES = ("no", "steps", "epoch")
SAMPLING = ("random", "sequential")
REMAT = ("none", "full")


@dataclasses.dataclass
class TrainingArguments:
    """What a run does. Batch sizes are per data-parallel replica (per device in pure data
    parallelism), so the global batch is ``per_device_train_batch_size`` x the data-parallel size
    of the mesh x ``gradient_accumulation_steps``."""

    output_dir: str
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    optim: str = "adamw"
    lr_scheduler_type: str = "linear"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    logging_steps: int = 500
    logging_first_step: bool = False
    eval_strategy: str = "no"
    eval_steps: int | None = None
    save_strategy: str = "steps"
    save_steps: int = 500
    save_total_limit: int | None = None
    seed: int = 42
    data_seed: int | None = None
    remove_unused_columns: bool = True  # drop dataset columns the model's forward does not take (labels kept)
    train_sampling_strategy: str = "random"  # or "sequential"; a streamed dataset keeps its own order
    label_smoothing_factor: float = 0.0  # HF's LabelSmoother on the loss (0: the model's own loss)
    bf16: bool = False
    report_to: tuple = ("jsonl", "tensorboard")
    disable_tqdm: bool = False
    # ours
    mesh: dict = dataclasses.field(default_factory=lambda: {"data": -1})
    sharding: Any = "dp"  # a preset (dp, fsdp, tp, fsdp_tp, ep, fsdp_ep) or a rules table [[logical, mesh axes], ...]
    remat: str = "none"
    # Causal LMs: the training loss over chunks of this many positions, never the whole [B, T, vocab] logits
    # (0: off; see ``losses.chunked_causal_lm_loss``). For large vocabularies (Llama 3's 128k) at long rows.
    loss_chunk_size: int = 0
    parallelism: str = "jit"  # "jit" (sharded over the mesh) or "pmap" (data parallel over local devices)
    freeze: tuple = ()  # regular expressions of param paths that do not train ("bert/encoder")
    async_checkpointing: bool = True
    check_memory: bool = True
    peak_flops_per_device: float | None = None  # for the MFU estimate where the device is not in the table

    def __post_init__(self):
        if isinstance(self.report_to, str):
            self.report_to = (self.report_to,)
        self.report_to = tuple(self.report_to)
        self.freeze = tuple(self.freeze)
        positive = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                    "logging_steps", "save_steps")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainingArguments.{name} must be a positive integer, got {value!r}")
        for name, value, allowed in (("eval_strategy", self.eval_strategy, STRATEGIES),
                                     ("save_strategy", self.save_strategy, STRATEGIES),
                                     ("lr_scheduler_type", self.lr_scheduler_type, SCHEDULES),
                                     ("optim", self.optim, OPTIMIZERS), ("remat", self.remat, REMAT),
                                     ("train_sampling_strategy", self.train_sampling_strategy, SAMPLING),
                                     ("parallelism", self.parallelism, ("jit", "pmap"))):
            if value not in allowed:
                raise ValueError(f"TrainingArguments.{name}={value!r} is not one of {list(allowed)}")
        if self.max_steps <= 0 and not self.num_train_epochs > 0:
            raise ValueError("set max_steps > 0 or num_train_epochs > 0")
        if self.learning_rate < 0 or self.weight_decay < 0:
            raise ValueError("learning_rate and weight_decay must be >= 0")
        if not isinstance(self.label_smoothing_factor, (int, float)) or not 0.0 <= self.label_smoothing_factor < 1.0:
            raise ValueError(f"TrainingArguments.label_smoothing_factor must be in [0, 1), got "
                             f"{self.label_smoothing_factor!r}")
        self.label_smoothing_factor = float(self.label_smoothing_factor)
        if not isinstance(self.loss_chunk_size, int) or self.loss_chunk_size < 0:
            raise ValueError(f"TrainingArguments.loss_chunk_size must be an integer >= 0 (0: off), got "
                             f"{self.loss_chunk_size!r}")
        if self.loss_chunk_size and self.label_smoothing_factor:
            raise ValueError(f"loss_chunk_size={self.loss_chunk_size} and label_smoothing_factor="
                             f"{self.label_smoothing_factor} cannot be combined: the smoothed loss needs the whole logits")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise ValueError(f"save_total_limit must be >= 1 or None, got {self.save_total_limit}")
        if self.eval_strategy == "steps" and self.eval_steps is None:
            self.eval_steps = self.logging_steps  # HF's fallback
        if self.parallelism == "pmap" and self.sharding != "dp":
            raise ValueError(f"parallelism='pmap' is data parallel only; sharding={self.sharding!r} needs 'jit'")

    def run_config(self, model_class, config):
        """The model config a run trains with: float32 master weights, bf16 compute with ``bf16``, remat,
        and ``loss_chunk_size`` (refused, naming the class, for a model that cannot chunk its loss)."""
        changes = {"param_dtype": "float32"}
        if self.bf16:
            changes["compute_dtype"] = "bfloat16"
        if self.remat != "none":
            changes["remat"] = True
        if self.loss_chunk_size:
            if not getattr(model_class, "loss_chunks", False):
                raise ValueError(f"loss_chunk_size={self.loss_chunk_size}: {model_class.__name__} has no chunked "
                                 "loss (the causal LMs of the shared decoder families have one); set it to 0")
            changes["loss_chunk_size"] = self.loss_chunk_size
        return config.replace(**changes)

    def total_steps(self, batches_per_epoch: int) -> int:
        """Optimizer updates in the run: ``max_steps`` when set, else epochs x updates per epoch."""
        if self.max_steps > 0:
            return self.max_steps
        return max(1, math.ceil(self.num_train_epochs * batches_per_epoch))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["report_to"], out["freeze"] = list(self.report_to), list(self.freeze)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingArguments":
        """Build from a dict, refusing keys that are not arguments (a typo must not be ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainingArguments {unknown}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "TrainingArguments":
        """Read the ``training`` section of a YAML recipe (or the whole file), then apply overrides."""
        data = yaml_load(Path(path).read_text()) or {}
        data = dict(data.get("training", data))
        data.update(overrides)
        return cls.from_dict(data)


@dataclasses.dataclass
class Seq2SeqTrainingArguments(TrainingArguments):
    """:class:`TrainingArguments` plus Hugging Face's generation settings for evaluation
    (:class:`~train.trainer_seq2seq.Seq2SeqTrainer`).

    * ``predict_with_generate``: ``evaluate`` / ``predict`` run ``model.generate`` on each batch and hand the
      generated ids to ``compute_metrics`` as predictions (instead of logits).
    * ``generation_max_length`` / ``generation_num_beams``: the ``max_length`` / ``num_beams`` of those calls
      when ``evaluate`` / ``predict`` are not given their own (else the model's generation config decides).
    * ``generation_config``: a ``GenerationConfig``, or the path (file or directory) or hub id of a
      ``generation_config.json``; it replaces the model's generation config when the trainer is built.
    """

    predict_with_generate: bool = False
    generation_max_length: int | None = None
    generation_num_beams: int | None = None
    generation_config: Any = None

    def __post_init__(self):
        super().__post_init__()
        for name in ("generation_max_length", "generation_num_beams"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"Seq2SeqTrainingArguments.{name} must be a positive integer or None, got {value!r}")
        if not isinstance(self.predict_with_generate, bool):
            raise ValueError(f"Seq2SeqTrainingArguments.predict_with_generate must be true or false, got "
                             f"{self.predict_with_generate!r}")

    def to_dict(self) -> dict:
        out = super().to_dict()
        config = self.generation_config
        if config is not None and not isinstance(config, (str, Path)):
            out["generation_config"] = config.to_dict() if hasattr(config, "to_dict") else str(config)
        elif isinstance(config, Path):
            out["generation_config"] = str(config)
        return out


#: Fields that only :class:`Seq2SeqTrainingArguments` has (a recipe naming one gets that class).
SEQ2SEQ_FIELDS = tuple(f.name for f in dataclasses.fields(Seq2SeqTrainingArguments)
                       if f.name not in {g.name for g in dataclasses.fields(TrainingArguments)})
