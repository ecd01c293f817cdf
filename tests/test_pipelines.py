"""pipeline(): the factory and registry, the batching/streaming base, and text-classification, against
Hugging Face's ``transformers.pipeline`` over the same tiny checkpoints and real tokenizer files."""
import logging
import math

import jax
import numpy as np
import pytest
import transformers

import transformers_jax as tj
from parity import assert_same_up_to_rounding, count_compiles
from pipeline_fixtures import assert_same_results, build_checkpoint, pipeline_models  # noqa: F401
from transformers_jax.pipelines import SUPPORTED_TASKS, TASK_ALIASES, get_supported_tasks

TEXTS = ["I love this movie!", "The plot was thin and the acting was worse, but the music saved it.", "",
         "ok", "A much longer review that goes on and on about the cinematography, " * 3]
PAIRS = [{"text": "The cat sat on the mat.", "text_pair": "A cat is sitting."},
         {"text": "It rains.", "text_pair": "The weather is dry and sunny today."}]


# ----------------------------------------------------------------------------- registry and factory
def test_registry_defaults_equal_hf():
    shared = sorted(set(SUPPORTED_TASKS) & set(transformers.pipelines.SUPPORTED_TASKS))
    assert {"feature-extraction", "text-classification", "fill-mask", "zero-shot-classification",
            "token-classification"} <= set(shared)
    for task in shared:
        assert SUPPORTED_TASKS[task]["default"] == transformers.pipelines.SUPPORTED_TASKS[task]["default"], task
    for alias, task in TASK_ALIASES.items():
        assert transformers.pipelines.TASK_ALIASES[alias] == task
    assert SUPPORTED_TASKS["question-answering"]["default"]["model"] == (
        "distilbert/distilbert-base-cased-distilled-squad", "564e9b5")


def test_unknown_task_lists_known_tasks():
    with pytest.raises(ValueError, match="Unknown task 'text-clasification'") as err:
        tj.pipeline("text-clasification", model="unused")
    for task in ("text-classification", "sentiment-analysis", "fill-mask", "ner", "question-answering"):
        assert repr(task) in str(err.value)
    assert get_supported_tasks() == sorted(get_supported_tasks())


def test_needs_task_or_model_and_tokenizer_needs_model():
    with pytest.raises(RuntimeError, match="without either a task or a model"):
        tj.pipeline()
    with pytest.raises(RuntimeError, match="tokenizer specified but not the model"):
        tj.pipeline("fill-mask", tokenizer="anything")


def test_head_that_does_not_fit_the_task(pipeline_models):
    mlm = tj.BertForMaskedLM.from_pretrained(pipeline_models.dir("masked_lm"))
    with pytest.raises(ValueError, match=r"'text-classification' pipeline needs a model that "
                                         r"AutoModelForSequenceClassification loads \(for this model type: "
                                         r"BertForSequenceClassification\); got a BertForMaskedLM"):
        tj.pipeline("text-classification", model=mlm, tokenizer=str(pipeline_models.dir("masked_lm")))


def test_model_object_needs_a_tokenizer(pipeline_models):
    model = tj.BertForSequenceClassification.from_pretrained(pipeline_models.dir("classifier"))
    with pytest.raises(ValueError, match="pass tokenizer= to pipeline"):
        tj.pipeline("text-classification", model=model)
    tokenizer = tj.AutoTokenizer.from_pretrained(pipeline_models.dir("classifier"))
    pipe = tj.pipeline("text-classification", model=model, tokenizer=tokenizer)
    assert pipe.model is model and pipe.tokenizer is tokenizer
    assert_same_results(pipe(TEXTS[0], top_k=None), pipeline_models.hf("classifier", "text-classification")(TEXTS[0], top_k=None))


def test_task_inferred_from_the_checkpoint(pipeline_models):
    assert type(tj.pipeline(model=str(pipeline_models.dir("classifier")))).__name__ == "TextClassificationPipeline"
    model = tj.BertModel.from_pretrained(pipeline_models.dir("base"))
    tokenizer = tj.AutoTokenizer.from_pretrained(pipeline_models.dir("base"))
    assert tj.pipeline(model=model, tokenizer=tokenizer).task == "feature-extraction"


