"""feature-extraction, fill-mask and zero-shot-classification against Hugging Face's ``transformers.pipeline``
over the same tiny checkpoints and real (all-MiniLM-L6-v2) tokenizer files."""
import logging

import numpy as np
import pytest
import transformers

import transformers_jax as tj
from parity import assert_accurate, assert_same_up_to_rounding, run_hf, run_hf_exact
from pipeline_fixtures import assert_same_results, pipeline_models  # noqa: F401
from transformers_jax.pipelines import PipelineException

TEXTS = ["Hello world!", "The quick brown fox jumps over the lazy dog.", "",
         "A considerably longer sentence, with commas, numbers like 1234 and UPPER case words."]


def _ours(models, name, task):
    return models.ours(name, task)


# ----------------------------------------------------------------------------- feature-extraction
def _exact_features(hf_pipe, text):
    """HF's model in float32 and float64 on the tokenized text: (reference, exact) last hidden states."""
    inputs = {k: np.asarray(v) for k, v in hf_pipe.tokenizer(text, return_tensors="np").items()}
    return run_hf(hf_pipe.model, inputs).last_hidden_state.numpy(), run_hf_exact(hf_pipe.model, inputs).last_hidden_state.numpy()


def test_feature_extraction_matches_hf(pipeline_models):
    ours, hf = _ours(pipeline_models, "base", "feature-extraction"), pipeline_models.hf("base", "feature-extraction")
    results = ours(TEXTS)
    for text, features, theirs in zip(TEXTS, results, hf(TEXTS)):
        assert isinstance(features, list) and isinstance(features[0][0][0], float)
        assert np.array(features).shape == np.array(theirs).shape == (1, len(ours.tokenizer(text)["input_ids"]), 32)
        reference, exact = _exact_features(hf, text)
        np.testing.assert_allclose(np.array(theirs), reference, rtol=0, atol=0)  # HF's pipeline is its model
        assert_accurate(np.array(features), reference, exact, name=f"features of {text!r}")
    assert ours(TEXTS[1]) == results[1]


def test_feature_extraction_return_tensors_and_truncation(pipeline_models):
    ours, hf = _ours(pipeline_models, "base", "feature-extraction"), pipeline_models.hf("base", "feature-extraction")
    array = ours(TEXTS[1], return_tensors=True)
    assert isinstance(array, np.ndarray) and array.shape == (1, 12, 32)
    np.testing.assert_array_equal(array, np.array(ours(TEXTS[1])))
    short = ours(TEXTS[1], tokenize_kwargs={"truncation": True, "max_length": 5})
    assert np.array(short).shape == (1, 5, 32)
    assert_same_results(short, hf(TEXTS[1], tokenize_kwargs={"truncation": True, "max_length": 5}))
    long_text = "word " * 600  # 602 tokens > 512 positions
    with pytest.raises(ValueError, match="input length 602 exceeds max_position_embeddings=512"):
        ours(long_text)
    assert np.array(ours(long_text, truncation=True)).shape == (1, 512, 32)
    with pytest.raises(ValueError, match="truncation parameter defined twice"):
        ours(TEXTS[0], truncation=True, tokenize_kwargs={"truncation": True})
    with pytest.raises(TypeError, match=r"unexpected arguments \['top_k'\]"):
        ours(TEXTS[0], top_k=2)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_feature_extraction_batched_equals_unbatched(pipeline_models, padding_side):
    """Per-token outputs come back cut to each input's own tokens, whichever side the batch was padded on
    (left padding gives the model position ids counted from each input's first token)."""
    ours = tj.pipeline("feature-extraction", model=str(pipeline_models.dir("base")))
    ours.tokenizer.padding_side = padding_side
    single = [np.array(ours(t)) for t in TEXTS]
    for a, b in zip(ours(TEXTS, batch_size=3), single):  # a full batch, then one example and two filler rows
        assert np.array(a).shape == b.shape
        assert_same_up_to_rounding(np.array(a), b, ulps=256)


def test_task_summary_feature_extraction(pipeline_models):
    """The docs' feature-extraction example with a local tiny checkpoint."""
    feature_extractor = tj.pipeline(task="feature-extraction", model=str(pipeline_models.dir("base")))
    text = "Transformers is an awesome library!"
    features = feature_extractor(text, return_tensors=True)
    n_tokens = len(feature_extractor.tokenizer(text)["input_ids"])
    assert features.shape == (1, n_tokens, 32)
    reference, exact = _exact_features(pipeline_models.hf("base", "feature-extraction"), text)
    assert_accurate(features, reference, exact, name="task summary features")


