"""The sequence-to-sequence recipe of ``transformers-jax finetune`` (``data.task: seq2seq``): summarization or
translation with any ``AutoModelForSeq2SeqLM`` (T5, BART, mBART, Marian), as Hugging Face's
``run_summarization.py`` does it.

Rows of data.train_file / data.eval_file (.jsonl or .csv) hold a source text (data.source_field) and a target
text (data.target_field). Sources get data.source_prefix (T5's "summarize: ") and are truncated and padded to
data.max_source_length tokens, targets to data.max_target_length (their padding becomes -100 in the labels), so
every batch has the same shape and the step compiles once. The collator builds decoder_input_ids from the labels
as the model does. With training.predict_with_generate the evaluation generates (up to generation_max_length,
which defaults to data.max_target_length, with generation_num_beams beams) and reports data.metrics ("rouge":
rouge1/rouge2/rougeL/rougeLsum F-measures; "bleu": sacrebleu's corpus BLEU) on the decoded texts, plus gen_len.
"""
from __future__ import annotations

import dataclasses
import sys

from train import cli

#: data keys of the seq2seq recipe, with their defaults (None in ``finetune.DATA_DEFAULTS``, filled here)
SEQ2SEQ_DEFAULTS = {"source_field": "document", "target_field": "summary", "source_prefix": "",
                    "max_source_length": 512, "max_target_length": 128, "metrics": ["rouge"]}
#: classification keys, refused in a seq2seq recipe when changed from their defaults
CLASSIFICATION_KEYS = ("text_field", "text_pair_field", "label_field", "max_length")


def seq2seq_data(data: dict, classification_defaults: dict) -> dict:
    """The data section with the seq2seq defaults filled in and checked."""
    changed = [k for k in CLASSIFICATION_KEYS if data.get(k) != classification_defaults.get(k)]
    if changed:
        raise cli.RecipeError(f"data.{changed[0]} belongs to sequence classification; the seq2seq task reads "
                              f"{sorted(SEQ2SEQ_DEFAULTS)}")
    out = dict(data)
    for key, default in SEQ2SEQ_DEFAULTS.items():
        if out.get(key) is None:
            out[key] = default
    for key in ("max_source_length", "max_target_length"):
        if not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < 2:
            raise cli.RecipeError(f"data.{key} must be an integer >= 2, got {out[key]!r}")
    if not isinstance(out["source_prefix"], str):
        raise cli.RecipeError(f"data.source_prefix must be a string, got {out['source_prefix']!r}")
    metrics = [out["metrics"]] if isinstance(out["metrics"], str) else list(out["metrics"])
    from train.metrics import Seq2SeqMetrics

    unknown = [m for m in metrics if m not in Seq2SeqMetrics.KNOWN]
    if unknown or not metrics:
        raise cli.RecipeError(f"data.metrics: unknown metric(s) {unknown or metrics}; choose from "
                              f"{list(Seq2SeqMetrics.KNOWN)}")
    out["metrics"] = metrics
    return out


def read_pairs(data: dict, key: str, limit_key: str) -> list[dict] | None:
    """The rows of ``data[key]`` with both text fields (None when the optional file is unset)."""
    from train.data import load_rows

    path = cli.require_file(data, key, required=key == "train_file")
    if path is None:
        return None
    try:
        rows = load_rows(path, text_field=data["source_field"], required_fields=[data["target_field"]])
    except ValueError as err:
        raise cli.RecipeError(f"data.{key}: {err}") from None
    if not rows:
        raise cli.RecipeError(f"data.{key}: {path} holds no rows")
    for index, row in enumerate(rows):
        for field in (data["source_field"], data["target_field"]):
            if not isinstance(row[field], str):
                raise cli.RecipeError(f"data.{key}: row {index}: {field!r} is a {type(row[field]).__name__}, not text")
    return rows[: data[limit_key]] if data[limit_key] else rows


def seq2seq_features(rows: list[dict], tokenizer, data: dict) -> list[dict]:
    """input_ids / attention_mask of the prefixed sources and labels of the targets (padding -> -100), every row
    padded to the data section's maximum lengths."""
    sources = [data["source_prefix"] + row[data["source_field"]] for row in rows]
    targets = [row[data["target_field"]] for row in rows]
    inputs = tokenizer(sources, max_length=data["max_source_length"], truncation=True, padding="max_length")
    labels = tokenizer(text_target=targets, max_length=data["max_target_length"], truncation=True,
                       padding="max_length")["input_ids"]
    pad = tokenizer.pad_token_id
    return [{"input_ids": list(inputs["input_ids"][i]), "attention_mask": list(inputs["attention_mask"][i]),
             "labels": [-100 if token == pad else int(token) for token in labels[i]]} for i in range(len(rows))]


def seq2seq_arguments(training, data: dict):
    """The run's Seq2SeqTrainingArguments: generation_max_length defaults to data.max_target_length (as Hugging
    Face's run_summarization sets it)."""
    from train.training_args import Seq2SeqTrainingArguments

    if not isinstance(training, Seq2SeqTrainingArguments):
        values = {f.name: getattr(training, f.name) for f in dataclasses.fields(training)}
        training = Seq2SeqTrainingArguments(**values)
    if training.generation_max_length is None:
        training = dataclasses.replace(training, generation_max_length=data["max_target_length"])
    return training


def run(recipe: cli.Recipe, classification_defaults: dict, resume=None) -> dict:
    """Train, evaluate (generating when training.predict_with_generate) and export; returns the final metrics."""
    import transformers_jax as tj
    from train.collators import DataCollatorForSeq2Seq
    from train.metrics import Seq2SeqMetrics
    from train.trainer_seq2seq import Seq2SeqTrainer

    data = seq2seq_data(recipe.data, classification_defaults)
    train_rows = read_pairs(data, "train_file", "max_train_samples")
    eval_rows = read_pairs(data, "eval_file", "max_eval_samples")
    tokenizer = cli.load_tokenizer({}, recipe.model)
    model = cli.load_model(tj.AutoModelForSeq2SeqLM, recipe.model)
    if len(tokenizer) > model.config.vocab_size:
        raise cli.RecipeError(f"the tokenizer has {len(tokenizer)} ids but the model's vocab_size is "
                              f"{model.config.vocab_size}")
    train_set = seq2seq_features(train_rows, tokenizer, data)
    if eval_rows is None:
        print("finetune: no data.eval_file; evaluating on the training rows", file=sys.stderr)
    eval_set = seq2seq_features(eval_rows if eval_rows is not None else train_rows, tokenizer, data)
    args = seq2seq_arguments(recipe.training, data)
    metrics_fn = Seq2SeqMetrics(tokenizer, data["metrics"]) if args.predict_with_generate else None
    trainer = Seq2SeqTrainer(model, args, train_dataset=train_set, eval_dataset=eval_set,
                             data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
                             compute_metrics=metrics_fn, processing_class=tokenizer)
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = {"train_loss": result.training_loss, "global_step": result.global_step, **trainer.evaluate()}
    return cli.finish(trainer, recipe, metrics)
