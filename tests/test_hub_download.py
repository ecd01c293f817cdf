"""Hub downloads: every from_pretrained against a local hub (tests/hub_server.py) in the hub's URL layout.

What is checked: only the files needed are downloaded (the server counts requests per file), the results equal
Hugging Face PyTorch's on the same files, the cache is reused without requests (and offline), revisions,
cache_dir, tokens, interrupted downloads, and every error names the repo.
"""
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
import transformers as hf
from huggingface_hub import constants

import transformers_jax as tj
from hub_server import HubServer, point_huggingface_hub_at
from parity import assert_accurate, hf_pair
from test_gguf import _write_tiny

TINY_BERT = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 max_position_embeddings=40, num_labels=3)
TINY_LLAMA = dict(vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=48, max_position_embeddings=32)
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]
IDS = np.random.RandomState(0).randint(0, 99, (2, 7))
DECOYS = {"README.md": b"# tiny\n", "onnx/model.onnx": b"\0" * 64, "flax_model.msgpack": b"\x80" * 32}


def _save(model, directory):
    model.save_pretrained(directory)
    return directory


def _torch_logits(model, ids=IDS):
    """HF's logits in float32 and float64 (the exact ones): what a loaded model is checked against."""
    return hf_pair(model, lambda m: m(torch.tensor(ids)).logits)


def _assert_logits(model, reference, ids=IDS):
    """The model computes what HF computes from the same files (parity.assert_accurate)."""
    assert_accurate(np.asarray(model(ids).logits), *reference)


@pytest.fixture(scope="module")
def server():
    with HubServer() as hub:
        yield hub


@pytest.fixture(scope="module")
def repos(server, tmp_path_factory, minilm_dir):
    """The repos on the server, and the Hugging Face PyTorch logits each model must reproduce."""
    tmp = tmp_path_factory.mktemp("repos")
    torch.manual_seed(0)
    bert = hf.BertForSequenceClassification(hf.BertConfig(**TINY_BERT)).eval()
    bert_dir = _save(bert, tmp / "bert")
    torch.save(bert.state_dict(), bert_dir / "pytorch_model.bin")
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_dir / name, bert_dir / name)
    (bert_dir / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    (bert_dir / "additional_chat_templates").mkdir()
    (bert_dir / "additional_chat_templates" / "tool.jinja").write_text("tool: {{ messages[0]['content'] }}")
    for name, content in DECOYS.items():
        (bert_dir / name).parent.mkdir(exist_ok=True)
        (bert_dir / name).write_bytes(content)
    torch.manual_seed(1)
    bert_v2 = hf.BertForSequenceClassification(hf.BertConfig(**TINY_BERT)).eval()
    v2_dir = _save(bert_v2, tmp / "bert_v2")

    torch.manual_seed(2)
    llama = hf.LlamaForCausalLM(hf.LlamaConfig(**TINY_LLAMA)).eval()
    llama.generation_config.max_new_tokens = 7
    llama_dir = tmp / "llama"
    llama.save_pretrained(llama_dir, max_shard_size="20KB")
    (llama_dir / "README.md").write_bytes(b"# sharded\n")

    gguf_path = tmp / "gguf" / "tiny.gguf"
    gguf_path.parent.mkdir()
    _write_tiny(gguf_path, rope_scaling=False)  # HF's GGUF loader drops rope scaling (see test_gguf.py)

    commits = {
        "bert": server.add_repo("org/tiny-bert", bert_dir),
        "bert_v2": server.add_repo("org/tiny-bert", v2_dir, branch="v2"),
        "llama": server.add_repo("org/tiny-llama", llama_dir),
    }
    server.add_repo("org/private-bert", v2_dir, private=True)
    server.add_repo("org/gated-bert", v2_dir, gated=True)
    server.add_repo("org/no-weights", {"config.json": (bert_dir / "config.json").read_bytes(), "README.md": b"-"})
    server.add_repo("org/bin-only", {"config.json": (bert_dir / "config.json").read_bytes(),
                                      "pytorch_model.bin": (bert_dir / "pytorch_model.bin").read_bytes()})
    flax_case = Path(__file__).parent / "fixtures" / "flax" / "bert_sequence_classification_bf16"
    server.add_repo("org/only-flax", {name: (flax_case / name).read_bytes() for name in ("config.json", "flax_model.msgpack")})
    server.add_repo("org/nested", {f"bert/{p.name}": p.read_bytes() for p in v2_dir.iterdir()})
    server.add_repo("org/tiny-gguf", {"tiny.gguf": gguf_path.read_bytes(), "README.md": b"-"})
    return {
        "commits": commits, "bert_dir": bert_dir, "gguf": gguf_path, "llama": llama,
        "bert_logits": _torch_logits(bert), "bert_v2_logits": _torch_logits(bert_v2), "llama_logits": _torch_logits(llama),
    }


@pytest.fixture
def cache(server, repos, monkeypatch, tmp_path):
    """huggingface_hub pointed at the server, online, with an empty cache; the request log cleared."""
    point_huggingface_hub_at(server, monkeypatch, tmp_path / "hub-cache")
    server.reset()
    return tmp_path / "hub-cache"


def _logits(model, ids=IDS):
    return np.asarray(model(ids).logits)


def _listings(server):
    return sum(1 for r in server.requests if r.filename is None)


def _snapshot(cache, repo, commit):
    return cache / f"models--{repo.replace('/', '--')}" / "snapshots" / commit


# ----------------------------------------------------------------------------- downloads
def test_first_load_downloads_only_what_it_reads(server, repos, cache):
    model = tj.AutoModelForSequenceClassification.from_pretrained("org/tiny-bert")
    assert isinstance(model, tj.BertForSequenceClassification)
    assert server.downloads() == {"config.json": 1, "model.safetensors": 1}
    assert _listings(server) == 1  # one listing, shared by the Auto class and the model class
    _assert_logits(model, repos["bert_logits"])
    snapshot = _snapshot(cache, "org/tiny-bert", repos["commits"]["bert"])
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]


