"""Hugging Face Flax checkpoints (flax_model.msgpack, single and sharded), both directions.

The fixtures in tests/fixtures/flax were written once by transformers 4.57.6's own Flax classes
(make_flax_fixtures.py there): per case the Flax checkpoint, the same weights as PyTorch
safetensors (made by Hugging Face's own Flax -> PyTorch conversion), fixed inputs and the HF Flax
model's outputs on them. Hugging Face PyTorch (transformers 5) on the safetensors is the oracle.
"""
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as hf

import transformers_jax as tj
from parity import assert_accurate, compare_with_hf, run_hf_exact
from transformers_jax import flax_checkpoint as fc
from transformers_jax import hub
from transformers_jax.params import flatten_tree

FIXTURES = Path(__file__).parent / "fixtures" / "flax"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
SHARD_SIZE = {"llama_model_sharded": "4KB"}  # what the fixture was written with


def _architecture(case: str) -> str:
    return json.loads((FIXTURES / case / "config.json").read_text())["architectures"][0]


def _assert_same_params(model, reference):
    ours, theirs = flatten_tree(model.params), flatten_tree(reference.params)
    assert sorted(ours) == sorted(theirs)
    for path, value in theirs.items():
        assert ours[path].dtype == value.dtype, path
        np.testing.assert_array_equal(np.asarray(ours[path]), np.asarray(value), err_msg="/".join(path))


def _copy_flax_only(case: str, dst: Path) -> Path:
    """The case's config.json and Flax weight files, without its safetensors."""
    dst.mkdir()
    for path in (FIXTURES / case).iterdir():
        if path.name == "config.json" or path.name.startswith("flax_model"):
            shutil.copy(path, dst / path.name)
    return dst


@pytest.fixture(scope="module", params=CASES)
def loaded(request):
    """(case, our model loaded from the msgpack, the fixture's inputs, our outputs on them)."""
    case = request.param
    model = getattr(tj, _architecture(case)).from_pretrained(FIXTURES / case, from_flax=True)
    inputs = dict(np.load(FIXTURES / case / "inputs.npz"))
    return case, model, inputs, model(**inputs)


# ----------------------------------------------------------------------------- loading, against both oracles
def test_load_matches_hf_pytorch_and_hf_flax(loaded):
    """HF PyTorch on the same weights (float32, and float64 as the exact reference) and the outputs HF's
    Flax class gave: ours is as close to the exact result as either of them (parity.assert_accurate)."""
    case, _, inputs, ours = loaded
    reference = getattr(hf, _architecture(case)).from_pretrained(FIXTURES / case).eval()  # reads the safetensors
    compare_with_hf(ours, reference, inputs)
    exact = run_hf_exact(reference, inputs)
    flax_outputs = dict(np.load(FIXTURES / case / "outputs.npz"))
    assert flax_outputs
    for name, value in flax_outputs.items():
        assert_accurate(ours[name], value, exact[name], name=f"{case}: {name} (HF Flax)")


# ----------------------------------------------------------------------------- saving
def _restored(directory: Path) -> dict:
    flat, _ = fc.load_flax_tree(directory)
    return flat


def test_save_flax_writes_the_tree_hf_flax_wrote(loaded, tmp_path):
    case, model, _, _ = loaded
    if case.endswith("_bf16"):  # HF's file holds bfloat16 params: keep them so
        model = type(model).from_pretrained(FIXTURES / case, from_flax=True, param_dtype="bfloat16")
    model.save_pretrained(tmp_path, save_format="flax", max_shard_size=SHARD_SIZE.get(case, "5GB"))
    ours, theirs = _restored(tmp_path), _restored(FIXTURES / case)
    assert sorted(ours) == sorted(theirs)
    for name, value in theirs.items():
        assert (ours[name].shape, ours[name].dtype) == (value.shape, value.dtype), name
        np.testing.assert_array_equal(ours[name], value, err_msg=name)
    # Nothing else is written: config.json, the weights (+ generation_config.json for generating models).
    written = {p.name for p in tmp_path.iterdir()}
    fixture = {p.name for p in (FIXTURES / case).iterdir()} - {"model.safetensors", "inputs.npz", "outputs.npz"}
    if case in SHARD_SIZE:  # HF wrote an empty first shard (its first tensor exceeded the limit); ours does not
        assert {n for n in written if n.startswith("flax_model-")} and fc.FLAX_WEIGHTS_NAME not in written
        written = {n for n in written if not n.startswith("flax_model-")}
        fixture = {n for n in fixture if not n.startswith("flax_model-")}
        index = json.loads((tmp_path / fc.FLAX_WEIGHTS_INDEX_NAME).read_text())
        their_index = json.loads((FIXTURES / case / fc.FLAX_WEIGHTS_INDEX_NAME).read_text())
        assert index["metadata"] == their_index["metadata"]
        assert sorted(index["weight_map"]) == sorted(their_index["weight_map"])
    assert written == fixture
    # Round trip: reading our file (the only weights there) gives the params we saved.
    reloaded = type(model).from_pretrained(tmp_path, param_dtype=model.config.param_dtype)
    _assert_same_params(reloaded, model)


