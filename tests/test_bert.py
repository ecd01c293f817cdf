"""BERT against Hugging Face PyTorch on CPU, both directions, for every head.

Hugging Face's checkpoints load into our classes and give the same outputs (every hidden state,
every attention, losses), and our checkpoints load into Hugging Face's classes with exactly the
keys Hugging Face itself writes and give the same outputs. Strict comparisons use HF's eager
attention; HF's default (sdpa) agrees on the non-padded positions.
"""
import copy
import logging

import jax
import numpy as np
import pytest
import torch
import transformers as hf

import transformers_jax as tj
from parity import (assert_accurate, assert_same_up_to_rounding, compare_with_hf, count_compiles, perturb_params,
                    perturb_torch, run_hf, run_hf_exact, run_ours, safetensors_keys)

B, T = 3, 12
LENGTHS = (12, 9, 5)  # right padding
NUM_CHOICES = 2
MC_LENGTHS = (12, 7, 10, 4, 12, 9)  # one per (example, choice)

CONFIGS = {
    "small": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  hidden_act="gelu", max_position_embeddings=40, type_vocab_size=2),
    "wide": dict(vocab_size=113, hidden_size=48, num_hidden_layers=3, num_attention_heads=6, intermediate_size=64,
                 hidden_act="gelu_new", max_position_embeddings=24, type_vocab_size=3, layer_norm_eps=1e-7,
                 tie_word_embeddings=False),
}

TASKS = {
    "BertModel": (hf.BertModel, tj.BertModel, {}),
    "BertForPreTraining": (hf.BertForPreTraining, tj.BertForPreTraining, {}),
    "BertForMaskedLM": (hf.BertForMaskedLM, tj.BertForMaskedLM, {}),
    "BertForNextSentencePrediction": (hf.BertForNextSentencePrediction, tj.BertForNextSentencePrediction, {}),
    "BertForSequenceClassification": (hf.BertForSequenceClassification, tj.BertForSequenceClassification,
                                      {"num_labels": 3}),
    "BertForTokenClassification": (hf.BertForTokenClassification, tj.BertForTokenClassification, {"num_labels": 5}),
    "BertForQuestionAnswering": (hf.BertForQuestionAnswering, tj.BertForQuestionAnswering, {}),
    "BertForMultipleChoice": (hf.BertForMultipleChoice, tj.BertForMultipleChoice, {}),
}


# ----------------------------------------------------------------------------- helpers



def padding_mask(lengths, length=T):
    return (np.arange(length)[None] < np.asarray(lengths)[:, None]).astype(np.int64)


