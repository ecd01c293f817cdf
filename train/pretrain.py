"""Pre-train a language model: masked LM for BERT, causal LM for Llama, span corruption for T5/BART.

    transformers-jax pretrain --config configs/cpu_smoke.yaml --set data.train_file=corpus.txt \\
        [--output_dir DIR] [--max_steps N] [--set training.learning_rate=1e-3] [--resume]

Text comes from .txt (one document a line), .jsonl or .csv files (data.text_field), from a
pre-tokenized token file (data.token_file: .npy, or .bin with data.dtype), or from a shard
directory written by `transformers-jax prepare-data` (data.shards, data.eval_shards: rows of
data.max_length tokens in a shuffled order computed a batch at a time, so memory does not grow
with the corpus). Causal LMs pack documents into rows of data.max_length tokens when data.packing
is true, else each document is truncated and padded. Every batch has data.max_length columns, so
the step compiles once. The model is fresh from model.config or loaded from model.name_or_path;
the tokenizer comes from data.tokenizer (a directory or "minilm") or the model directory. Prints
the final metrics as one JSON line and writes OUTPUT_DIR/final as a Hugging Face directory.

data.objective picks the objective: "clm", "mlm" or "span_corruption"; unset, it follows the
model (span corruption for encoder-decoders, causal LM where the model has a causal-LM head, else
masked LM). Span corruption (T5's; Hugging Face's run_t5_mlm_flax.py) concatenates the documents,
cuts them into rows that corrupt to exactly data.max_length encoder tokens (noise density
data.noise_density, mean span length data.mean_noise_span_length; the target length follows), and
replaces each noise span by a sentinel id counting down from the tokenizer's last id (T5's
<extra_id_0>, <extra_id_1>, ...). data.token_file and data.shards rows work for it too.
"""
from __future__ import annotations

import math

from train import cli

DATA_DEFAULTS = {
    "train_file": None, "eval_file": None, "text_field": "text", "tokenizer": None, "max_length": 128,
    "packing": False, "token_file": None, "eval_token_file": None, "dtype": None, "mlm_probability": 0.15,
    "max_train_samples": None, "objective": None, "noise_density": 0.15, "mean_noise_span_length": 3.0,
    "shards": None, "eval_shards": None,
}
# pre-tokenized sources: (train key, eval key)
PRETOKENIZED = (("shards", "eval_shards"), ("token_file", "eval_token_file"))
# objective: the model task (Auto class registry) it trains
OBJECTIVES = {"clm": "causal_lm", "mlm": "masked_lm", "span_corruption": "seq2seq_lm"}
MISSING_TRAIN = ("data.train_file is required (or data.token_file / data.shards for a pre-tokenized corpus, "
                 "see transformers-jax prepare-data)")


def objective(config, requested: str | None = None) -> str:
    """The objective of the run: ``requested`` (data.objective) when set, after checking the model has its head;
    else "span_corruption" for encoder-decoders with a seq2seq LM head (T5, BART), "clm" for models with a
    causal-LM head (Llama), "mlm" for models with a masked-LM head only (BERT)."""
    from transformers_jax.models.auto import MODEL_MAPPING

    if requested is not None:
        if requested not in OBJECTIVES:
            raise cli.RecipeError(f"data.objective={requested!r} is not one of {sorted(OBJECTIVES)}")
        if config.model_type not in MODEL_MAPPING[OBJECTIVES[requested]]:
            raise cli.RecipeError(f"data.objective={requested!r} needs a {OBJECTIVES[requested]} head, which "
                                  f"model_type {config.model_type!r} does not have")
        return requested
    if getattr(config, "is_encoder_decoder", False) and config.model_type in MODEL_MAPPING["seq2seq_lm"]:
        return "span_corruption"
    if config.model_type in MODEL_MAPPING["causal_lm"]:
        return "clm"
    if config.model_type in MODEL_MAPPING["masked_lm"]:
        return "mlm"
    raise cli.RecipeError(f"model_type {config.model_type!r} has neither a causal-LM, a masked-LM nor a seq2seq-LM head")