# ----------------------------------------------------------------------------- fill-mask
FILL = ["Paris is the [MASK] of France.", "The [MASK] sat on the [MASK].", "[MASK]", "I [MASK] you."]


@pytest.mark.parametrize("kwargs", [{}, {"top_k": 2}, {"top_k": 1}, {"targets": ["capital", "city", "house"]},
                                    {"targets": "city"}, {"targets": ["capital", "zzyzx"], "top_k": 5},
                                    {"tokenizer_kwargs": {"truncation": True, "max_length": 6}}])
def test_fill_mask_matches_hf(pipeline_models, kwargs):
    ours, hf = _ours(pipeline_models, "masked_lm", "fill-mask"), pipeline_models.hf("masked_lm", "fill-mask")
    for inputs in (FILL[0], FILL[1], FILL, FILL[:1], FILL[2]):
        assert_same_results(ours(inputs, **kwargs), hf(inputs, **kwargs))


def test_fill_mask_output_structure(pipeline_models):
    ours = _ours(pipeline_models, "masked_lm", "fill-mask")
    one = ours(FILL[0])
    assert len(one) == 5 and all(list(r) == ["score", "token", "token_str", "sequence"] for r in one)
    assert [r["score"] for r in one] == sorted((r["score"] for r in one), reverse=True)
    assert all(r["sequence"].startswith("paris is the") and r["sequence"].endswith("of france.") for r in one)
    assert all(r["token_str"] == ours.tokenizer.decode([r["token"]]) for r in one)
    two = ours(FILL[1], top_k=3)  # two masks: a list per mask, special tokens kept in the sequence
    assert len(two) == 2 and all(len(row) == 3 for row in two)
    assert two[0][0]["sequence"].startswith("[CLS] the ") and two[0][0]["sequence"].endswith("[MASK]. [SEP]")
    targeted = ours(FILL[0], targets=["capital", "city"], top_k=10)  # top_k is capped at the number of targets
    assert sorted(r["token_str"] for r in targeted) == ["capital", "city"]


def test_fill_mask_target_not_in_vocabulary(pipeline_models, caplog):
    ours = _ours(pipeline_models, "masked_lm", "fill-mask")
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        result = ours(FILL[0], targets=["zzyzx"])
    assert "`zzyzx` does not exist in the model vocabulary. Replacing with `z`" in caplog.text
    assert [r["token_str"] for r in result] == ["z"]
    with pytest.raises(ValueError, match="At least one target must be provided"):
        ours(FILL[0], targets=[""])


def test_fill_mask_errors(pipeline_models):
    ours = _ours(pipeline_models, "masked_lm", "fill-mask")
    with pytest.raises(PipelineException, match=r"No mask_token \(\[MASK\]\) found on the input"):
        ours("There is no mask here.")
    with pytest.raises(PipelineException, match=r"No mask_token \(\[MASK\]\)"):
        ours("")
    with pytest.raises(ValueError, match="top_k must be a positive integer, got 0"):
        ours(FILL[0], top_k=0)
    with pytest.raises(TypeError, match="targets must be a string or a list of strings"):
        ours(FILL[0], targets=[3])


def test_fill_mask_batched_equals_unbatched(pipeline_models):
    ours = _ours(pipeline_models, "masked_lm", "fill-mask")
    single = [ours(t, top_k=3) for t in FILL]
    assert_same_results(ours(FILL, top_k=3, batch_size=3), single, rel=1e-5)


def test_task_summary_fill_mask(pipeline_models):
    """The task summary's fill-mask example (its ``<mask>`` is this tokenizer's ``[MASK]``), local checkpoint."""
    fill_mask = tj.pipeline(task="fill-mask", model=str(pipeline_models.dir("masked_lm")))
    text = f"Hugging Face is a community-based open-source {fill_mask.tokenizer.mask_token} for machine learning."
    preds = fill_mask(text, top_k=1)
    preds = [{"score": round(pred["score"], 4), "token": pred["token"], "token_str": pred["token_str"],
              "sequence": pred["sequence"]} for pred in preds]
    theirs = pipeline_models.hf("masked_lm", "fill-mask")(text, top_k=1)
    assert len(preds) == 1 and preds[0]["token"] == theirs[0]["token"] and preds[0]["sequence"] == theirs[0]["sequence"]
    assert preds[0]["score"] == round(theirs[0]["score"], 4)


# ----------------------------------------------------------------------------- zero-shot-classification
LABELS = ["urgent", "not urgent", "phone", "tablet", "computer"]
SEQUENCE = "I have a problem with my iphone that needs to be resolved asap!!"


