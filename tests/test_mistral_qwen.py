"""Mistral, Qwen2 and Qwen3 specifics the shared family tests do not cover: the sliding-window
error, which layers slide, and config.json round trips key for key against Hugging Face's."""
import json

import pytest
import transformers as hf

import transformers_jax as tj

TINY = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64)
SLIDING, FULL = "sliding_attention", "full_attention"
BASE_KEYS = {"architectures", "problem_type", "id2label", "label2id"}  # written by every config of ours


def test_mistral_window_larger_than_positions_is_refused():
    with pytest.raises(ValueError, match=r"MistralConfig: sliding_window=65 is larger than max_position_embeddings=64"):
        tj.MistralConfig(**TINY, sliding_window=65)
    with pytest.raises(ValueError, match="sliding_window=4096 is larger than max_position_embeddings=64"):
        tj.MistralConfig.from_dict(TINY)  # HF's default window with a short context
    assert tj.MistralConfig(**TINY, sliding_window=64).decoder_layer_types() == [SLIDING] * 3
    assert tj.MistralConfig(**TINY, sliding_window=None).decoder_layer_types() == [FULL] * 3


def test_qwen_window_only_counts_when_in_use():
    with pytest.raises(ValueError, match="Qwen2Config: sliding_window=65 is larger than max_position_embeddings=64"):
        tj.Qwen2Config(**TINY, use_sliding_window=True, sliding_window=65, max_window_layers=1)
    # Without use_sliding_window HF drops the window (4096 by default): no layer slides, nothing to refuse.
    config = tj.Qwen2Config(**TINY)
    assert config.sliding_window is None and config.decoder_layer_types() == [FULL] * 3


@pytest.mark.parametrize("hf_cls,kwargs,types", [
    (hf.Qwen2Config, dict(use_sliding_window=True, sliding_window=6, max_window_layers=1), [FULL, SLIDING, SLIDING]),
    (hf.Qwen2Config, dict(use_sliding_window=True, sliding_window=6, layer_types=[SLIDING, FULL, SLIDING]),
     [SLIDING, FULL, SLIDING]),
    (hf.Qwen2Config, dict(sliding_window=6, max_window_layers=1), [FULL] * 3),
    (hf.Qwen3Config, dict(use_sliding_window=True, sliding_window=6, max_window_layers=2, head_dim=12,
                          attention_bias=True), [FULL, FULL, SLIDING]),
    (hf.Qwen3Config, dict(), [FULL] * 3),
    (hf.MistralConfig, dict(sliding_window=6), [SLIDING] * 3),
    (hf.MistralConfig, dict(sliding_window=None, head_dim=16), [FULL] * 3),
], ids=["qwen2-max_window_layers", "qwen2-layer_types", "qwen2-no_window", "qwen3-window-bias", "qwen3-defaults",
        "mistral-window", "mistral-no_window"])
def test_config_json_round_trip_matches_hf(tmp_path, hf_cls, kwargs, types):
    hf_config = hf_cls(**TINY, **kwargs)
    hf_config.save_pretrained(tmp_path / "hf")
    want = json.loads((tmp_path / "hf" / "config.json").read_text())
    ours = getattr(tj, hf_cls.__name__).from_pretrained(tmp_path / "hf")
    assert ours.decoder_layer_types() == types
    if hasattr(hf_config, "layer_types"):
        assert hf_config.layer_types == types
    ours.save_pretrained(tmp_path / "ours")
    got = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert set(got) - set(want) <= BASE_KEYS  # no head_dim/attention_bias/mlp_bias where HF's config has none
    assert {k: got.get(k) for k in want} == want
    assert getattr(tj, hf_cls.__name__).from_pretrained(tmp_path / "ours") == ours
    for name in ("num_key_value_heads", "sliding_window", "max_position_embeddings"):
        assert getattr(ours, name) == getattr(hf_config, name), name
    assert ours.head_dim == getattr(hf_config, "head_dim", 32 // 4)  # HF's Qwen2 config has none: hidden / heads


def test_qwen2_biases_and_qwen3_head_dim_in_param_keys():
    config = tj.Qwen2Config(**TINY)
    attention = tj.Qwen2Model.param_specs(config)["layers"]["self_attn"]
    assert [name for name in ("q_proj", "k_proj", "v_proj", "o_proj") if "bias" in attention[name]] == [
        "q_proj", "k_proj", "v_proj"]
    config = tj.Qwen3Config(**TINY, head_dim=12)
    attention = tj.Qwen3Model.param_specs(config)["layers"]["self_attn"]
    assert attention["q_proj"]["kernel"].shape == (3, 32, 4 * 12) and attention["q_norm"]["scale"].shape == (3, 12)
    assert not any("bias" in attention[name] for name in ("q_proj", "o_proj"))


def test_mistral_ignores_layer_types_as_hf_does(tmp_path):
    """HF's Mistral slides in every layer whatever ``layer_types`` says (it warns to use Ministral);
    the key is kept and written back."""
    config = tj.MistralConfig.from_dict(dict(TINY, sliding_window=6, layer_types=[FULL] * 3))
    assert config.decoder_layer_types() == [SLIDING] * 3
    assert config.to_dict()["layer_types"] == [FULL] * 3


@pytest.mark.parametrize("name", ["MistralForQuestionAnswering", "Qwen2ForQuestionAnswering",
                                  "Qwen3ForQuestionAnswering", "Qwen2ForCausalLM"])
def test_base_model_prefix_as_hf(name):
    assert getattr(tj, name).base_model_prefix == getattr(hf, name).base_model_prefix
