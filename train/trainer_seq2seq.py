"""Seq2SeqTrainer: the Trainer plus Hugging Face's generation-based evaluation of sequence-to-sequence models.

With ``Seq2SeqTrainingArguments(predict_with_generate=True)``, ``evaluate()`` and ``predict()`` run
``model.generate(input_ids, attention_mask=..., params=..., max_length=..., num_beams=...)`` on every eval batch
(with the parameters being evaluated: the train state's during training) and hand the generated decoder ids to
``compute_metrics`` as ``predictions``. The loss is still computed (teacher forced, label-smoothed when
``label_smoothing_factor`` is set), as Hugging Face does.

Generation settings, as in Hugging Face: keyword arguments of ``evaluate`` / ``predict`` (``max_length``,
``max_new_tokens``, ``num_beams``, any other ``generate`` argument) first; else ``generation_max_length`` (unless
``max_new_tokens`` is given) and ``generation_num_beams`` of the arguments; else the model's generation config,
which ``Seq2SeqTrainingArguments.generation_config`` replaces when the trainer is built.

Padding of the predictions: each batch's generated ids are padded at the end with the pad id (the tokenizer's, or
its EOS, else the model config's) to the generation's length budget (``max_new_tokens + 1`` when
``max_new_tokens`` is set, else ``max_length``, else 21: Hugging Face v5's 20 new tokens), and so are labels
shorter than that; batches still of different widths are then padded with -100 when concatenated. Hugging Face
pads to the *model's* generation-config ``max_length`` even when a ``max_length`` argument asks for another; here
the padding follows the length actually asked for, so every batch has the same width.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from sharding.placement import place_batch
from train.trainer import PredictionOutput, Trainer, _gather
from train.training_args import Seq2SeqTrainingArguments


class Seq2SeqTrainer(Trainer):
    """:class:`~train.trainer.Trainer` for encoder-decoder models; see the module docstring.

    ``args`` may be plain :class:`~train.training_args.TrainingArguments` (no generation then: evaluation gives
    logits as the base Trainer does).
    """

    def __init__(self, model, args, train_dataset=None, eval_dataset=None, data_collator=None, compute_metrics=None,
                 callbacks=(), processing_class=None, mesh=None):
        super().__init__(model, args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         data_collator=data_collator, compute_metrics=compute_metrics, callbacks=callbacks,
                         processing_class=processing_class, mesh=mesh)
        if getattr(args, "generation_config", None) is not None:
            self.model.generation_config = self.load_generation_config(args.generation_config)
        self._gen_kwargs: dict = {}

    @staticmethod
    def load_generation_config(value):
        """A ``GenerationConfig`` from ``Seq2SeqTrainingArguments.generation_config``: a GenerationConfig (copied),
        a ``generation_config.json`` file, a directory holding one, or a hub id."""
        from transformers_jax.generation.configuration_utils import GENERATION_CONFIG_NAME, GenerationConfig

        if isinstance(value, GenerationConfig):
            return copy.deepcopy(value)
        if isinstance(value, dict):
            return GenerationConfig.from_dict(value)
        if not isinstance(value, (str, Path)):
            raise TypeError(f"Seq2SeqTrainingArguments.generation_config must be a GenerationConfig, a path or a hub "
                            f"id, got {type(value).__name__}")
        path = Path(value)
        if path.is_file():
            return GenerationConfig.from_pretrained(path.parent, config_file_name=path.name)
        if path.is_dir() and not (path / GENERATION_CONFIG_NAME).is_file():
            raise FileNotFoundError(f"Seq2SeqTrainingArguments.generation_config={str(value)!r}: no "
                                    f"{GENERATION_CONFIG_NAME} in that directory")
        return GenerationConfig.from_pretrained(value)

    # ------------------------------------------------------------------ settings
    @property
    def predict_with_generate(self) -> bool:
        return bool(getattr(self.args, "predict_with_generate", False))

    def _generation_kwargs(self, gen_kwargs: dict) -> dict:
        """Hugging Face's precedence: call arguments, then the arguments' generation_max_length (unless
        max_new_tokens is given) and generation_num_beams; None values are dropped (the model's config decides)."""
        kwargs = dict(gen_kwargs)
        if kwargs.get("max_length") is None and kwargs.get("max_new_tokens") is None:
            kwargs["max_length"] = getattr(self.args, "generation_max_length", None)
        if kwargs.get("num_beams") is None:
            kwargs["num_beams"] = getattr(self.args, "generation_num_beams", None)
        return {k: v for k, v in kwargs.items() if v is not None}

    def evaluate(self, eval_dataset=None, params=None, metric_key_prefix: str = "eval", **gen_kwargs) -> dict:
        """Loss and ``compute_metrics`` on the eval set, keys prefixed ``metric_key_prefix``; with
        ``predict_with_generate`` the metrics see generated ids. ``gen_kwargs`` (``max_length``, ``num_beams``,
        ...) go to ``generate``."""
        self._gen_kwargs = self._generation_kwargs(gen_kwargs)
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        metrics = self._run_eval(dataset, params, metric_key_prefix).metrics
        self._call("on_evaluate", metrics=metrics)
        return metrics

    def predict(self, test_dataset, metric_key_prefix: str = "test", **gen_kwargs) -> PredictionOutput:
        """Predictions (generated ids with ``predict_with_generate``, else logits), label ids and metrics."""
        self._gen_kwargs = self._generation_kwargs(gen_kwargs)
        return self._run_eval(test_dataset, None, metric_key_prefix)

    # ------------------------------------------------------------------ generation
    def _pad_token_id(self) -> int:
        """Hugging Face's padding id for generated ids: the tokenizer's pad (or EOS) id, else the model config's."""
        tokenizer = self.processing_class
        if tokenizer is not None and hasattr(tokenizer, "pad_token_id"):
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            if pad is not None:
                return int(pad)
        pad = getattr(self.model.config, "pad_token_id", None)
        if pad is None:
            raise ValueError("pad_token_id must be set in the model's config (or a tokenizer with a pad or eos token "
                             "passed as processing_class) to pad the generated ids")
        return int(pad)

    def _generated_width(self, kwargs: dict) -> int:
        """The decoder length the generation may reach, as ``generate`` resolves it: ``max_new_tokens + 1`` (the
        start token) when ``max_new_tokens`` is set (call arguments over the model's generation config), else
        ``max_length``, else Hugging Face v5's default of 20 new tokens (21)."""
        from transformers_jax.generation.configuration_utils import GLOBAL_DEFAULTS

        model_config = getattr(self.model, "generation_config", None)

        def setting(name):
            value = kwargs.get(name)
            return value if value is not None else getattr(model_config, name, None)

        if setting("max_new_tokens") is not None:
            return int(setting("max_new_tokens")) + 1
        if setting("max_length") is not None:
            return int(setting("max_length"))
        return int(GLOBAL_DEFAULTS["max_length"]) + 1

    def _prediction_step(self, params, batch: dict, valid: np.ndarray, row_labels):
        if not self.predict_with_generate:
            return super()._prediction_step(params, batch, valid, row_labels)
        if not hasattr(self.model, "generate"):
            raise ValueError(f"predict_with_generate=True needs a model with generate(); {type(self.model).__name__} "
                             "has none")
        if "input_ids" not in batch:
            raise ValueError(f"predict_with_generate=True needs input_ids in the eval batches; they hold {sorted(batch)}")
        b_loss, b_count = 0.0, 0.0
        if "labels" in batch:  # the teacher-forced loss, as the plain evaluation computes it
            b_loss, b_count, _ = self._eval_step(batch, return_predictions=False)(
                params, place_batch(batch, self.mesh, self.rules))
        kwargs = dict(self._gen_kwargs)
        generated = self.model.generate(np.asarray(batch["input_ids"]), attention_mask=batch.get("attention_mask"),
                                        params=params, **kwargs)
        generated = np.asarray(_gather(generated))[valid]
        width, pad = self._generated_width(kwargs), self._pad_token_id()
        generated = _pad_to(generated, width, pad)
        if row_labels is not None:
            row_labels = _pad_to(np.asarray(row_labels), width, pad)
        return b_loss, b_count, generated, row_labels


def _pad_to(ids: np.ndarray, width: int, pad: int) -> np.ndarray:
    """Rows of ``ids`` [B, T] padded at the end with ``pad`` to ``width`` columns (unchanged when T >= width)."""
    if ids.ndim != 2 or ids.shape[1] >= width:
        return ids
    out = np.full((ids.shape[0], width), pad, ids.dtype)
    out[:, : ids.shape[1]] = ids
    return out


__all__ = ["Seq2SeqTrainer", "Seq2SeqTrainingArguments"]
