"""Llama against Hugging Face PyTorch on CPU, both directions.

MHA, GQA, MQA, an explicit head_dim, tied and untied embeddings, biases, and RoPE of types default,
linear and llama3 (sequences longer than the original context), plus old-style configs with
top-level ``rope_theta``/``rope_scaling``. Strict comparisons use HF's eager attention on left-padded
batches; HF's default (sdpa) agrees on the non-padded positions. Unrolled layers and remat give the
same numbers as the scanned stack, and a model compiles once per input shape.
"""
import json
import logging
import shutil

import jax
import numpy as np
import pytest
import torch
import transformers as hf

import transformers_jax as tj
from parity import (assert_accurate, assert_same_up_to_rounding, assert_trees_same_up_to_rounding, compare_with_hf,
                    count_compiles, perturb_params, perturb_torch, run_hf, run_hf_exact, run_ours, safetensors_keys,
                    to_np)

B, T = 3, 20
LEFT_LENGTHS = (20, 14, 6)
RIGHT_LENGTHS = (20, 11, 4)
PAD = 0

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=32, pad_token_id=PAD, bos_token_id=1, eos_token_id=2)
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16, "rope_theta": 10000.0}
CONFIGS = {
    # multi-head attention, untied, default RoPE with a non-default theta
    "mha": dict(BASE, num_key_value_heads=4, tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "rope_theta": 1000.0}),
    # grouped-query attention, tied embeddings, linear RoPE scaling
    "gqa_linear_tied": dict(BASE, num_key_value_heads=2, tie_word_embeddings=True,
                            rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}),
    # multi-query attention, head_dim 16 != 32 / 4, biases everywhere, llama3 RoPE (T=20 > 16), 3 layers
    "mqa_llama3_bias": dict(BASE, num_key_value_heads=1, head_dim=16, num_hidden_layers=3, attention_bias=True,
                            mlp_bias=True, tie_word_embeddings=False, rope_parameters=LLAMA3),
    # GQA with head_dim 8 != 64 / 4, tied, attention bias only, another norm eps
    "gqa_headdim_tied": dict(BASE, hidden_size=64, num_key_value_heads=2, head_dim=8, attention_bias=True,
                             tie_word_embeddings=True, rms_norm_eps=1e-5),
}

TASKS = {
    "LlamaModel": (hf.LlamaModel, tj.LlamaModel, {}),
    "LlamaForCausalLM": (hf.LlamaForCausalLM, tj.LlamaForCausalLM, {}),
    "LlamaForSequenceClassification": (hf.LlamaForSequenceClassification, tj.LlamaForSequenceClassification,
                                       {"num_labels": 3}),
}

CASES = [
    ("LlamaForCausalLM", "mha"),
    ("LlamaForCausalLM", "gqa_linear_tied"),
    ("LlamaForCausalLM", "mqa_llama3_bias"),
    ("LlamaForCausalLM", "gqa_headdim_tied"),
    ("LlamaModel", "mha"),
    ("LlamaModel", "mqa_llama3_bias"),
    ("LlamaForSequenceClassification", "gqa_linear_tied"),
    ("LlamaForSequenceClassification", "mqa_llama3_bias"),
]


# ----------------------------------------------------------------------------- helpers



def make_inputs(task, cfg, seed=0, length=T):
    """Left padding for the decoder (right padding for sequence classification) and task labels."""
    rng = np.random.RandomState(seed)
    right = task == "LlamaForSequenceClassification"
    lengths = RIGHT_LENGTHS if right else LEFT_LENGTHS
    lengths = [min(n, length) for n in lengths]
    positions = np.arange(length)[None]
    if right:
        mask = positions < np.asarray(lengths)[:, None]
    else:
        mask = positions >= length - np.asarray(lengths)[:, None]
    mask = mask.astype(np.int64)
    ids = rng.randint(3, cfg["vocab_size"], (B, length))  # never the pad id
    ids[mask == 0] = PAD
    inputs = {"input_ids": ids, "attention_mask": mask}
    if task == "LlamaForCausalLM":
        labels = np.where(mask == 1, ids, -100)
        labels[rng.rand(B, length) < 0.2] = -100
        inputs["labels"] = labels
    elif task == "LlamaForSequenceClassification":
        inputs["labels"] = rng.randint(0, 3, B)
    return inputs