def test_sharded_repo_downloads_index_and_shards(server, repos, cache):
    model = tj.AutoModelForCausalLM.from_pretrained("org/tiny-llama")
    files = server.repos["org/tiny-llama"].commits[repos["commits"]["llama"]]
    shards = sorted(name for name in files if name.startswith("model-"))
    assert len(shards) >= 2
    expected = {"config.json": 1, "model.safetensors.index.json": 1, "generation_config.json": 1}
    assert server.downloads() == {**expected, **{name: 1 for name in shards}}
    _assert_logits(model, repos["llama_logits"])
    assert model.generation_config.max_new_tokens == 7


def test_pickled_weights_only_on_opt_in(server, repos, cache):
    with pytest.raises(FileNotFoundError, match=r"'org/bin-only' \(revision 'main'\) \(files: config.json, "
                                                r"pytorch_model.bin\) has pytorch_model.bin but no model.safetensors.*"
                                                r"use_safetensors=False"):
        tj.BertForSequenceClassification.from_pretrained("org/bin-only")
    assert "pytorch_model.bin" not in server.downloads()
    server.reset()
    model = tj.BertForSequenceClassification.from_pretrained("org/tiny-bert", use_safetensors=False)
    assert server.downloads() == {"config.json": 1, "pytorch_model.bin": 1}
    _assert_logits(model, repos["bert_logits"])


