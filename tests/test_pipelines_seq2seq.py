"""summarization, translation (translation_xx_to_yy) and text2text-generation against Hugging Face transformers 4.57.

Hugging Face 5.x removed these pipelines, so the oracle is recorded once from 4.57 by
``scripts/make_seq2seq_oracle.py`` in ``tests/fixtures/seq2seq_oracle/``: tiny seeded random models saved by 4.57
(``bart/``: BART with a byte-level BPE tokenizer; ``bart_cnn/``: BART whose generation_config.json carries
bart-large-cnn's settings; ``t5/``: T5 whose config holds t5-small's task_specific_params, with a Unigram
tokenizer) and ``expected.json``: per case the pipeline's options, the call, HF's output and the warnings its
pipeline logged. Our pipelines load the same folders and must give exactly the same strings and token ids (the
script checks that every expected output survives a 1e-5 relative jitter of the weights, so rounding differences
between PyTorch and XLA cannot change them), and log the same warnings.
"""
import json
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import transformers_jax as tj
from transformers_jax.pipelines import SUPPORTED_TASKS
from transformers_jax.pipelines.text2text_generation import (
    SummarizationPipeline,
    Text2TextGenerationPipeline,
    TranslationPipeline,
)

FIXTURES = Path(__file__).parent / "fixtures" / "seq2seq_oracle"
ORACLE = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
CASES = {case["name"]: case for case in ORACLE["cases"]}
LOGGER = "transformers_jax.pipelines.text2text_generation"
# Where this library deliberately differs from 4.57 (tested below): a translation pair that the config's
# task_specific_params does not name, while naming others, is an error here (HF translates without a prefix).
DEVIATIONS = {"t5_translation_unnamed_pair"}
GREEDY = {"num_beams": 1, "max_new_tokens": 8}


def build(case, **extra):
    """Our pipeline for an oracle case, built afresh as the oracle's was."""
    return tj.pipeline(case["task"], model=str(FIXTURES / case["model"]), **{**case["pipeline_kwargs"], **extra})


def _parity_cases():
    return [pytest.param(case, id=case["name"]) for case in ORACLE["cases"]
            if "error" not in case and case["name"] not in DEVIATIONS]


def _texts(result):
    if isinstance(result, dict):
        return next(iter(result.values()))
    return [_texts(r) for r in result]


# ----------------------------------------------------------------------------- the oracle
def test_oracle_is_from_transformers_4_57():
    assert ORACLE["transformers_version"].startswith("4.57.")
    assert {"task_summary_summarization", "summarization_batch", "summarization_num_beams_3", "cnn_default",
            "t5_translation_en_to_de", "t5_translation_src_tgt", "t5_text2text", "t5_text2text_return_tensors",
            "invalid_translation_task"} <= set(CASES)
    lengths = {len(ids) for case in ORACLE["cases"] for r in (case.get("expected") or []) if isinstance(r, dict)
               for key, ids in r.items() if key.endswith("_token_ids")}
    assert len(lengths) > 1  # sequences of several lengths: some stopped at EOS, others ran to the limit


@pytest.mark.parametrize("case", _parity_cases())
def test_matches_transformers_4_57(case, caplog):
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, logger=LOGGER):
        warnings.simplefilter("always")
        pipe = build(case)
        result = pipe(*case["args"], **case["kwargs"])
    assert result == case["expected"], f"\nours: {_texts(result)}\nHF:   {_texts(case['expected'])}"
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == case["logged"]
    ours_warned = [str(w.message) for w in caught if issubclass(w.category, UserWarning)
                   and "task was used" in str(w.message)]
    assert ours_warned == case["warned"]


@pytest.mark.parametrize("name", ["invalid_translation_task", "translation_bad_separator"])
def test_malformed_translation_tasks_are_refused_like_hf(name):
    case = CASES[name]
    message = case["error"]["message"].strip('"')  # HF's KeyError; a ValueError here
    with pytest.raises(ValueError, match=re.escape(message)):
        build(case)


