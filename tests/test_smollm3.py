"""SmolLM3 specifics the shared family tests (tests/family_cases/smollm3.py) do not cover: which
layers are NoPE and which slide, config.json round trips against Hugging Face's, a config shaped like
HuggingFaceTB/SmolLM3-3B's (the text-generation pipeline's default model), the Auto classes, and
the errors for configs the family cannot run."""
import json

import numpy as np
import pytest
import transformers as hf

import transformers_jax as tj
from transformers_jax.models._decoder import per_layer_inputs

TINY = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=6, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64)
SLIDING, FULL = "sliding_attention", "full_attention"
BASE_KEYS = {"architectures", "problem_type", "id2label", "label2id"}  # written by every config of ours


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(no_rope_layer_interval=3),
    dict(no_rope_layer_interval=2, use_sliding_window=True, sliding_window=8),
    dict(no_rope_layer_interval=2, sliding_window=8),  # no use_sliding_window: nothing slides
    dict(no_rope_layers=[0, 1, 1, 0, 1, 1, 1], use_sliding_window=True, sliding_window=8),  # longer than needed, as HF allows
    dict(no_rope_layers=[1] * 6, layer_types=[SLIDING, FULL] * 3, sliding_window=8),
    dict(rope_theta=5e6, rope_scaling={"rope_type": "linear", "factor": 2.0}),  # legacy spelling
    dict(rope_scaling={"rope_type": "linear", "factor": 2.0}),  # legacy, HF's default base
], ids=["defaults", "interval3", "sliding", "window_unused", "explicit_long", "explicit_types", "legacy_rope",
        "legacy_rope_default_theta"])
def test_config_json_round_trip_matches_hf(tmp_path, kwargs):
    hf_config = hf.SmolLM3Config(**TINY, **kwargs)
    hf_config.save_pretrained(tmp_path / "hf")
    want = json.loads((tmp_path / "hf" / "config.json").read_text())
    ours = tj.SmolLM3Config.from_pretrained(tmp_path / "hf")
    assert ours.decoder_layer_types() == hf_config.layer_types
    assert ours.rope_layers().tolist() == hf_config.no_rope_layers[:6]
    assert ours.rope_parameters == hf_config.rope_parameters
    inputs = per_layer_inputs(ours)
    assert inputs["rope"].tolist() == hf_config.no_rope_layers[:6]
    window = [hf_config.sliding_window if t == SLIDING else 2**30 for t in hf_config.layer_types]
    assert inputs["window"].tolist() == window
    ours.save_pretrained(tmp_path / "ours")
    got = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert set(got) - set(want) <= BASE_KEYS  # no head_dim: HF's SmolLM3 config has none
    assert {k: got.get(k) for k in want} == want
    assert tj.SmolLM3Config.from_pretrained(tmp_path / "ours") == ours


def test_derived_nope_and_sliding_layers():
    config = tj.SmolLM3Config(**dict(TINY, num_hidden_layers=8))
    assert config.no_rope_layers == [1, 1, 1, 0, 1, 1, 1, 0]  # every 4th layer is NoPE by default
    assert config.decoder_layer_types() == [FULL] * 8
    config = tj.SmolLM3Config(**dict(TINY, num_hidden_layers=8), use_sliding_window=True, sliding_window=16)
    assert config.decoder_layer_types() == [FULL, FULL, FULL, SLIDING] * 2  # the NoPE layers slide
    assert tj.SmolLM3Config(**TINY).rope_parameters == {"rope_type": "default", "rope_theta": 2_000_000.0}
    # Other families: every layer uses RoPE.
    assert per_layer_inputs(tj.LlamaConfig(**TINY))["rope"].tolist() == [1] * 6


# config.json of HuggingFaceTB/SmolLM3-3B as published (from memory of the hub page: rope_theta 5e6, 65536
# positions, a leftover max_window_layers, every 4th layer NoPE, untouched sliding window), shrunk only
# in the sizes so that a model can be built from it here.
SMOLLM3_3B = {
    "architectures": ["SmolLM3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": None,
    "eos_token_id": 128012, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 11008, "layer_types": [FULL] * 36, "max_position_embeddings": 65536,
    "max_window_layers": 28, "mlp_bias": False, "model_type": "smollm3", "no_rope_layer_interval": 4,
    "no_rope_layers": [int((i + 1) % 4 != 0) for i in range(36)], "num_attention_heads": 16,
    "num_hidden_layers": 36, "num_key_value_heads": 4, "pad_token_id": 128004, "pretraining_tp": 2,
    "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 5000000.0, "sliding_window": None,
    "torch_dtype": "bfloat16", "transformers_version": "4.54.0.dev0", "use_cache": False,
    "use_sliding_window": False, "vocab_size": 128256,
}


def test_smollm3_3b_config_reads_as_hf_reads_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM3_3B))
    ours = tj.AutoConfig.from_pretrained(tmp_path)
    theirs = hf.AutoConfig.from_pretrained(tmp_path)
    assert type(ours) is tj.SmolLM3Config
    assert ours.rope_parameters == theirs.rope_parameters == {"rope_type": "default", "rope_theta": 5e6}
    assert ours.rope_layers().tolist() == theirs.no_rope_layers and ours.decoder_layer_types() == theirs.layer_types
    assert ours.head_dim == 128 and ours.num_key_value_heads == 4 and ours.tie_word_embeddings is True
    assert ours.eos_token_id == 128012 and ours.bos_token_id is None and ours.pad_token_id == 128004
    ours.save_pretrained(tmp_path / "ours")
    written = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert written["max_window_layers"] == 28 and written["use_cache"] is False  # kept, written back
    again = hf.AutoConfig.from_pretrained(tmp_path / "ours")
    ignore = {"transformers_version": None, "_name_or_path": None}
    assert again.to_dict() | ignore == theirs.to_dict() | ignore