def build_hf(task, config_kwargs, seed=0):
    hf_cls, _, task_kwargs = TASKS[task]
    torch.manual_seed(seed)
    model = perturb_torch(hf_cls(hf.LlamaConfig(**config_kwargs, **task_kwargs)), seed=seed + 1).eval()
    model.set_attn_implementation("eager")
    return model


_HF_CACHE = {}


@pytest.fixture(scope="module")
def hf_case(tmp_path_factory):
    """(HF model in eager mode, its save directory, the keys HF saved) per (task, config), built once."""

    def get(task, config_name):
        key = (task, config_name)
        if key not in _HF_CACHE:
            model = build_hf(task, CONFIGS[config_name])
            path = tmp_path_factory.mktemp(f"{task}_{config_name}")
            model.save_pretrained(path)
            _HF_CACHE[key] = (model, path, safetensors_keys(path))
        return _HF_CACHE[key]

    yield get
    _HF_CACHE.clear()


# ----------------------------------------------------------------------------- HF checkpoints -> ours
@pytest.mark.parametrize("task,config_name", CASES)
def test_hf_checkpoint_matches_hf_outputs(hf_case, task, config_name, caplog):
    hf_model, path, _ = hf_case(task, config_name)
    _, tj_cls, _ = TASKS[task]
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        ours = tj_cls.from_pretrained(path)
    assert not [r for r in caplog.records if r.name.startswith("transformers_jax")], caplog.text
    cfg = CONFIGS[config_name]
    assert ours.config.head_dim == cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    assert ours.config.rope_parameters == cfg.get("rope_parameters", {"rope_type": "default", "rope_theta": 10000.0})
    inputs = make_inputs(task, cfg)
    got = run_ours(ours, inputs, output_hidden_states=True, output_attentions=True)
    want = compare_with_hf(got, hf_model, inputs, output_hidden_states=True, output_attentions=True)
    assert len(want.hidden_states) == cfg["num_hidden_layers"] + 1
    assert len(want.attentions) == cfg["num_hidden_layers"]
    if task != "LlamaModel":
        assert np.isfinite(float(want.loss)) and float(want.loss) > 0


# ----------------------------------------------------------------------------- ours -> HF checkpoints
@pytest.mark.parametrize("task,config_name", CASES)
def test_our_checkpoint_loads_in_hf(hf_case, task, config_name, tmp_path):
    _, hf_path, hf_keys = hf_case(task, config_name)
    hf_cls, tj_cls, _ = TASKS[task]
    config = tj.LlamaConfig.from_pretrained(hf_path)  # the config of the loading test: no new compilation
    ours = tj_cls(config, seed=3)
    ours.params = perturb_params(ours.params, seed=4)
    ours.save_pretrained(tmp_path)
    assert safetensors_keys(tmp_path) == hf_keys
    theirs, info = hf_cls.from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}
    theirs.eval()
    assert theirs.config.rope_parameters == hf.LlamaConfig.from_pretrained(hf_path).rope_parameters
    inputs = make_inputs(task, CONFIGS[config_name], seed=5)
    got = run_ours(ours, inputs, output_hidden_states=True, output_attentions=True)
    compare_with_hf(got, theirs, inputs, output_hidden_states=True, output_attentions=True)


