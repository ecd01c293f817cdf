"""DeBERTa-v2 beyond the shared encoder suite (tests/encoder_cases/deberta_v2.py): the log-bucket
table against Hugging Face's, DeBERTa's own sequence loss (negative labels ignored, soft labels),
checkpoints that hold an unused position table, the Auto classes, and the options refused."""
import numpy as np
import pytest
import torch
import transformers as hf
from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

import transformers_jax as tj
from encoder_cases.deberta_v2 import V2, V3
from parity import compare_with_hf, perturb_torch, run_ours
from transformers_jax import layers as L


@pytest.mark.parametrize("buckets,max_position", [(-1, 5), (-1, 512), (4, 10), (8, 10), (6, 40), (64, 128), (256, 512)])
@pytest.mark.parametrize("length", [1, 12, 300])
def test_relative_positions_match_hf(buckets, max_position, length):
    states = torch.zeros(1, length, 2)
    want = build_relative_position(states, states, bucket_size=buckets, max_position=max_position)[0].numpy()
    got = np.asarray(L.relative_position_map(length, length, buckets, max_position))
    np.testing.assert_array_equal(got, want)


def _hf_model(hf_cls, config: dict, path, **overrides):
    torch.manual_seed(0)
    model = perturb_torch(hf_cls(hf.DebertaV2Config(**config, **overrides)), seed=1).eval()
    model.set_attn_implementation("eager")
    model.save_pretrained(path)
    return model


def test_sequence_loss_is_debertas(tmp_path):
    """HF DeBERTa's loss with problem_type unset: rows with a negative label are left out; soft
    (float [B, C]) labels give the soft cross entropy; all labels negative give 0."""
    model = _hf_model(hf.DebertaV2ForSequenceClassification, V3, tmp_path, num_labels=3)
    ours = tj.DebertaV2ForSequenceClassification.from_pretrained(tmp_path)
    rng = np.random.RandomState(0)
    ids = rng.randint(3, 99, (4, 12))
    soft = rng.rand(4, 3).astype(np.float32)
    for labels in (np.array([2, -1, 0, -5]), soft / soft.sum(-1, keepdims=True)):
        inputs = {"input_ids": ids, "labels": labels}
        compare_with_hf(run_ours(ours, inputs), model, inputs)
    out = ours(input_ids=ids, labels=np.array([-1, -1, -1, -1]))
    assert float(out.loss) == 0.0


def test_unused_position_table_in_checkpoint_is_ignored(tmp_path):
    """A model without position_biased_input ignores ``embeddings.position_embeddings`` in a
    checkpoint (HF's _keys_to_ignore_on_load_unexpected); with it, the table is required."""
    from safetensors.numpy import load_file, save_file

    model = _hf_model(hf.DebertaV2Model, V3, tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["embeddings.position_embeddings.weight"] = np.zeros((V3["max_position_embeddings"], 32), np.float32)
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    ours = tj.DebertaV2Model.from_pretrained(tmp_path)
    inputs = {"input_ids": np.random.RandomState(1).randint(3, 99, (2, 12))}
    compare_with_hf(run_ours(ours, inputs), model, inputs)

    _hf_model(hf.DebertaV2Model, V2, tmp_path / "v2")
    state = load_file(str(tmp_path / "v2" / "model.safetensors"))
    del state["embeddings.position_embeddings.weight"]
    save_file(state, str(tmp_path / "v2" / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="missing weight 'embeddings.position_embeddings.weight'"):
        tj.DebertaV2Model.from_pretrained(tmp_path / "v2")


def test_length_limit_only_with_absolute_positions(tmp_path):
    v3 = tj.DebertaV2Model(tj.DebertaV2Config.from_dict(V3))
    assert v3(np.ones((1, 30), np.int32)).last_hidden_state.shape == (1, 30, 32)  # relative positions clamp
    with pytest.raises(ValueError, match="token id 99, outside the vocabulary"):
        v3(np.full((1, 30), 99))
    v2 = tj.DebertaV2Model(tj.DebertaV2Config.from_dict(V2))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=40"):
        v2(np.ones((1, 41), np.int32))


def test_auto_classes(tmp_path):
    _hf_model(hf.DebertaV2ForMaskedLM, V3, tmp_path)
    assert type(tj.AutoModelForMaskedLM.from_pretrained(tmp_path)) is tj.DebertaV2ForMaskedLM
    assert type(tj.AutoModelForPreTraining.from_pretrained(tmp_path)) is tj.DebertaV2ForMaskedLM
    assert type(tj.AutoConfig.from_pretrained(tmp_path)) is tj.DebertaV2Config


@pytest.mark.parametrize("change,message", [
    (dict(conv_kernel_size=4), "conv_kernel_size=4: an even kernel"),
    (dict(conv_kernel_size=3, conv_groups=5), "conv_groups=5 does not divide hidden_size"),
    (dict(pooler_hidden_size=16), "pooler_hidden_size=16 other than hidden_size"),
    (dict(attention_head_size=4), "attention_head_size=4"),
    (dict(position_buckets=8, max_relative_positions=5), "position_buckets=8 with max_relative_positions=5"),
    (dict(legacy=False, embedding_size=24), "legacy=False .* needs embedding_size == hidden_size"),
])
def test_unsupported_options_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        tj.DebertaV2Config.from_dict(dict(V3, **change))


# The configs of the released checkpoints (config.json as on the hub), for names and shapes only.
RELEASED = {
    "deberta-v3-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                            max_position_embeddings=512, relative_attention=True, position_buckets=256,
                            norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type="p2c|c2p", layer_norm_eps=1e-7,
                            max_relative_positions=-1, position_biased_input=False, type_vocab_size=0,
                            vocab_size=128100, pooler_hidden_size=768, pooler_dropout=0, pooler_hidden_act="gelu"),
    "deberta-v2-xlarge": dict(hidden_size=1536, num_hidden_layers=24, num_attention_heads=24, intermediate_size=6144,
                              max_position_embeddings=512, relative_attention=True, position_buckets=256,
                              norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type="p2c|c2p",
                              layer_norm_eps=1e-7, conv_kernel_size=3, conv_act="gelu", attention_head_size=64,
                              max_relative_positions=-1, position_biased_input=False, type_vocab_size=0,
                              vocab_size=128100, pooler_hidden_size=1536, pooler_dropout=0, pooler_hidden_act="gelu"),
}


@pytest.mark.parametrize("name", RELEASED)
@pytest.mark.parametrize("head", ["Model", "ForMaskedLM", "ForSequenceClassification", "ForMultipleChoice"])
def test_released_configs_name_hf_keys_and_shapes(name, head):
    """Our checkpoint keys and shapes for the released configs are HF's (HF built on the meta device)."""
    config = dict(RELEASED[name], num_hidden_layers=2)
    with torch.device("meta"):
        model = getattr(hf, f"DebertaV2{head}")(hf.DebertaV2Config(**config))
    ours = getattr(tj, f"DebertaV2{head}")
    our_config = ours.config_class.from_dict(config)
    tied = set(ours.tied_weights(our_config))
    want = {k: tuple(v.shape) for k, v in model.state_dict().items() if k not in tied}
    got = {k: tuple(v.shape) for k, v in ours._torch_keys(our_config).items()}
    assert got == want
