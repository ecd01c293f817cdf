"""Hugging Face ``datasets`` in training and batch inference: Dataset / IterableDataset runs equal runs on lists of
rows, streams resume, remove_unused_columns, missing-column errors, the batch runner over a Dataset."""
import json
import logging
from pathlib import Path

import datasets
import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import transformers_jax as tj
from parity import tiny_bpe_tokenizer
from train.checkpointing import CheckpointManager
from train.collators import DataCollatorWithPadding, default_data_collator
from train.columns import prepare_dataset
from train.data import DataLoader, StreamingDataLoader
from train.trainer import Trainer
from train.training_args import TrainingArguments

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["good", "bad", "film", "plot", "actor", "music", "long", "short", "great", "boring", "fun", "dark"]
MAX_LENGTH = 12
BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, num_labels=2)  # dropout 0.1: the runs must match with dropout on


def text_rows(count: int, seed: int) -> list[dict]:
    """{"text", "label", "idx"} rows; the label says whether "good" or "great" is in the text."""
    rng = np.random.RandomState(seed)
    rows = []
    for index in range(count):
        words = [WORDS[i] for i in rng.randint(0, len(WORDS), rng.randint(2, 8))]
        rows.append({"text": " ".join(words), "label": int("good" in words or "great" in words), "idx": index})
    return rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_bpe_tokenizer([" ".join(WORDS)] * 4, 120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """train.jsonl (18 rows), eval.csv (10 rows) and the cache directory for load_dataset."""
    root = tmp_path_factory.mktemp("data")
    write_jsonl(root / "train.jsonl", text_rows(18, 0))
    rows = text_rows(10, 1)
    (root / "eval.csv").write_text("text,label,idx\n" + "".join(f"{r['text']},{r['label']},{r['idx']}\n" for r in rows))
    return root


def tokenize_fn(tokenizer):
    return lambda batch: tokenizer(batch["text"], truncation=True, max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def train_set(files, tokenizer):
    """The tokenized train split: text, label, idx, input_ids, attention_mask (+ token_type_ids)."""
    raw = datasets.load_dataset("json", data_files=str(files / "train.jsonl"), cache_dir=str(files / "cache"))
    return raw["train"].map(tokenize_fn(tokenizer), batched=True)


@pytest.fixture(scope="module")
def eval_set(files, tokenizer):
    raw = datasets.load_dataset("csv", data_files=str(files / "eval.csv"), cache_dir=str(files / "cache"), split="train")
    return raw.map(tokenize_fn(tokenizer), batched=True)


def one_device_mesh():
    return Mesh(np.array(jax.devices()[:1]), ("data",))


def make_args(tmp_path, **kw):
    """Every run: 18 rows in global batches of 4 (2 rows a micro-batch, 2 accumulation steps), in order: 4 updates
    per epoch (the last 2 rows dropped), 7 updates (so the run crosses an epoch boundary)."""
    base = dict(output_dir=str(tmp_path), max_steps=7, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                train_sampling_strategy="sequential", per_device_eval_batch_size=4, learning_rate=1e-3,
                logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True)
    base.update(kw)
    return TrainingArguments(**base)


def accuracy(prediction):
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def make_trainer(tokenizer, args, train, eval_data=None, **kw):
    config = tj.BertConfig.from_dict(dict(BERT, vocab_size=len(tokenizer)))
    kw.setdefault("data_collator", DataCollatorWithPadding(tokenizer, padding="max_length", max_length=MAX_LENGTH))
    return Trainer(tj.BertForSequenceClassification(config, seed=1), args, train_dataset=train, eval_dataset=eval_data,
                   compute_metrics=accuracy, mesh=one_device_mesh(), **kw)


def losses(trainer) -> dict:
    return {r["step"]: r["loss"] for r in trainer.state.log_history if "loss" in r}


def train_eval_predict(trainer, test_data):
    trainer.train()
    metrics = trainer.evaluate()
    prediction = trainer.predict(test_data)
    return losses(trainer), metrics, prediction


# ----------------------------------------------------------------------------- a Dataset run == a list-of-rows run
class LogCapture(logging.Handler):
    """The messages of the ``transformers_jax.train`` logger at INFO while in the ``with`` block."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages, self.logger = [], logging.getLogger("transformers_jax.train")

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        self.level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)


@pytest.fixture(scope="module")
def list_run(tmp_path_factory, tokenizer, train_set, eval_set):
    """The reference: the same rows as plain lists of dicts (text and idx included: dropped row by row); returns
    (losses, eval metrics, prediction) and the log messages."""
    rows, eval_rows = [dict(r) for r in train_set], [dict(r) for r in eval_set]
    with LogCapture() as log:
        trainer = make_trainer(tokenizer, make_args(tmp_path_factory.mktemp("list")), rows, eval_rows)
        out = train_eval_predict(trainer, eval_rows)
    return out, log.messages


def test_dataset_run_equals_list_run(tmp_path, tokenizer, train_set, eval_set, list_run):
    """Train, evaluate and predict on the Dataset: the list run's numbers exactly; predict also over the numpy and
    jax formats and a streamed copy of the eval set."""
    (expected_losses, expected_metrics, expected_prediction), _ = list_run
    trainer = make_trainer(tokenizer, make_args(tmp_path), train_set, eval_set)
    got_losses, metrics, prediction = train_eval_predict(trainer, eval_set)
    assert got_losses == expected_losses and len(got_losses) == 7
    assert len(set(got_losses.values())) == 7  # the steps really differ
    for key in ("eval_loss", "eval_accuracy"):
        assert metrics[key] == expected_metrics[key]
    assert prediction.predictions.shape == (10, 2)  # 10 rows in batches of 4: the padded rows are left out
    np.testing.assert_array_equal(prediction.predictions, expected_prediction.predictions)
    np.testing.assert_array_equal(prediction.label_ids, np.array(eval_set["label"]))
    assert set(prediction.metrics) >= {"test_loss", "test_accuracy", "test_samples_per_second"}
    for data in (eval_set.with_format("numpy"), eval_set.with_format("jax"), eval_set.to_iterable_dataset()):
        again = trainer.predict(data)
        np.testing.assert_array_equal(again.predictions, prediction.predictions)
        assert again.metrics["test_loss"] == prediction.metrics["test_loss"]


@pytest.mark.parametrize("fmt", ["numpy", "jax"])
def test_dataset_formats_give_the_batches_of_python_rows(tokenizer, train_set, fmt):
    """What the Trainer's loader does with a Dataset in each format: the same global batches as plain rows (here
    shuffled)."""
    model_class = tj.BertForSequenceClassification
    collate = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=MAX_LENGTH)

    def batches(data):
        data, collate_fn = prepare_dataset(data, model_class, collate, True, "training")
        loader = DataLoader(data, 8, collate_fn, seed=5, process_index=0, process_count=1)
        return [loader.load_batch(epoch, b) for epoch in range(2) for b in range(2)]

    expected = batches([dict(r) for r in train_set])
    got = batches(train_set.with_format(fmt))
    assert sorted(got[0]) == ["attention_mask", "input_ids", "labels"]
    for a, b in zip(expected, got):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
            assert a[key].dtype == b[key].dtype


def test_unused_columns_are_dropped_and_logged_once_or_kept(tmp_path, tokenizer, eval_set, list_run):
    _, list_messages = list_run  # lists of rows: dropped row by row before collation
    removed = [m for m in list_messages if "were removed" in m]
    assert [m.split(" of the ")[0] for m in removed] == ["The columns text, idx"] * 3  # training, evaluation, test
    trainer = make_trainer(tokenizer, make_args(tmp_path), None, eval_set)
    with LogCapture() as log:
        dropped = trainer.evaluate()
        assert trainer.evaluate()["eval_loss"] == dropped["eval_loss"]
    removed = [m for m in log.messages if "were removed" in m]
    assert removed == ["The columns text, idx of the evaluation set are not inputs of "
                       "BertForSequenceClassification.forward and were removed (remove_unused_columns=False keeps "
                       "them)."]

    # remove_unused_columns=False: the collator gets every column (here it reads idx, then pads the model inputs)
    seen = []
    padding = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=MAX_LENGTH)

    def collator(features, rng=None):
        seen.append([f["idx"] for f in features])
        return padding([{k: f[k] for k in ("input_ids", "attention_mask", "label")} for f in features])

    keeping = make_trainer(tokenizer, make_args(tmp_path, remove_unused_columns=False), None, eval_set,
                           data_collator=collator)
    assert keeping.evaluate()["eval_loss"] == dropped["eval_loss"]
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 8]]  # the last batch padded with its first row
    # ... and the default collator cannot stack the text column: the error names it and lists the columns
    plain = make_trainer(tokenizer, make_args(tmp_path, remove_unused_columns=False), None, eval_set)
    with pytest.raises(ValueError, match=r"The evaluation dataset \(columns \['text', 'label', 'idx', 'input_ids', "
                                         r"'attention_mask'.*\]\) cannot form a batch: Cannot stack 'text'"):
        plain.evaluate()


# ----------------------------------------------------------------------------- bad datasets
def test_missing_column_errors_name_the_column(tmp_path, tokenizer, files):
    raw = datasets.load_dataset("json", data_files=str(files / "train.jsonl"), cache_dir=str(files / "cache"),
                                split="train")
    message = (r"The training dataset has no column 'input_ids', which BertForSequenceClassification.forward needs; "
               r"its columns are \['text', 'label', 'idx'\]. Tokenize it first")
    for data in (raw, [dict(r) for r in raw], raw.to_iterable_dataset()):
        trainer = make_trainer(tokenizer, make_args(tmp_path), data)
        with pytest.raises(ValueError, match=message):
            trainer.train()
    streamed = datasets.load_dataset("json", data_files=str(files / "train.jsonl"), streaming=True, split="train")
    with pytest.raises(ValueError, match=r"no column 'input_ids'.*its columns are \['text', 'label', 'idx'\]"):
        make_trainer(tokenizer, make_args(tmp_path), streamed).train()
    # without removal, the collator gets the rows as they are, and says what it misses
    trainer = make_trainer(tokenizer, make_args(tmp_path, remove_unused_columns=False), [dict(r) for r in raw])
    with pytest.raises(ValueError, match=r"The training dataset \(columns \['text', 'label', 'idx'\]\) cannot form a "
                                         r"batch: DataCollatorWithPadding: feature 0 has no 'input_ids'"):
        trainer.train()
    trainer = make_trainer(tokenizer, make_args(tmp_path, remove_unused_columns=False), [dict(r) for r in raw],
                           data_collator=lambda features, rng=None: {"labels": np.array([f["label"] for f in features])})
    with pytest.raises(ValueError, match=r"The training batches have no 'input_ids', which "
                                         r"BertForSequenceClassification.forward needs: the data collator made "
                                         r"\['labels'\] of the columns \['text', 'label', 'idx'\]"):
        trainer.train()
    with pytest.raises(ValueError, match=r"dict with keys \['train'\] \(a DatasetDict\?\); pass one split"):
        make_trainer(tokenizer, make_args(tmp_path), datasets.DatasetDict({"train": raw})).train()


def test_a_stream_needs_max_steps(tmp_path, tokenizer, train_set):
    with pytest.raises(ValueError, match=r"The train_dataset \(IterableDataset\) has no __len__, so the number of "
                                         r"training steps cannot be derived from num_train_epochs: set "
                                         r"TrainingArguments.max_steps > 0"):
        make_trainer(tokenizer, make_args(tmp_path, max_steps=-1, num_train_epochs=1), train_set.to_iterable_dataset())
    with pytest.raises(ValueError, match=r"train_sampling_strategy='group_by_length' is not one of \['random', "
                                         r"'sequential'\]"):
        make_args(tmp_path, train_sampling_strategy="group_by_length")


# ----------------------------------------------------------------------------- streams
def test_streamed_run_equals_map_style_run_and_resumes(tmp_path, tokenizer, files, list_run):
    """The train file streamed and tokenized on the fly gives the list run's losses; resuming from the step-5
    checkpoint (epoch 1, batch 1: the 4 rows of that pass already consumed are skipped) gives steps 6 and 7."""
    (expected_losses, _, _), _ = list_run
    stream = datasets.load_dataset("json", data_files=str(files / "train.jsonl"), streaming=True, split="train")
    stream = stream.map(tokenize_fn(tokenizer), batched=True)
    kw = dict(save_strategy="steps", save_steps=5, async_checkpointing=False)
    streamed = make_trainer(tokenizer, make_args(tmp_path / "stream", **kw), stream)
    streamed.train()
    assert losses(streamed) == expected_losses
    assert streamed.state.epoch == 1.0  # passes completed (a stream's length is unknown)
    with CheckpointManager(tmp_path / "stream" / "checkpoints", read_only=True) as manager:
        assert manager.read_metadata(5)["data_state"] == {"epoch": 1, "batch": 1}

    resumed = make_trainer(tokenizer, make_args(tmp_path / "resumed", **kw), stream)
    resumed.train(resume_from_checkpoint=str(tmp_path / "stream" / "checkpoints" / "5"))
    assert losses(resumed) == {6: expected_losses[6], 7: expected_losses[7]}


def feature_rows(count):
    return [{"input_ids": [i, i + 1, i + 2], "labels": i} for i in range(count)]


class Stream:
    """A re-iterable without __len__ (a stream), with set_epoch like datasets.IterableDataset."""

    def __init__(self, rows):
        self.rows, self.epochs = rows, []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def __iter__(self):
        return iter(self.rows)


def batches_of(loader, count):
    out, it = [], iter(loader)
    for _ in range(count):
        out.append((next(it), loader.state_dict()))
    return out


def test_stream_loader_equals_map_style_loader_across_hosts_and_epochs():
    rows = feature_rows(11)  # global batch 4: 2 batches per pass, 3 rows dropped
    mapped = DataLoader(rows, 4, default_data_collator, shuffle=False, process_index=0, process_count=1)
    stream = Stream(rows)
    single = StreamingDataLoader(stream, 4, default_data_collator, process_index=0, process_count=1)
    expected, got = batches_of(mapped, 5), batches_of(single, 5)
    for (a, state_a), (b, state_b) in zip(expected, got):
        assert state_a == state_b
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert [s for _, s in got] == [{"epoch": 0, "batch": 1}, {"epoch": 1, "batch": 0}, {"epoch": 1, "batch": 1},
                                   {"epoch": 2, "batch": 0}, {"epoch": 2, "batch": 1}]
    assert stream.epochs[:3] == [0, 1, 2]  # each training pass told its epoch (a shuffled stream reshuffles)
    hosts = [StreamingDataLoader(Stream(rows), 4, default_data_collator, process_index=p, process_count=2)
             for p in range(2)]
    for index, host_batches in enumerate(zip(*(batches_of(h, 5) for h in hosts))):
        for key in expected[index][0]:
            joined = np.concatenate([b[key] for b, _ in host_batches])
            np.testing.assert_array_equal(joined, expected[index][0][key])
    # resume mid-pass: the continuation of the uninterrupted iteration
    resumed = StreamingDataLoader(Stream(rows), 4, default_data_collator, process_index=0, process_count=1)
    resumed.load_state_dict(got[2][1])  # {"epoch": 1, "batch": 1}: after the third batch
    for (a, state_a), (b, state_b) in zip(got[3:], batches_of(resumed, 2)):
        np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
        assert state_a == state_b


def test_shuffled_stream_reshuffles_per_epoch_and_resumes(files, tokenizer):
    stream = datasets.load_dataset("json", data_files=str(files / "train.jsonl"), streaming=True, split="train")
    stream = stream.map(tokenize_fn(tokenizer), batched=True).shuffle(seed=3, buffer_size=8).with_format("numpy")
    collate = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=MAX_LENGTH)

    def loader():
        return StreamingDataLoader(stream.remove_columns(["text"]), 8, collate, process_index=0, process_count=1)

    full = batches_of(loader(), 6)  # 2 batches per pass (2 of the 18 rows dropped)
    passes = [np.concatenate([b["idx"] for b, _ in full[i:i + 2]]).tolist() for i in (0, 2, 4)]
    assert all(len(set(p)) == 16 and set(p) <= set(range(18)) for p in passes)
    assert passes[0] != passes[1] != passes[2] and passes[0] != sorted(passes[0])
    resumed = loader()
    resumed.load_state_dict(full[2][1])  # {"epoch": 1, "batch": 1}
    for (a, _), (b, _) in zip(full[3:], batches_of(resumed, 3)):
        np.testing.assert_array_equal(a["idx"], b["idx"])


def test_stream_eval_pads_and_bad_streams():
    rows = feature_rows(5)
    loader = StreamingDataLoader(Stream(rows), 4, default_data_collator, drop_last=False, process_index=1,
                                 process_count=2)
    batches = list(loader.iter_epoch())
    assert [b["_valid"].tolist() for b in batches] == [[True, True], [False, False]]
    assert batches[1]["input_ids"][:, 0].tolist() == [4, 4] and loader.num_rows == 5
    with pytest.raises(ValueError, match="one-shot iterator"):
        StreamingDataLoader(iter(rows), 4, default_data_collator, process_index=0, process_count=1)
    short = StreamingDataLoader(Stream(rows[:3]), 4, default_data_collator, process_index=0, process_count=1)
    with pytest.raises(ValueError, match=r"yielded 3 rows in epoch 0, fewer than one global batch of "
                                         r"global_batch_size=4"):
        next(iter(short))
    with pytest.raises(ValueError, match=r"ends before batch 2 of epoch 0"):
        short.load_state_dict({"epoch": 0, "batch": 2})
        next(iter(short))
    with pytest.raises(ValueError, match="The streamed dataset is empty"):
        list(StreamingDataLoader(Stream([]), 4, default_data_collator, drop_last=False, process_index=0,
                                 process_count=1).iter_epoch())


def test_label_columns_are_passed_on_as_labels():
    features = [{"input_ids": [1, 2], "label_ids": 1}, {"input_ids": [3, 4], "label_ids": 0}]
    assert default_data_collator(features)["labels"].tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"several label columns \['labels', 'label'\]"):
        default_data_collator([{"input_ids": [1], "labels": 1, "label": 1}])


# ----------------------------------------------------------------------------- the batch runner over a Dataset
@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    """(model directory, model, tokenizer): the batch runner tests' tiny Llama with a chat template."""
    from test_batch_runner import _save_model, _tokenizer

    directory = tmp_path_factory.mktemp("tiny_llama")
    tokenizer = _tokenizer()
    _save_model(directory, tokenizer, tokenizer.eos_token_id)
    return directory, tj.AutoModelForCausalLM.from_pretrained(directory), tj.AutoTokenizer.from_pretrained(directory)


def request_rows():
    from test_batch_runner import PROMPTS

    rows = [{"id": f"p{i}", "prompt": p} for i, p in enumerate(PROMPTS[:5])]
    rows.insert(2, {"id": "chat", "messages": [{"role": "system", "content": "be brief"},
                                               {"role": "user", "content": "the lazy dog"}]})
    rows.append({"id": "sampled", "prompt": "hello", "do_sample": True, "temperature": 1.5, "seed": 3})
    rows.append({"id": "bad", "prompt": "zz", "temprature": 0.5})
    rows.append({"id": "short", "prompt": "jax is fast", "max_new_tokens": 2})
    return rows


def test_batch_runner_over_a_dataset_equals_jsonl(tmp_path, generator):
    """The same requests as a JSONL file, a Dataset loaded from it (python and numpy formats), a stream of it, and
    Dataset.from_list give the same output file; a Dataset run resumes after a crash; the CLI takes --dataset."""
    from serving.batch import run_batch

    model_dir, model, tokenizer = generator
    jsonl = write_jsonl(tmp_path / "in.jsonl", request_rows())
    kw = dict(batch_size=2, max_new_tokens=4, progress=False)
    expected = tmp_path / "jsonl.out"
    run_batch(model, tokenizer, jsonl, expected, **kw)
    results = [json.loads(line) for line in expected.read_text().splitlines()]
    assert [r["id"] for r in results] == [r["id"] for r in request_rows() if r["id"] != "bad"]
    assert results[-1]["num_new_tokens"] == 2

    loaded = datasets.load_dataset("json", data_files=str(jsonl), cache_dir=str(tmp_path / "cache"), split="train")
    assert set(loaded.column_names) >= {"prompt", "messages", "temprature"}  # Arrow: absent keys are nulls
    streamed = datasets.load_dataset("json", data_files=str(jsonl), streaming=True, split="train")
    sources = {"dataset": loaded, "numpy": loaded.with_format("numpy"), "stream": streamed,
               "from_list": datasets.Dataset.from_list([dict(r) for r in loaded])}
    for name, source in sources.items():
        out = tmp_path / f"{name}.out"
        summary = run_batch(model, tokenizer, source, out, **kw)
        assert out.read_bytes() == expected.read_bytes(), name
        assert summary.num_errors == 1
        errors = [json.loads(line) for line in (tmp_path / f"{name}.out.errors.jsonl").read_text().splitlines()]
        assert errors == [{"row": 7, "id": "bad", "error": "row 7: unknown key(s) ['temprature']; allowed: "
                           "['do_sample', 'id', 'max_new_tokens', 'messages', 'prompt', 'seed', 'temperature', "
                           "'top_k', 'top_p']"}]

    class Crash(Exception):
        pass

    committed = []

    def crash(index, records):
        committed.extend(records)
        if index == 1:
            raise Crash

    out = tmp_path / "resumed.out"
    with pytest.raises(Crash):
        run_batch(model, tokenizer, loaded, out, on_batch_committed=crash, **kw)
    assert len(list((tmp_path / "resumed.out.parts").glob("part-*.jsonl"))) == 2 and not out.exists()
    summary = run_batch(model, tokenizer, loaded, out, **kw)
    assert summary.num_skipped == len(committed) >= 2 and summary.num_done == 8 - len(committed)
    assert out.read_bytes() == expected.read_bytes()

    from serving.cli import generate_main

    datasets.DatasetDict({"test": loaded}).save_to_disk(str(tmp_path / "saved"))
    cli_out = tmp_path / "cli.out"
    common = ["--model", str(model_dir), "--batch-size", "2", "--max-new-tokens", "4", "--no-progress"]
    assert generate_main([*common, "--dataset", str(tmp_path / "saved"), "--split", "test", "--output",
                        str(cli_out)]) == 2  # one bad row
    assert cli_out.read_bytes() == expected.read_bytes()
    with pytest.raises(SystemExit, match=r"has no split 'train'; its splits are \['test'\]"):
        generate_main([*common, "--dataset", str(tmp_path / "saved"), "--output", str(cli_out)])
    with pytest.raises(ValueError, match=r"inputs is a dict with keys \['test'\] \(a DatasetDict\?\); pass one split"):
        run_batch(model, tokenizer, datasets.DatasetDict({"test": loaded}), cli_out, **kw)


def test_the_packages_work_without_datasets_installed():
    """`datasets` is optional: with it unimportable, train/ and serving/ import and batch plain rows."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys
        sys.modules["datasets"] = None  # import datasets -> ImportError
        import transformers_jax as tj, train, serving.batch
        from train.columns import prepare_dataset
        from train.data import DataLoader, StreamingDataLoader
        from train.collators import default_data_collator
        rows = [{"input_ids": [i, i + 1], "label": i % 2, "note": "x"} for i in range(4)]
        data, collate = prepare_dataset(rows, tj.BertForSequenceClassification, default_data_collator, True, "training")
        batch = DataLoader(data, 2, collate, shuffle=False, process_index=0, process_count=1).load_batch(0, 1)
        assert sorted(batch) == ["input_ids", "labels"] and batch["labels"].tolist() == [0, 1], batch
        print("ok", "datasets" in sys.modules and sys.modules["datasets"] is None)
    """)
    env = {"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok True"
