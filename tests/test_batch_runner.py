"""The JSONL batch runner (serving/batch.py, scripts/batch_generate.py) on a tiny random Llama."""
from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import transformers_jax as tj
from parity import perturb_params, tiny_bpe_tokenizer
from serving.jsonl_store import ResultStore, id_key
from serving.batch import run_batch

REPO = Path(__file__).resolve().parents[1]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
PROMPTS = [
    "hello",
    "the quick brown fox jumps over the lazy dog",
    "a",
    "once upon a time there was a little model that generated text in batches and never lost a line",
    "jax is fast",
    "zz",
    "the lazy dog sleeps all day long while the fox runs around the field",
    "batching must not change results",
    "xyz abc",
]


def _tokenizer():
    return tiny_bpe_tokenizer(PROMPTS, 300, CHAT_TEMPLATE)


def _save_model(directory: Path, tokenizer, eos_token_id: int) -> None:
    config = tj.LlamaConfig.from_dict({
        "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": eos_token_id,
        "pad_token_id": tokenizer.pad_token_id, "tie_word_embeddings": False,
    })
    tj.LlamaForCausalLM(config, seed=0).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny_llama")
    tokenizer = _tokenizer()
    _save_model(directory, tokenizer, tokenizer.eos_token_id)
    return directory


@pytest.fixture(scope="module")
def model(model_dir):
    return tj.AutoModelForCausalLM.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return tj.AutoTokenizer.from_pretrained(model_dir)


def _write(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _single(model, tokenizer, ids, max_new_tokens, **settings):
    """model.generate on one prompt alone -> (text, num_new_tokens, finish_reason), as the runner reports them."""
    eos = int(model.config.eos_token_id)
    out = np.asarray(model.generate(np.asarray([ids], np.int32), max_new_tokens=max_new_tokens,
                                    eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, **settings))
    new = [int(t) for t in out[0, len(ids):]]
    if eos in new:
        new, reason = new[: new.index(eos) + 1], "stop"
    else:
        reason = "length"
    return tokenizer.decode(new, skip_special_tokens=True), len(new), reason


def test_batched_output_equals_generate_alone(tmp_path, model, tokenizer):
    rows = [{"id": f"p{i}", "prompt": p} for i, p in enumerate(PROMPTS)]
    rows[4]["max_new_tokens"] = 3
    out = tmp_path / "out.jsonl"
    summary = run_batch(model, tokenizer, _write(tmp_path / "in.jsonl", rows), out, batch_size=3, max_new_tokens=8,
                        progress=False)
    results = _read(out)
    assert [r["id"] for r in results] == [r["id"] for r in rows]          # input order, each id once
    assert summary.num_done == len(rows) and summary.num_errors == 0 and summary.new_tokens > 0
    for row, result in zip(rows, results):
        ids = tokenizer(row["prompt"])["input_ids"]
        text, n_new, reason = _single(model, tokenizer, ids, row.get("max_new_tokens", 8), do_sample=False)
        assert result == {"id": row["id"], "text": text, "num_prompt_tokens": len(ids), "num_new_tokens": n_new,
                          "finish_reason": reason}
    assert results[4]["num_new_tokens"] == 3 and results[4]["finish_reason"] == "length"
    assert len({r["text"] for r in results}) > 3  # the model does depend on the prompt
    assert len({r["num_prompt_tokens"] for r in results}) > 3  # several lengths were padded together


def test_finish_reason_stop(tmp_path, model, tokenizer):
    # Make a token that the random model does generate the end-of-sequence token, then check "stop".
    inp = _write(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in enumerate(PROMPTS)])
    ids = tokenizer(PROMPTS[1])["input_ids"]
    generated = np.asarray(model.generate(np.asarray([ids], np.int32), max_new_tokens=6, do_sample=False,
                                          eos_token_id=model.config.eos_token_id,
                                          pad_token_id=tokenizer.pad_token_id))[0, len(ids):]
    stop_token = int(generated[2])
    directory = tmp_path / "eos_model"
    _save_model(directory, tokenizer, stop_token)
    eos_model = tj.AutoModelForCausalLM.from_pretrained(directory)
    out2 = tmp_path / "second.jsonl"
    run_batch(eos_model, tokenizer, inp, out2, batch_size=4, max_new_tokens=6, progress=False)
    result = _read(out2)[1]
    assert result["finish_reason"] == "stop"
    assert result["num_new_tokens"] == list(generated).index(stop_token) + 1
    for r in _read(out2):
        assert r["num_new_tokens"] == 6 if r["finish_reason"] == "length" else 1 <= r["num_new_tokens"] <= 6