def test_flax_weights_are_downloaded_and_read(server, cache):
    """A repo whose only weights are Flax's: config and msgpack are fetched and give HF Flax's outputs
    (the fixture's own check is tests/test_flax_checkpoints.py); from_flax=True picks the msgpack of a
    repo that also has safetensors (a corrupt one here: the error names the downloaded file)."""
    flax_case = Path(__file__).parent / "fixtures" / "flax" / "bert_sequence_classification_bf16"
    model = tj.BertForSequenceClassification.from_pretrained("org/only-flax")
    assert server.downloads() == {"config.json": 1, "flax_model.msgpack": 1}
    local = tj.BertForSequenceClassification.from_pretrained(flax_case, from_flax=True)
    for ours, theirs in zip(jax.tree.leaves(model.params), jax.tree.leaves(local.params), strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    server.reset()
    with pytest.raises(ValueError, match=r"flax_model.msgpack is not a readable Flax msgpack checkpoint"):
        tj.BertForSequenceClassification.from_pretrained("org/tiny-bert", from_flax=True)
    assert server.downloads() == {"config.json": 1, "flax_model.msgpack": 1}


def test_second_load_reads_the_cache(server, repos, cache, monkeypatch, caplog):
    tj.BertForSequenceClassification.from_pretrained("org/tiny-bert")
    server.reset()
    online = tj.BertForSequenceClassification.from_pretrained("org/tiny-bert")
    assert server.downloads() == {} and _listings(server) == 1 and len(server.requests) == 1
    server.reset()
    cached = tj.BertForSequenceClassification.from_pretrained("org/tiny-bert", local_files_only=True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = tj.BertForSequenceClassification.from_pretrained("org/tiny-bert")
    assert server.requests == []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    server.outage = 503  # the hub answers, but is down: the cache serves, as in huggingface_hub
    down = tj.BertForSequenceClassification.from_pretrained("org/tiny-bert")
    assert [r.filename for r in server.requests] == [None]  # the listing only
    server.reset()
    with socket.socket() as closed:  # a port that refuses connections: the hub cannot be reached
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed.getsockname()[1]}")
        unreachable = tj.BertForSequenceClassification.from_pretrained("org/tiny-bert")
    assert caplog.text.count("could not be reached for 'org/tiny-bert'") == 2
    assert "HTTPError" in caplog.text and "ConnectError" in caplog.text
    assert "using the snapshot in the local Hugging Face cache" in caplog.text
    for model in (cached, offline, down, unreachable):
        np.testing.assert_array_equal(_logits(model), _logits(online))
    _assert_logits(online, repos["bert_logits"])


def test_transformers_offline_means_cache_only(server, cache):
    # huggingface_hub reads TRANSFORMERS_OFFLINE / HF_HUB_OFFLINE when imported: a fresh interpreter shows it.
    tj.BertForSequenceClassification.from_pretrained("org/tiny-bert")
    server.reset()
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(TRANSFORMERS_OFFLINE="1", HF_ENDPOINT=server.url, HF_HUB_CACHE=str(cache))
    code = ("from transformers_jax import hub_download\n"
            "files = hub_download.open_source('org/tiny-bert')\n"
            "print(type(files).__name__, files.get('model.safetensors').is_file(), files.offline_note)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("LocalFiles True ")
    assert "only the local Hugging Face cache was searched: downloads are off (HF_HUB_OFFLINE=1 or TRANSFORMERS_OFFLINE=1)" in out.stdout
    assert server.requests == []


def test_force_download_fetches_again(server, cache):
    tj.BertForSequenceClassification.from_pretrained("org/tiny-bert")
    server.reset()
    tj.BertForSequenceClassification.from_pretrained("org/tiny-bert", force_download=True)
    assert server.downloads() == {"config.json": 1, "model.safetensors": 1}
    with pytest.raises(ValueError, match="force_download=True and local_files_only=True exclude each other"):
        tj.BertForSequenceClassification.from_pretrained("org/tiny-bert", force_download=True, local_files_only=True)


def test_revision_selects_branch_or_commit(server, repos, cache):
    main = _logits(tj.BertForSequenceClassification.from_pretrained("org/tiny-bert"))
    v2 = _logits(tj.BertForSequenceClassification.from_pretrained("org/tiny-bert", revision="v2"))
    pinned = _logits(tj.BertForSequenceClassification.from_pretrained("org/tiny-bert", revision=repos["commits"]["bert_v2"]))
    assert_accurate(main, *repos["bert_logits"])
    assert_accurate(v2, *repos["bert_v2_logits"])
    np.testing.assert_array_equal(pinned, v2)
    assert np.abs(main - v2).max() > 1e-3
    assert (_snapshot(cache, "org/tiny-bert", repos["commits"]["bert_v2"]) / "model.safetensors").is_file()
    server.reset()
    again = tj.BertForSequenceClassification.from_pretrained("org/tiny-bert", revision="v2", local_files_only=True)
    np.testing.assert_array_equal(_logits(again), v2)
    assert server.requests == []


def test_cache_dir_holds_the_files(server, repos, cache, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    tj.BertForSequenceClassification.from_pretrained("org/tiny-bert", cache_dir=elsewhere)
    assert (_snapshot(elsewhere, "org/tiny-bert", repos["commits"]["bert"]) / "model.safetensors").is_file()
    assert not cache.exists()
    server.reset()
    tj.BertForSequenceClassification.from_pretrained("org/tiny-bert", cache_dir=str(elsewhere), local_files_only=True)
    assert server.requests == []


def test_subfolder(server, repos, cache):
    model = tj.BertForSequenceClassification.from_pretrained("org/nested", subfolder="bert")
    _assert_logits(model, repos["bert_v2_logits"])
    assert server.downloads() == {"bert/config.json": 1, "bert/model.safetensors": 1}


def test_token_is_sent_for_a_private_repo(server, repos, cache):
    with pytest.raises(OSError, match=rf"'org/private-bert' is not a local directory and not a model repo on "
                                      rf"{server.url} \(if it is private or gated, pass token=\.\.\."):
        tj.BertForSequenceClassification.from_pretrained("org/private-bert")
    server.reset()
    model = tj.BertForSequenceClassification.from_pretrained("org/private-bert", token=server.token)
    _assert_logits(model, repos["bert_v2_logits"])
    assert server.downloads() == {"config.json": 1, "model.safetensors": 1}
    assert {r.authorization for r in server.requests} == {f"Bearer {server.token}"}
    with pytest.raises(OSError, match=rf"{server.url} refused access to 'org/private-bert' \(HTTP 401\): pass token="):
        tj.BertForSequenceClassification.from_pretrained("org/private-bert", token="hf_wrong")
    with pytest.raises(OSError, match=r"'org/gated-bert' is a gated repo on .*: request access on its page, then "
                                      r"pass token="):
        tj.BertForSequenceClassification.from_pretrained("org/gated-bert")


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_repo(server, cache, monkeypatch):
    with pytest.raises(OSError, match=rf"'org/nope' is not a local directory and not a model repo on {server.url}"):
        tj.AutoModel.from_pretrained("org/nope")
    with pytest.raises(OSError, match=rf"'org/tiny-bert' has no revision 'v9' on {server.url}"):
        tj.AutoModel.from_pretrained("org/tiny-bert", revision="v9")
    with pytest.raises(FileNotFoundError, match=r"no weights in 'org/no-weights' \(revision 'main'\) \(files: "
                                                r"README.md, config.json\): expected model.safetensors or "
                                                r"model.safetensors.index.json"):
        tj.BertModel.from_pretrained("org/no-weights")
    for kwargs, reason in (({"local_files_only": True}, r"local_files_only=True\).*drop local_files_only=True"),
                           ({}, r"HF_HUB_OFFLINE=1.*set HF_HUB_OFFLINE=0")):
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", not kwargs)
        with pytest.raises(FileNotFoundError, match=r"'org/tiny-bert' is neither a local directory nor a hub id found "
                                                    rf"in the local Hugging Face cache .* at revision 'main', and "
                                                    rf"downloads are off \({reason}.*; or fetch it first with "
                                                    r"`hf download org/tiny-bert`"):
            tj.BertModel.from_pretrained("org/tiny-bert", **kwargs)
    assert server.downloads() == {"config.json": 1}  # no-weights: config read, nothing else


def test_interrupted_download_leaves_nothing_behind(server, repos, cache, monkeypatch):
    server.interrupt("org/tiny-bert", "model.safetensors")
    with pytest.raises(OSError, match=r"downloading 'model.safetensors' of 'org/tiny-bert' \(revision 'main'\) from "
                                      r".* failed: Consistency check failed"):
        tj.BertForSequenceClassification.from_pretrained("org/tiny-bert")
    storage = cache / "models--org--tiny-bert"
    snapshot = _snapshot(cache, "org/tiny-bert", repos["commits"]["bert"])
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json"]
    assert [p.name for p in (storage / "blobs").iterdir() if p.name.endswith(".incomplete")] == []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match=r"no weights in 'org/tiny-bert' \(revision 'main'\) \(files: "
                                                r"config.json\): expected .*only the local Hugging Face cache was "
                                                r"searched: downloads are off"):
        tj.BertForSequenceClassification.from_pretrained("org/tiny-bert")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    server.reset()
    model = tj.BertForSequenceClassification.from_pretrained("org/tiny-bert")
    assert server.downloads() == {"model.safetensors": 1}
    _assert_logits(model, repos["bert_logits"])


# ----------------------------------------------------------------------------- configs, tokenizers, GGUF
def test_configs_download_one_file(server, repos, cache):
    config = tj.AutoConfig.from_pretrained("org/tiny-llama")
    assert isinstance(config, tj.LlamaConfig) and config.hidden_size == 32
    assert tj.LlamaConfig.from_pretrained("org/tiny-llama", revision=repos["commits"]["llama"]) == config
    assert server.downloads() == {"config.json": 1}
    server.reset()
    generation = tj.GenerationConfig.from_pretrained("org/tiny-llama")
    reference = repos["llama"].generation_config
    assert (generation.max_new_tokens, generation.eos_token_id, generation.bos_token_id) == (
        reference.max_new_tokens, reference.eos_token_id, reference.bos_token_id)
    assert server.downloads() == {"generation_config.json": 1}
    with pytest.raises(FileNotFoundError, match=r"'org/tiny-bert' \(revision 'main'\) \(files: .*\) has no file "
                                                r"'generation_config.json'"):
        tj.GenerationConfig.from_pretrained("org/tiny-bert")


def test_tokenizer_downloads_its_files(server, repos, cache):
    ours = tj.AutoTokenizer.from_pretrained("org/tiny-bert")
    expected = [*TOKENIZER_FILES, "chat_template.jinja", "additional_chat_templates/tool.jinja"]
    assert server.downloads() == {name: 1 for name in expected}
    theirs = hf.AutoTokenizer.from_pretrained(repos["bert_dir"])
    texts = ["Hello world", "a tiny repo, served locally!"]
    assert ours(texts)["input_ids"] == theirs(texts)["input_ids"]
    assert ours.chat_template == theirs.chat_template and set(ours.chat_template) == {"default", "tool"}
    server.reset()
    again = tj.AutoTokenizer.from_pretrained("org/tiny-bert", local_files_only=True)
    assert again(texts)["input_ids"] == ours(texts)["input_ids"] and server.requests == []
    with pytest.raises(FileNotFoundError, match=r"No tokenizer files found in 'org/no-weights' \(revision 'main'\) "
                                                r"\(files: README.md, config.json\)"):
        tj.AutoTokenizer.from_pretrained("org/no-weights")


def test_gguf_file_from_a_repo(server, repos, cache):
    model = tj.AutoModelForCausalLM.from_pretrained("org/tiny-gguf", gguf_file="tiny.gguf")
    tokenizer = tj.AutoTokenizer.from_pretrained("org/tiny-gguf", gguf_file="tiny.gguf")
    assert server.downloads() == {"tiny.gguf": 1}
    reference = hf.AutoModelForCausalLM.from_pretrained(str(repos["gguf"].parent), gguf_file="tiny.gguf").eval()
    ids = np.array([tokenizer("hello world")["input_ids"]])
    _assert_logits(model, _torch_logits(reference, ids), ids)
    with pytest.raises(FileNotFoundError, match=r"'org/tiny-gguf' \(revision 'main'\) \(files: README.md, "
                                                r"tiny.gguf\) has no file 'other.gguf'"):
        tj.AutoModelForCausalLM.from_pretrained("org/tiny-gguf", gguf_file="other.gguf")