# ----------------------------------------------------------------------------- registry and construction
def test_registry_equals_transformers_4_57():
    registry = ORACLE["registry"]
    for task in ("summarization", "translation", "text2text-generation"):
        assert SUPPORTED_TASKS[task]["auto_model"] == registry[task]["pt"][0] == "AutoModelForSeq2SeqLM"
    assert SUPPORTED_TASKS["summarization"]["default"]["model"] == tuple(
        registry["summarization"]["default"]["model"]["pt"])
    assert SUPPORTED_TASKS["text2text-generation"]["default"]["model"] == tuple(
        registry["text2text-generation"]["default"]["model"]["pt"])
    translation = {tuple(pair.split(",")): tuple(v["model"]["pt"])
                   for pair, v in registry["translation"]["default"].items()}
    assert {pair: v["model"] for pair, v in SUPPORTED_TASKS["translation"]["default"].items()} == translation


def test_classes_and_task_inference():
    bart, t5 = str(FIXTURES / "bart"), str(FIXTURES / "t5")
    assert type(tj.pipeline("summarization", model=bart)) is SummarizationPipeline
    assert type(tj.pipeline("text2text-generation", model=bart)) is Text2TextGenerationPipeline
    translator = tj.pipeline("translation_en_to_fr", model=t5)
    assert type(translator) is TranslationPipeline and translator.task == "translation_en_to_fr"
    assert translator.prefix == "translate English to French: "
    assert type(tj.pipeline(model=bart)) is Text2TextGenerationPipeline  # a seq2seq LM's generic task


def test_default_models_of_translation_need_a_known_pair():
    with pytest.raises(ValueError, match='You probably meant "translation_xx_to_yy"'):
        tj.pipeline("translation")
    with pytest.raises(ValueError, match=re.escape("does not provide any default models for options ('en', 'es')")):
        tj.pipeline("translation_en_to_es")


def test_generation_settings_combine_like_hf():
    """Pipeline defaults < the model's generation config < pipeline() arguments; max_new_tokens=256 gives way to
    a max_length other than 20; task_specific_params on top; the tokenizer's pad token."""
    plain = tj.pipeline("summarization", model=str(FIXTURES / "bart")).generation_config
    assert (plain.max_new_tokens, plain.num_beams, plain.max_length, plain.pad_token_id) == (256, 4, None, 1)
    cnn = tj.pipeline("summarization", model=str(FIXTURES / "bart_cnn")).generation_config
    assert (cnn.max_new_tokens, cnn.num_beams, cnn.max_length, cnn.min_length, cnn.length_penalty,
            cnn.no_repeat_ngram_size) == (None, 4, 24, 6, 2.0, 3)
    assert tj.pipeline("summarization", model=str(FIXTURES / "bart"), max_length=12).generation_config.max_new_tokens \
        is None
    t5 = tj.pipeline("summarization", model=str(FIXTURES / "t5"))
    assert t5.prefix == "summarize: "
    assert (t5.generation_config.max_new_tokens, t5.generation_config.max_length, t5.generation_config.min_length,
            t5.generation_config.early_stopping) == (256, 200, 30, True)
    assert t5.model.config.task_specific_params["summarization"]["prefix"] == "summarize: "  # not popped, unlike HF


# ----------------------------------------------------------------------------- this library's choices
def test_unnamed_translation_pair_is_an_error_unless_a_prefix_is_given():
    case = CASES["t5_translation_unnamed_pair"]
    with pytest.raises(ValueError, match=r"does not name the task 'translation_en_to_es'.*translation_en_to_de, "
                                         r"translation_en_to_fr, translation_en_to_ro.*prefix="):
        build(case)
    # With prefix="" it runs as Hugging Face runs it (no prefix).
    assert build(case, prefix="")(*case["args"], **case["kwargs"]) == case["expected"]


