"""The token-classification (``ner``) and question-answering pipelines against Hugging Face.

* NER: Hugging Face 5.x's own ``pipeline("token-classification")`` over the same tiny random
  ``BertForTokenClassification`` (B-/I- tags) and the real all-MiniLM-L6-v2 tokenizer.
* QA: transformers 5.x removed that pipeline, so the oracle is transformers 4.57's, recorded by
  ``scripts/make_qa_oracle.py`` in ``tests/fixtures/qa_oracle/`` (a tiny model, the MiniLM tokenizer files
  and the expected outputs).

Entities, words, answers and character offsets must be equal; scores are softmax probabilities (in [0, 1])
of a 2-layer model whose float32 logits differ from PyTorch's by ~1e-6 on any CPU, so 1e-4 bounds the
difference with a wide margin while still catching any wrong formula.
"""
import json
from pathlib import Path

import pytest
import torch
import transformers as hf

from parity import assert_within
from pipeline_fixtures import copy_tokenizer_files
from transformers_jax import pipeline
from transformers_jax.pipelines.question_answering import QuestionAnsweringPipeline
from transformers_jax.pipelines.token_classification import TokenClassificationPipeline

SCORE_BOUND = 1e-4
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
QA_FIXTURES = Path(__file__).parent / "fixtures" / "qa_oracle"
# Texts with words of several word pieces, punctuation, accents and an unknown character.
TEXTS = [
    "Hugging Face is a French company based in New York City.",
    "Anticonstitutionnellement, Wolfgang Amadeus lives in Llanfairpwllgwyngyll near Aberystwyth.",
    "Zoë met Hélène at the café in Köln ☃ yesterday.",
]
LONG_TEXT = " ".join([
    "Wolfgang Amadeus travelled from Salzburg to Vienna and then to Llanfairpwllgwyngyll,",
    "where the extraordinary reconstructionists of Aberystwyth rebuilt lighthouses for Hélène;",
    "afterwards everyone went back to New York City and Hugging Face opened a café in Köln.",
])
STRATEGIES = ["none", "simple", "first", "average", "max"]


# ---------------------------------------------------------------------------------------------- helpers
def assert_same_results(ours, theirs, path="result"):
    """Same nesting, same keys in the same order, equal values, scores within SCORE_BOUND (Python floats)."""
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), (path, ours, theirs)
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_results(a, b, f"{path}[{i}]")
        return
    assert isinstance(ours, dict) and list(ours) == list(theirs), (path, ours, theirs)
    for key in theirs:
        if key == "score":
            assert isinstance(ours[key], float), (path, type(ours[key]))
            assert_within(ours[key], float(theirs[key]), SCORE_BOUND, name=f"{path}.score")
        else:
            assert ours[key] == theirs[key], (path, key, ours, theirs)


# ---------------------------------------------------------------------------------------------- NER
@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory, minilm_dir):
    """A tiny random BertForTokenClassification saved by HF with the MiniLM tokenizer files. The noise is
    largest on the classifier and the word embeddings, so that every label occurs and the pieces of a
    word often disagree (the word-level strategies then differ)."""
    config = hf.BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=128,
                           id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    torch.manual_seed(0)
    model = hf.BertForTokenClassification(config).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 2.0 if name.startswith("classifier") else 1.0 if "word_embeddings" in name else \
                0.05 if "LayerNorm" in name else 0.1
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    directory = tmp_path_factory.mktemp("ner")
    model.save_pretrained(directory)
    copy_tokenizer_files(minilm_dir, directory)
    return directory


@pytest.fixture(scope="module")
def hf_model(ner_dir):
    return hf.BertForTokenClassification.from_pretrained(ner_dir).eval()


@pytest.fixture(scope="module")
def hf_ner(ner_dir, hf_model):
    return hf.pipeline("token-classification", model=hf_model, tokenizer=hf.AutoTokenizer.from_pretrained(ner_dir))


@pytest.fixture(scope="module")
def ner(ner_dir):
    return pipeline("ner", model=str(ner_dir))


