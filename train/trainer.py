"""Trainer: Hugging Face's Trainer surface over a sharded, compiled optax train step.

``Trainer(model, args, train_dataset, eval_dataset, data_collator, compute_metrics, callbacks)``
with ``train(resume_from_checkpoint=...)``, ``evaluate()``, ``predict()`` and ``save_model()``.
Checkpoints (orbax, async, keep-N) hold params, optimizer state, step and RNG, with the data
position in their metadata, so a resumed run's losses equal an uninterrupted run's.

Datasets are lists of row dicts, any map-style dataset (``__len__`` / ``__getitem__``, a
``datasets.Dataset`` in any format included; read by :class:`~train.data.DataLoader`) or a
stream (a ``datasets.IterableDataset``; :class:`~train.data.StreamingDataLoader`, which needs
``max_steps``). ``remove_unused_columns`` drops the columns the model's forward does not take
(:mod:`train.columns`).
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sharding.mesh import create_mesh, data_parallel_size
from sharding.placement import batch_sharding, check_batch_size, like_params_shardings, place_batch
from sharding.rules import check_rules, rules_for_mesh
from train import step as steps
from train.checkpointing import CheckpointManager
from train.collators import default_data_collator
from train.columns import prepare_dataset
from train.data import DataLoader, StreamingDataLoader, is_streamed
from train.logging import MetricsLogger
from train.shards import ShardDataset, ShardLoader
from train.optim import lr_schedule, make_optimizer, trainable_mask, warmup_steps_for
from train.training_args import TrainingArguments
from transformers_jax.losses import IGNORE_INDEX
from transformers_jax.partitioning import param_shardings

logger = logging.getLogger("transformers_jax.train")


# ----------------------------------------------------------------------------- HF-style records
@dataclasses.dataclass
class TrainerState:
    """Where the run is (HF's names): updates done, epochs done (fractional), logged records."""

    global_step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    log_history: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TrainerControl:
    """Set by callbacks: stop the run, or save/evaluate/log after this step."""

    should_training_stop: bool = False
    should_save: bool = False
    should_evaluate: bool = False
    should_log: bool = False


class TrainerCallback:
    """Hooks called with (args, state, control, **kwargs), as in Hugging Face."""

    def on_train_begin(self, args, state, control, **kwargs): ...
    def on_step_end(self, args, state, control, **kwargs): ...
    def on_log(self, args, state, control, logs=None, **kwargs): ...
    def on_evaluate(self, args, state, control, metrics=None, **kwargs): ...
    def on_save(self, args, state, control, **kwargs): ...
    def on_train_end(self, args, state, control, **kwargs): ...


@dataclasses.dataclass
class EvalPrediction:
    predictions: Any
    label_ids: Any


@dataclasses.dataclass
class PredictionOutput:
    predictions: Any
    label_ids: Any
    metrics: dict


@dataclasses.dataclass
class TrainOutput:
    global_step: int
    training_loss: float
    metrics: dict


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """Trains a ``transformers_jax`` model; see the module docstring."""

    def __init__(self, model, args: TrainingArguments, train_dataset=None, eval_dataset=None,
                 data_collator: Callable | None = None, compute_metrics: Callable | None = None,
                 callbacks: Sequence[TrainerCallback] = (), processing_class=None, mesh: Mesh | None = None):
        self.model, self.args = model, args
        self.model_class = type(model)
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.data_collator = data_collator or default_data_collator
        self.compute_metrics = compute_metrics
        self.callbacks = list(callbacks)
        self.processing_class = processing_class
        self.state = TrainerState()
        self.control = TrainerControl()

        config = model.config
        self.config = args.run_config(self.model_class, config)
        if args.parallelism == "pmap":
            mesh = mesh or Mesh(np.array(jax.local_devices()), ("data",))
        self.mesh = mesh or create_mesh(args.mesh)
        self.rules = rules_for_mesh(args.sharding, self.mesh)
        self.specs = self.model_class.param_specs(self.config)
        check_rules(self.rules, self.mesh, self.specs)
        self.params_shardings = param_shardings(self.specs, self.mesh, self.rules)
        self.label_smoothing = self._label_smoothing(args, config)
        self._train_state = None
        self._eval_steps: dict = {}  # compiled eval steps by batch layout
        self._prepared: dict = {}  # column handling done per dataset (logged once)
        self._check_max_steps(train_dataset)

    @staticmethod
    def _label_smoothing(args, config) -> float:
        """``args.label_smoothing_factor``, except for multi-label classification, where Hugging Face turns it off
        with a warning (as here)."""
        factor = float(getattr(args, "label_smoothing_factor", 0.0))
        if factor and getattr(config, "problem_type", None) == "multi_label_classification":
            warnings.warn("Label smoothing is not compatible with multi-label classification. Disabling label "
                          "smoothing for this training run.", UserWarning, stacklevel=3)
            return 0.0
        return factor

    # ------------------------------------------------------------------ sizes
    @property
    def data_parallel_size(self) -> int:
        return data_parallel_size(self.mesh, self.rules)

    @property
    def train_batch_size(self) -> int:
        """Global rows per optimizer update (all replicas, all accumulation steps)."""
        args = self.args
        return args.per_device_train_batch_size * self.data_parallel_size * args.gradient_accumulation_steps

    @property
    def eval_batch_size(self) -> int:
        return self.args.per_device_eval_batch_size * self.data_parallel_size

    def _check_max_steps(self, dataset) -> None:
        """A streamed train dataset has no length, so only ``max_steps`` can bound the run (Hugging Face's rule)."""
        if dataset is not None and is_streamed(dataset) and self.args.max_steps <= 0:
            raise ValueError(
                f"The train_dataset ({type(dataset).__name__}) has no __len__, so the number of training steps "
                "cannot be derived from num_train_epochs: set TrainingArguments.max_steps > 0"
            )

    def _prepare(self, dataset, description: str):
        """``(dataset, collate_fn)`` with the column handling of ``remove_unused_columns``, done (and logged) once
        per dataset and collator."""
        key = (id(dataset), id(self.data_collator), description)
        if key not in self._prepared:
            prepared = prepare_dataset(dataset, self.model_class, self.data_collator, self.args.remove_unused_columns,
                                       description)
            self._prepared[key] = (dataset, self.data_collator, prepared)  # holding both keeps their ids unique
        return self._prepared[key][2]

    def _loader(self, dataset, batch_size: int, train: bool, description: str | None = None):
        """A :class:`DataLoader` (map-style dataset; a :class:`ShardLoader` for a :class:`ShardDataset`) or
        :class:`StreamingDataLoader` (a stream) of global batches of ``batch_size`` rows: shuffled by
        ``train_sampling_strategy`` and dropping the last partial batch for training, in order and padded for
        evaluation."""
        if dataset is None:
            raise ValueError(f"Trainer needs {'a train_dataset' if train else 'an eval_dataset'} for this")
        check_batch_size(batch_size, self.mesh, self.rules)
        description = description or ("training" if train else "evaluation")
        dataset, collate = self._prepare(dataset, description)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        if is_streamed(dataset):
            if train:
                self._check_max_steps(dataset)
            return StreamingDataLoader(dataset, batch_size, collate, seed=seed, drop_last=train)
        shuffle = train and self.args.train_sampling_strategy == "random"
        # A shard directory's order is computed a batch at a time: memory independent of the corpus size.
        loader_class = ShardLoader if isinstance(dataset, ShardDataset) else DataLoader
        return loader_class(dataset, batch_size, collate, shuffle=shuffle, seed=seed, drop_last=train)

    # ------------------------------------------------------------------ state
    def _init_state(self, optimizer):
        """A fresh train state on the mesh (float32 master weights) and its shardings."""
        params = jax.device_put(jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), self.model.params),
                                self.params_shardings)
        opt_shardings = like_params_shardings(jax.eval_shape(optimizer.init, params), self.params_shardings, self.mesh)
        replicated = NamedSharding(self.mesh, PartitionSpec())
        shardings = {"step": replicated, "params": self.params_shardings, "opt_state": opt_shardings,
                     "rng": replicated}
        state = {
            "step": jax.device_put(jnp.int32(0), replicated),
            "params": params,
            "opt_state": jax.jit(optimizer.init, out_shardings=opt_shardings)(params),
            "rng": jax.device_put(jax.random.PRNGKey(self.args.seed), replicated),
        }
        return state, shardings

    def _metadata(self, data_state: dict) -> dict:
        return {
            "model_class": self.model_class.__name__,
            "config": self.model.config.to_dict(),
            "data_state": data_state,
            "training_args": self.args.to_dict(),
        }

    def _checkpoint_dir(self) -> Path:
        return Path(self.args.output_dir) / "checkpoints"

    # ------------------------------------------------------------------ training
    def _memory_check(self, seq_len: int) -> None:
        from sharding.memory import check_fits, estimate_memory

        optimizer = "sgd" if self.args.optim == "sgd" else "adamw"
        estimate = estimate_memory(self.config, self.specs, self.mesh, self.rules, optimizer=optimizer,
                                   batch_per_device=self.args.per_device_train_batch_size, seq_len=seq_len)
        logger.info("estimated memory per device:\n%s", estimate.format())
        if jax.process_index() == 0 and not self.args.disable_tqdm:
            print(estimate.format(), file=sys.stderr, flush=True)
        check_fits(estimate)

    def train(self, resume_from_checkpoint: bool | str | None = None) -> TrainOutput:
        """Run the training loop; ``resume_from_checkpoint`` True resumes from the newest checkpoint
        in ``output_dir``, a path from that checkpoint directory (or a step directory in it)."""
        args = self.args
        loader = self._loader(self.train_dataset, self.train_batch_size, train=True)
        total = args.total_steps(loader.batches_per_epoch)
        warmup = warmup_steps_for(total, args.warmup_steps, args.warmup_ratio)
        schedule = lr_schedule(args.lr_scheduler_type, args.learning_rate, total, warmup)
        optimizer = make_optimizer(self.model.params, optim=args.optim, schedule=schedule,
                                   weight_decay=args.weight_decay, adam_beta1=args.adam_beta1,
                                   adam_beta2=args.adam_beta2, adam_epsilon=args.adam_epsilon,
                                   max_grad_norm=args.max_grad_norm, freeze=args.freeze)
        trainable = trainable_mask(self.model.params, args.freeze) if args.freeze else None
        first = loader.load_batch(0, 0)
        seq_len = first["input_ids"].shape[-1] if "input_ids" in first else 1
        if args.check_memory:
            self._memory_check(seq_len)

        state, shardings = self._init_state(optimizer)
        manager = CheckpointManager(self._checkpoint_dir(), max_to_keep=args.save_total_limit,
                                    async_save=args.async_checkpointing)
        start = {"epoch": 0, "batch": 0}
        self._last_saved = None
        if resume_from_checkpoint:
            state, start = self._restore(manager, resume_from_checkpoint, state, shardings)
        if args.parallelism == "pmap":
            step_fn = steps.make_pmap_train_step(self.model_class, self.config, optimizer, schedule,
                                                 accumulation_steps=args.gradient_accumulation_steps,
                                                 trainable=trainable, label_smoothing=self.label_smoothing)
            devices = jax.local_device_count()  # one copy per device along a new leading axis
            state = jax.tree.map(lambda x: np.broadcast_to(x, (devices, *np.shape(x))), jax.device_get(state))
        else:
            batch_shardings = {k: batch_sharding(self.mesh, self.rules, np.ndim(v)) for k, v in first.items()
                               if not k.startswith("_")}
            step_fn = steps.make_train_step(self.model_class, self.config, optimizer, schedule, mesh=self.mesh,
                                            rules=self.rules, state_shardings=shardings,
                                            batch_shardings=batch_shardings,
                                            accumulation_steps=args.gradient_accumulation_steps,
                                            trainable=trainable, label_smoothing=self.label_smoothing)

        loader.load_state_dict(start)
        batches = iter(loader)
        step0 = int(jax.device_get(state["step"]).reshape(-1)[0])
        self.state = TrainerState(global_step=step0, max_steps=total)
        metrics_logger = MetricsLogger(args.output_dir, total_steps=total, report_to=args.report_to,
                                       progress=not args.disable_tqdm, is_main_process=jax.process_index() == 0,
                                       initial_step=step0)
        self._call("on_train_begin")
        run_start = time.perf_counter()
        epoch, batch_index = start["epoch"], start["batch"]
        batches_per_epoch = loader.batches_per_epoch  # None for a stream
        window_loss, window_steps, window_tokens, window_start = None, 0, 0, time.perf_counter()
        flops_per_token = self._flops_per_token(seq_len)
        training_loss_sum, training_steps = 0.0, 0
        metrics = {}
        try:
            while self.state.global_step < total:
                batch = next(batches)
                position = loader.state_dict()  # of the next batch
                epoch, batch_index = position["epoch"], position["batch"]
                window_tokens += int(np.size(batch["input_ids"])) * jax.process_count() if "input_ids" in batch else 0
                batch = {k: v for k, v in batch.items() if not k.startswith("_")}
                state, metrics = step_fn(state, self._device_batch(batch))
                loss = metrics["loss"]
                window_loss = loss if window_loss is None else window_loss + loss
                window_steps += 1
                self.state.global_step += 1
                self.state.epoch = epoch + (batch_index / batches_per_epoch if batches_per_epoch else 0.0)
                step = self.state.global_step
                self._call("on_step_end")
                data_state = {"epoch": epoch, "batch": batch_index}
                if step % args.logging_steps == 0 or (args.logging_first_step and step == 1) or step == total:
                    # Steps run asynchronously: wait for the window's result before reading the clock.
                    mean_loss = float(np.asarray(jax.device_get(window_loss)).reshape(-1)[0]) / window_steps
                    elapsed = time.perf_counter() - window_start
                    training_loss_sum += mean_loss * window_steps
                    training_steps += window_steps
                    logs = self._train_logs(metrics, mean_loss, window_tokens / max(elapsed, 1e-9), flops_per_token)
                    self._log(metrics_logger, step, logs)
                    window_loss, window_steps, window_tokens, window_start = None, 0, 0, time.perf_counter()
                if args.eval_strategy == "steps" and step % args.eval_steps == 0 and self.eval_dataset is not None:
                    self._evaluate_state(state, metrics_logger)
                if args.save_strategy == "steps" and step % args.save_steps == 0 or self.control.should_save:
                    self._save(manager, state, data_state)
                if batch_index == 0 and args.eval_strategy == "epoch" and self.eval_dataset is not None:
                    self._evaluate_state(state, metrics_logger)
                if batch_index == 0 and args.save_strategy == "epoch":
                    self._save(manager, state, data_state)
                if self.control.should_training_stop:
                    break
            if args.save_strategy != "no" and self._last_saved != self.state.global_step:
                self._save(manager, state, {"epoch": epoch, "batch": batch_index})
            manager.wait_until_finished()
        finally:
            manager.close()
            metrics_logger.close()
        self._train_state = self._unreplicate(state)
        self.model.params = self._train_state["params"]
        self._call("on_train_end")
        training_loss = training_loss_sum / max(training_steps, 1)
        runtime = time.perf_counter() - run_start
        steps_run = self.state.global_step - step0
        metrics = {"train_loss": training_loss, "train_runtime": runtime,
                   "train_samples_per_second": steps_run * self.train_batch_size / max(runtime, 1e-9),
                   "train_steps_per_second": steps_run / max(runtime, 1e-9),
                   "train_rows_read": loader.rows_read}  # by this process: its rows of each batch (row-wise collator)
        logger.info("process %d of %d read %d rows of the train set (%d-row global batches)", jax.process_index(),
                    jax.process_count(), loader.rows_read, self.train_batch_size)
        return TrainOutput(self.state.global_step, training_loss, metrics)

    def _device_batch(self, batch: dict):
        if self.args.parallelism == "pmap":
            devices = jax.local_device_count()
            rows = next(iter(batch.values())).shape[0]
            if rows % devices:
                raise ValueError(f"batch size {rows} is not divisible by the {devices} local devices of the pmap path")
            return {k: np.asarray(v).reshape(devices, rows // devices, *np.shape(v)[1:]) for k, v in batch.items()}
        return place_batch(batch, self.mesh, self.rules)

    def _unreplicate(self, state):
        if self.args.parallelism == "pmap":
            return jax.tree.map(lambda x: x[0], state)
        return state

    def _flops_per_token(self, seq_len: int) -> float | None:
        from train.flops import flops_per_token

        try:
            return flops_per_token(self.config, seq_len, model_class=type(self.model))
        except (TypeError, ValueError, AttributeError):
            return None

    def _train_logs(self, metrics, mean_loss: float, tokens_per_second: float, flops_per_token) -> dict:
        from train.flops import mfu, peak_flops_per_device

        values = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in jax.device_get(metrics).items() if k != "loss"}
        logs = {"loss": mean_loss, "grad_norm": values["grad_norm"], "learning_rate": values["learning_rate"],
                "epoch": round(self.state.epoch, 4), "tokens_per_second": tokens_per_second}
        peak = self.args.peak_flops_per_device
        if peak is None:
            peak = peak_flops_per_device(jax.devices()[0], "bfloat16" if self.args.bf16 else "float32")
        if peak and flops_per_token:
            logs["mfu"] = mfu(tokens_per_second, flops_per_token, jax.device_count(), peak)
        return logs

    def _log(self, metrics_logger, step: int, logs: dict) -> None:
        metrics_logger.log(step, logs)
        self.state.log_history.append({"step": step, **logs})
        self._call("on_log", logs=logs)

    def _save(self, manager, state, data_state: dict) -> None:
        step = self.state.global_step
        if step == self._last_saved:
            return
        self._last_saved = step
        manager.save(step, self._unreplicate(state), self._metadata(data_state))
        self.control.should_save = False
        self._call("on_save")

    def _restore(self, manager, resume_from_checkpoint, state, shardings):
        """Restore ``state`` (onto its shardings) from the newest checkpoint of this run (True), a
        checkpoint directory, or one step of it (``.../checkpoints/40``)."""
        step, source = None, manager
        if resume_from_checkpoint is not True:
            path = Path(resume_from_checkpoint)
            if path.name.isdigit() and path.parent.is_dir():
                path, step = path.parent, int(path.name)
            source = CheckpointManager(path, read_only=True)
        abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
        try:
            restored, metadata = source.restore(step, abstract)
        finally:
            if source is not manager:
                source.close()
        if metadata.get("model_class") != self.model_class.__name__:
            raise ValueError(f"checkpoint holds a {metadata.get('model_class')}, this Trainer trains a "
                             f"{self.model_class.__name__}")
        self._last_saved = int(jax.device_get(restored["step"]))
        logger.info("resumed from step %d", self._last_saved)
        return restored, dict(metadata["data_state"])

    def _call(self, event: str, **kwargs) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self.args, self.state, self.control, trainer=self, **kwargs)

    # ------------------------------------------------------------------ evaluation
    def _eval_params(self, state=None):
        if state is not None:
            return jax.device_put(self._unreplicate(state)["params"], self.params_shardings)
        return jax.device_put(jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), self.model.params),
                              self.params_shardings)

    def _evaluate_state(self, state, metrics_logger) -> dict:
        metrics = self.evaluate(params=self._eval_params(state))
        metrics_logger.log(self.state.global_step, metrics)
        self.state.log_history.append({"step": self.state.global_step, **metrics})
        return metrics

    def _run_eval(self, dataset, params, prefix: str) -> PredictionOutput:
        """Evaluate ``params`` (the model's when None) on ``dataset``: loss, predictions of the real rows (batches
        of different widths padded with -100), label ids, and ``compute_metrics`` under ``prefix``."""
        loader = self._loader(dataset, self.eval_batch_size, train=False,
                              description="evaluation" if prefix == "eval" else prefix)
        params = self._eval_params() if params is None else params
        loss_sum, count, predictions, labels = 0.0, 0.0, [], []
        start = time.perf_counter()
        for batch in loader.iter_epoch(0):
            valid = np.asarray(batch.pop("_valid", np.ones(len(next(iter(batch.values()))), bool)))
            row_labels = None
            if "labels" in batch:
                batch["labels"], row_labels = _mask_padded_labels(batch["labels"], valid)
            b_loss, b_count, preds, row_labels = self._prediction_step(params, batch, valid, row_labels)
            predictions.append(preds)
            if row_labels is not None:
                labels.append(row_labels)
            loss_sum += float(b_loss)
            count += float(b_count)
        runtime = time.perf_counter() - start
        predictions = jax.tree.map(lambda *p: concat_padded(p), *predictions)
        label_ids = concat_padded(labels) if labels else None
        metrics = {}
        if count > 0:
            metrics[f"{prefix}_loss"] = loss_sum / count
        if self.compute_metrics is not None and label_ids is not None:
            for key, value in self.compute_metrics(EvalPrediction(predictions, label_ids)).items():
                metrics[key if key.startswith(f"{prefix}_") else f"{prefix}_{key}"] = value
        metrics[f"{prefix}_runtime"] = runtime
        metrics[f"{prefix}_samples_per_second"] = loader.num_rows / max(runtime, 1e-9)
        return PredictionOutput(predictions, label_ids, metrics)

    def _prediction_step(self, params, batch: dict, valid: np.ndarray, row_labels):
        """One eval batch (padding rows marked False in ``valid``, their integer labels already -100):
        ``(loss x count, count, predictions of the real rows, labels of the real rows)``."""
        b_loss, b_count, preds = self._eval_step(batch)(params, place_batch(batch, self.mesh, self.rules))
        preds = jax.tree.map(lambda p: _gather(p)[valid], preds)
        if row_labels is not None and not np.issubdtype(batch["labels"].dtype, np.integer) and not valid.all():
            b_loss, b_count = self._float_label_loss(preds, row_labels)
        return b_loss, b_count, preds, row_labels

    def _eval_step(self, batch: dict, return_predictions: bool = True):
        """The compiled eval step for batches laid out like ``batch``, built once per layout (each
        evaluation during training reuses it)."""
        layout = tuple(sorted((k, np.ndim(v)) for k, v in batch.items() if not k.startswith("_")))
        key = (layout, return_predictions)
        if key not in self._eval_steps:
            batch_shardings = {k: batch_sharding(self.mesh, self.rules, ndim) for k, ndim in layout}
            # predictions are the logits: a chunked loss (which never makes them) is for steps that return none
            config = self.config if not return_predictions else self.config.replace(loss_chunk_size=0)
            self._eval_steps[key] = steps.make_eval_step(
                self.model_class, config, mesh=self.mesh, rules=self.rules,
                params_shardings=self.params_shardings, batch_shardings=batch_shardings,
                label_smoothing=self.label_smoothing, return_predictions=return_predictions)
        return self._eval_steps[key]

    def _float_label_loss(self, logits, labels):
        """Loss of a padded batch with float labels: only its real rows (regression, multi-label)."""
        from transformers_jax.losses import sequence_classification_loss

        loss = sequence_classification_loss(jnp.asarray(logits), jnp.asarray(labels), self.config)
        return float(loss) * len(labels), float(len(labels))

    def evaluate(self, eval_dataset=None, params=None) -> dict:
        """Loss (mean over label items) and ``compute_metrics`` on the eval set, keys prefixed ``eval_``."""
        metrics = self._run_eval(eval_dataset if eval_dataset is not None else self.eval_dataset, params, "eval").metrics
        self._call("on_evaluate", metrics=metrics)
        return metrics

    def predict(self, test_dataset) -> PredictionOutput:
        """Predictions (logits), label ids when the dataset has labels, and ``test_`` metrics."""
        return self._run_eval(test_dataset, None, "test")

    # ------------------------------------------------------------------ export
    def save_model(self, output_dir: str | None = None) -> Path:
        """Write the current params as a Hugging Face directory (PyTorch names, safetensors), with
        the tokenizer when the Trainer has one."""
        out = Path(output_dir or self.args.output_dir)
        params = jax.tree.map(_gather, self.model.params)  # every host takes part in the gather
        if jax.process_index() == 0:
            self.model_class(self.model.config, params).save_pretrained(out)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(out)
        return out