def test_directory_loads_the_auto_class_of_the_task(pipeline_models, caplog):
    # A masked-LM checkpoint given to text-classification: as in HF, the classifier is new (and reported).
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        pipe = tj.pipeline("sentiment-analysis", model=str(pipeline_models.dir("masked_lm")))
    assert type(pipe.model).__name__ == "BertForSequenceClassification" and pipe.task == "text-classification"
    assert "newly initialised" in caplog.text and "classifier" in caplog.text


def test_default_model_missing_from_the_cache_names_it(tmp_path):
    with pytest.raises(OSError) as err:
        tj.pipeline("sentiment-analysis", model_kwargs={"cache_dir": str(tmp_path)})
    message = str(err.value)
    assert "'distilbert/distilbert-base-uncased-finetuned-sst-2-english'" in message
    assert "revision '714eb0f'" in message
    assert "hf download distilbert/distilbert-base-uncased-finetuned-sst-2-english --revision 714eb0f" in message


def test_default_model_is_read_from_the_hub_cache(pipeline_models, tmp_path):
    """The default checkpoint of a task, found in a Hugging Face cache at its pinned revision."""
    model_id, revision = SUPPORTED_TASKS["text-classification"]["default"]["model"]
    storage = tmp_path / ("models--" + model_id.replace("/", "--"))
    commit = "0" * 40
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / revision).write_text(commit)
    build_checkpoint("classifier", storage / "snapshots" / commit, pipeline_models.tokenizer_dir)
    pipe = tj.pipeline("text-classification", model_kwargs={"cache_dir": str(tmp_path)})
    assert_same_results(pipe(TEXTS, top_k=None), pipeline_models.hf("classifier", "text-classification")(TEXTS, top_k=None))


def test_config_object_overrides_the_checkpoint(pipeline_models):
    config = tj.AutoConfig.from_pretrained(pipeline_models.dir("classifier"))
    config = config.replace(id2label={0: "bad", 1: "meh", 2: "good"})
    pipe = tj.pipeline("text-classification", model=str(pipeline_models.dir("classifier")), config=config)
    theirs = pipeline_models.hf("classifier", "text-classification")(TEXTS[1], top_k=None)
    renamed = {"negative": "bad", "neutral": "meh", "positive": "good"}
    assert_same_results(pipe(TEXTS[1], top_k=None), [{**r, "label": renamed[r["label"]]} for r in theirs])


def test_factory_argument_errors(pipeline_models):
    directory = str(pipeline_models.dir("classifier"))
    with pytest.raises(TypeError, match="task must be a string, got int"):
        tj.pipeline(3, model=directory)
    with pytest.raises(ValueError, match="trust_remote_code=True is not supported"):
        tj.pipeline("text-classification", model=directory, trust_remote_code=True)
    with pytest.raises(TypeError, match="model must be a directory, a hub id or a transformers_jax model, got dict"):
        tj.pipeline("text-classification", model={"not": "a model"}, tokenizer=directory)
    model = tj.BertForSequenceClassification.from_pretrained(directory)
    with pytest.raises(ValueError, match="config= applies when the model is loaded from a directory or hub id"):
        tj.pipeline("text-classification", model=model, tokenizer=directory, config=model.config)
    with pytest.raises(ValueError, match=r"cannot infer the pipeline task of BertForNextSentencePrediction"):
        tj.pipeline(model=tj.BertForNextSentencePrediction(model.config), tokenizer=directory)


def test_save_pretrained_round_trip(pipeline_models, tmp_path):
    """A pipeline saves its model and tokenizer into one directory that both libraries load again."""
    ours = pipeline_models.ours("classifier", "text-classification")
    ours.save_pretrained(tmp_path)
    expected = ours(TEXTS, top_k=None)
    assert_same_results(tj.pipeline("text-classification", model=str(tmp_path))(TEXTS, top_k=None), expected, rel=0)
    hf = transformers.pipeline("text-classification", model=str(tmp_path), device="cpu")
    assert_same_results(hf(TEXTS, top_k=None), expected)


