"""Fine-tune a sequence classifier, or a sequence-to-sequence model (data.task: seq2seq), on a CSV or
JSON-lines file.

    transformers-jax finetune --config configs/finetune_minilm.yaml \\
        --set data.train_file=train.csv --set data.eval_file=dev.csv [--parallelism jit|pmap] \\
        [--output_dir DIR] [--max_steps N] [--set training.learning_rate=3e-5]

Labels are integers, or strings mapped to ids in sorted order (written into the config as
id2label/label2id). Rows are padded to data.max_length, so the train step compiles once. At the
end the model is evaluated (metrics printed as one JSON line) and written with its tokenizer to
OUTPUT_DIR/final as a Hugging Face directory.

data.task: seq2seq (or any recipe that sets data.target_field) fine-tunes an AutoModelForSeq2SeqLM on
source/target text pairs instead, with generation-based ROUGE/BLEU evaluation: see
train/finetune_seq2seq.py and configs/finetune_t5_summarize.yaml.
"""
from __future__ import annotations

import re
import sys

from train import cli

DATA_DEFAULTS = {
    "train_file": None, "eval_file": None, "text_field": "text", "text_pair_field": None, "label_field": "label",
    "max_length": 128, "max_train_samples": None, "max_eval_samples": None, "task": None,
    # data.task: seq2seq (defaults in train/finetune_seq2seq.py)
    "source_field": None, "target_field": None, "source_prefix": None, "max_source_length": None,
    "max_target_length": None, "metrics": None,
}
TASKS = ("classification", "seq2seq")
CLASSIFICATION_DEFAULTS = {k: DATA_DEFAULTS[k] for k in ("text_field", "text_pair_field", "label_field", "max_length")}
_INT = re.compile(r"^[+-]?\d+$")


def label_mapping(rows: list[dict], field: str) -> tuple[dict | None, dict]:
    """(label2id or None, id2label) from the training rows' labels.

    All-integer labels (ints, or digit strings as CSV gives them) stay as they are, with
    ``num_labels = max + 1``; any other string labels are numbered in sorted order.
    """
    values = [row[field] for row in rows]
    if all(isinstance(v, int) and not isinstance(v, bool) or isinstance(v, str) and _INT.match(v) for v in values):
        ints = sorted({int(v) for v in values})
        if ints[0] < 0:
            raise cli.RecipeError(f"data.label_field {field!r}: integer labels must be >= 0, got {ints[0]}")
        return None, {i: str(i) for i in range(ints[-1] + 1)}
    if not all(isinstance(v, str) for v in values):
        kinds = sorted({type(v).__name__ for v in values})
        raise cli.RecipeError(f"data.label_field {field!r}: labels must be all integers or all strings, got {kinds}")
    names = sorted(set(values))
    return {name: i for i, name in enumerate(names)}, dict(enumerate(names))


def int_labels(rows: list[dict], field: str) -> list[dict]:
    """Rows with digit-string labels turned into ints (CSV values are strings)."""
    return [{**row, field: int(row[field])} for row in rows]


def read_split(data: dict, key: str, limit_key: str) -> list[dict] | None:
    """The rows of ``data[key]`` (None when the key is unset and optional), limited by ``data[limit_key]``."""
    from train.data import load_rows

    path = cli.require_file(data, key, required=key == "train_file")
    if path is None:
        return None
    fields = [f for f in (data["text_pair_field"], data["label_field"]) if f]
    try:
        rows = load_rows(path, text_field=data["text_field"], required_fields=fields)
    except ValueError as err:
        raise cli.RecipeError(f"data.{key}: {err}") from None
    if not rows:
        raise cli.RecipeError(f"data.{key}: {path} holds no rows")
    return rows[: data[limit_key]] if data[limit_key] else rows


def features(rows: list[dict], tokenizer, data: dict, label2id: dict | None) -> list[dict]:
    """Tokenized, truncated features with integer labels."""
    from train.data import tokenize_rows

    if label2id is None:
        rows = int_labels(rows, data["label_field"])
    try:
        return tokenize_rows(rows, tokenizer, data["text_field"], data["text_pair_field"], data["label_field"],
                             max_length=data["max_length"], label2id=label2id)
    except ValueError as err:
        raise cli.RecipeError(f"data: {err}") from None


def compute_metrics(prediction) -> dict:
    """Accuracy, plus macro F1 when there are more than two classes."""
    import numpy as np

    predicted = np.argmax(np.asarray(prediction.predictions), axis=-1)
    labels = np.asarray(prediction.label_ids)
    metrics = {"accuracy": float(np.mean(predicted == labels))}
    classes = np.unique(np.concatenate([labels, predicted]))
    if len(classes) > 2:
        scores = []
        for c in classes:
            tp = np.sum((predicted == c) & (labels == c))
            denominator = np.sum(predicted == c) + np.sum(labels == c)
            scores.append(2 * tp / denominator if denominator else 0.0)
        metrics["f1_macro"] = float(np.mean(scores))
    return metrics


def task_of(data: dict) -> str:
    """data.task, or "seq2seq" when the recipe sets data.target_field, else "classification"."""
    task = data["task"] or ("seq2seq" if data["target_field"] is not None else "classification")
    if task not in TASKS:
        raise cli.RecipeError(f"data.task={task!r} is not one of {list(TASKS)}")
    if task == "classification":
        seq2seq_only = [k for k in ("source_field", "target_field", "source_prefix", "max_source_length",
                                    "max_target_length", "metrics") if data[k] is not None]
        if seq2seq_only:
            raise cli.RecipeError(f"data.{seq2seq_only[0]} applies to data.task: seq2seq, not classification")
    return task


def run(recipe: cli.Recipe, resume=None) -> dict:
    """Train, evaluate and export; returns the final eval metrics."""
    if task_of(recipe.data) == "seq2seq":
        from train import finetune_seq2seq

        return finetune_seq2seq.run(recipe, CLASSIFICATION_DEFAULTS, resume=resume)
    import transformers_jax as tj
    from train.data import DataCollatorWithPadding
    from train.trainer import Trainer

    data = recipe.data
    train_rows = read_split(data, "train_file", "max_train_samples")
    eval_rows = read_split(data, "eval_file", "max_eval_samples")
    label2id, id2label = label_mapping(train_rows, data["label_field"])
    tokenizer = cli.load_tokenizer({}, recipe.model)
    model = cli.load_model(tj.AutoModelForSequenceClassification, recipe.model, id2label=id2label)
    train_set = features(train_rows, tokenizer, data, label2id)
    eval_set = features(eval_rows if eval_rows is not None else train_rows, tokenizer, data, label2id)
    if eval_rows is None:
        print("finetune: no data.eval_file; evaluating on the training rows", file=sys.stderr)
    collator = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=data["max_length"])
    trainer = Trainer(model, recipe.training, train_dataset=train_set, eval_dataset=eval_set, data_collator=collator,
                      compute_metrics=compute_metrics, processing_class=tokenizer)
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = {"train_loss": result.training_loss, "global_step": result.global_step, **trainer.evaluate()}
    return cli.finish(trainer, recipe, metrics)


def main(argv=None) -> dict:
    return cli.run_script(__doc__, DATA_DEFAULTS, run, argv)