def _gather(x) -> np.ndarray:
    """A global array as a numpy array on every host."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def concat_padded(arrays, padding_index: int = IGNORE_INDEX) -> np.ndarray:
    """Concatenate per-batch arrays along the rows; where their later axes differ (labels, logits or generated
    ids of batches padded to their own longest row), each is padded at the end of those axes with
    ``padding_index`` to the largest size first: Hugging Face's ``nested_concat(..., padding_index=-100)``."""
    arrays = [np.asarray(a) for a in arrays]
    if len({a.shape[1:] for a in arrays}) <= 1:
        return np.concatenate(arrays)
    if len({a.ndim for a in arrays}) != 1:
        raise ValueError(f"cannot concatenate batches of different ranks: {[a.shape for a in arrays]}")
    tail = tuple(max(sizes) for sizes in zip(*(a.shape[1:] for a in arrays)))
    dtype = np.result_type(*arrays)
    out = np.full((sum(len(a) for a in arrays), *tail), padding_index, dtype)
    row = 0
    for a in arrays:
        out[(slice(row, row + len(a)), *(slice(0, n) for n in a.shape[1:]))] = a
        row += len(a)
    return out


def _mask_padded_labels(labels: np.ndarray, valid: np.ndarray):
    """Integer labels of padding rows -> -100 (the loss skips them); returns (labels, real rows' labels)."""
    labels = np.asarray(labels)
    real = labels[valid]
    if np.issubdtype(labels.dtype, np.integer):
        labels = labels.copy()
        labels[~valid] = IGNORE_INDEX
    return labels, real