def test_config_from_hf_dict_equals_loaded_config(hf_case):
    hf_model, path, _ = hf_case("LlamaForCausalLM", "mqa_llama3_bias")
    from_dict = tj.LlamaConfig.from_dict(hf_model.config.to_dict())
    loaded = tj.LlamaForCausalLM.from_pretrained(path).config
    for name in ("num_key_value_heads", "head_dim", "rope_parameters", "attention_bias", "mlp_bias",
                 "tie_word_embeddings", "rms_norm_eps", "pad_token_id"):
        assert getattr(from_dict, name) == getattr(loaded, name) == getattr(hf_model.config, name), name
    ours = tj.LlamaForCausalLM(from_dict, params=tj.LlamaForCausalLM.from_pretrained(path).params)
    inputs = make_inputs("LlamaForCausalLM", CONFIGS["mqa_llama3_bias"], seed=6)
    compare_with_hf(run_ours(ours, inputs), hf_model, inputs)


# ----------------------------------------------------------------------------- HF's default attention (sdpa)
@pytest.mark.parametrize("task,config_name", [("LlamaForCausalLM", "gqa_linear_tied"),
                                              ("LlamaForCausalLM", "mqa_llama3_bias"),
                                              ("LlamaForSequenceClassification", "gqa_linear_tied")])
def test_hf_sdpa_agrees_on_real_tokens(hf_case, task, config_name):
    _, path, _ = hf_case(task, config_name)
    hf_cls, tj_cls, _ = TASKS[task]
    sdpa = hf_cls.from_pretrained(path).eval()
    assert sdpa.config._attn_implementation == "sdpa"
    ours = tj_cls.from_pretrained(path)
    inputs = make_inputs(task, CONFIGS[config_name], seed=7)
    if task == "LlamaForCausalLM":
        # The last pad position predicts the first real token, and sdpa's pad positions differ from
        # eager's: count only targets predicted from real positions.
        labels = inputs["labels"].copy()
        labels[:, 1:][inputs["attention_mask"][:, :-1] == 0] = -100
        inputs["labels"] = labels
    got = run_ours(ours, inputs, output_hidden_states=True, output_attentions=True)
    want = compare_with_hf(got, sdpa, inputs, keep=inputs["attention_mask"], subset=True, output_hidden_states=True)
    assert want.attentions is None


# ----------------------------------------------------------------------------- sequence classification losses
@pytest.mark.parametrize("problem,num_labels,make_labels", [
    ("regression", 1, lambda rng: rng.randn(B).astype(np.float32)),
    ("single_label_classification", 3, lambda rng: rng.randint(0, 3, B)),
    ("multi_label_classification", 3, lambda rng: (rng.rand(B, 3) > 0.5).astype(np.float32)),
])
def test_sequence_classification_problem_types(tmp_path, problem, num_labels, make_labels):
    cfg = dict(CONFIGS["gqa_linear_tied"], num_labels=num_labels, problem_type=problem)
    torch.manual_seed(5)
    hf_model = perturb_torch(hf.LlamaForSequenceClassification(hf.LlamaConfig(**cfg)), seed=6).eval()
    hf_model.set_attn_implementation("eager")
    hf_model.save_pretrained(tmp_path)
    ours = tj.LlamaForSequenceClassification.from_pretrained(tmp_path)
    assert ours.config.problem_type == problem and ours.config.num_labels == num_labels
    inputs = make_inputs("LlamaForSequenceClassification", cfg, seed=8)
    inputs["labels"] = make_labels(np.random.RandomState(9))
    got = run_ours(ours, inputs)
    want = compare_with_hf(got, hf_model, inputs)
    assert got.logits.shape == (B, num_labels) and float(want.loss) > 0