@pytest.fixture(scope="module")
def short_window_pipelines(ner_dir, hf_model):
    """Both pipelines with tokenizers limited to 16 tokens, so that LONG_TEXT needs many windows."""
    theirs = hf.pipeline("token-classification", model=hf_model,
                         tokenizer=hf.AutoTokenizer.from_pretrained(ner_dir, model_max_length=16))
    from transformers_jax.tokenization import AutoTokenizer

    ours = pipeline("token-classification", model=str(ner_dir),
                    tokenizer=AutoTokenizer.from_pretrained(ner_dir, model_max_length=16))
    return ours, theirs


def test_ner_pipeline_class_and_alias(ner):
    assert isinstance(ner, TokenClassificationPipeline)
    assert ner.task == "token-classification"


def test_ner_model_is_not_degenerate(ner):
    """The tiny model predicts every label, and the word-level strategies disagree on TEXTS: otherwise the
    comparisons below could pass with a wrong strategy."""
    tokens = [entity for result in ner(TEXTS, ignore_labels=[]) for entity in result]
    assert {entity["entity"] for entity in tokens} == set(LABELS)
    assert any(entity["word"].startswith("##") for entity in tokens)
    by_strategy = {s: ner(TEXTS, aggregation_strategy=s) for s in ("simple", "first", "average", "max")}
    assert len({json.dumps(result) for result in by_strategy.values()}) == 4


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ner_matches_hf(ner, hf_ner, strategy):
    ours = ner(TEXTS, aggregation_strategy=strategy, batch_size=2)
    assert_same_results(ours, hf_ner(TEXTS, aggregation_strategy=strategy))
    assert ours and all(result for result in ours)


def test_ner_single_text_and_default_strategy(ner, hf_ner):
    ours = ner(TEXTS[1])
    assert isinstance(ours, list) and all("index" in entity and "entity" in entity for entity in ours)
    assert_same_results(ours, hf_ner(TEXTS[1]))
    for entity in ours:  # the offsets point at the token's characters (lower-cased by the tokenizer)
        assert TEXTS[1][entity["start"]:entity["end"]].lower() == entity["word"].removeprefix("##")


@pytest.mark.parametrize("ignore_labels", [[], ["O", "I-LOC"], ["PER", "LOC"]])
@pytest.mark.parametrize("strategy", ["none", "simple"])
def test_ner_ignore_labels(ner, hf_ner, ignore_labels, strategy):
    ours = ner(TEXTS[:2], aggregation_strategy=strategy, ignore_labels=ignore_labels)
    assert_same_results(ours, hf_ner(TEXTS[:2], aggregation_strategy=strategy, ignore_labels=ignore_labels))
    kept = {entity.get("entity", entity.get("entity_group")) for result in ours for entity in result}
    assert not kept & set(ignore_labels)
    if not ignore_labels and strategy == "none":
        assert "O" in kept


@pytest.mark.parametrize("strategy", [None, "simple", "first", "average", "max"])
def test_ner_stride_merges_windows(short_window_pipelines, strategy):
    ours, theirs = short_window_pipelines
    kwargs = {"stride": 5} if strategy is None else {"stride": 5, "aggregation_strategy": strategy}
    windows = ours.tokenizer(LONG_TEXT, truncation=True, return_overflowing_tokens=True, stride=5)["input_ids"]
    assert len(windows) > 4
    result = ours(LONG_TEXT, **kwargs)
    assert_same_results(result, theirs(LONG_TEXT, **kwargs))
    assert max(entity["end"] for entity in result) > len(LONG_TEXT) - 10  # the last window is labelled too
    starts = [entity["start"] for entity in result]
    assert starts == sorted(starts)


