"""Pre-train a language model: masked LM for BERT, causal LM for Llama.

    transformers-jax pretrain --config configs/cpu_smoke.yaml --set data.train_file=corpus.txt \\
        [--output_dir DIR] [--max_steps N] [--set training.learning_rate=1e-3] [--resume]

Text comes from .txt (one document a line), .jsonl or .csv files (data.text_field), or from a
pre-tokenized token file (data.token_file: .npy, or .bin with data.dtype). Causal LMs pack
documents into rows of data.max_length tokens when data.packing is true, else each document is
truncated and padded. Every batch has data.max_length columns, so the step compiles once. The
model is fresh from model.config or loaded from model.name_or_path; the tokenizer comes from
data.tokenizer (a directory or "minilm") or the model directory. Prints the final metrics as one
JSON line and writes OUTPUT_DIR/final as a Hugging Face directory.
"""
from __future__ import annotations

import math

from train import cli

DATA_DEFAULTS = {
    "train_file": None, "eval_file": None, "text_field": "text", "tokenizer": None, "max_length": 128,
    "packing": False, "token_file": None, "eval_token_file": None, "dtype": None, "mlm_probability": 0.15,
    "max_train_samples": None,
}


def objective(config) -> str:
    """"mlm" for models with a masked-LM head and no causal one (BERT), else "clm"."""
    from transformers_jax.models.auto import MODEL_MAPPING

    if config.model_type in MODEL_MAPPING["causal_lm"]:
        return "clm"
    if config.model_type in MODEL_MAPPING["masked_lm"]:
        return "mlm"
    raise cli.RecipeError(f"model_type {config.model_type!r} has neither a causal-LM nor a masked-LM head")


def token_lists(data: dict, key: str, tokenizer, truncate: bool) -> list[list[int]] | None:
    """Token ids of every document in ``data[key]`` (None when the optional key is unset)."""
    from train.data import load_rows

    path = cli.require_file(data, key, required=False)
    if path is None:
        return None
    try:
        rows = load_rows(path, text_field=data["text_field"])
    except ValueError as err:
        raise cli.RecipeError(f"data.{key}: {err}") from None
    if key == "train_file" and data["max_train_samples"]:
        rows = rows[: data["max_train_samples"]]
    if not rows:
        raise cli.RecipeError(f"data.{key}: {path} holds no documents")
    limit = {"truncation": True, "max_length": data["max_length"]} if truncate else {}
    return [list(ids) for ids in tokenizer([row[data["text_field"]] for row in rows], **limit)["input_ids"]]


def token_file_dataset(data: dict, key: str):
    """A TokenFileDataset of ``data[key]`` (None when unset)."""
    from train.data import TokenFileDataset

    path = cli.require_file(data, key, required=False)
    if path is None:
        return None
    try:
        return TokenFileDataset(path, data["max_length"], dtype=data["dtype"])
    except ValueError as err:
        raise cli.RecipeError(f"data.{key}: {err}") from None


def datasets(data: dict, tokenizer, task: str):
    """(train dataset, eval dataset or None, collator) for the objective ``task``."""
    from train.data import ArrayDataset, DataCollatorForLanguageModeling, default_data_collator, pack_sequences

    if data["token_file"] is not None or data["eval_token_file"] is not None:
        if task != "clm":
            raise cli.RecipeError("data.token_file serves causal-LM rows; masked LM needs text files")
        train = token_file_dataset(data, "token_file")
        if train is None:
            raise cli.RecipeError("data.eval_token_file needs data.token_file for training")
        return train, token_file_dataset(data, "eval_token_file"), default_data_collator
    if data["train_file"] is None:
        raise cli.RecipeError("data.train_file is required (or data.token_file for a pre-tokenized corpus)")
    packing = task == "clm" and data["packing"]
    if data["packing"] and task != "clm":
        raise cli.RecipeError("data.packing applies to causal LM only; masked LM pads each document")
    splits = [token_lists(data, key, tokenizer, truncate=not packing) for key in ("train_file", "eval_file")]
    if packing:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        packed = [None if s is None else ArrayDataset(pack_sequences(s, data["max_length"], pad,
                                                                     tokenizer.eos_token_id)) for s in splits]
        return packed[0], packed[1], default_data_collator
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=task == "mlm", mlm_probability=data["mlm_probability"],
                                               pad_to_multiple_of=data["max_length"])  # every batch max_length long
    train, evaluation = ([{"input_ids": ids} for ids in s] if s is not None else None for s in splits)
    return train, evaluation, collator


def check_vocab(config, tokenizer) -> None:
    """The tokenizer's ids must fit the model's embedding table."""
    if tokenizer is not None and len(tokenizer) > config.vocab_size:
        raise cli.RecipeError(f"the tokenizer has {len(tokenizer)} ids but the model's vocab_size is "
                              f"{config.vocab_size}; set model.config.vocab_size >= {len(tokenizer)}")


def run(recipe: cli.Recipe, resume=None) -> dict:
    """Train (and evaluate when there is an eval set), export; returns the final metrics."""
    import transformers_jax as tj
    from train.trainer import Trainer

    config = cli.build_config(recipe.model)
    task = objective(config)
    data = recipe.data
    has_tokenizer = data["tokenizer"] is not None or recipe.model.get("name_or_path") is not None
    tokenizer = cli.load_tokenizer(data, recipe.model) if has_tokenizer or data["token_file"] is None else None
    check_vocab(config, tokenizer)
    train_set, eval_set, collator = datasets(data, tokenizer, task)
    auto = tj.AutoModelForCausalLM if task == "clm" else tj.AutoModelForMaskedLM
    model = cli.load_model(auto, recipe.model)
    trainer = Trainer(model, recipe.training, train_dataset=train_set, eval_dataset=eval_set, data_collator=collator,
                      processing_class=tokenizer)
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = {"train_loss": result.training_loss, "global_step": result.global_step, "objective": task}
    if eval_set is not None:
        metrics.update(trainer.evaluate())
        metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
    return cli.finish(trainer, recipe, metrics)


def main(argv=None) -> dict:
    return cli.run_script(__doc__, DATA_DEFAULTS, run, argv)
