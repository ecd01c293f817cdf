"""Gemma, Gemma 2 and Gemma 3 text: what the shared family tests (family_cases/gemma*.py) do not
cover: config.json round trips with Hugging Face, older config spellings, HF's quirks, refused
settings, and initialisation of the ``1 + weight`` norms."""
import json
import logging

import jax
import numpy as np
import pytest
import torch
import transformers as hf

import transformers_jax as tj
from family_cases import gemma, gemma2, gemma3
from parity import compare_with_hf, perturb_torch, run_ours

FAMILIES = {"gemma": (tj.GemmaConfig, hf.GemmaConfig, gemma.BASE),
            "gemma2": (tj.Gemma2Config, hf.Gemma2Config, gemma2.BASE),
            "gemma3_text": (tj.Gemma3TextConfig, hf.Gemma3TextConfig, gemma3.BASE)}
LEGACY_GEMMA3 = dict(gemma3.BASE, rope_parameters=None, rope_theta=500.0, rope_local_base_freq=20.0,
                     rope_scaling={"rope_type": "linear", "factor": 2.0}, sliding_window_pattern=2)


def _json(config) -> dict:
    return json.loads(config.to_json_string())


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_hf_config_json_round_trip_keeps_every_key(model_type, tmp_path):
    ours_cls, hf_cls, values = FAMILIES[model_type]
    hf_cls(**values).save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    config = tj.AutoConfig.from_pretrained(tmp_path)
    assert type(config) is ours_cls and config.model_type == model_type
    config.save_pretrained(tmp_path / "ours")
    again = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert {k: again.get(k) for k in written} == written
    # Nothing of the shared decoder's (mlp_bias, an unset hidden_act) is added; only the generic keys
    # every config of ours writes (HF leaves them out at their defaults).
    assert set(again) - set(written) <= {"architectures", "id2label", "label2id", "problem_type"}
    theirs = hf_cls.from_pretrained(tmp_path / "ours")
    assert theirs.to_dict() == hf_cls.from_pretrained(tmp_path).to_dict()


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_defaults_are_hf_defaults(model_type):
    ours_cls, hf_cls, _ = FAMILIES[model_type]
    theirs = hf_cls().to_dict()
    ours = _json(ours_cls())
    assert set(ours) <= set(theirs)
    assert {k: v for k, v in ours.items() if k not in ("id2label",)} == {k: theirs[k] for k in ours if k != "id2label"}


def test_gemma3_legacy_rope_spellings_read_as_hf_reads_them_and_written_in_hf5_form():
    ours = tj.Gemma3TextConfig.from_dict(LEGACY_GEMMA3)
    theirs = hf.Gemma3TextConfig(**LEGACY_GEMMA3)
    assert ours.rope_parameters == theirs.rope_parameters == {
        "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 20.0}}
    assert ours.layer_types == theirs.layer_types == ["sliding_attention", "full_attention"] * 2
    written = _json(ours)
    assert not {"rope_theta", "rope_local_base_freq", "rope_scaling"} & set(written)
    assert written["sliding_window_pattern"] == 2  # kept, as HF keeps it
    assert hf.Gemma3TextConfig(**written).rope_parameters == theirs.rope_parameters


def test_gemma3_default_pattern_is_five_local_layers_to_one_global():
    config = tj.Gemma3TextConfig(num_hidden_layers=7)
    assert config.layer_types == hf.Gemma3TextConfig(num_hidden_layers=7).layer_types
    assert config.layer_types == ["sliding_attention"] * 5 + ["full_attention", "sliding_attention"]
    assert tj.Gemma2Config(num_hidden_layers=3).layer_types == ["sliding_attention", "full_attention",
                                                                "sliding_attention"]


def test_gemma3_legacy_rope_scaling_with_type_key_is_linear():
    """``{"type": "linear"}`` (the older key) is read as linear scaling. Hugging Face 5 keeps
    ``rope_type: default`` next to the copied ``type`` key and so drops the scaling; we do not."""
    config = tj.Gemma3TextConfig.from_dict(dict(LEGACY_GEMMA3, rope_scaling={"type": "linear", "factor": 8.0}))
    assert config.rope_parameters["full_attention"] == {"rope_type": "linear", "factor": 8.0, "rope_theta": 500.0}


def test_gemma3_legacy_config_gives_hf_outputs(tmp_path):
    """A checkpoint whose config.json has the older RoPE spelling loads with HF's numbers."""
    torch.manual_seed(0)
    model = perturb_torch(hf.Gemma3ForCausalLM(hf.Gemma3TextConfig(**LEGACY_GEMMA3)), seed=1).eval()
    model.set_attn_implementation("eager")
    model.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(dict(LEGACY_GEMMA3, model_type="gemma3_text",
                                                          architectures=["Gemma3ForCausalLM"])))
    ours = tj.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(ours) is tj.Gemma3ForCausalLM
    rng = np.random.RandomState(0)
    inputs = {"input_ids": rng.randint(3, 101, (2, 12)), "attention_mask": np.ones((2, 12), np.int64)}
    compare_with_hf(run_ours(ours, inputs), model, inputs)