@pytest.mark.parametrize("name", ["nli", "nli_first"])
@pytest.mark.parametrize("kwargs", [{"candidate_labels": LABELS}, {"candidate_labels": LABELS, "multi_label": True},
                                    {"candidate_labels": "english, german"}, {"candidate_labels": ["politics"]},
                                    {"candidate_labels": LABELS[:3], "hypothesis_template": "This text is about {}."}])
def test_zero_shot_matches_hf(pipeline_models, name, kwargs):
    ours, hf = _ours(pipeline_models, name, "zero-shot-classification"), pipeline_models.hf(name, "zero-shot-classification")
    for inputs in (SEQUENCE, [SEQUENCE, TEXTS[1]]):
        assert_same_results(ours(inputs, **kwargs), hf(inputs, **kwargs))


def test_zero_shot_entailment_id_from_label2id(pipeline_models, caplog):
    assert _ours(pipeline_models, "nli", "zero-shot-classification").entailment_id == 2
    assert _ours(pipeline_models, "nli_first", "zero-shot-classification").entailment_id == 0
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        plain = tj.pipeline("zero-shot-classification", model=str(pipeline_models.dir("classifier")))
    assert plain.entailment_id == -1 and "Failed to determine 'entailment' label id" in caplog.text


def test_zero_shot_output_and_positional_labels(pipeline_models):
    ours = _ours(pipeline_models, "nli", "zero-shot-classification")
    result = ours(SEQUENCE, LABELS)
    assert list(result) == ["sequence", "labels", "scores"] and result["sequence"] == SEQUENCE
    assert sorted(result["labels"]) == sorted(LABELS)
    assert abs(sum(result["scores"]) - 1) < 1e-5 and result["scores"] == sorted(result["scores"], reverse=True)
    independent = ours(SEQUENCE, LABELS, multi_label=True)
    assert all(0 < s < 1 for s in independent["scores"]) and abs(sum(independent["scores"]) - 1) > 1e-3
    assert_same_results(ours(SEQUENCE, candidate_labels=", ".join(LABELS)), result, rel=0)


def test_zero_shot_batched_equals_unbatched(pipeline_models):
    """The chunks of consecutive texts share batches and are put back together per text."""
    ours = _ours(pipeline_models, "nli", "zero-shot-classification")
    texts = [SEQUENCE, TEXTS[0], TEXTS[3]]
    single = [ours(t, candidate_labels=LABELS[:3]) for t in texts]
    # 9 chunks in batches of 4: the chunks of one text are split over two batches
    assert_same_results(ours(texts, candidate_labels=LABELS[:3], batch_size=4), single, rel=1e-5)
    stream = ours(iter(texts), candidate_labels=LABELS[:3], batch_size=2)
    assert_same_results(next(stream), single[0], rel=1e-5)
    assert len(list(stream)) == 2


def test_zero_shot_errors(pipeline_models):
    ours = _ours(pipeline_models, "nli", "zero-shot-classification")
    with pytest.raises(ValueError, match="needs candidate_labels"):
        ours(SEQUENCE)
    with pytest.raises(ValueError, match="needs candidate_labels"):
        ours(SEQUENCE, candidate_labels=" , ")
    with pytest.raises(ValueError, match="at least one sequence"):
        ours("", candidate_labels=LABELS)
    with pytest.raises(ValueError, match='hypothesis_template "No slot." was not able to be formatted'):
        ours(SEQUENCE, candidate_labels=LABELS, hypothesis_template="No slot.")
    with pytest.raises(TypeError, match="candidate_labels must be a list of strings"):
        ours(SEQUENCE, candidate_labels=[1, 2])
    with pytest.raises(ValueError, match="Unable to understand extra arguments"):
        ours(SEQUENCE, LABELS, "extra")


def test_hf_behaviour_on_empty_inputs(pipeline_models):
    """What HF does with an empty string, matched: classified/embedded as [CLS] [SEP]; fill-mask and zero-shot
    refuse it (no mask / no sequence)."""
    hf_zero_shot = pipeline_models.hf("nli", "zero-shot-classification")
    with pytest.raises(ValueError, match="at least one sequence"):
        hf_zero_shot("", candidate_labels=LABELS)
    with pytest.raises(Exception, match=r"No mask_token \(\[MASK\]\)"):
        pipeline_models.hf("masked_lm", "fill-mask")("")
    assert_same_results(_ours(pipeline_models, "base", "feature-extraction")(""),
                        pipeline_models.hf("base", "feature-extraction")(""), rel=1e-3)
    assert transformers.__version__  # the oracle is importable
