"""GPT-2 beyond the shared family tests (tests/family_cases/gpt2.py): old-style checkpoints, a
mis-shaped fused ``c_attn``, the config's HF names, ``reorder_and_upcast_attn``, the multiple-choice
summary's settings, and FLOPs / memory estimates against a hand count of the architecture."""
import copy
import json
import logging

import numpy as np
import pytest
import torch
import transformers as hf
from safetensors.numpy import save_file

import transformers_jax as tj
from parity import assert_outputs_match, compare_with_hf, perturb_torch, run_hf, run_hf_exact, run_ours, to_np
from sharding.memory import estimate_memory
from train.flops import flops_per_token

CONFIG = dict(vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=64, pad_token_id=0, bos_token_id=1,
              eos_token_id=2)
B, T = 2, 12


def hf_model(cls=hf.GPT2LMHeadModel, **overrides):
    torch.manual_seed(0)
    model = perturb_torch(cls(hf.GPT2Config(**CONFIG, **overrides)), seed=1).eval()
    model.set_attn_implementation("eager")
    return model


def batch(seed=0, shape=(B, T)):
    rng = np.random.RandomState(seed)
    ids = rng.randint(3, CONFIG["vocab_size"], shape)
    mask = np.ones(shape, np.int64)
    mask[..., 0, :3] = 0  # some left padding
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask}


def write_checkpoint(directory, config: hf.GPT2Config, state: dict):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(config.to_json_string())
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(directory / "model.safetensors"))


def old_style_state(model) -> dict:
    """The layout of the original GPT-2 checkpoints: no ``transformer.`` prefix, no ``lm_head``, and
    each layer's causal-mask buffers ``attn.bias`` [1, 1, P, P] and ``attn.masked_bias``."""
    state = {k[len("transformer."):]: to_np(v) for k, v in model.state_dict().items() if k.startswith("transformer.")}
    positions = model.config.n_positions
    for layer in range(model.config.n_layer):
        state[f"h.{layer}.attn.bias"] = np.tril(np.ones((positions, positions), np.float32))[None, None]
        state[f"h.{layer}.attn.masked_bias"] = np.asarray(-1e4, np.float32)
    return state


@pytest.mark.parametrize("class_name", ["GPT2LMHeadModel", "GPT2Model", "GPT2DoubleHeadsModel"])
def test_old_style_checkpoint_loads(class_name, tmp_path, caplog):
    theirs = hf_model()
    state = old_style_state(theirs)
    assert not any(k.startswith(("transformer.", "lm_head")) for k in state)
    write_checkpoint(tmp_path, theirs.config, state)
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        ours = getattr(tj, class_name).from_pretrained(tmp_path)
    records = [r.getMessage() for r in caplog.records if r.name.startswith("transformers_jax")]
    if class_name == "GPT2DoubleHeadsModel":  # the multiple-choice head is new, and reported
        assert len(records) == 1 and "multiple_choice_head.summary.weight" in records[0], records
    else:
        assert records == []
    inputs = batch()
    if class_name == "GPT2Model":
        compare_with_hf(run_ours(ours, inputs), theirs.transformer, inputs)
    else:
        got = run_ours(ours, inputs)
        want = run_hf(theirs, inputs)
        exact = run_hf_exact(theirs, inputs)
        assert_outputs_match({"logits": got.logits}, {"logits": want.logits}, {"logits": exact.logits})


def test_wrong_fused_c_attn_shape_is_one_clear_error(tmp_path):
    theirs = hf_model()
    state = {k: to_np(v) for k, v in theirs.state_dict().items() if k != "lm_head.weight"}
    key = "transformer.h.1.attn.c_attn.weight"
    assert state[key].shape == (32, 96)  # Conv1D: [in, out], q | k | v along the outputs
    state[key] = state[key][:, :64]
    write_checkpoint(tmp_path, theirs.config, state)
    with pytest.raises(ValueError) as err:
        tj.GPT2LMHeadModel.from_pretrained(tmp_path)
    message = str(err.value)
    assert message.startswith(f"fused weight {key!r}")
    assert "has shape (32, 64)" in message and "expects (32, 96)" in message
    assert "transformer.layers.self_attn.q_proj (32, 32)" in message and "v_proj (32, 32)" in message