def test_malformed_lines_reported_and_rest_proceeds(tmp_path, model, tokenizer, capsys):
    rows = [
        {"id": "a", "prompt": "hello"},                           # 1
        {"id": "b", "prompt": "jax is fast"},                     # 2
        '{"id": "c", "prompt": "unterminated',                    # 3 bad JSON
        {"prompt": "no id"},                                      # 4 missing id
        "",                                                       # 5 blank: ignored
        {"id": "a", "prompt": "duplicate"},                       # 6 duplicate id
        {"id": "d", "prompt": "x", "max_new_tokens": "4"},        # 7 wrong type
        {"id": "e", "prompt": "x", "messages": []},               # 8 both
        {"id": 9, "prompt": 5},                                   # 9 prompt not a string
        {"id": "f", "prompt": "zz", "temprature": 0.5},           # 10 unknown key
        {"id": "g", "messages": [{"role": "user"}]},              # 11 message without content
        {"id": "h", "prompt": "xyz abc"},                         # 12
    ]
    out = tmp_path / "out.jsonl"
    summary = run_batch(model, tokenizer, _write(tmp_path / "in.jsonl", rows), out, batch_size=2, max_new_tokens=4,
                        progress=False)
    errors = _read(tmp_path / "out.jsonl.errors.jsonl")
    assert [e["line"] for e in errors] == [3, 4, 6, 7, 8, 9, 10, 11]
    assert all(e["error"].startswith(f"line {e['line']}: ") for e in errors)
    assert "invalid JSON" in errors[0]["error"] and "missing 'id'" in errors[1]["error"]
    assert "duplicate id 'a' (first seen on line 1)" in errors[2]["error"]
    assert "max_new_tokens must be a positive integer" in errors[3]["error"] and "temprature" in errors[6]["error"]
    assert [e["id"] for e in errors] == [None, None, "a", "d", "e", 9, "f", "g"]
    stderr = capsys.readouterr().err
    for e in errors:
        assert e["error"] in stderr
    assert [r["id"] for r in _read(out)] == ["a", "b", "h"]
    assert summary.num_errors == 8 and summary.num_done == 3
    # A rerun reports the same errors again and generates nothing twice.
    again = run_batch(model, tokenizer, tmp_path / "in.jsonl", out, batch_size=2, max_new_tokens=4, progress=False)
    assert again.num_done == 0 and again.num_skipped == 3 and _read(tmp_path / "out.jsonl.errors.jsonl") == errors
    assert [r["id"] for r in _read(out)] == ["a", "b", "h"]


def test_chat_messages(tmp_path, model, tokenizer):
    conversation = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the lazy dog"}]
    rows = [{"id": "chat", "messages": conversation}, {"id": "plain", "prompt": "the lazy dog"}]
    out = tmp_path / "out.jsonl"
    run_batch(model, tokenizer, _write(tmp_path / "in.jsonl", rows), out, batch_size=2, max_new_tokens=5,
              progress=False)
    chat, plain = _read(out)
    ids = tokenizer.apply_chat_template(conversation, add_generation_prompt=True)
    rendered = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert rendered.endswith("<|assistant|>") and "<|system|>be brief\n" in rendered
    assert chat["num_prompt_tokens"] == len(ids) > plain["num_prompt_tokens"]
    text, n_new, reason = _single(model, tokenizer, list(ids), 5, do_sample=False)
    assert (chat["text"], chat["num_new_tokens"], chat["finish_reason"]) == (text, n_new, reason)