def test_sequence_classification_pools_last_real_token(hf_case):
    """The score at the last non-pad token, for right padding (and for left padding too)."""
    hf_model, path, _ = hf_case("LlamaForSequenceClassification", "mqa_llama3_bias")
    ours = tj.LlamaForSequenceClassification.from_pretrained(path)
    inputs = make_inputs("LlamaForSequenceClassification", CONFIGS["mqa_llama3_bias"], seed=10)
    got = run_ours(ours, inputs, output_hidden_states=True, output_attentions=True)
    last = np.asarray(got.hidden_states[-1])[np.arange(B), np.asarray(RIGHT_LENGTHS) - 1]
    kernel = np.asarray(ours.params["score"]["kernel"])
    assert_same_up_to_rounding(got.logits, last @ kernel, ulps=64)  # one [D] x [D, 3] product, summed in another order
    # Left-padded input: the last real token is the last position.
    left = make_inputs("LlamaForCausalLM", CONFIGS["mqa_llama3_bias"], seed=10)
    left = {"input_ids": left["input_ids"], "attention_mask": left["attention_mask"], "labels": inputs["labels"]}
    compare_with_hf(run_ours(ours, left, output_hidden_states=True, output_attentions=True), hf_model, left,
                    output_hidden_states=True, output_attentions=True)