def test_old_style_buffers_only_are_ignored_not_weights(tmp_path):
    """``attn.bias`` is ignored as a buffer; ``attn.c_attn.bias`` (a weight) must still be present."""
    theirs = hf_model()
    state = old_style_state(theirs)
    del state["h.0.attn.c_attn.bias"]
    write_checkpoint(tmp_path, theirs.config, state)
    with pytest.raises(ValueError, match=r"missing weight 'transformer\.h\.0\.attn\.c_attn\.bias'"):
        tj.GPT2LMHeadModel.from_pretrained(tmp_path)


def test_config_round_trip_keeps_hf_names(tmp_path):
    hf.GPT2Config(**CONFIG, n_inner=48, scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True,
                  summary_activation="tanh").save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    config = tj.GPT2Config.from_pretrained(tmp_path)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.max_position_embeddings) == (32, 2, 4, 64)
    assert (config.intermediate_size, config.head_dim, config.num_key_value_heads, config.hidden_act,
            config.norm_eps) == (48, 8, 4, "gelu_new", 1e-5)
    ours = config.to_dict()
    for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings",
                 "intermediate_size", "head_dim", "num_key_value_heads", "hidden_act"):
        assert name not in ours
    for key, value in written.items():  # every key HF wrote comes back with its value
        assert ours[key] == value, key
    assert tj.GPT2Config.from_dict(ours) == config
    again = hf.GPT2Config.from_dict(ours)
    assert (again.n_embd, again.n_inner, again.scale_attn_by_inverse_layer_idx) == (32, 48, True)
    # the decoder's names are aliases on the way in too, and must not contradict the stored name
    assert tj.GPT2Config.from_dict(ours, hidden_size=64).n_embd == 64
    with pytest.raises(ValueError, match="n_embd=32 and .*disagree|hidden_size=64 and n_embd=32 disagree"):
        tj.GPT2Config.from_dict({**ours, "hidden_size": 64})


def test_config_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match=r"n_embd \(30\) must be a multiple of n_head \(4\)"):
        tj.GPT2Config(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="add_cross_attention=True"):
        tj.GPT2Config(add_cross_attention=True)
    with pytest.raises(ValueError, match="summary_type='attn'"):
        tj.GPT2Config(summary_type="attn")


def test_attention_scales_per_layer():
    config = tj.GPT2Config(n_embd=32, n_head=4, n_layer=3, scale_attn_by_inverse_layer_idx=True)
    np.testing.assert_allclose(config.attention_scales(), [8**-0.5, 8**-0.5 / 2, 8**-0.5 / 3], rtol=1e-7)
    config = tj.GPT2Config(n_embd=32, n_head=4, n_layer=2, scale_attn_weights=False)
    np.testing.assert_array_equal(config.attention_scales(), [1.0, 1.0])


@pytest.mark.parametrize("scale_attn_weights", [True, False])
def test_reorder_and_upcast_attn_matches_hf(scale_attn_weights, tmp_path):
    """HF computes these scores on another path (scaled inside ``baddbmm``, upcast), which refuses to run
    in float64; the function is the same, so the exact reference is the float64 run of the usual path."""
    theirs = hf_model(reorder_and_upcast_attn=True, scale_attn_by_inverse_layer_idx=True,
                      scale_attn_weights=scale_attn_weights)
    theirs.save_pretrained(tmp_path)
    ours = tj.GPT2LMHeadModel.from_pretrained(tmp_path)
    assert ours.config.reorder_and_upcast_attn
    usual = copy.deepcopy(theirs)
    for module in usual.modules():
        if hasattr(module, "reorder_and_upcast_attn"):
            module.reorder_and_upcast_attn = False
    inputs = batch(seed=1)
    flags = dict(output_hidden_states=True, output_attentions=True)
    assert_outputs_match(run_ours(ours, inputs, **flags), run_hf(theirs, inputs, **flags),
                         run_hf_exact(usual, inputs, **flags))