def test_prefix_argument_replaces_the_configs():
    case = CASES["t5_translation_en_to_de"]
    german = build(case)
    assert build(case, prefix="translate English to German: ")(*case["args"]) == case["expected"]
    text2text = tj.pipeline("text2text-generation", model=str(FIXTURES / "t5"))  # no task_specific_params entry
    assert text2text.prefix is None
    summarized = text2text("summarize: " + case["args"][0], **GREEDY)[0]["generated_text"]
    assert german(*case["args"], prefix="summarize: ", **GREEDY) == [{"translation_text": summarized}]
    assert german(*case["args"], **GREEDY) != [{"translation_text": summarized}]


def test_generator_input_streams_record_lists():
    pipe = tj.pipeline("summarization", model=str(FIXTURES / "bart"), batch_size=2)
    texts = CASES["summarization_batch"]["args"][0]
    streamed = pipe((t for t in texts), **GREEDY)
    assert not isinstance(streamed, list)
    streamed = list(streamed)
    assert streamed == [[record] for record in pipe(texts, **GREEDY)] == [pipe(t, **GREEDY) for t in texts]


def test_sampling_is_reproducible_with_a_key():
    import jax

    pipe = tj.pipeline("text2text-generation", model=str(FIXTURES / "t5"))
    kwargs = {"do_sample": True, "num_beams": 1, "max_new_tokens": 12, "num_return_sequences": 3}
    first = pipe("How old are you?", prng_key=jax.random.PRNGKey(7), **kwargs)
    assert first == pipe("How old are you?", prng_key=jax.random.PRNGKey(7), **kwargs)
    assert len(first) == 3 and len({r["generated_text"] for r in first}) > 1


def test_clean_up_tokenization_spaces_reaches_decode(monkeypatch):
    pipe = tj.pipeline("summarization", model=str(FIXTURES / "bart"))
    seen = []
    decode = pipe.tokenizer.decode

    def spy(ids, **kwargs):
        seen.append(kwargs)
        return decode(ids, **kwargs)

    monkeypatch.setattr(pipe.tokenizer, "decode", spy)
    pipe("A short text.", **GREEDY)
    pipe("A short text.", clean_up_tokenization_spaces=True, **GREEDY)
    assert seen == [{"skip_special_tokens": True, "clean_up_tokenization_spaces": False},
                    {"skip_special_tokens": True, "clean_up_tokenization_spaces": True}]


def test_batches_are_padded_right_and_match_single_inputs():
    pipe = tj.pipeline("summarization", model=str(FIXTURES / "bart"), batch_size=3)
    texts = [CASES["summarization_batch"]["args"][0][1], "Hi.", CASES["task_summary_summarization"]["args"][0]]
    batched = pipe(texts, return_tensors=True, **GREEDY)
    single = [pipe(t, return_tensors=True, batch_size=1, **GREEDY)[0] for t in texts]
    width = max(len(s["summary_token_ids"]) for s in single)
    for b, s in zip(batched, single):  # each row is its own sequence, padded to the batch's longest
        ids = s["summary_token_ids"]
        assert b["summary_token_ids"] == ids + [1] * (width - len(ids))


def test_batches_reuse_compiled_programs():
    from parity import count_compiles

    pipe = tj.pipeline("summarization", model=str(FIXTURES / "bart"), batch_size=2)
    # A config of its own (an unused field changed): the jit caches of other tests do not serve this one.
    pipe.model = type(pipe.model)(pipe.model.config.replace(init_std=0.0123), pipe.model.params)
    texts = ["How old are you?", "The house is wonderful.", "A cat.", "The cat sat.", "The dog runs."]
    assert max(len(pipe.tokenizer(t)["input_ids"]) for t in texts) <= 16
    with count_compiles("jit(_decode_loop)") as compiles:
        first = pipe(texts[:4], **GREEDY)  # two batches of two, encoder inputs in the 16 bucket
        assert len(compiles) == 1, compiles
        pipe(texts[2:], num_beams=1, max_new_tokens=6)  # another budget in the same bucket; 2 + (1 + a filler row)
        assert len(compiles) == 1, compiles
    assert first == [pipe(t, **GREEDY)[0] for t in texts[:4]]