@pytest.mark.parametrize("strategy", ["none", "first", "max"])
def test_ner_pre_split_words(ner, hf_ner, strategy):
    words = ["Wolfgang", "lives", "in", "Llanfairpwllgwyngyll", "near", "Aberystwyth", "."]
    ours = ner(words, is_split_into_words=True, aggregation_strategy=strategy)
    assert_same_results(ours, hf_ner(words, is_split_into_words=True, aggregation_strategy=strategy))
    batch = [words, ["Hélène", "opened", "a", "café"]]
    ours = ner(batch, is_split_into_words=True, aggregation_strategy=strategy, delimiter="  ")
    assert_same_results(ours, hf_ner(batch, is_split_into_words=True, aggregation_strategy=strategy,
                                     delimiter="  "))


def test_ner_options_given_to_pipeline_apply_to_every_call(ner_dir, ner):
    words = ["Wolfgang", "lives", "in", "Llanfairpwllgwyngyll"]
    preset = pipeline("ner", model=str(ner_dir), is_split_into_words=True, aggregation_strategy="first",
                      ignore_labels=[], delimiter="_")
    expected = ner(words, is_split_into_words=True, aggregation_strategy="first", ignore_labels=[], delimiter="_")
    assert preset(words) == expected and expected[0][0]["entity_group"]
    assert preset(words, aggregation_strategy="none") == ner(words, is_split_into_words=True, ignore_labels=[],
                                                             delimiter="_")


def test_ner_given_offset_mapping(ner, hf_ner):
    """offset_mapping= replaces the tokenizer's offsets: here every word piece gets its whole word's span."""
    text = TEXTS[1]
    encoded = ner.tokenizer(text, return_offsets_mapping=True)
    word_ids, offsets = encoded.word_ids(0), encoded["offset_mapping"]
    spans = {}
    for word, (start, end) in zip(word_ids, offsets):
        if word is not None:
            spans[word] = (min(start, spans.get(word, (start, end))[0]), max(end, spans.get(word, (start, end))[1]))
    given = [(0, 0) if word is None else spans[word] for word in word_ids]
    for strategy in ("none", "simple", "first"):
        ours = ner(text, offset_mapping=given, aggregation_strategy=strategy)
        assert_same_results(ours, hf_ner(text, offset_mapping=given, aggregation_strategy=strategy))
        assert ours != ner(text, aggregation_strategy=strategy)
    with pytest.raises(ValueError, match=r"offset_mapping must hold one \(start, end\) pair per token"):
        ner(text, offset_mapping=given[:-1])
    with pytest.raises(ValueError, match="offset_mapping has 1 entries but there are 2 inputs"):
        ner(TEXTS[:2], offset_mapping=[given])


def test_ner_generator_input_streams_results(ner):
    results = ner(text for text in TEXTS)
    assert not isinstance(results, list)
    assert list(results) == ner(TEXTS)


def test_ner_task_summary_example(ner_dir, hf_model):
    """The NER example of Hugging Face's task summary, with local tiny models instead of the default one."""
    classifier = pipeline(task="ner", model=str(ner_dir))
    preds = classifier("Hugging Face is a French company based in New York City.")
    preds = [{"entity": pred["entity"], "score": round(pred["score"], 4), "index": pred["index"],
              "word": pred["word"], "start": pred["start"], "end": pred["end"]} for pred in preds]
    reference = hf.pipeline(task="ner", model=hf_model, tokenizer=hf.AutoTokenizer.from_pretrained(ner_dir))
    expected = reference("Hugging Face is a French company based in New York City.")
    assert [(p["entity"], p["index"], p["word"], p["start"], p["end"]) for p in preds] == \
        [(p["entity"], p["index"], p["word"], p["start"], p["end"]) for p in expected]
    assert_within([p["score"] for p in preds], [float(p["score"]) for p in expected], 5e-5 + SCORE_BOUND,
                  name="rounded scores")