def test_auto_classes_pick_smollm3(tmp_path):
    small = dict(SMOLLM3_3B, hidden_size=32, intermediate_size=48, num_attention_heads=4, num_key_value_heads=2,
                 num_hidden_layers=4, layer_types=[FULL] * 4, no_rope_layers=[1, 1, 1, 0], vocab_size=101,
                 eos_token_id=2, pad_token_id=0)
    hf_config = hf.SmolLM3Config(**{k: v for k, v in small.items() if k not in ("model_type", "architectures")})
    hf.SmolLM3ForCausalLM(hf_config).save_pretrained(tmp_path)
    model = tj.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(model).__name__ == "SmolLM3ForCausalLM" and isinstance(model, tj.SmolLM3ForCausalLM)
    assert type(tj.AutoModel.from_config(model.config)).__name__ == "SmolLM3Model"
    for auto, name in ((tj.AutoModelForSequenceClassification, "SmolLM3ForSequenceClassification"),
                       (tj.AutoModelForTokenClassification, "SmolLM3ForTokenClassification"),
                       (tj.AutoModelForQuestionAnswering, "SmolLM3ForQuestionAnswering")):
        assert type(auto.from_config(model.config)).__name__ == name
    logits = model(input_ids=np.array([[5, 6, 7]])).logits
    assert logits.shape == (1, 3, 101) and np.isfinite(np.asarray(logits)).all()


@pytest.mark.parametrize("kwargs,message", [
    (dict(no_rope_layers=[1, 0, 1]), r"no_rope_layers must hold a 0 \(NoPE\) or 1 \(RoPE\) for each of the 6 layers"),
    (dict(no_rope_layers=[1, 2, 1, 1, 1, 1]), r"no_rope_layers must hold a 0 \(NoPE\) or 1 \(RoPE\)"),
    (dict(no_rope_layer_interval=0), r"no_rope_layer_interval=0 must be >= 1"),
    (dict(layer_types=[SLIDING] + [FULL] * 5), r"layer_types has sliding_attention layers but sliding_window is None"),
    (dict(layer_types=["chunked_attention"] + [FULL] * 5, sliding_window=4),
     r"layer_types has unsupported entries \['chunked_attention'\]"),
    (dict(layer_types=[FULL] * 5), r"layer_types has 5 entries for 6 layers"),
    (dict(use_sliding_window=True, sliding_window=65), r"sliding_window=65 is larger than max_position_embeddings=64"),
    (dict(rope_parameters={"rope_type": "nonsense"}), r"nonsense"),
])
def test_unsupported_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tj.SmolLM3Config(**TINY, **kwargs)


def test_smollm3_3b_checkpoint_layout_matches_hf():
    """The full-size model's checkpoint names and shapes (HF's built on the meta device, so nothing is
    allocated): 3.08B parameters, lm_head tied to the embeddings and left out of the checkpoint."""
    import torch

    config = tj.SmolLM3Config.from_dict(SMOLLM3_3B)
    ours = {name: key.shape for name, key in tj.SmolLM3ForCausalLM._torch_keys(config).items()}
    hf_config = hf.SmolLM3Config(**{k: v for k, v in SMOLLM3_3B.items() if k not in ("model_type", "architectures")})
    with torch.device("meta"):
        theirs = hf.SmolLM3ForCausalLM(hf_config)
    want = {name: tuple(p.shape) for name, p in theirs.state_dict().items() if name != "lm_head.weight"}
    assert ours == want
    assert tj.SmolLM3ForCausalLM.tied_weights(config) == {"lm_head.weight": "model.embed_tokens.weight"}
    assert round(sum(int(np.prod(s)) for s in ours.values()) / 1e9, 2) == 3.08