# ----------------------------------------------------------------------------- the task summary's snippets
def test_task_summary_summarization(capsys):
    summarizer = tj.pipeline(task="summarization", model=str(FIXTURES / "bart"))
    print(summarizer(
        "In this work, we presented the Transformer, the first sequence transduction model based entirely on "
        "attention, replacing the recurrent layers most commonly used in encoder-decoder architectures with "
        "multi-headed self-attention. For translation tasks, the Transformer can be trained significantly faster "
        "than architectures based on recurrent or convolutional layers. On both WMT 2014 English-to-German and WMT "
        "2014 English-to-French translation tasks, we achieve a new state of the art. In the former task our best "
        "model outperforms even all previously reported ensembles."
    ))
    assert capsys.readouterr().out == f"{CASES['task_summary_summarization']['expected']}\n"


def test_task_summary_translation(capsys):
    text = "translate English to French: Hugging Face is a community-based open-source platform for machine learning."
    with pytest.warns(UserWarning, match='defaulting to "translation_en_to_de"'):
        translator = tj.pipeline(task="translation", model=str(FIXTURES / "t5"))
    print(translator(text))
    assert capsys.readouterr().out == f"{CASES['t5_task_summary_translation']['expected']}\n"


def test_docstring_snippets():
    summarizer = tj.pipeline("summarization", model=str(FIXTURES / "bart"))
    assert summarizer("An apple a day, keeps the doctor away", min_length=5, max_length=20) == \
        CASES["summarization_docstring_min_max"]["expected"]
    en_fr_translator = tj.pipeline("translation_en_to_fr", model=str(FIXTURES / "t5"))
    assert en_fr_translator("How old are you?") == CASES["t5_translation_en_to_fr_docstring"]["expected"]
    text2text_generator = tj.pipeline("text2text-generation", model=str(FIXTURES / "t5"))
    assert text2text_generator("question: What is 42 ? context: 42 is the answer to life, the universe and "
                               "everything") == CASES["t5_text2text"]["expected"]


# ----------------------------------------------------------------------------- languages as tokens (mBART)
@pytest.fixture(scope="module")
def mbart_dir(tmp_path_factory):
    """A tiny HF mBART (noisy weights) with an mBART tokenizer (language codes as special tokens), saved by HF."""
    import torch
    import transformers as hf
    from parity import perturb_torch
    from test_tokenization_families import _train_unigram
    from transformers_jax.tokenization.backends import MBART_LANGUAGE_CODES

    path = tmp_path_factory.mktemp("mbart_translation")
    vocab = _train_unigram(["<s>", "<pad>", "</s>", "<unk>"], "<unk>")
    vocab += [(code, 0.0) for code in MBART_LANGUAGE_CODES] + [("<mask>", 0.0)]
    tokenizer = hf.MBartTokenizer(vocab=vocab, src_lang="en_XX")
    tokenizer.save_pretrained(path)
    config = hf.MBartConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=2, decoder_layers=2,
                            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                            decoder_ffn_dim=32, max_position_embeddings=64, decoder_start_token_id=2)
    torch.manual_seed(0)
    perturb_torch(hf.MBartForConditionalGeneration(config), seed=1, scale=0.5).eval().save_pretrained(path)
    return path