def _mixed_rows():
    rows = [{"id": i, "prompt": p} for i, p in enumerate(PROMPTS)]
    rows += [{"id": f"s{i}", "prompt": p, "do_sample": True, "temperature": 1.5, "seed": 100 + i}
             for i, p in enumerate(PROMPTS[:3])]
    rows.append({"id": "s-noseed", "prompt": "hello", "do_sample": True, "top_k": 20, "top_p": 0.9})
    return rows


def test_crash_and_resume_equals_uninterrupted_with_sampling(tmp_path, model, tokenizer):
    inp = _write(tmp_path / "in.jsonl", _mixed_rows())
    full = tmp_path / "full.jsonl"
    run_batch(model, tokenizer, inp, full, batch_size=2, max_new_tokens=6, progress=False)

    class Crash(Exception):
        pass

    def crash_after_two(index, records):
        if index == 1:
            raise Crash

    out = tmp_path / "out.jsonl"
    with pytest.raises(Crash):
        run_batch(model, tokenizer, inp, out, batch_size=2, max_new_tokens=6, progress=False,
                  on_batch_committed=crash_after_two)
    parts = sorted((tmp_path / "out.jsonl.parts").glob("part-*.jsonl"))
    assert len(parts) == 2 and not out.exists()
    summary = run_batch(model, tokenizer, inp, out, batch_size=2, max_new_tokens=6, progress=False)
    assert summary.num_skipped == 4 and summary.num_done == len(_mixed_rows()) - 4
    assert out.read_bytes() == full.read_bytes()
    assert not (tmp_path / "out.jsonl.parts").exists()
    sampled = {r["id"]: r for r in _read(full) if str(r["id"]).startswith("s")}
    greedy = {r["id"]: r for r in _read(full)}
    assert sampled["s0"]["text"] != greedy[0]["text"] or sampled["s1"]["text"] != greedy[1]["text"]


def test_sampled_request_is_independent_of_its_batch(tmp_path, model, tokenizer):
    rows = _mixed_rows()
    alone = [r for r in rows if r["id"] == "s1"]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    run_batch(model, tokenizer, _write(tmp_path / "all.jsonl", rows), a, batch_size=4, max_new_tokens=6, progress=False)
    run_batch(model, tokenizer, _write(tmp_path / "one.jsonl", alone), b, batch_size=1, max_new_tokens=6, progress=False)
    assert [r for r in _read(a) if r["id"] == "s1"] == _read(b)
    # and the seed matters
    other = [dict(alone[0], seed=7)]
    c = tmp_path / "c.jsonl"
    run_batch(model, tokenizer, _write(tmp_path / "other.jsonl", other), c, batch_size=1, max_new_tokens=6,
              progress=False)
    assert _read(c)[0]["text"] != _read(b)[0]["text"]