def test_top_level_export():
    from transformers_jax.pipelines import pipeline

    assert tj.pipeline is pipeline and tj.Pipeline.__name__ == "Pipeline"


# ----------------------------------------------------------------------------- text-classification vs HF
@pytest.mark.parametrize("kwargs", [{}, {"top_k": None}, {"top_k": 2}, {"top_k": 1}, {"function_to_apply": "sigmoid"},
                                    {"function_to_apply": "none", "top_k": None}, {"function_to_apply": "softmax"}])
def test_text_classification_matches_hf(pipeline_models, kwargs):
    ours, hf = pipeline_models.ours("classifier", "text-classification"), pipeline_models.hf("classifier", "text-classification")
    for inputs in (TEXTS[0], TEXTS, PAIRS[0], PAIRS, TEXTS[2]):
        assert_same_results(ours(inputs, **kwargs), hf(inputs, **kwargs))


@pytest.mark.parametrize("name", ["regression", "single_label", "multi_label"])
def test_text_classification_default_function_follows_the_config(pipeline_models, name):
    """none for regression, sigmoid for one label and for multi-label heads (scores then need not sum to 1)."""
    ours, hf = pipeline_models.ours(name, "text-classification"), pipeline_models.hf(name, "text-classification")
    assert_same_results(ours(TEXTS, top_k=None), hf(TEXTS, top_k=None))
    assert_same_results(ours(TEXTS[1]), hf(TEXTS[1]))
    if name == "multi_label":
        assert not math.isclose(sum(r["score"] for r in ours(TEXTS[1], top_k=None)), 1.0, abs_tol=1e-3)


def test_text_classification_top_k_at_init(pipeline_models):
    directory = str(pipeline_models.dir("classifier"))
    ours = tj.pipeline("text-classification", model=directory, top_k=2, function_to_apply="sigmoid")
    hf = transformers.pipeline("text-classification", model=directory, top_k=2, function_to_apply="sigmoid", device="cpu")
    assert_same_results(ours(TEXTS[0]), hf(TEXTS[0]))
    assert_same_results(ours(TEXTS), hf(TEXTS))


def test_return_all_scores_is_top_k_none_in_label_order(pipeline_models):
    ours = pipeline_models.ours("classifier", "text-classification")
    with pytest.warns(FutureWarning, match="return_all_scores"):
        legacy = ours(TEXTS[1], return_all_scores=True)
    every = pipeline_models.hf("classifier", "text-classification")(TEXTS[1], top_k=None)
    by_label = {r["label"]: r for r in every}
    in_order = [by_label[ours.model.config.id2label[i]] for i in range(3)]
    assert_same_results(legacy, [in_order])


def test_quick_tour_sentiment_analysis(pipeline_models):
    """The quick tour's call, with a local tiny checkpoint as model."""
    directory = str(pipeline_models.dir("classifier"))
    classifier = tj.pipeline("sentiment-analysis", model=directory)
    texts = ["We are very happy to show you the 🤗 Transformers library.", "We hope you don't hate it."]
    results = classifier(texts)
    assert [sorted(r) for r in results] == [["label", "score"]] * 2
    assert_same_results(results, transformers.pipeline("sentiment-analysis", model=directory, device="cpu")(texts))


@pytest.mark.parametrize("bad, message", [
    ({"top_k": 0}, "top_k must be a positive integer or None, got 0"),
    ({"top_k": -2}, "top_k must be a positive integer or None, got -2"),
    ({"top_k": "3"}, "top_k must be a positive integer or None, got '3'"),
    ({"function_to_apply": "relu"}, r"function_to_apply must be one of \('sigmoid', 'softmax', 'none'\), got 'relu'"),
])
def test_text_classification_bad_parameters(pipeline_models, bad, message):
    with pytest.raises(ValueError, match=message):
        pipeline_models.ours("classifier", "text-classification")(TEXTS[0], **bad)