def text_corpus(data: dict, key: str, tokenizer, truncate: bool):
    """The documents of ``data[key]`` as a :class:`~train.corpus.TextCorpus` that tokenizes a document when a row
    needs it (None when the optional key is unset). Every host reads the whole file; each tokenizes what its rows
    need."""
    from train.corpus import TextCorpus
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
    try:
        return TextCorpus([row[data["text_field"]] for row in rows],
                          lambda texts: tokenizer(texts, **limit)["input_ids"])
    except ValueError as err:
        raise cli.RecipeError(f"data.{key}: {path}: {err}") from None


def token_dataset(data: dict, key: str, seq_len: int):
    """Rows of ``seq_len`` tokens of ``data[key]`` (None when unset): a ShardDataset of a shard directory
    (data.shards, data.eval_shards), a TokenFileDataset of a token file."""
    from train.data import TokenFileDataset
    from train.shards import ShardDataset

    if data[key] is None:
        return None
    path = data[key] if key.endswith("shards") else cli.require_file(data, key)
    try:
        if key.endswith("shards"):
            return ShardDataset(path, seq_len)
        return TokenFileDataset(path, seq_len, dtype=data["dtype"])
    except (ValueError, FileNotFoundError) as err:
        raise cli.RecipeError(f"data.{key}: {err}") from None


def pretokenized(data: dict, seq_len: int) -> tuple | None:
    """(train, eval or None) datasets of data.shards or data.token_file; None when neither is set."""
    given = [keys for keys in PRETOKENIZED if data[keys[0]] is not None or data[keys[1]] is not None]
    if not given:
        return None
    if len(given) > 1:
        raise cli.RecipeError("set either data.shards or data.token_file (and its eval_ key), not both")
    train_key, eval_key = given[0]
    train = token_dataset(data, train_key, seq_len)
    if train is None:
        raise cli.RecipeError(f"data.{eval_key} needs data.{train_key} for training")
    return train, token_dataset(data, eval_key, seq_len)


def span_corruption_datasets(data: dict, tokenizer, config):
    """(train dataset, eval dataset or None, collator) of T5 span corruption: rows of ``collator.tokens_length``
    tokens (documents concatenated, or token-file rows) that the collator corrupts to ``data.max_length``."""
    from train.collators import DataCollatorForT5MLM
    from train.corpus import GroupedDataset

    if tokenizer is None:
        raise cli.RecipeError("span corruption needs a tokenizer (its EOS id and its sentinel ids): set data.tokenizer")
    try:
        collator = DataCollatorForT5MLM(tokenizer, noise_density=data["noise_density"],
                                        mean_noise_span_length=data["mean_noise_span_length"],
                                        input_length=data["max_length"], model=config)
    except ValueError as err:
        raise cli.RecipeError(f"data: {err}") from None
    if data["packing"]:
        raise cli.RecipeError("data.packing applies to causal LM only; span corruption concatenates the documents "
                              "itself")
    splits = pretokenized(data, collator.tokens_length)
    if splits is not None:
        return *splits, collator
    if data["train_file"] is None:
        raise cli.RecipeError(MISSING_TRAIN)
    splits = []
    for key in ("train_file", "eval_file"):
        corpus = text_corpus(data, key, tokenizer, truncate=False)
        if corpus is None:
            splits.append(None)
            continue
        try:
            splits.append(GroupedDataset(corpus, corpus.lengths(), collator.tokens_length))
        except ValueError as err:
            raise cli.RecipeError(f"data.{key}: {err} (span corruption to data.max_length={data['max_length']} "
                                  f"reads rows of {collator.tokens_length} tokens)") from None
    return splits[0], splits[1], collator