def test_merge_after_interrupted_merge_keeps_each_id_once(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n')
    parts = tmp_path / "out.jsonl.parts"
    parts.mkdir()
    (parts / "part-00000000.jsonl").write_text('{"id": 2, "text": "b"}\n{"id": 3, "text": "c"}\n')  # already merged
    (parts / "part-00000001.jsonl.tmp").write_text('{"id": 4, "te')                                   # killed mid-write
    store = ResultStore(out)  # the store both runners share (serving/jsonl_store.py)
    store.clean_temporaries()
    done = store.merge({id_key(i): pos for pos, i in enumerate((3, 1, 2, 4))})
    assert done == {"1", "2", "3"}
    assert [r["id"] for r in _read(out)] == [3, 1, 2]
    assert not parts.exists()
    out.write_text('{"id": 1, "text": "a"}\n{"id": 2, "te')
    with pytest.raises(RuntimeError, match="incomplete last line"):
        ResultStore(out).merge({})


def _cli(*args):
    """``transformers-jax generate ...`` (the installed console script)."""
    return [str(Path(sys.executable).with_name("transformers-jax")), "generate", *map(str, args)]


def test_cli_sigkill_then_resume(tmp_path, model_dir):
    inp = _write(tmp_path / "in.jsonl", [{"id": i, "prompt": p} for i, p in enumerate(PROMPTS * 2)]
                 + ['{"id": "bad"'])
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    common = ["--model", model_dir, "--input", inp, "--batch-size", "2", "--max-new-tokens", "5"]
    full = tmp_path / "full.jsonl"
    done = subprocess.run(_cli(*common, "--output", full, "--no-progress"), env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr  # one bad line
    assert "line 19: invalid JSON" in done.stderr
    assert len(_read(full)) == 2 * len(PROMPTS)

    # The same run, SIGKILLed while it hangs after committing its second batch (a hook in a wrapper).
    out = tmp_path / "out.jsonl"
    hang = (
        "import sys, time; sys.path.insert(0, %r); import transformers_jax as tj; from serving.batch import run_batch\n"
        "m = tj.AutoModelForCausalLM.from_pretrained(%r); t = tj.AutoTokenizer.from_pretrained(%r)\n"
        "run_batch(m, t, %r, %r, batch_size=2, max_new_tokens=5, progress=False,\n"
        "          on_batch_committed=lambda i, r: time.sleep(600) if i == 1 else None)\n"
    ) % (str(REPO), str(model_dir), str(model_dir), str(inp), str(out))
    proc = subprocess.Popen([sys.executable, "-c", hang], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = tmp_path / "out.jsonl.parts"
    deadline = time.time() + 240
    while len(list(parts.glob("part-*.jsonl"))) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    committed = sorted(parts.glob("part-*.jsonl"))
    assert len(committed) == 2 and not out.exists()
    assert sum(len(_read(p)) for p in committed) == 4  # complete lines only

    resumed = subprocess.run(_cli(*common, "--output", out), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 2, resumed.stderr
    assert "14 done, 4 already done" in resumed.stderr
    assert out.read_bytes() == full.read_bytes()
    ids = [r["id"] for r in _read(out)]
    assert ids == list(range(2 * len(PROMPTS)))


def test_encoder_decoder_model(tmp_path, capsys):
    """A BART checkpoint through the CLI's loader and the runner: encoder inputs right padded in batches, every
    result equal to ``generate`` on that input alone (the new tokens after the decoder's start token)."""
    from serving.cli import generate_main, load_model_and_tokenizer

    tokenizer = _tokenizer()
    config = tj.BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2,
                           encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48,
                           max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, bos_token_id=1,
                           eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None)
    model_dir = tmp_path / "bart"
    bart = tj.BartForConditionalGeneration(config, seed=0)
    bart.params = perturb_params(bart.params, seed=1, scale=0.3)  # a prompt-dependent, not uniform, distribution
    bart.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    model, loaded_tokenizer, _ = load_model_and_tokenizer(str(model_dir))
    started = time.perf_counter()
    assert type(model).__name__ == "BartForConditionalGeneration"

    rows = [{"id": i, "prompt": p} for i, p in enumerate(PROMPTS)]
    rows[2]["max_new_tokens"] = 3
    out = tmp_path / "out.jsonl"
    assert generate_main(["--model", str(model_dir), "--input", str(_write(tmp_path / "in.jsonl", rows)),
                          "--output", str(out), "--batch-size", "3", "--max-new-tokens", "7", "--no-progress"]) == 0
    seconds = float(re.search(r"new tokens in ([0-9.]+) s", capsys.readouterr().err).group(1))
    assert 0 < seconds < time.perf_counter() - started + 0.05  # the run's wall time (printed to 0.1 s)
    results = _read(out)
    assert [r["id"] for r in results] == [r["id"] for r in rows]
    for row, result in zip(rows, results):
        ids = loaded_tokenizer(row["prompt"])["input_ids"]
        budget = row.get("max_new_tokens", 7)
        alone = np.asarray(model.generate(np.asarray([ids], np.int32), max_new_tokens=budget,
                                          pad_token_id=tokenizer.pad_token_id))
        new = [int(t) for t in alone[0, 1:]]
        if 2 in new:
            new = new[: new.index(2) + 1]
        assert result["text"] == loaded_tokenizer.decode(new, skip_special_tokens=True)
        assert result["num_prompt_tokens"] == len(ids) and result["num_new_tokens"] == len(new)
    assert results[2]["num_new_tokens"] == 3
    assert len({r["text"] for r in results}) > 3
    with pytest.raises(ValueError, match="serving engine runs causal LMs"):
        from serving.engine import Engine
        Engine(model)