def test_tied_llama_saves_the_lm_head_flax_llama_needs(tmp_path, caplog):
    # FlaxLlamaForCausalLM always has its own lm_head, so a tied model is written with a copy of the
    # embeddings there: the tree has FlaxLlamaForCausalLM's keys and shapes.
    untied = tj.LlamaForCausalLM.from_pretrained(FIXTURES / "llama_causal_lm", from_flax=True)
    model = tj.LlamaForCausalLM(untied.config.replace(tie_word_embeddings=True), {"model": untied.params["model"]})
    model.save_pretrained(tmp_path, save_format="flax")
    ours, theirs = _restored(tmp_path), _restored(FIXTURES / "llama_causal_lm")
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    np.testing.assert_array_equal(ours["lm_head/kernel"], ours["model/embed_tokens/embedding"].T)
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        reloaded = tj.LlamaForCausalLM.from_pretrained(tmp_path)
    assert not caplog.records, caplog.text
    np.testing.assert_array_equal(reloaded.params["model"]["embed_tokens"]["embedding"],
                                  model.params["model"]["embed_tokens"]["embedding"])


def test_untied_lm_head_in_a_tied_config_is_reported(tmp_path, caplog):
    directory = _copy_flax_only("llama_causal_lm", tmp_path / "tied")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": True}))
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        tj.LlamaForCausalLM.from_pretrained(directory)
    assert "holds lm_head.weight with values of its own" in caplog.text
    assert "the file's lm_head.weight is not used" in caplog.text


def test_saving_another_format_removes_the_old_weights(tmp_path):
    model = tj.BertModel.from_pretrained(FIXTURES / "bert_model", from_flax=True)
    model.save_pretrained(tmp_path, max_shard_size="10KB")
    assert (tmp_path / hub.SAFE_WEIGHTS_INDEX_NAME).exists()
    model.save_pretrained(tmp_path, save_format="flax")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", fc.FLAX_WEIGHTS_NAME]
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", hub.SAFE_WEIGHTS_NAME]


def test_failed_flax_save_leaves_the_directory_as_it_was(tmp_path, monkeypatch):
    model = tj.BertModel.from_pretrained(FIXTURES / "bert_model", from_flax=True)
    model.save_pretrained(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = []

    def fail_on_second_shard(flat, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return write_msgpack(flat, path)

    write_msgpack = fc.write_msgpack
    monkeypatch.setattr(fc, "write_msgpack", fail_on_second_shard)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path, save_format="flax", max_shard_size="10KB")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# ----------------------------------------------------------------------------- which weights file is read
def test_flax_weights_alone_are_read_without_asking(tmp_path):
    directory = _copy_flax_only("bert_masked_lm", tmp_path / "flax")
    model = tj.AutoModelForMaskedLM.from_pretrained(directory)
    _assert_same_params(model, tj.BertForMaskedLM.from_pretrained(FIXTURES / "bert_masked_lm", from_flax=True))
    sharded = _copy_flax_only("llama_model_sharded", tmp_path / "sharded")
    assert not (sharded / fc.FLAX_WEIGHTS_NAME).exists()
    assert type(tj.AutoModel.from_pretrained(sharded)) is tj.LlamaModel


def test_safetensors_win_when_both_exist(tmp_path):
    directory = tmp_path / "both"
    shutil.copytree(FIXTURES / "bert_model", directory)
    (directory / fc.FLAX_WEIGHTS_NAME).write_bytes(b"garbage")  # never read unless asked for
    model = tj.BertModel.from_pretrained(directory)  # HF's Flax -> PyTorch conversion: the same numbers
    _assert_same_params(model, tj.BertModel.from_pretrained(FIXTURES / "bert_model", from_flax=True))
    with pytest.raises(ValueError, match="flax_model.msgpack is not a readable Flax msgpack checkpoint"):
        tj.BertModel.from_pretrained(directory, from_flax=True)


def test_explicit_choices_are_honoured(tmp_path):
    directory = _copy_flax_only("bert_model", tmp_path / "flax")
    with pytest.raises(FileNotFoundError, match=r"has only Flax weights \(flax_model.msgpack\); from_flax=False"):
        tj.BertModel.from_pretrained(directory, from_flax=False)
    with pytest.raises(ValueError, match="do not pass use_safetensors with it"):
        tj.BertModel.from_pretrained(directory, from_flax=True, use_safetensors=True)
    with pytest.raises(ValueError, match="do not pass a GGUF file with it"):
        tj.LlamaForCausalLM.from_pretrained(directory, gguf_file="model.gguf", from_flax=True)
    only_torch = tmp_path / "torch"
    shutil.copytree(FIXTURES / "bert_model", only_torch, ignore=shutil.ignore_patterns("flax_model*"))
    with pytest.raises(FileNotFoundError, match=r"no weights in .*torch: expected flax_model.msgpack or "
                                                 r"flax_model.msgpack.index.json"):
        tj.BertModel.from_pretrained(only_torch, from_flax=True)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("content, message", [
    ("truncated", "is not a readable Flax msgpack checkpoint (truncated or corrupt"),
    (b"\xc1 not msgpack at all", "is not a readable Flax msgpack checkpoint (truncated or corrupt"),
    (b"\x93\x01\x02\x03", "is not a Flax params tree: it holds a list, not a dict"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:00\n", "is a Git LFS pointer, not the weights"),
])
def test_unreadable_msgpack_is_named(tmp_path, content, message):
    directory = _copy_flax_only("bert_model", tmp_path / "bad")
    path = directory / fc.FLAX_WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2] if content == "truncated" else content)
    with pytest.raises(ValueError) as err:
        tj.BertModel.from_pretrained(directory)
    assert str(path) in str(err.value) and message in str(err.value)