def test_ner_bad_inputs(ner):
    with pytest.raises(ValueError, match="aggregation_strategy='bogus' is not a valid strategy"):
        ner(TEXTS[0], aggregation_strategy="bogus")
    with pytest.raises(ValueError, match='stride.*aggregation_strategy other than "none"'):
        ner(TEXTS[0], stride=4, aggregation_strategy="none")
    with pytest.raises(ValueError, match=r"stride \(512\) must be less than tokenizer.model_max_length"):
        ner(TEXTS[0], stride=512, aggregation_strategy="simple")
    with pytest.raises(ValueError, match="stride must be a non-negative integer"):
        ner(TEXTS[0], stride=-1, aggregation_strategy="simple")
    with pytest.raises(ValueError, match="must be a list of words"):
        ner(TEXTS[0], is_split_into_words=True)
    with pytest.raises(ValueError, match="must be a text"):
        ner([3])
    with pytest.raises(ValueError, match="At least one input is required"):
        ner([])
    with pytest.raises(ValueError, match="ignore_labels must be a list of label names"):
        ner(TEXTS[0], ignore_labels="O")


def test_ner_word_strategies_need_a_fast_tokenizer(ner):
    class SlowLike(type(ner.tokenizer)):
        is_fast = False

    slow = TokenClassificationPipeline(model=ner.model, tokenizer=ner.tokenizer)
    slow.tokenizer = ner.tokenizer.__class__.__new__(SlowLike)
    slow.tokenizer.__dict__.update(ner.tokenizer.__dict__)
    for strategy in ("first", "average", "max"):
        with pytest.raises(ValueError, match=f'aggregation_strategy="{strategy}" needs word boundaries'):
            slow(TEXTS[0], aggregation_strategy=strategy)
    with pytest.raises(ValueError, match="stride needs a fast tokenizer"):
        slow(TEXTS[0], stride=4, aggregation_strategy="simple")