@pytest.mark.parametrize("summary,mc_shape", [
    (dict(summary_type="cls_index"), (B, 3)),  # mc_token_ids not given: the last token
    (dict(summary_type="cls_index", summary_use_proj=False), (B, 3, 32)),  # no projection at all
    # HF's last/first/mean index axis 1: for [B, C, T] inputs that is the choices axis (mc_logits [B, T])
    (dict(summary_type="last", summary_activation="tanh"), (B, T)),
    (dict(summary_type="first"), (B, T)),
    (dict(summary_type="mean", summary_proj_to_labels=False), (B, T, 32)),  # projection to hidden_size
], ids=["cls_default", "cls_no_proj", "last_tanh", "first", "mean_to_hidden"])
def test_double_heads_summary_settings_match_hf(summary, mc_shape, tmp_path):
    theirs = hf_model(hf.GPT2DoubleHeadsModel, **summary)
    theirs.save_pretrained(tmp_path)
    ours = tj.GPT2DoubleHeadsModel.from_pretrained(tmp_path)
    assert ours.config.num_labels == 1 == theirs.config.num_labels
    inputs = batch(seed=2, shape=(B, 3, T))
    want = compare_with_hf(run_ours(ours, inputs), theirs, inputs)
    assert tuple(want.mc_logits.shape) == mc_shape


@pytest.mark.parametrize("summary_type", ["last", "mean", "cls_index"])
def test_double_heads_on_flat_rows_match_hf(summary_type, tmp_path):
    """[B, T] inputs (``mc_token_ids`` [B]): every summary pools the tokens, and mc_logits [B] are
    the B choices of one question (HF's loss views them as [1, B]), so ``mc_labels`` is [1]."""
    theirs = hf_model(hf.GPT2DoubleHeadsModel, summary_type=summary_type)
    theirs.save_pretrained(tmp_path)
    ours = tj.GPT2DoubleHeadsModel.from_pretrained(tmp_path)
    inputs = {**batch(seed=3), "mc_token_ids": np.array([T - 1, 5]), "labels": batch(seed=3)["input_ids"],
              "mc_labels": np.array([1])}
    want = compare_with_hf(run_ours(ours, inputs, output_hidden_states=True), theirs, inputs,
                           output_hidden_states=True)
    assert tuple(want.mc_logits.shape) == (B,)


# ----------------------------------------------------------------------------- FLOPs and memory, by hand
def gpt2_matmul_weights(d, layers, inner, vocab):
    """Per layer: c_attn d x 3d, attn.c_proj d x d, mlp.c_fc d x f, mlp.c_proj f x d (12 d^2 when
    f = 4d); plus the LM head d x V (tied or not, it multiplies every token)."""
    return layers * (3 * d * d + d * d + 2 * d * inner) + d * vocab


@pytest.mark.parametrize("tied", [True, False])
def test_flops_per_token_by_hand(tied):
    d, layers, heads, vocab, seq = 64, 3, 4, 500, 128
    config = tj.GPT2Config(vocab_size=vocab, n_embd=d, n_layer=layers, n_head=heads, n_positions=256,
                           tie_word_embeddings=tied)
    n = gpt2_matmul_weights(d, layers, 4 * d, vocab)
    assert n == 12 * layers * d * d + d * vocab
    attention = 12 * layers * seq * d  # Q K^T and P V: 2 * seq * d each forward, x3 with backward
    assert flops_per_token(config, seq) == 6 * n + attention
    assert flops_per_token(config, seq, lm_head=False) == 6 * (n - d * vocab) + attention
    wide = config.replace(n_inner=100)
    assert flops_per_token(wide, seq) == 6 * gpt2_matmul_weights(d, layers, 100, vocab) + attention


def test_memory_estimate_by_hand():
    d, layers, heads, vocab, positions = 64, 3, 4, 500, 256
    config = tj.GPT2Config(vocab_size=vocab, n_embd=d, n_layer=layers, n_head=heads, n_positions=positions)
    specs = tj.GPT2LMHeadModel.param_specs(config)
    per_layer = (2 * d  # ln_1
                 + 3 * d * d + 3 * d  # c_attn
                 + d * d + d  # attn.c_proj
                 + 2 * d  # ln_2
                 + 4 * d * d + 4 * d  # mlp.c_fc
                 + 4 * d * d + d)  # mlp.c_proj
    assert per_layer == 12 * d * d + 13 * d
    scalars = vocab * d + positions * d + layers * per_layer + 2 * d  # wte, wpe, h, ln_f; lm_head is wte
    assert tj.GPT2LMHeadModel(config).num_parameters() == scalars
    b, t = 2, 32
    est = estimate_memory(config, specs, batch_per_device=b, seq_len=t)
    assert (est.params, est.gradients, est.optimizer_state) == (4 * scalars, 4 * scalars, 8 * scalars)
    one_layer = b * t * (8 * d + 4 * (4 * d)) * 4 + b * heads * t * t * 4
    assert est.activations == layers * one_layer
    assert est.logits == 2 * b * t * vocab * 4
