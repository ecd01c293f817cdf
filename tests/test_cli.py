"""The ``transformers-jax`` console script (what ``pip install`` puts on the PATH): its commands as a user
runs them, in fresh processes, plus the chat session and the persistent compilation cache."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as hf

import transformers_jax as tj
from parity import assert_accurate, hf_pair, tiny_bpe_tokenizer
from transformers_jax import compilation_cache

REPO = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("transformers-jax")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = ["hello world", "the quick brown fox jumps over the lazy dog", "what is the capital of france",
          "paris is the capital of france", "a b c d e f g h i j k l m n o p"]


def cli(*args, cache=None, input=None, timeout=300, env=None):
    """Run the installed console script; the compilation cache goes to ``cache`` (off when None)."""
    environment = {**os.environ, "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1",
                   compilation_cache.ENV_VAR: str(cache) if cache else "off", **(env or {})}
    environment.pop("XLA_FLAGS", None)  # one device, as a user's laptop
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, env=environment, input=input,
                          timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def chat_model_dir(tmp_path_factory) -> Path:
    """A tiny Llama chat model. Its EOS logit is exactly 0, below the largest of ~300 random logits, so
    greedy replies run their full budget."""
    directory = tmp_path_factory.mktemp("tiny_chat")
    tokenizer = tiny_bpe_tokenizer(CORPUS, 300, CHAT_TEMPLATE)
    config = tj.LlamaConfig.from_dict({
        "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id, "tie_word_embeddings": False,
    })
    model = tj.LlamaForCausalLM(config, seed=0)
    model.params["lm_head"]["kernel"] = model.params["lm_head"]["kernel"].at[:, tokenizer.eos_token_id].set(0.0)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def greedy_reply(model, tokenizer, messages, n) -> str:
    ids = np.asarray([tokenizer.apply_chat_template(messages, add_generation_prompt=True)], np.int32)
    out = np.asarray(model.generate(ids, max_new_tokens=n, do_sample=False))[0, ids.shape[1]:]
    return tokenizer.decode(out.tolist(), skip_special_tokens=True)


# ----------------------------------------------------------------------------- the dispatcher
def test_help_lists_the_commands_and_unknown_ones_are_refused():
    done = cli("--help")
    assert done.returncode == 0
    for command in ("serve", "chat", "generate", "convert", "finetune", "pretrain", "env"):
        assert re.search(rf"^  {command} ", done.stdout, re.M), done.stdout
    bad = cli("trian")
    assert bad.returncode == 2 and "unknown command 'trian'" in bad.stderr


def test_env_reports_versions_backend_and_cache(tmp_path):
    done = cli("env", "--json", cache=tmp_path / "xla")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["packages"]["jax"] == __import__("jax").__version__
    assert report["packages"]["transformers_jax"] == tj.__version__
    assert report["jax"]["backend"] == "cpu" and report["jax"]["devices"] == 1
    assert report["compilation cache"] == str(tmp_path / "xla")
    assert report["cpu"]["machine"] == __import__("platform").machine()


def test_wheel_carries_the_console_script_and_its_commands(tmp_path):
    """A user who installed the wheel has no scripts/ folder: every command's code is in the wheel."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("transformers_jax-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "transformers-jax = transformers_jax_cli:console_main" in entry_points
    for module in ("transformers_jax_cli/__init__.py", "transformers_jax_cli/env.py", "serving/cli.py",
                   "train/convert.py", "train/finetune.py", "train/pretrain.py"):
        assert module in names, module
    assert not [n for n in names if n.startswith(("scripts/", "tests/"))]
    packaged = [n for n in names if n.endswith(".py")]
    for name in packaged:  # nothing installed reaches into the source checkout's scripts/
        source = zipfile.ZipFile(wheel).read(name).decode()
        assert not re.search(r"^\s*(from|import) scripts\b", source, re.M), name