# ----------------------------------------------------------------------------- old-style RoPE configs
def _legacy_copy(src, dst, rope_scaling):
    """A copy of ``src`` whose config.json spells RoPE the old way: top-level rope_theta and rope_scaling."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    rope = config.pop("rope_parameters")
    config["rope_theta"] = rope["rope_theta"]
    if rope_scaling is not None:
        config["rope_scaling"] = rope_scaling
    (dst / "config.json").write_text(json.dumps(config))
    return dst


LLAMA3_ALL_BANDS = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 0.5, "high_freq_factor": 2.0,
                    "original_max_position_embeddings": 16, "rope_theta": 10000.0}


@pytest.mark.parametrize("name,config_name,rope_scaling", [
    ("theta_only", "mha", None),
    ("linear_type_key", "gqa_linear_tied", {"type": "linear", "factor": 2.0}),
    ("llama3", "mqa_llama3_bias", {k: v for k, v in LLAMA3.items() if k != "rope_theta"}),
    # wavelengths on both sides of the smooth band and inside it (high 2, low 0.5 with head_dim 16)
    ("llama3_all_bands", None, {k: v for k, v in LLAMA3_ALL_BANDS.items() if k != "rope_theta"}),
])
def test_old_style_rope_config_loads_and_matches(hf_case, tmp_path, name, config_name, rope_scaling):
    if config_name is None:
        cfg = dict(CONFIGS["mqa_llama3_bias"], num_hidden_layers=2, rope_parameters=LLAMA3_ALL_BANDS)
        hf_model = build_hf("LlamaForCausalLM", cfg, seed=20)
        path = tmp_path / "modern"
        hf_model.save_pretrained(path)
    else:
        cfg = CONFIGS[config_name]
        hf_model, path, _ = hf_case("LlamaForCausalLM", config_name)
    legacy = _legacy_copy(path, tmp_path / "legacy", rope_scaling)
    written = json.loads((legacy / "config.json").read_text())
    assert "rope_parameters" not in written and "rope_theta" in written
    ours = tj.LlamaForCausalLM.from_pretrained(legacy)
    assert ours.config.rope_parameters == json.loads((path / "config.json").read_text())["rope_parameters"]
    inputs = make_inputs("LlamaForCausalLM", cfg, seed=11)
    compare_with_hf(run_ours(ours, inputs, output_hidden_states=True, output_attentions=True), hf_model, inputs,
                    output_hidden_states=True, output_attentions=True)
    # A wrong theta would show: the same weights under another theta give other logits.
    other = tj.LlamaForCausalLM(ours.config.replace(rope_parameters={**ours.config.rope_parameters, "rope_theta": 7.0}),
                                params=ours.params)
    assert not np.allclose(np.asarray(other(**inputs).logits), to_np(run_hf(hf_model, inputs).logits), atol=1e-3)


# ----------------------------------------------------------------------------- unrolled layers, remat, positions
def test_unrolled_and_remat_equal_scanned(hf_case):
    _, path, _ = hf_case("LlamaForCausalLM", "mqa_llama3_bias")
    scanned = tj.LlamaForCausalLM.from_pretrained(path)
    unrolled = tj.LlamaForCausalLM.from_pretrained(path, scan_layers=False)
    remat = tj.LlamaForCausalLM.from_pretrained(path, remat=True)
    assert scanned.config.scan_layers and not unrolled.config.scan_layers and remat.config.remat
    for a, b in zip(jax.tree.leaves(unrolled.params), jax.tree.leaves(scanned.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    inputs = make_inputs("LlamaForCausalLM", CONFIGS["mqa_llama3_bias"])
    want = run_ours(scanned, inputs, output_hidden_states=True, output_attentions=True)
    # The same float32 operations, fused differently: equal up to rounding (a few ulps per layer).
    assert_trees_same_up_to_rounding(run_ours(unrolled, inputs, output_hidden_states=True, output_attentions=True),
                                     want, ulps=32)
    assert_trees_same_up_to_rounding(run_ours(remat, inputs, output_hidden_states=True, output_attentions=True),
                                     want, ulps=32)
    # remat is for gradients: they agree with the plain ones too.
    grad = jax.grad(lambda p, m: m(**inputs, params=p).loss, argnums=0)
    assert_trees_same_up_to_rounding(grad(remat.params, remat), grad(scanned.params, scanned), ulps=64)


def test_explicit_position_ids_match_hf(hf_case):
    """Generation-style positions (counting from the first real token) for a left-padded batch."""
    hf_model, path, _ = hf_case("LlamaForCausalLM", "gqa_headdim_tied")
    ours = tj.LlamaForCausalLM.from_pretrained(path)
    inputs = make_inputs("LlamaForCausalLM", CONFIGS["gqa_headdim_tied"], seed=12)
    inputs["position_ids"] = np.clip(np.cumsum(inputs["attention_mask"], axis=-1) - 1, 0, None)
    got = run_ours(ours, inputs, output_hidden_states=True, output_attentions=True)
    compare_with_hf(got, hf_model, inputs, output_hidden_states=True, output_attentions=True)
    # RoPE is relative: shifting each row's positions by a constant leaves its real tokens unchanged ...
    plain = run_ours(ours, {k: v for k, v in inputs.items() if k != "position_ids"},
                     output_hidden_states=True, output_attentions=True)
    real = inputs["attention_mask"].astype(bool)
    # (cos/sin of shifted angles round differently: equal up to rounding through 2 layers)
    assert_same_up_to_rounding(np.asarray(got.logits)[real], np.asarray(plain.logits)[real], ulps=256)
    # ... while stretched positions change them, as in HF.
    stretched = {**inputs, "position_ids": 3 * inputs["position_ids"]}
    got = run_ours(ours, stretched, output_hidden_states=True, output_attentions=True)
    compare_with_hf(got, hf_model, stretched, output_hidden_states=True, output_attentions=True)
    assert not np.allclose(np.asarray(got.logits)[real], np.asarray(plain.logits)[real], atol=1e-3)


# ----------------------------------------------------------------------------- compilation
def test_compiles_once_per_shape():

    # A config no other test uses, so the first call must compile.
    config = tj.LlamaConfig.from_dict({**CONFIGS["gqa_linear_tied"], "rms_norm_eps": 1.2345e-6})
    model = tj.LlamaForCausalLM(config, seed=0)
    first = make_inputs("LlamaForCausalLM", CONFIGS["gqa_linear_tied"], seed=1)
    second = make_inputs("LlamaForCausalLM", CONFIGS["gqa_linear_tied"], seed=2)
    with count_compiles("jit(run)") as compiles:
        a = jax.block_until_ready(model(**first))
        assert len(compiles) == 1
        b = jax.block_until_ready(model(**second))
        jax.block_until_ready(model(**first))
        assert len(compiles) == 1
        assert not np.allclose(np.asarray(a.logits), np.asarray(b.logits))
        assert float(a.loss) != float(b.loss)
        jax.block_until_ready(model(**{k: v[:, :9] for k, v in first.items()}))
        assert len(compiles) == 2  # a new shape compiles again


# ----------------------------------------------------------------------------- output containers
def test_output_container_indexes_like_hf(hf_case):
    hf_model, path, _ = hf_case("LlamaForCausalLM", "mha")
    ours = tj.LlamaForCausalLM.from_pretrained(path)
    inputs = make_inputs("LlamaForCausalLM", CONFIGS["mha"])
    no_labels = {k: v for k, v in inputs.items() if k != "labels"}

    out = run_ours(ours, no_labels)
    ref = compare_with_hf(out, hf_model, no_labels)
    assert out.loss is None and out.hidden_states is None and out.attentions is None
    assert list(out.keys()) == list(ref.keys()) == ["logits"]
    assert len(out) == 1 and len(out.to_tuple()) == len(ref.to_tuple()) == 1
    np.testing.assert_array_equal(np.asarray(out[0]), np.asarray(out["logits"]))
    np.testing.assert_array_equal(np.asarray(out.to_tuple()[0]), np.asarray(out.logits))
    assert "logits" in out and "loss" not in out
    with pytest.raises(KeyError):
        out["loss"]
    tup = ours(**no_labels, return_dict=False)
    assert isinstance(tup, tuple) and len(tup) == 1
    np.testing.assert_array_equal(np.asarray(tup[0]), np.asarray(out.logits))

    full = run_ours(ours, inputs, output_hidden_states=True, output_attentions=True)
    ref_full = compare_with_hf(full, hf_model, inputs, output_hidden_states=True, output_attentions=True)
    assert list(full.keys()) == ["loss", "logits", "hidden_states", "attentions"]
    assert len(full.to_tuple()) == len(ref_full.to_tuple()) == 4
    np.testing.assert_array_equal(np.asarray(full[0]), np.asarray(full["loss"]))  # out[0] is the loss now
    tup = ours(**inputs, output_hidden_states=True, output_attentions=True, return_dict=False)
    ref_tup = run_hf(hf_model, inputs, output_hidden_states=True, output_attentions=True, return_dict=False)
    exact_tup = run_hf_exact(hf_model, inputs, output_hidden_states=True, output_attentions=True, return_dict=False)
    assert isinstance(tup, tuple) and len(tup) == len(ref_tup) == 4
    assert len(tup[2]) == len(ref_tup[2]) == CONFIGS["mha"]["num_hidden_layers"] + 1
    assert_accurate(tup[1], ref_tup[1], exact_tup[1], name="logits")


def test_cache_with_one_position_per_row_matches_full_forward():
    """Rows of one KV cache at different positions (as a continuous-batching engine keeps them)."""
    config = tj.LlamaConfig.from_dict({**CONFIGS["gqa_linear_tied"]})
    model = tj.LlamaForCausalLM(config, seed=3)
    rng = np.random.RandomState(0)
    lengths, slots = np.array([5, 9]), 16
    rows = rng.randint(0, config.vocab_size, (2, 12))
    full = np.asarray(model(rows).logits)
    ids = np.where(np.arange(9)[None] < lengths[:, None], rows[:, :9], 0)  # right padded prompts
    cache = model.init_cache(config, 2, slots)
    valid = np.zeros((2, slots), np.int32)
    valid[:, :9] = 1
    logits, cache = model.decode(model.params, config, ids, np.tile(np.arange(9), (2, 1)), valid, cache, np.array([0, 0]))
    for b, n in enumerate(lengths):
        assert_same_up_to_rounding(np.asarray(logits)[b, :n], full[b, :n], ulps=64, name=f"prefill row {b}")
    valid = (np.arange(slots)[None] < lengths[:, None]).astype(np.int32)
    position = lengths.copy()
    for _ in range(3):
        valid[np.arange(2), position] = 1
        token = rows[np.arange(2), position][:, None]
        logits, cache = model.decode(model.params, config, token, position[:, None], valid, cache, position)
        assert_same_up_to_rounding(np.asarray(logits)[:, 0], full[np.arange(2), position], ulps=64, name="decode")
        position = position + 1