def _edited(case: str, directory: Path, edit) -> Path:
    _copy_flax_only(case, directory)
    flat = fc.read_msgpack(directory / fc.FLAX_WEIGHTS_NAME)
    edit(flat)
    fc.write_msgpack(flat, directory / fc.FLAX_WEIGHTS_NAME)
    return directory


def test_missing_weight_is_named(tmp_path):
    directory = _edited("bert_model", tmp_path / "m", lambda f: f.pop("encoder/layer/1/output/dense/kernel"))
    with pytest.raises(ValueError, match=r"missing weight 'encoder.layer.1.output.dense.weight' in .*flax_model.msgpack"
                                         r" \(read as PyTorch names, Dense kernels transposed\) for BertModel"):
        tj.BertModel.from_pretrained(directory)


def test_misshaped_weight_is_named_with_shapes(tmp_path):
    def shrink(flat):
        flat["model/layers/0/self_attn/k_proj/kernel"] = flat["model/layers/0/self_attn/k_proj/kernel"][:, :4]

    directory = _edited("llama_causal_lm", tmp_path / "s", shrink)
    with pytest.raises(ValueError, match=r"weight 'model.layers.0.self_attn.k_proj.weight' in .*flax_model.msgpack .*"
                                         r"has shape \(4, 16\), LlamaForCausalLM expects \(8, 16\)"):
        tj.LlamaForCausalLM.from_pretrained(directory)


def test_unexpected_and_clashing_entries_are_named(tmp_path):
    directory = _edited("llama_causal_lm", tmp_path / "u", lambda f: f.update({"model/extra/kernel": np.zeros((2, 2), np.float32)}))
    with pytest.raises(ValueError, match="unexpected weight 'model.extra.weight'"):
        tj.LlamaForCausalLM.from_pretrained(directory)
    clash = _edited("llama_causal_lm", tmp_path / "c", lambda f: f.update({"model/norm/scale": f["model/norm/weight"]}))
    with pytest.raises(ValueError, match="'model/norm/weight' and another entry both give the PyTorch weight 'model.norm.weight'"):
        tj.LlamaForCausalLM.from_pretrained(clash)


def test_missing_shard_is_named(tmp_path):
    directory = _copy_flax_only("llama_model_sharded", tmp_path / "shards")
    (directory / "flax_model-00003-of-00007.msgpack").unlink()
    with pytest.raises(FileNotFoundError, match="names shard flax_model-00003-of-00007.msgpack, which is missing"):
        tj.LlamaModel.from_pretrained(directory)


def test_unknown_save_format_is_refused_before_writing(tmp_path):
    model = tj.BertModel.from_pretrained(FIXTURES / "bert_model", from_flax=True)
    with pytest.raises(ValueError, match="save_format='onnx' is not one of 'safetensors', 'flax'"):
        model.save_pretrained(tmp_path / "out", save_format="onnx")
    assert not (tmp_path / "out").exists()


def test_importing_the_library_does_not_import_flax():
    code = "import sys, transformers_jax; print('flax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