# ----------------------------------------------------------------------------- generate, chat, serve
def test_chat_session_streams_each_reply_and_keeps_the_conversation(chat_model_dir):
    from serving.cli import ChatSession

    model = tj.AutoModelForCausalLM.from_pretrained(chat_model_dir)
    tokenizer = tj.AutoTokenizer.from_pretrained(chat_model_dir)
    session = ChatSession(model, tokenizer, system="be brief", max_new_tokens=12, max_length=128, chunk_steps=2)
    try:
        pieces = []
        first = session.say("hello world", pieces.append)
        history = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}]
        assert first == greedy_reply(model, tokenizer, history, 12) and first
        assert len(pieces) > 1 and "".join(pieces) == first  # streamed, chunk by chunk
        second = session.say("the quick brown fox")
        history += [{"role": "assistant", "content": first}, {"role": "user", "content": "the quick brown fox"}]
        assert len(tokenizer.apply_chat_template(history, add_generation_prompt=True)) + 12 <= 128  # nothing dropped
        assert second == greedy_reply(model, tokenizer, history, 12)
        # A long conversation drops its oldest turns (never the system message) to fit max_length.
        for _ in range(6):
            session.say("a b c d e f g h i j k l m n o p")
        assert session.turns[0]["role"] == "user" and len(session.turns) < 16
        prompt = tokenizer.apply_chat_template(session.system + session.turns[:-1], add_generation_prompt=True)
        assert len(prompt) + 12 <= 128
        with pytest.raises(ValueError, match="exceeds max_length 128"):
            session.say("a b c d e f g h i j k l m n o p " * 8)
    finally:
        session.close()


def test_chat_command_answers_lines_from_stdin(chat_model_dir):
    done = cli("chat", "--model", chat_model_dir, "--max-new-tokens", 8, "--max-length", 64,
               input="hello world\n/reset\nhello world\n/exit\nnever read\n")
    assert done.returncode == 0, done.stderr
    model = tj.AutoModelForCausalLM.from_pretrained(chat_model_dir)
    tokenizer = tj.AutoTokenizer.from_pretrained(chat_model_dir)
    reply = greedy_reply(model, tokenizer, [{"role": "user", "content": "hello world"}], 8)
    assert done.stdout == f"{reply}\n(new conversation)\n{reply}\n"  # /reset: the same first reply again


def test_chat_refuses_a_model_without_a_chat_template(tmp_path, chat_model_dir, capsys, monkeypatch):
    from serving.cli import chat_main

    plain = tmp_path / "plain"
    tj.AutoModelForCausalLM.from_pretrained(chat_model_dir).save_pretrained(plain)
    tokenizer = tj.AutoTokenizer.from_pretrained(chat_model_dir)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(plain)
    monkeypatch.setattr(sys, "stdin", iter(["hi\n"]))
    assert chat_main(["--model", str(plain), "--no-compilation-cache"]) == 2
    assert "has no chat template" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_starts_answers_and_shuts_down(tmp_path, chat_model_dir):
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", compilation_cache.ENV_VAR: str(tmp_path / "xla")}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.Popen([str(EXE), "serve", "--model", str(chat_model_dir), "--port", str(port), "--num-slots", "1",
                             "--max-length", "32", "--chunk-steps", "4"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600  # a safety net: warm-up compiles at the machine's pace
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server never became healthy"
                time.sleep(0.2)
        body = json.dumps({"model": chat_model_dir.name, "prompt": "hello", "max_tokens": 3, "temperature": 0})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body.encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert answer["usage"]["completion_tokens"] == 3
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any((tmp_path / "xla").iterdir())  # compiled programs were kept


