"""Checkpoint I/O: configs, safetensors (single and sharded), .bin opt-in, the hub cache, Auto
classes, resizing, and every bad-input message the foundation promises."""
import json
import logging
import shutil

import jax
import numpy as np
import pytest
import torch
import transformers as hf

import transformers_jax as tj
from parity import assert_accurate, hf_pair
from transformers_jax import hub

TINY_BERT = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 max_position_embeddings=40)
TINY_LLAMA = dict(vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=48, max_position_embeddings=32)


@pytest.fixture(scope="module")
def hf_bert_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = hf.BertForSequenceClassification(hf.BertConfig(**TINY_BERT, num_labels=3)).eval()
    path = tmp_path_factory.mktemp("hf_bert")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hf_bert_pretraining_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = hf.BertForPreTraining(hf.BertConfig(**TINY_BERT)).eval()
    path = tmp_path_factory.mktemp("hf_bert_pt")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hf_llama_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = hf.LlamaForCausalLM(hf.LlamaConfig(**TINY_LLAMA)).eval()
    path = tmp_path_factory.mktemp("hf_llama")
    model.save_pretrained(path)
    return path


def _ids(shape, vocab, seed=0):
    return np.random.RandomState(seed).randint(0, vocab, shape)


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- configs
def test_config_round_trip_keeps_unknown_keys(hf_llama_dir, tmp_path):
    original = json.loads((hf_llama_dir / "config.json").read_text())
    original["my_custom_key"] = {"nested": [1, 2]}
    (tmp_path / "config.json").write_text(json.dumps(original))
    config = tj.AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, tj.LlamaConfig)
    assert config.my_custom_key == {"nested": [1, 2]}
    config.save_pretrained(tmp_path / "out")
    written = json.loads((tmp_path / "out" / "config.json").read_text())
    for key, value in original.items():
        assert written[key] == value, key
    # Hugging Face reads what we wrote into the same config.
    assert hf.AutoConfig.from_pretrained(tmp_path / "out").to_dict()["num_key_value_heads"] == 2


def test_config_is_hashable_and_compares_by_value():
    a = tj.LlamaConfig.from_dict(TINY_LLAMA)
    b = tj.LlamaConfig.from_dict(dict(TINY_LLAMA))
    assert a == b and hash(a) == hash(b)
    assert a != a.replace(rms_norm_eps=1e-5)
    assert a.replace(compute_dtype="bfloat16").to_dict() == a.to_dict()  # runtime fields stay out of config.json


def test_num_labels_override_builds_labels():
    config = tj.BertConfig.from_dict(TINY_BERT, num_labels=5)
    assert config.num_labels == 5 and config.id2label[4] == "LABEL_4"
    assert config.to_dict()["label2id"]["LABEL_4"] == 4