def test_text_classification_bad_inputs(pipeline_models):
    ours = pipeline_models.ours("classifier", "text-classification")
    with pytest.raises(ValueError, match="text_pair"):
        ours([["a premise", "a hypothesis"]])
    with pytest.raises(ValueError, match=r"got keys \['premise', 'text'\]"):
        ours({"text": "a", "premise": "b"})
    with pytest.raises(TypeError, match="takes a string or a text pair dict, got int"):
        ours([3])
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        ours(TEXTS, batch_size=0)


# ----------------------------------------------------------------------------- batching, buckets, streaming
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_batched_equals_unbatched(pipeline_models, padding_side):
    ours = tj.pipeline("text-classification", model=str(pipeline_models.dir("classifier")))
    ours.tokenizer.padding_side = padding_side
    texts = TEXTS + [t.upper() for t in TEXTS]
    single = [ours(t, top_k=None, function_to_apply="none") for t in texts]
    batched = ours(texts, top_k=None, function_to_apply="none", batch_size=3)  # 3 full batches, then 1 + 2 fillers
    assert len(batched) == len(texts)
    for a, b in zip(batched, single):
        assert [r["label"] for r in a] == [r["label"] for r in b]
        # Logits of 3 labels through 2 layers: a few dozen ulps of rounding apart, at most.
        assert_same_up_to_rounding([r["score"] for r in a], [r["score"] for r in b], ulps=256)


def test_one_compile_per_bucket(pipeline_models):
    """Lengths 9..40 in groups of 4 fall into the buckets 16, 24, 32 and 48 (powers of two and the
    half steps between them): four programs for a long run, then none."""
    directory = str(pipeline_models.dir("classifier"))
    # A config no other test uses, so the first batches must compile.
    ours = tj.pipeline("text-classification", model=directory, batch_size=4)
    ours.model = type(ours.model)(ours.model.config.replace(layer_norm_eps=1.234e-12), ours.model.params)
    texts = [" ".join(["word"] * n) for n in range(7, 39)]  # 9..40 tokens with [CLS] and [SEP]
    lengths = {len(ours.tokenizer(t)["input_ids"]) for t in texts}
    assert min(lengths) <= 16 < 32 < 36 < max(lengths) <= 48
    with count_compiles("jit(run)") as compiles:
        first = ours(texts, top_k=None)
        assert len(compiles) == 4, compiles
        again = ours(list(reversed(texts)), top_k=None)  # the same groups of 4, in the other order
        assert len(compiles) == 4
        ours(texts[5])  # a single input runs in the same 4-row program of its bucket
        ours(texts[5], batch_size=1)  # another batch size is another program
        assert len(compiles) == 5
    for a, b in zip(first, reversed(again)):
        assert_same_up_to_rounding([r["score"] for r in a], [r["score"] for r in b], ulps=256)


def test_a_list_is_batched_by_length_and_answered_in_order(pipeline_models):
    """Short and long texts alternate; with batches of 2, the short ones share batches (bucket 16) and
    the long ones share batches (bucket 48), and the results come back in input order."""
    ours = tj.pipeline("text-classification", model=str(pipeline_models.dir("classifier")), batch_size=2)
    texts = ["fine", " ".join(["longer"] * 38), "good", " ".join(["words"] * 40), "bad", " ".join(["more"] * 36)]
    buckets = []
    collate = ours.collate

    def recording(examples, rows):
        batch, lengths, padded = collate(examples, rows)
        buckets.append(padded)
        return batch, lengths, padded

    ours.collate = recording
    batched = ours(texts, top_k=None)
    assert buckets == [16, 48, 48], buckets  # in input order they would be [48, 48, 48]
    one_by_one = [ours(text, top_k=None, batch_size=1) for text in texts]
    for a, b in zip(batched, one_by_one):
        assert [r["label"] for r in a] == [r["label"] for r in b]
        assert_same_up_to_rounding([r["score"] for r in a], [r["score"] for r in b], ulps=256)
    buckets.clear()
    streamed = list(ours(iter(texts), top_k=None))  # a stream is batched in its own order
    assert buckets == [48, 48, 48] and [r[0]["label"] for r in streamed] == [r[0]["label"] for r in batched]