def test_language_codes_follow_src_and_tgt_lang_like_hf(mbart_dir):
    """HF 4.57's _build_translation_inputs: the input encoded as src_lang, generation forced to start with the
    tgt_lang code; compared with HF's generate given the same."""
    import torch
    import transformers as hf

    text, kwargs = "The house is wonderful.", {"num_beams": 2, "max_new_tokens": 8}
    translator = tj.pipeline("translation", model=str(mbart_dir))
    ours = translator(text, src_lang="de_DE", tgt_lang="fr_XX", return_tensors=True, **kwargs)[0]
    hf_tokenizer = hf.AutoTokenizer.from_pretrained(mbart_dir)
    hf_tokenizer.src_lang = "de_DE"
    encoded = hf_tokenizer(text, return_tensors="pt")
    assert encoded["input_ids"][0, -1] == hf_tokenizer.convert_tokens_to_ids("de_DE")
    with torch.no_grad():
        theirs = hf.MBartForConditionalGeneration.from_pretrained(mbart_dir).generate(
            **encoded, forced_bos_token_id=hf_tokenizer.convert_tokens_to_ids("fr_XX"), **kwargs)
    assert ours["translation_token_ids"] == theirs[0].tolist()
    assert ours["translation_token_ids"][1] == hf_tokenizer.convert_tokens_to_ids("fr_XX")
    assert translator.tokenizer.src_lang == "de_DE"  # set, as HF sets it
    romanian = translator(text, src_lang="de_DE", tgt_lang="ro_RO", return_tensors=True, **kwargs)[0]
    assert romanian["translation_token_ids"][1] == hf_tokenizer.convert_tokens_to_ids("ro_RO")
    with pytest.raises(ValueError, match="Translation requires a `src_lang` and a `tgt_lang`"):
        translator(text, tgt_lang="fr_XX")
    with pytest.raises(ValueError, match="src_lang='en' is not a language code of this tokenizer"):
        tj.pipeline("translation_en_to_fr", model=str(mbart_dir))(text)
    with pytest.raises(ValueError, match="tgt_lang='fr' is not a language code of this tokenizer"):
        translator(text, src_lang="en_XX", tgt_lang="fr")


# ----------------------------------------------------------------------------- errors
def test_model_that_is_not_an_encoder_decoder(tmp_path):
    bart = tj.pipeline("summarization", model=str(FIXTURES / "bart"))
    config = tj.BertConfig(vocab_size=len(bart.tokenizer), hidden_size=8, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=16)
    bert = tj.BertForMaskedLM(config)
    with pytest.raises(ValueError, match="needs a model that AutoModelForSeq2SeqLM loads"):
        tj.pipeline("summarization", model=bert, tokenizer=bart.tokenizer)
    with pytest.raises(ValueError, match="needs an encoder-decoder model with a language modeling head"):
        SummarizationPipeline(bert, bart.tokenizer, task="summarization")
    bert.save_pretrained(tmp_path)
    with pytest.raises(ValueError):
        tj.pipeline("translation_en_to_de", model=str(tmp_path), tokenizer=bart.tokenizer)


def test_bad_inputs_and_arguments():
    pipe = tj.pipeline("summarization", model=str(FIXTURES / "bart"))
    with pytest.raises(ValueError, match=r"unknown argument\(s\) 'num_beam'"):
        pipe("A text.", num_beam=2)
    with pytest.raises(TypeError, match="takes a string or a list of strings; got int"):
        pipe(42)
    with pytest.raises(TypeError, match="takes a string or a list of strings; got dict"):
        pipe([{"text": "A text."}])
    with pytest.raises(ValueError, match="stop_sequence must be a non-empty string"):
        pipe("A text.", stop_sequence="")
    with pytest.warns(UserWarning, match="Stopping on a multiple token sequence"):
        pipe("A text.", stop_sequence="the river", **GREEDY)
    assert pipe([]) == []


def test_return_tensors_gives_token_id_lists():
    pipe = tj.pipeline("text2text-generation", model=str(FIXTURES / "t5"))
    records = pipe("How old are you?", return_tensors=True, **GREEDY)
    ids = records[0]["generated_token_ids"]
    assert list(records[0]) == ["generated_token_ids"] and isinstance(ids, list) and ids[0] == 0
    assert pipe.tokenizer.decode(np.array(ids), skip_special_tokens=True) == \
        pipe("How old are you?", **GREEDY)[0]["generated_text"]