def test_gemma3_flat_rope_parameters_are_refused():
    with pytest.raises(ValueError, match="rope_parameters must map layer types"):
        tj.Gemma3TextConfig(rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


def test_gemma_legacy_gelu_means_tanh(caplog):
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        config = tj.GemmaConfig.from_dict(dict(gemma.BASE, hidden_act="gelu"))
    assert config.hidden_act == hf.GemmaConfig(**dict(gemma.BASE, hidden_act="gelu")).hidden_act == "gelu_pytorch_tanh"
    assert "tanh approximation" in caplog.text


def test_gemma2_reads_hidden_activation_and_keeps_hidden_act():
    values = dict(gemma2.BASE, hidden_act="silu", hidden_activation="gelu_pytorch_tanh")
    config = tj.Gemma2Config.from_dict(values)
    assert config.mlp_activation() == "gelu_pytorch_tanh"
    assert _json(config)["hidden_act"] == "silu"  # written back unchanged, unused (as in HF)
    assert "hidden_act" not in _json(tj.Gemma2Config.from_dict(gemma2.BASE))


@pytest.mark.parametrize("config_class", [tj.GemmaConfig, tj.Gemma2Config, tj.Gemma3TextConfig])
def test_refused_settings(config_class):
    with pytest.raises(ValueError, match="use_bidirectional_attention=True .* is not supported"):
        config_class(use_bidirectional_attention=True)
    with pytest.raises(ValueError, match="mlp_bias must be False"):
        config_class(mlp_bias=True)


def test_new_models_start_with_identity_norms():
    """Gemma's norms multiply by ``1 + weight``: a fresh model's weights are zero, as HF initialises them."""
    config = tj.Gemma3TextConfig.from_dict(gemma3.BASE)
    params = tj.Gemma3ForCausalLM(config, seed=0).params
    norms = {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params)
             if "norm" in jax.tree_util.keystr(path)}
    assert len(norms) == 7  # input, post-attention, pre/post feed-forward, q, k, final
    assert all(not np.any(np.asarray(leaf)) for leaf in norms.values())


def test_auto_classes_pick_hf_named_heads():
    config = tj.Gemma3TextConfig.from_dict(gemma3.BASE)
    assert type(tj.AutoModel.from_config(config)) is tj.Gemma3TextModel
    assert type(tj.AutoModelForCausalLM.from_config(config)) is tj.Gemma3ForCausalLM
    assert type(tj.AutoModelForSequenceClassification.from_config(config)) is tj.Gemma3TextForSequenceClassification
    assert type(tj.AutoModelForTokenClassification.from_config(tj.Gemma2Config.from_dict(gemma2.BASE))) \
        is tj.Gemma2ForTokenClassification
    assert not hasattr(tj, "Gemma3ForTokenClassification") and not hasattr(tj, "GemmaForQuestionAnswering")


# ----------------------------------------------------------------------------- FLOPs and memory, by hand
def test_gemma2_flops_and_memory_by_hand():
    """Gemma 2 counted from the architecture: per layer q [d, H*hd], k and v [d, K*hd], o [H*hd, d],
    gate/up [d, f], down [f, d]; the tied head (the embedding table multiplies every token). Norms
    per layer: input, post-attention, pre- and post-feed-forward (d each); the final norm."""
    from sharding.memory import estimate_memory
    from train.flops import flops_per_token

    d, layers, heads, kv, hd, f, vocab, seq = 48, 4, 4, 2, 16, 96, 300, 64
    config = tj.Gemma2Config(vocab_size=vocab, hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                             num_key_value_heads=kv, head_dim=hd, intermediate_size=f, max_position_embeddings=128,
                             sliding_window=32)
    per_layer = d * heads * hd + 2 * d * kv * hd + heads * hd * d + 3 * d * f
    matmuls = layers * per_layer + d * vocab
    attention = 12 * layers * seq * heads * hd
    assert flops_per_token(config, seq) == 6 * matmuls + attention
    assert flops_per_token(config, seq, lm_head=False) == 6 * (matmuls - d * vocab) + attention
    scalars = vocab * d + layers * (per_layer + 4 * d) + d  # embeddings, layers with their four norms, final norm
    assert tj.Gemma2ForCausalLM(config).num_parameters() == scalars
    b, t = 2, 32
    est = estimate_memory(config, tj.Gemma2ForCausalLM.param_specs(config), batch_per_device=b, seq_len=t)
    assert (est.params, est.gradients, est.optimizer_state) == (4 * scalars, 4 * scalars, 8 * scalars)
    assert est.logits == 2 * b * t * vocab * 4