def test_generator_streams_lazily(pipeline_models):
    ours = pipeline_models.ours("classifier", "text-classification")
    taken = []

    def texts():
        for t in TEXTS * 3:
            taken.append(t)
            yield t

    results = ours(texts(), batch_size=2)
    assert not taken  # nothing read before the first result is asked for
    first = next(results)
    assert len(taken) == 2  # one batch read
    rest = list(results)
    assert len(taken) == len(TEXTS) * 3 and len(rest) == len(TEXTS) * 3 - 1
    assert_same_results([first, *rest], ours(TEXTS * 3))


def test_dataset_column_and_key_dataset(pipeline_models):
    import datasets

    from transformers_jax.pipelines import KeyDataset

    ours = pipeline_models.ours("classifier", "text-classification")
    expected = ours(TEXTS, top_k=1)
    dataset = datasets.Dataset.from_dict({"text": TEXTS, "label": list(range(len(TEXTS)))})
    assert_same_results(list(ours(KeyDataset(dataset, "text"), batch_size=2, top_k=1)), expected)
    assert_same_results(list(ours(dataset["text"], batch_size=3, top_k=1)), expected)
    assert_same_results(list(ours(iter(TEXTS), top_k=1)), expected)


def test_progress_bar(pipeline_models, capsys):
    ours = pipeline_models.ours("classifier", "text-classification")
    list(ours(iter(TEXTS), progress_bar=True, batch_size=2))
    assert f"{len(TEXTS)}example" in capsys.readouterr().err  # unknown total: a count
    ours(TEXTS, progress_bar=True, batch_size=2)
    assert f"{len(TEXTS)}/{len(TEXTS)}" in capsys.readouterr().err
    ours(TEXTS, batch_size=2)
    assert capsys.readouterr().err == ""


def test_dtype_sets_the_compute_dtype(pipeline_models):
    directory = str(pipeline_models.dir("classifier"))
    ours = tj.pipeline("text-classification", model=directory, dtype="bfloat16")
    assert ours.model.config.compute_dtype == "bfloat16" and ours.model.config.param_dtype == "float32"
    model = tj.BertForSequenceClassification.from_pretrained(directory)
    from_object = tj.pipeline("text-classification", model=model, tokenizer=directory, dtype="bfloat16")
    assert from_object.model.config.compute_dtype == "bfloat16" and model.config.compute_dtype == "float32"
    hf_style = tj.pipeline("text-classification", model=directory, torch_dtype="bfloat16", use_fast=True, device=0)
    assert hf_style.model.config.compute_dtype == "bfloat16"
    with pytest.raises(ValueError, match=r"pipeline\(feature_extractor=...\) is not supported"):
        tj.pipeline("text-classification", model=directory, feature_extractor="x")
    low, high = ours(TEXTS, top_k=None), pipeline_models.hf("classifier", "text-classification")(TEXTS, top_k=None)
    # bfloat16 keeps 8 significant bits: probabilities move by a few 1e-3, far more than float32 rounding.
    assert_same_results(low, high, rel=0.2)
    assert any(abs(a["score"] - b["score"]) > 1e-6 for x, y in zip(low, high) for a, b in zip(x, y))