def test_legacy_rope_scaling_is_folded_into_rope_parameters():
    config = tj.LlamaConfig.from_dict({**TINY_LLAMA, "rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}})
    assert config.rope_parameters == {"rope_type": "linear", "factor": 2.0, "rope_theta": 500000.0}
    assert "rope_scaling" not in config.to_dict()


# ----------------------------------------------------------------------------- safetensors and sharding
def test_sharded_save_loads_in_both_libraries(hf_llama_dir, tmp_path):
    model = tj.LlamaForCausalLM.from_pretrained(hf_llama_dir)
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    index = json.loads((tmp_path / hub.SAFE_WEIGHTS_INDEX_NAME).read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and not (tmp_path / hub.SAFE_WEIGHTS_NAME).exists()
    ids = _ids((2, 9), 101)
    ours = tj.LlamaForCausalLM.from_pretrained(tmp_path)(ids).logits
    theirs, exact = hf_pair(hf.LlamaForCausalLM.from_pretrained(tmp_path), lambda m: m(torch.tensor(ids)).logits)
    assert_accurate(ours, theirs, exact)
    # Saving again unsharded removes the stale shards and index.
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("model*")) == [hub.SAFE_WEIGHTS_NAME]


def test_reads_hf_sharded_checkpoint(hf_llama_dir, tmp_path):
    hf.LlamaForCausalLM.from_pretrained(hf_llama_dir).save_pretrained(tmp_path, max_shard_size="30KB")
    assert (tmp_path / hub.SAFE_WEIGHTS_INDEX_NAME).exists()
    ids = _ids((1, 7), 101)
    a = tj.LlamaForCausalLM.from_pretrained(tmp_path)(ids).logits
    b = tj.LlamaForCausalLM.from_pretrained(hf_llama_dir)(ids).logits
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bfloat16_safetensors_round_trip(hf_llama_dir, tmp_path):
    hf.LlamaForCausalLM.from_pretrained(hf_llama_dir, dtype=torch.bfloat16).save_pretrained(tmp_path)
    model = tj.LlamaForCausalLM.from_pretrained(tmp_path, param_dtype="bfloat16", dtype="bfloat16")
    leaf = model.params["model"]["embed_tokens"]["embedding"]
    assert leaf.dtype == jax.numpy.bfloat16
    ref = hf.LlamaForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16).state_dict()["model.embed_tokens.weight"]
    np.testing.assert_array_equal(np.asarray(leaf, np.float32), ref.float().numpy())
    logits = model(_ids((1, 5), 101)).logits
    assert logits.dtype == jax.numpy.bfloat16 and np.isfinite(np.asarray(logits, np.float32)).all()


def test_pytorch_bin_needs_opt_in(hf_llama_dir, tmp_path):
    shutil.copy(hf_llama_dir / "config.json", tmp_path / "config.json")
    torch.save(hf.LlamaForCausalLM.from_pretrained(hf_llama_dir).state_dict(), tmp_path / hub.PT_WEIGHTS_NAME)
    with pytest.raises(FileNotFoundError, match=r"pytorch_model.bin but no model.safetensors.*use_safetensors=False"):
        tj.LlamaForCausalLM.from_pretrained(tmp_path)
    ids = _ids((1, 6), 101)
    a = tj.LlamaForCausalLM.from_pretrained(tmp_path, use_safetensors=False)(ids).logits
    b = tj.LlamaForCausalLM.from_pretrained(hf_llama_dir)(ids).logits
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_pickled_code_in_bin_is_refused(hf_llama_dir, tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    shutil.copy(hf_llama_dir / "config.json", tmp_path / "config.json")
    with open(tmp_path / hub.PT_WEIGHTS_NAME, "wb") as f:
        pickle.dump({"model.embed_tokens.weight": Evil()}, f)
    with pytest.raises(Exception, match="(?i)weights.only|unsupported|global"):
        tj.LlamaForCausalLM.from_pretrained(tmp_path, use_safetensors=False)


def test_hub_id_from_local_cache(hf_llama_dir, tmp_path, monkeypatch):
    # Build the cache layout huggingface_hub uses: models--org--name/{refs/main, snapshots/<rev>/...}.
    repo = tmp_path / "hub" / "models--tiny-org--tiny-llama"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(hf_llama_dir, repo / "snapshots" / revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    model = tj.AutoModelForCausalLM.from_pretrained("tiny-org/tiny-llama")
    assert isinstance(model, tj.LlamaForCausalLM)
    with pytest.raises(FileNotFoundError, match="'tiny-org/not-cached' is neither a local directory nor a hub id"):
        tj.AutoModelForCausalLM.from_pretrained("tiny-org/not-cached")


# ----------------------------------------------------------------------------- Auto classes
@pytest.mark.parametrize("auto, expected", [
    (tj.AutoModel, tj.BertModel),
    (tj.AutoModelForPreTraining, tj.BertForPreTraining),
    (tj.AutoModelForMaskedLM, tj.BertForMaskedLM),
    (tj.AutoModelForSequenceClassification, tj.BertForSequenceClassification),
    (tj.AutoModelForTokenClassification, tj.BertForTokenClassification),
    (tj.AutoModelForQuestionAnswering, tj.BertForQuestionAnswering),
    (tj.AutoModelForMultipleChoice, tj.BertForMultipleChoice),
])
def test_auto_classes_pick_bert(auto, expected, hf_bert_pretraining_dir):
    model = auto.from_pretrained(hf_bert_pretraining_dir)
    assert type(model) is expected
    reference = hf.BertModel.from_pretrained(hf_bert_pretraining_dir)
    ids = _ids((1, 6), 99)
    encoder = model.params if expected is tj.BertModel else model.params["bert"]
    hidden = tj.BertModel(model.config, {**tj.BertModel(model.config).params, **encoder})(ids).last_hidden_state
    assert_accurate(hidden, *hf_pair(reference, lambda m: m(torch.tensor(ids)).last_hidden_state))


def test_classifier_of_other_size_is_named(hf_bert_dir):
    with pytest.raises(ValueError, match=r"weight 'classifier.weight' .* has shape \(3, 32\), BertForMultipleChoice expects \(1, 32\)"):
        tj.BertForMultipleChoice.from_pretrained(hf_bert_dir)


def test_auto_classes_pick_llama(hf_llama_dir):
    assert type(tj.AutoModel.from_pretrained(hf_llama_dir)) is tj.LlamaModel
    assert type(tj.AutoModelForCausalLM.from_pretrained(hf_llama_dir)) is tj.LlamaForCausalLM
    assert type(tj.AutoModelForSequenceClassification.from_pretrained(hf_llama_dir, num_labels=4)) is tj.LlamaForSequenceClassification
    with pytest.raises(ValueError, match="AutoModelForMaskedLM does not support model_type 'llama'"):
        tj.AutoModelForMaskedLM.from_pretrained(hf_llama_dir)


def test_head_initialised_when_checkpoint_lacks_it(hf_bert_pretraining_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        model = tj.BertForTokenClassification.from_pretrained(hf_bert_pretraining_dir, num_labels=7)
    assert model.params["classifier"]["kernel"].shape == (32, 7)
    assert "newly initialised: classifier.bias, classifier.weight" in caplog.text
    assert "not used: bert.pooler.dense.bias, bert.pooler.dense.weight, cls.predictions.bias" in caplog.text


# ----------------------------------------------------------------------------- resize_token_embeddings
@pytest.mark.parametrize("tie", [True, False])
def test_resize_token_embeddings_matches_hf_on_old_tokens(tie, tmp_path):
    torch.manual_seed(0)
    hf_model = hf.LlamaForCausalLM(hf.LlamaConfig(**TINY_LLAMA, tie_word_embeddings=tie)).eval()
    hf_model.save_pretrained(tmp_path)
    model = tj.LlamaForCausalLM.from_pretrained(tmp_path)
    table = model.resize_token_embeddings(110)
    assert table.shape == (110, 32) and model.config.vocab_size == 110
    hf_model.resize_token_embeddings(110)
    ids = _ids((2, 6), 101)
    ours = np.asarray(model(ids).logits)
    theirs, exact = hf_pair(hf_model, lambda m: m(torch.tensor(ids)).logits)
    assert_accurate(ours[..., :101], theirs[..., :101], exact[..., :101])
    assert ours.shape == theirs.shape == (2, 6, 110)
    model(np.array([[109]]))  # the new id is accepted
    model.save_pretrained(tmp_path / "resized")
    reloaded = hf.LlamaForCausalLM.from_pretrained(tmp_path / "resized")
    assert_accurate(ours, *hf_pair(reloaded, lambda m: m(torch.tensor(ids)).logits))


def test_resize_bert_mlm_bias(tmp_path):
    model = tj.BertForMaskedLM(tj.BertConfig.from_dict(TINY_BERT))
    model.resize_token_embeddings(105)
    assert model.params["cls"]["predictions"]["bias"].shape == (105,)
    assert model(np.array([[104, 3]])).logits.shape == (1, 2, 105)


# ----------------------------------------------------------------------------- bad input
def test_missing_path():
    with pytest.raises(FileNotFoundError, match="model path './no/such/dir' does not exist"):
        tj.AutoModel.from_pretrained("./no/such/dir")


def test_directory_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no config.json at {tmp_path / 'config.json'}"):
        tj.BertModel.from_pretrained(tmp_path)


def test_unknown_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "flux_capacitor"}))
    with pytest.raises(ValueError, match="unknown model_type 'flux_capacitor'"):
        tj.AutoModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds a 'flux_capacitor' model, but BertModel loads 'bert' models"):
        tj.BertModel.from_pretrained(tmp_path)


def _edit_weights(src, dst, edit):
    _copy(src, dst)
    state = hub.load_safetensors(dst / hub.SAFE_WEIGHTS_NAME)
    edit(state)
    hub.save_safetensors(state, dst / hub.SAFE_WEIGHTS_NAME)
    return dst


def test_missing_weight_is_named(hf_llama_dir, tmp_path):
    path = _edit_weights(hf_llama_dir, tmp_path / "m", lambda s: s.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(ValueError, match="missing weight 'model.layers.1.mlp.up_proj.weight'"):
        tj.LlamaForCausalLM.from_pretrained(path)


def test_unexpected_weight_is_named(hf_llama_dir, tmp_path):
    path = _edit_weights(hf_llama_dir, tmp_path / "u", lambda s: s.update({"model.layers.0.extra.weight": np.zeros(3, np.float32)}))
    with pytest.raises(ValueError, match="unexpected weight 'model.layers.0.extra.weight'"):
        tj.LlamaForCausalLM.from_pretrained(path)


def test_misshaped_weight_is_named(hf_llama_dir, tmp_path):
    def edit(state):
        state["model.layers.0.self_attn.k_proj.weight"] = np.zeros((8, 32), np.float32)

    path = _edit_weights(hf_llama_dir, tmp_path / "s", edit)
    with pytest.raises(ValueError, match=r"weight 'model.layers.0.self_attn.k_proj.weight' .* has shape \(8, 32\), LlamaForCausalLM expects \(16, 32\)"):
        tj.LlamaForCausalLM.from_pretrained(path)


def test_truncated_safetensors(hf_llama_dir, tmp_path):
    path = _copy(hf_llama_dir, tmp_path / "t")
    weights = path / hub.SAFE_WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValueError, match=f"{weights} is truncated"):
        tj.LlamaForCausalLM.from_pretrained(path)


def test_input_longer_than_positions(hf_llama_dir):
    model = tj.LlamaForCausalLM.from_pretrained(hf_llama_dir)
    with pytest.raises(ValueError, match="input length 33 exceeds max_position_embeddings=32"):
        model(_ids((1, 33), 101))


@pytest.mark.parametrize("bad", [101, -1])
def test_token_ids_outside_vocabulary(hf_llama_dir, bad):
    model = tj.LlamaForCausalLM.from_pretrained(hf_llama_dir)
    with pytest.raises(ValueError, match=rf"input_ids contains token id {bad}, outside the vocabulary \[0, 101\)"):
        model(np.array([[1, bad, 2]]))


def test_save_into_a_file_leaves_nothing(hf_llama_dir, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    model = tj.LlamaForCausalLM.from_pretrained(hf_llama_dir)
    with pytest.raises(NotADirectoryError, match=f"cannot save into {target}: it is an existing file"):
        model.save_pretrained(target)
    assert target.read_text() == "keep me"


def test_failed_save_leaves_nothing_half_written(hf_llama_dir, tmp_path, monkeypatch):
    model = tj.LlamaForCausalLM.from_pretrained(hf_llama_dir)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(hub, "save_safetensors", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