def datasets(data: dict, tokenizer, task: str, config=None):
    """(train dataset, eval dataset or None, collator) for the objective ``task``."""
    from train.corpus import DocumentDataset, PackedDataset
    from train.data import DataCollatorForLanguageModeling, default_data_collator

    if task == "span_corruption":
        return span_corruption_datasets(data, tokenizer, config)
    splits = pretokenized(data, data["max_length"])
    if splits is not None:
        if task != "clm":
            key = "token_file" if data["shards"] is None and data["eval_shards"] is None else "shards"
            raise cli.RecipeError(f"data.{key} serves causal-LM rows; masked LM needs text files")
        return *splits, default_data_collator
    if data["train_file"] is None:
        raise cli.RecipeError(MISSING_TRAIN)
    packing = task == "clm" and data["packing"]
    if data["packing"] and task != "clm":
        raise cli.RecipeError("data.packing applies to causal LM only; masked LM pads each document")
    splits = [text_corpus(data, key, tokenizer, truncate=not packing) for key in ("train_file", "eval_file")]
    if packing:  # the layout needs every document's length: the hosts share that tokenizing (corpus.lengths)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        packed = [None if c is None else PackedDataset(c, c.lengths(), data["max_length"], pad, tokenizer.eos_token_id)
                  for c in splits]
        return packed[0], packed[1], default_data_collator
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Every batch max_length long; causal LM pads to exactly that, so a host collates only its own rows.
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=task == "mlm", mlm_probability=data["mlm_probability"],
                                               pad_to_multiple_of=data["max_length"],
                                               max_length=data["max_length"] if task == "clm" else None)
    train, evaluation = (DocumentDataset(c) if c is not None else None for c in splits)
    return train, evaluation, collator


def check_vocab(config, tokenizer, train_set=None) -> None:
    """The tokenizer's ids, and those of a shard directory, must fit the model's embedding table."""
    if tokenizer is not None and len(tokenizer) > config.vocab_size:
        raise cli.RecipeError(f"the tokenizer has {len(tokenizer)} ids but the model's vocab_size is "
                              f"{config.vocab_size}; set model.config.vocab_size >= {len(tokenizer)}")
    shards_vocab = getattr(train_set, "vocab_size", None)
    if shards_vocab is not None and shards_vocab > config.vocab_size:
        raise cli.RecipeError(f"data.shards was tokenized with {shards_vocab} ids but the model's vocab_size is "
                              f"{config.vocab_size}; set model.config.vocab_size >= {shards_vocab}")


def data_reading(train_set, train_metrics: dict) -> dict:
    """What this process read of the train set: its index, the rows its loader read, and the bytes of a token file
    or the documents of a text file it tokenized (each host reads and tokenizes only what its rows need)."""
    import jax

    out = {"process_index": jax.process_index(), "process_count": jax.process_count(),
           "train_rows_read": train_metrics.get("train_rows_read")}
    if hasattr(train_set, "bytes_read"):
        out["train_bytes_read"] = train_set.bytes_read
    corpus = getattr(train_set, "corpus", None)
    if corpus is not None:
        out["train_documents_tokenized"] = corpus.documents_tokenized
        out["train_documents"] = len(corpus)
    return out


def run(recipe: cli.Recipe, resume=None) -> dict:
    """Train (and evaluate when there is an eval set), export; returns the final metrics."""
    import transformers_jax as tj
    from train.trainer import Trainer

    config = cli.build_config(recipe.model)
    data = recipe.data
    task = objective(config, data["objective"])
    has_tokenizer = data["tokenizer"] is not None or recipe.model.get("name_or_path") is not None
    needs_tokenizer = (data["token_file"] is None and data["shards"] is None) or task == "span_corruption"
    tokenizer = cli.load_tokenizer(data, recipe.model) if has_tokenizer or needs_tokenizer else None
    check_vocab(config, tokenizer)
    train_set, eval_set, collator = datasets(data, tokenizer, task, config)
    check_vocab(config, None, train_set)
    auto = {"clm": tj.AutoModelForCausalLM, "mlm": tj.AutoModelForMaskedLM,
            "span_corruption": tj.AutoModelForSeq2SeqLM}[task]
    model = cli.load_model(auto, recipe.model)
    trainer = Trainer(model, recipe.training, train_dataset=train_set, eval_dataset=eval_set, data_collator=collator,
                      processing_class=tokenizer)
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = {"train_loss": result.training_loss, "global_step": result.global_step, "objective": task,
               **data_reading(train_set, result.metrics)}
    if eval_set is not None:
        metrics.update(trainer.evaluate())
        metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
    return cli.finish(trainer, recipe, metrics)


def main(argv=None) -> dict:
    return cli.run_script(__doc__, DATA_DEFAULTS, run, argv)