@pytest.mark.parametrize("shape, names, data", [((8,), ("data",), 8), ((2, 4), ("data", "tensor"), 2)])
def test_mesh_data_parallel(pipeline_models, shape, names, data):
    """Params replicated, batches split over the ``data`` axis (rows rounded up to its size); the 1-D mesh is
    made with jax.make_mesh's default (explicit) axes, the 2-D one with Auto axes."""
    from jax.sharding import AxisType, PartitionSpec

    assert len(jax.devices()) == 8, "tests/conftest.py asks XLA for 8 host devices"
    axis_types = None if len(shape) == 1 else (AxisType.Auto,) * len(shape)
    mesh = jax.make_mesh(shape, names, **({} if axis_types is None else {"axis_types": axis_types}))
    directory = str(pipeline_models.dir("classifier"))
    sharded = tj.pipeline("text-classification", model=directory, mesh=mesh, batch_size=3)
    assert sharded._data_parallel_size() == data
    rows = -(-3 // data) * data
    batch, _, _ = sharded.collate([sharded.preprocess(t) for t in TEXTS[:3]], rows)
    placed = sharded.model_inputs(batch)["input_ids"]
    assert placed.shape[0] == rows and placed.sharding.spec == PartitionSpec("data")
    assert len(placed.sharding.device_set) == 8
    texts = TEXTS * 2
    plain = pipeline_models.ours("classifier", "text-classification")(texts, top_k=None, function_to_apply="none")
    spread = sharded(texts, top_k=None, function_to_apply="none")
    assert len(spread) == len(texts)
    for a, b in zip(spread, plain):
        assert [r["label"] for r in a] == [r["label"] for r in b]
        assert_same_up_to_rounding([r["score"] for r in a], [r["score"] for r in b], ulps=256)


# ----------------------------------------------------------------------------- hub ids (a local hub server)
@pytest.fixture
def hub(monkeypatch, tmp_path):
    from hub_server import HubServer, point_huggingface_hub_at

    with HubServer() as server:
        point_huggingface_hub_at(server, monkeypatch, tmp_path / "hub-cache")
        yield server


def test_hub_id_downloads_model_and_tokenizer(pipeline_models, hub):
    hub.add_repo("org/tiny-sentiment", pipeline_models.dir("classifier"))
    pipe = tj.pipeline("sentiment-analysis", model="org/tiny-sentiment")
    downloads = hub.downloads("org/tiny-sentiment")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(downloads)
    assert all(count == 1 for count in downloads.values()), downloads
    hf = pipeline_models.hf("classifier", "text-classification")
    assert_same_results(pipe(TEXTS, top_k=None), hf(TEXTS, top_k=None))


def test_default_model_is_downloaded_at_its_revision(pipeline_models, hub):
    """No model given: the task's default repo at HF's pinned revision (here served as a branch of that name)."""
    model_id, revision = SUPPORTED_TASKS["fill-mask"]["default"]["model"]
    pinned = hub.add_repo(model_id, pipeline_models.dir("masked_lm"), branch=revision)
    main = hub.add_repo(model_id, {"config.json": b"{}"}, branch="main")  # main holds something else
    pipe = tj.pipeline("fill-mask")
    fetched = {r.revision for r in hub.requests if r.filename}
    assert fetched and fetched <= {revision, pinned} and main not in fetched
    assert_same_results(pipe("Paris is the [MASK] of France."),
                        pipeline_models.hf("masked_lm", "fill-mask")("Paris is the [MASK] of France."))


# ----------------------------------------------------------------------------- a decoder classifier
def test_decoder_classifier_without_pad_token_id(tmp_path):
    """GPT-2's classifier reads the last position and has no pad_token_id: bucket padding goes in front, so
    single inputs match HF's; batches need pad_token_id (HF's own error), and with it match too."""
    import torch

    from parity import tiny_bpe_tokenizer

    corpus = ["the cat sat on the mat", "a dog ran in the park", "birds sing in the morning light"]
    tokenizer = tiny_bpe_tokenizer(corpus, 300)
    tokenizer.save_pretrained(tmp_path)
    config = transformers.GPT2Config(vocab_size=300, n_embd=32, n_layer=2, n_head=2, n_positions=64, num_labels=3,
                                     pad_token_id=None, initializer_range=0.2)
    torch.manual_seed(0)
    transformers.GPT2ForSequenceClassification(config).eval().save_pretrained(tmp_path)
    hf = transformers.pipeline("text-classification", model=str(tmp_path), device="cpu")
    texts = ["the cat sat", "a dog ran in the morning", "birds"]
    expected = [hf(t, top_k=None) for t in texts]

    ours = tj.pipeline("text-classification", model=str(tmp_path))
    assert ours.tokenizer.padding_side == "right" and ours._padding_side() == "left"
    assert_same_results([ours(t, top_k=None) for t in texts], expected)
    with pytest.raises(ValueError, match="needs config.pad_token_id for batches larger than 1"):
        ours(texts, batch_size=2)
    padded = tj.pipeline("text-classification", model=str(tmp_path), model_kwargs={"pad_token_id": 0}, batch_size=2)
    assert padded._padding_side() == "right"
    assert_same_results(padded(texts, top_k=None), expected)