# ---------------------------------------------------------------------------------------------- QA
@pytest.fixture(scope="module")
def qa_oracle():
    return json.loads((QA_FIXTURES / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def qa_pipelines():
    """Our question-answering pipelines over the oracle's model, one per set of construction options."""
    cache = {}

    def get(**pipeline_kwargs):
        key = json.dumps(pipeline_kwargs, sort_keys=True)
        if key not in cache:
            cache[key] = pipeline("question-answering", model=str(QA_FIXTURES), **pipeline_kwargs)
        return cache[key]

    return get


def _qa_cases():
    cases = json.loads((QA_FIXTURES / "expected.json").read_text(encoding="utf-8"))["cases"]
    return [pytest.param(case, id=case["name"]) for case in cases]


def test_qa_oracle_is_from_transformers_4_57(qa_oracle):
    assert qa_oracle["transformers_version"].startswith("4.57.")
    assert {case["name"] for case in qa_oracle["cases"]} >= {
        "task_summary", "top_k", "impossible_wins", "no_align_to_words", "long_windows", "long_default_windows",
        "list_of_dicts", "questions_and_contexts"}


@pytest.mark.parametrize("case", _qa_cases())
def test_qa_matches_transformers_4_57(qa_pipelines, case):
    result = qa_pipelines(**case["pipeline_kwargs"])(*case["args"], **case["kwargs"])
    assert_same_results(result, case["expected"])


def test_qa_answers_are_context_slices(qa_pipelines):
    context = "The river flows through an old city where merchants traded silk and spices for centuries."
    answers = qa_pipelines()(question="What did merchants trade?", context=context, top_k=5)
    assert len(answers) == 5
    for answer in answers:
        assert answer["answer"] == context[answer["start"]:answer["end"]] and 0 < answer["score"] <= 1
    assert [a["score"] for a in answers] == sorted((a["score"] for a in answers), reverse=True)


def test_qa_task_summary_example(qa_oracle, capsys):
    """The question-answering example of Hugging Face's task summary, over the oracle's local tiny model."""
    question_answerer = pipeline(task="question-answering", model=str(QA_FIXTURES))
    assert isinstance(question_answerer, QuestionAnsweringPipeline)
    preds = question_answerer(
        question="What is the name of the repository?",
        context="The name of the repository is huggingface/transformers",
    )
    print(f"score: {round(preds['score'], 4)}, start: {preds['start']}, end: {preds['end']}, answer: {preds['answer']}")
    expected = next(case["expected"] for case in qa_oracle["cases"] if case["name"] == "task_summary")
    printed = capsys.readouterr().out
    assert printed.startswith("score: 0.") and printed.endswith(
        f"start: {expected['start']}, end: {expected['end']}, answer: {expected['answer']}\n")
    assert abs(float(printed.split(",")[0].split()[1]) - expected["score"]) <= 5e-5 + SCORE_BOUND


def test_qa_generator_input_streams_results(qa_pipelines):
    items = [{"question": "Where do I live?", "context": "I live in Berlin."},
             {"question": "Who runs it?", "context": "Hélène runs the café."}]
    qa = qa_pipelines()
    results = qa(item for item in items)
    assert not isinstance(results, list)
    assert list(results) == qa(items)


def test_qa_bad_inputs(qa_pipelines):
    qa = qa_pipelines()
    with pytest.raises(ValueError, match="needs both question= and context=; context= is missing"):
        qa(question="Where do I live?")
    with pytest.raises(ValueError, match="question= is missing"):
        qa(context="I live in Berlin.")
    with pytest.raises(ValueError, match="`question` cannot be empty"):
        qa(question="", context="I live in Berlin.")
    with pytest.raises(ValueError, match="`context` cannot be empty"):
        qa({"question": "Where?", "context": ""})
    with pytest.raises(ValueError, match="`context` cannot be None"):
        qa({"question": "Where?", "context": None})
    with pytest.raises(KeyError, match="has no 'context'"):
        qa([{"question": "Where?"}])
    for top_k in (0, -2):
        with pytest.raises(ValueError, match=rf"top_k parameter should be >= 1 \(got {top_k}\)"):
            qa(question="Where do I live?", context="I live in Berlin.", top_k=top_k)
    with pytest.raises(ValueError, match=r"max_answer_len parameter should be >= 1 \(got 0\)"):
        qa(question="Where do I live?", context="I live in Berlin.", max_answer_len=0)
    with pytest.raises(ValueError, match=r"`doc_stride` \(64\) is larger than `max_seq_len` \(32\)"):
        qa(question="Where do I live?", context="I live in Berlin.", doc_stride=64, max_seq_len=32)
    with pytest.raises(ValueError, match="don't have the same lengths: 2 questions, 1 contexts"):
        qa(question=["Where?", "Who?"], context=["I live in Berlin."])
    with pytest.raises(ValueError, match="each question-answering input must be a dict"):
        qa(["Where do I live?"])


def test_ner_stride_on_pre_split_words(short_window_pipelines):
    ours, theirs = short_window_pipelines
    words = LONG_TEXT.split()
    for strategy in ("simple", "first"):
        result = ours(words, is_split_into_words=True, stride=5, aggregation_strategy=strategy)
        assert_same_results(result, theirs(words, is_split_into_words=True, stride=5, aggregation_strategy=strategy))
        assert max(entity["end"] for entity in result[0]) > len(LONG_TEXT) - 10


def test_qa_context_first_with_left_padding():
    """A left-padding tokenizer encodes (context, question); answers still come from the context only."""
    from transformers_jax.tokenization import AutoTokenizer

    qa = pipeline("question-answering", model=str(QA_FIXTURES),
                  tokenizer=AutoTokenizer.from_pretrained(QA_FIXTURES, padding_side="left"))
    context = "Zoë opened a café in Köln; her cousin Hélène runs the bakery next door since 2019."
    question = "Who runs the bakery next door?"
    chunks = list(qa.preprocess({"question": question, "context": context}, max_seq_len=24, doc_stride=8))
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk["sequence_ids"][1] == 0  # [CLS] context ... [SEP] question [SEP]
        allowed = [i for i, p in enumerate(chunk["p_mask"][0]) if p == 0]
        assert allowed == [0] + [i for i, s in enumerate(chunk["sequence_ids"]) if s == 0]
    answers = qa(question=question, context=context, top_k=20, max_seq_len=24, doc_stride=8)
    assert len(answers) == 20
    for answer in answers:
        assert 0 <= answer["start"] < answer["end"] <= len(context)
        assert answer["answer"] == context[answer["start"]:answer["end"]]