def make_inputs(task, cfg, seed=0):
    """Right-padded pairs (token_type_ids 0 then 1, a 2 where the config has one) and task labels."""
    rng = np.random.RandomState(seed)
    lengths = MC_LENGTHS if task == "BertForMultipleChoice" else LENGTHS
    rows = len(lengths)
    mask = padding_mask(lengths)
    ids = rng.randint(1, cfg["vocab_size"], (rows, T))
    ids[mask == 0] = 0
    types = np.zeros_like(ids)
    for r, n in enumerate(lengths):
        types[r, n // 2:n] = 1
    if cfg["type_vocab_size"] > 2:
        types[0, -2:] = 2
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if task == "BertForMultipleChoice":
        inputs = {k: v.reshape(B, NUM_CHOICES, T) for k, v in inputs.items()}
    if task in ("BertForPreTraining", "BertForMaskedLM"):
        mlm = np.where((rng.rand(B, T) < 0.4) & (mask == 1), ids, -100)
        mlm[0, 1] = ids[0, 1]  # at least one counted label
    if task == "BertForPreTraining":
        inputs.update(labels=mlm, next_sentence_label=rng.randint(0, 2, B))
    elif task == "BertForMaskedLM":
        inputs.update(labels=mlm)
    elif task == "BertForNextSentencePrediction":
        inputs.update(labels=rng.randint(0, 2, B))
    elif task == "BertForSequenceClassification":
        inputs.update(labels=rng.randint(0, 3, B))
    elif task == "BertForTokenClassification":
        inputs.update(labels=np.where(mask == 1, rng.randint(0, 5, (B, T)), -100))
    elif task == "BertForQuestionAnswering":
        # 30 and 99 lie past the sequence (clamped to T, then ignored); -1 is clamped to 0.
        inputs.update(start_positions=np.array([2, 30, -1]), end_positions=np.array([5, 1, 99]))
    elif task == "BertForMultipleChoice":
        inputs.update(labels=rng.randint(0, NUM_CHOICES, B))
    return inputs






def flat_mask(inputs):
    return np.asarray(inputs["attention_mask"]).reshape(-1, T)


_HF_CACHE = {}


@pytest.fixture(scope="module")
def hf_case(tmp_path_factory):
    """(HF model in eager mode, its save directory, the keys HF saved) per (task, config), built once."""

    def get(task, config_name, **extra):
        key = (task, config_name, tuple(sorted(extra.items())))
        if key not in _HF_CACHE:
            hf_cls, _, task_kwargs = TASKS[task]
            torch.manual_seed(0)
            config = hf.BertConfig(**CONFIGS[config_name], **{**task_kwargs, **extra})
            model = perturb_torch(hf_cls(config), seed=1).eval()
            model.set_attn_implementation("eager")
            path = tmp_path_factory.mktemp(f"{task}_{config_name}")
            model.save_pretrained(path)
            _HF_CACHE[key] = (model, path, safetensors_keys(path))
        return _HF_CACHE[key]

    yield get
    _HF_CACHE.clear()


CASES = [(task, cfg) for task in TASKS for cfg in CONFIGS]


# ----------------------------------------------------------------------------- HF checkpoints -> ours
@pytest.mark.parametrize("task,config_name", CASES)
def test_hf_checkpoint_matches_hf_outputs(hf_case, task, config_name, caplog):
    hf_model, path, _ = hf_case(task, config_name)
    _, tj_cls, _ = TASKS[task]
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        ours = tj_cls.from_pretrained(path)
    assert not [r for r in caplog.records if r.name.startswith("transformers_jax")], caplog.text
    inputs = make_inputs(task, CONFIGS[config_name])
    got = run_ours(ours, inputs, output_hidden_states=True, output_attentions=True)
    want = compare_with_hf(got, hf_model, inputs, output_hidden_states=True, output_attentions=True)
    assert len(want.hidden_states) == CONFIGS[config_name]["num_hidden_layers"] + 1
    assert len(want.attentions) == CONFIGS[config_name]["num_hidden_layers"]
    if task != "BertModel":
        assert "loss" in want.keys() and np.isfinite(float(want.loss))


# ----------------------------------------------------------------------------- ours -> HF checkpoints
@pytest.mark.parametrize("task,config_name", CASES)
def test_our_checkpoint_loads_in_hf(hf_case, task, config_name, tmp_path):
    _, hf_keys_path, hf_keys = hf_case(task, config_name)
    hf_cls, tj_cls, _ = TASKS[task]
    # The config read from HF's save (the same config as the loading test: no new compilation).
    config = tj.BertConfig.from_pretrained(hf_keys_path)
    ours = tj_cls(config, seed=3)
    ours.params = perturb_params(ours.params, seed=4)
    ours.save_pretrained(tmp_path)
    assert safetensors_keys(tmp_path) == hf_keys
    theirs, info = hf_cls.from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}
    theirs.eval()
    inputs = make_inputs(task, CONFIGS[config_name], seed=5)
    got = run_ours(ours, inputs, output_hidden_states=True, output_attentions=True)
    compare_with_hf(got, theirs, inputs, output_hidden_states=True, output_attentions=True)
    # And back: our loader reads our own save into the same params.
    again = tj_cls.from_pretrained(tmp_path)
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(ours.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ----------------------------------------------------------------------------- HF's default attention (sdpa)
@pytest.mark.parametrize("task,config_name", [("BertModel", "small"), ("BertForMaskedLM", "wide"),
                                              ("BertForQuestionAnswering", "small"),
                                              ("BertForMultipleChoice", "wide")])
def test_hf_sdpa_agrees_on_real_tokens(hf_case, task, config_name):
    _, path, _ = hf_case(task, config_name)
    hf_cls, tj_cls, _ = TASKS[task]
    sdpa = hf_cls.from_pretrained(path).eval()
    assert sdpa.config._attn_implementation == "sdpa"
    ours = tj_cls.from_pretrained(path)
    inputs = make_inputs(task, CONFIGS[config_name], seed=7)
    got = run_ours(ours, inputs, output_hidden_states=True, output_attentions=True)
    want = compare_with_hf(got, sdpa, inputs, keep=flat_mask(inputs), subset=True, output_hidden_states=True)
    assert want.attentions is None


# ----------------------------------------------------------------------------- sequence classification losses
PROBLEMS = {
    # name: (num_labels, problem_type written in the config, labels)
    "regression": (1, "regression", lambda rng: rng.randn(B).astype(np.float32)),
    "regression_2": (2, "regression", lambda rng: rng.randn(B, 2).astype(np.float32)),
    "single_label": (3, "single_label_classification", lambda rng: rng.randint(0, 3, B)),
    "multi_label": (3, "multi_label_classification", lambda rng: (rng.rand(B, 3) > 0.5).astype(np.float32)),
}


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("explicit", [True, False], ids=["explicit", "inferred"])
def test_sequence_classification_problem_types(tmp_path, problem, explicit):
    num_labels, problem_type, make_labels = PROBLEMS[problem]
    if not explicit and problem == "regression_2":
        problem_type = None  # two float labels are inferred as multi-label, in both libraries
    torch.manual_seed(2)
    config = hf.BertConfig(**CONFIGS["small"], num_labels=num_labels,
                           problem_type=problem_type if explicit else None)
    model = perturb_torch(hf.BertForSequenceClassification(config), seed=3).eval()
    model.set_attn_implementation("eager")
    model.save_pretrained(tmp_path)
    ours = tj.BertForSequenceClassification.from_pretrained(tmp_path)
    assert ours.config.num_labels == num_labels
    inputs = make_inputs("BertModel", CONFIGS["small"], seed=8)
    inputs["labels"] = make_labels(np.random.RandomState(9))
    got = run_ours(ours, inputs)
    want = compare_with_hf(got, model, inputs)
    assert got.logits.shape == (B, num_labels)
    assert float(want.loss) > 0


# ----------------------------------------------------------------------------- head_mask
def _zero_head_columns(model, layer, head, head_dim):
    w = model.encoder.layer[layer].attention.output.dense.weight
    with torch.no_grad():
        w[:, head * head_dim:(head + 1) * head_dim] = 0


def test_head_mask_equals_zeroed_output_columns(hf_case):
    hf_model, path, _ = hf_case("BertModel", "small")
    cfg = CONFIGS["small"]
    layers, heads = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    head_dim = cfg["hidden_size"] // heads
    ours = tj.BertModel.from_pretrained(path)
    inputs = make_inputs("BertModel", cfg, seed=11)
    plain = run_ours(ours, inputs, output_hidden_states=True, output_attentions=True)

    # [layers, heads]: head 2 of layer 1 and head 0 of layer 0 masked.
    head_mask = np.ones((layers, heads), np.float32)
    head_mask[1, 2] = 0
    head_mask[0, 0] = 0
    reference = copy.deepcopy(hf_model)
    _zero_head_columns(reference, 1, 2, head_dim)
    _zero_head_columns(reference, 0, 0, head_dim)
    got = run_ours(ours, {**inputs, "head_mask": head_mask}, output_hidden_states=True)
    compare_with_hf(got, reference, inputs, output_hidden_states=True)
    assert not np.allclose(np.asarray(got.last_hidden_state), np.asarray(plain.last_hidden_state), atol=1e-3)

    # [heads]: the same heads masked in every layer.
    head_mask = np.array([1, 0, 1, 1], np.float32)
    reference = copy.deepcopy(hf_model)
    for layer in range(layers):
        _zero_head_columns(reference, layer, 1, head_dim)
    got = run_ours(ours, {**inputs, "head_mask": head_mask}, output_hidden_states=True)
    compare_with_hf(got, reference, inputs, output_hidden_states=True)

    # All ones is no mask at all.
    ones = run_ours(ours, {**inputs, "head_mask": np.ones((layers, heads), np.float32)}, output_hidden_states=True,
                    output_attentions=True)
    assert len(jax.tree.leaves(ones)) == len(jax.tree.leaves(plain)) == 2 * layers + 3
    for x, y in zip(jax.tree.leaves(ones), jax.tree.leaves(plain), strict=True):
        assert_same_up_to_rounding(x, y, ulps=16)  # multiplying probabilities by 1.0 changes nothing


# ----------------------------------------------------------------------------- checkpoints of other classes
def test_base_model_from_pretraining_checkpoint(hf_case, caplog):
    _, path, saved = hf_case("BertForPreTraining", "small")
    assert any(k.startswith("bert.") for k in saved) and any(k.startswith("cls.") for k in saved)
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        ours = tj.BertModel.from_pretrained(path)
    assert "cls.seq_relationship.weight" in caplog.text  # the heads are reported as unused
    assert set(ours.params) == {"embeddings", "encoder", "pooler"}
    reference = hf.BertModel.from_pretrained(path, attn_implementation="eager").eval()
    inputs = make_inputs("BertModel", CONFIGS["small"], seed=12)
    compare_with_hf(run_ours(ours, inputs, output_hidden_states=True, output_attentions=True), reference, inputs,
                    output_hidden_states=True, output_attentions=True)


def test_sequence_classifier_from_base_checkpoint(hf_case, caplog):
    base, path, saved = hf_case("BertModel", "wide")
    assert not any(k.startswith("bert.") for k in saved)
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        ours = tj.BertForSequenceClassification.from_pretrained(path, num_labels=4)
    warnings = [r for r in caplog.records if r.name == "transformers_jax" and r.levelno == logging.WARNING]
    assert any("classifier" in r.getMessage() and "initialised" in r.getMessage() for r in warnings), caplog.text
    assert ours.params["classifier"]["kernel"].shape == (CONFIGS["wide"]["hidden_size"], 4)
    inputs = make_inputs("BertModel", CONFIGS["wide"], seed=13)
    got = run_ours(ours, inputs, output_hidden_states=True, output_attentions=True)
    encoder = run_hf(base, inputs, output_hidden_states=True, output_attentions=True)
    exact = run_hf_exact(base, inputs, output_hidden_states=True, output_attentions=True)
    for key in ("hidden_states", "attentions"):
        for i, (x, y, z) in enumerate(zip(got[key], encoder[key], exact[key], strict=True)):
            assert_accurate(x, y, z, name=f"{key}[{i}]")
    # HF loading the same base checkpoint, given our new classifier, gives our logits.
    theirs = hf.BertForSequenceClassification.from_pretrained(path, num_labels=4, attn_implementation="eager").eval()
    with torch.no_grad():
        theirs.classifier.weight.copy_(torch.from_numpy(np.asarray(ours.params["classifier"]["kernel"]).T.copy()))
        theirs.classifier.bias.copy_(torch.from_numpy(np.array(ours.params["classifier"]["bias"])))
    compare_with_hf(got, theirs, inputs, output_hidden_states=True, output_attentions=True)


# ----------------------------------------------------------------------------- compilation
def test_compiles_once_per_shape():

    # A config no other test uses, so the first call must compile.
    config = tj.BertConfig.from_dict({**CONFIGS["small"], "layer_norm_eps": 1.2345e-9})
    model = tj.BertModel(config, seed=0)
    first, second = make_inputs("BertModel", CONFIGS["small"], seed=1), make_inputs("BertModel", CONFIGS["small"], seed=2)
    first.pop("token_type_ids"), second.pop("token_type_ids")
    with count_compiles("jit(run)") as compiles:
        a = jax.block_until_ready(model(**first).last_hidden_state)
        assert len(compiles) == 1
        b = jax.block_until_ready(model(**second).last_hidden_state)
        jax.block_until_ready(model(**first).last_hidden_state)
        assert len(compiles) == 1
        assert not np.allclose(np.asarray(a), np.asarray(b))
        jax.block_until_ready(model(first["input_ids"][:, :7], attention_mask=first["attention_mask"][:, :7]))
        assert len(compiles) == 2  # a new shape compiles again


# ----------------------------------------------------------------------------- output containers
def test_output_container_indexes_like_hf(hf_case):
    hf_model, path, _ = hf_case("BertForQuestionAnswering", "small")
    ours = tj.BertForQuestionAnswering.from_pretrained(path)
    inputs = make_inputs("BertForQuestionAnswering", CONFIGS["small"])
    no_labels = {k: v for k, v in inputs.items() if not k.endswith("_positions")}

    out = run_ours(ours, no_labels)
    ref = compare_with_hf(out, hf_model, no_labels)
    assert out.loss is None and out.hidden_states is None
    assert list(out.keys()) == list(ref.keys()) == ["start_logits", "end_logits"]
    assert len(out.to_tuple()) == len(ref.to_tuple()) == 2
    np.testing.assert_array_equal(np.asarray(out[0]), np.asarray(out.start_logits))
    np.testing.assert_array_equal(np.asarray(out["end_logits"]), np.asarray(out[1]))
    assert "loss" not in out and "start_logits" in out
    with pytest.raises(KeyError):
        out["loss"]
    start, end = out  # iterates over keys, like a dict (and HF)
    assert (start, end) == tuple(ref) == ("start_logits", "end_logits")

    tup = ours(**no_labels, return_dict=False)
    ref_tup = run_hf(hf_model, no_labels, return_dict=False)
    exact_tup = run_hf_exact(hf_model, no_labels, return_dict=False)
    assert isinstance(tup, tuple) and len(tup) == len(ref_tup) == 2
    for x, y, z in zip(tup, ref_tup, exact_tup, strict=True):
        assert_accurate(x, y, z)

    full = run_ours(ours, inputs, output_hidden_states=True)
    ref_full = compare_with_hf(full, hf_model, inputs, output_hidden_states=True)
    assert list(full.keys()) == list(ref_full.keys()) == ["loss", "start_logits", "end_logits", "hidden_states"]
    np.testing.assert_array_equal(np.asarray(full[0]), np.asarray(full.loss))  # out[0] is the loss
    assert isinstance(full[3], tuple) and len(full[3]) == CONFIGS["small"]["num_hidden_layers"] + 1
    tup = ours(**inputs, output_hidden_states=True, return_dict=False)
    assert len(tup) == 4 and float(tup[0]) == float(full.loss)