# ----------------------------------------------------------------------------- convert
def test_convert_gguf_to_hf_and_flax(tmp_path):
    from test_gguf import _write_tiny

    gguf_path = tmp_path / "tiny.gguf"
    _write_tiny(gguf_path, rope_scaling=False)
    assert cli("convert", "--gguf", gguf_path, "--to-hf", tmp_path / "hf").returncode == 0
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "hf").iterdir()}
    ours = tj.AutoModelForCausalLM.from_pretrained(gguf_path)
    theirs = hf.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    ids = np.array([[1, 5, 9, 13, 2, 7]])
    assert_accurate(ours(ids).logits, *hf_pair(theirs, lambda m: m(torch.tensor(ids)).logits))
    assert hf.AutoTokenizer.from_pretrained(tmp_path / "hf")("hello").input_ids == \
        tj.AutoTokenizer.from_pretrained(gguf_path)("hello")["input_ids"]

    from train.convert import main as convert_main  # the same command, in this process

    assert convert_main(["--hf", str(tmp_path / "hf"), "--to-flax", str(tmp_path / "flax"), "--no-compilation-cache"]) == 0
    assert (tmp_path / "flax" / "flax_model.msgpack").is_file() and not (tmp_path / "flax" / "model.safetensors").exists()
    back = tj.AutoModelForCausalLM.from_pretrained(tmp_path / "flax")
    np.testing.assert_array_equal(np.asarray(back(ids).logits), np.asarray(ours(ids).logits))


def test_convert_errors_are_named(tmp_path, capsys):
    from train.convert import main as convert_main

    assert convert_main(["--gguf", str(tmp_path / "nope.gguf"), "--to-hf", str(tmp_path / "out")]) == 2
    assert f"GGUF file {tmp_path / 'nope.gguf'} does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert_main(["--gguf", "a.gguf", "--to-hf", "x", "--to-flax", "y"])
    assert "argument --to-flax: not allowed with argument --to-hf" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert_main(["--gguf", "a.gguf", "--step", "3", "--to-hf", "x"])
    assert "--step goes with --checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the persistent compilation cache
def test_cache_location_rules(tmp_path, monkeypatch):
    monkeypatch.delenv(compilation_cache.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    default = compilation_cache.resolve_cache_dir()
    assert default == tmp_path / "xdg" / "transformers_jax" / "xla" / compilation_cache.host_fingerprint()
    monkeypatch.setenv(compilation_cache.ENV_VAR, str(tmp_path / "mine"))
    assert compilation_cache.resolve_cache_dir() == tmp_path / "mine"
    assert compilation_cache.resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    for off in ("0", "off", "False", "none"):
        monkeypatch.setenv(compilation_cache.ENV_VAR, off)
        assert compilation_cache.resolve_cache_dir() is None
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match=f"cannot create the compilation cache folder {blocker}/xla"):
        compilation_cache.enable_compilation_cache(blocker / "xla")


def test_generate_command_equals_generate_and_a_second_run_loads_the_compiled_programs(tmp_path, chat_model_dir):
    """`generate` twice: the first run compiles and fills the cache, the second reads it back (JAX logs
    each persistent-cache hit); both answer as generate() does. --no-compilation-cache reads nothing."""
    rows = [{"id": 0, "prompt": "hello world"}, {"id": 1, "messages": [{"role": "user", "content": "what is"}]}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    logs = {"JAX_LOG_COMPILES": "1"}

    def run(out, *flags):
        done = cli("generate", "--model", chat_model_dir, "--input", tmp_path / "in.jsonl", "--output", tmp_path / out,
                   "--max-new-tokens", 6, "--no-progress", *flags, cache=tmp_path / "xla", env=logs)
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in (tmp_path / out).read_text().splitlines()]
        return done.stderr.count("Persistent compilation cache hit"), lines

    hits, first = run("first.jsonl")
    assert hits == 0 and any((tmp_path / "xla").glob("jit__decode_loop-*"))  # generate's compiled loop
    model = tj.AutoModelForCausalLM.from_pretrained(chat_model_dir)
    tokenizer = tj.AutoTokenizer.from_pretrained(chat_model_dir)
    assert first[1]["text"] == greedy_reply(model, tokenizer, rows[1]["messages"], 6)
    assert [r["num_new_tokens"] for r in first] == [6, 6]
    hits, second = run("second.jsonl")
    assert hits >= 1 and second == first
    hits, third = run("third.jsonl", "--no-compilation-cache")
    assert hits == 0 and third == first
