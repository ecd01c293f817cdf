"""The OpenAI-compatible HTTP server (serving/server.py) over the real engine (serving/engine.py).

A tiny random Llama and a tiny byte-level BPE tokenizer with a chat template are built here; the server
runs in-process on 127.0.0.1 (a free port) in a background thread, and the real ``openai`` client talks
to it. Raw HTTP (``http.client`` / sockets) is used where the client would hide what is tested (status
codes of malformed bodies, the SSE framing, a client that hangs up mid-stream).
"""
from __future__ import annotations

import http.client
import json
import random
import re
import socket
import threading
import time

import numpy as np
import openai
import pytest

import transformers_jax as tj
from parity import tiny_bpe_tokenizer
from serving.engine import Engine
from serving.detokenizer import Detokenizer
from serving.server import OpenAIServer, ServerThread

NAME = "tiny-llama"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "hello world", "the quick brown fox jumps over the lazy dog", "once upon a time there was a model",
    "what is the capital of france", "paris is the capital of france", "servers stream tokens to clients",
    "jax compiles programs with xla", "a b c d e f g h i j k l m n o p",
]
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is the capital of france"}]


class SlowEngine(Engine):
    """The real engine, with an optional pause before each decoding chunk: the tiny model decodes ~10k
    tokens/s, too fast to hang up mid-stream or shut down mid-request on purpose."""

    chunk_delay = 0.0

    def _run_chunk(self) -> None:
        if self.chunk_delay:
            time.sleep(self.chunk_delay)
        super()._run_chunk()


def _tokenizer():
    return tiny_bpe_tokenizer(CORPUS, 320, CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def tokenizer():
    return _tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    config = tj.LlamaConfig.from_dict({
        "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id, "tie_word_embeddings": False,
    })
    model = tj.LlamaForCausalLM(config, seed=0)
    # Zero the EOS column of the (untied) output layer: EOS's logit is then exactly 0, below the
    # maximum of the other ~300 random logits, so greedy decoding never stops early and requests
    # run their full budget (what the disconnect and shutdown tests need). Parity with generate holds.
    kernel = model.params["lm_head"]["kernel"]
    model.params["lm_head"]["kernel"] = kernel.at[:, tokenizer.eos_token_id].set(0.0)
    return model


@pytest.fixture(scope="module")
def engine(model):
    return SlowEngine(model, num_slots=2, max_length=128, chunk_steps=4, max_queue=16)


@pytest.fixture(scope="module")
def server(engine, tokenizer):
    # No warm-up: each program compiles when a test first needs it (most tests use short prompts, so
    # most prompt buckets never compile); the engine's own tests cover the warm-up.
    engine.start(warmup=False)
    thread = ServerThread(OpenAIServer(engine, tokenizer, model_name=NAME), start_engine=False).start()
    yield thread
    thread.stop(timeout=10)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def _greedy(model, ids: list[int], n: int) -> list[int]:
    out = np.asarray(model.generate(np.asarray([ids], np.int32), max_new_tokens=n, do_sample=False))
    return [int(t) for t in out[0, len(ids):]]


def _post(server, path: str, body, *, raw: bytes | None = None, method: str = "POST", headers=None):
    """(status, parsed JSON or text) of one request over a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text
    finally:
        conn.close()


def _metrics(server) -> dict[str, float]:
    status, text = _post(server, "/metrics", None, method="GET")
    assert status == 200
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _wait_for(predicate, timeout=10.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _sse_events(text: str) -> list[str]:
    assert text.endswith("data: [DONE]\n\n"), text[-200:]
    return [block[len("data: "):] for block in text.split("\n\n") if block]


# --------------------------------------------------------------------------------------------- happy paths

def test_models_health_metrics(server, client):
    assert [m.id for m in client.models.list().data] == [NAME]
    assert _post(server, "/health", None, method="GET") == (200, {"status": "ok"})
    assert _post(server, f"/v1/models/{NAME}", None, method="GET")[1]["id"] == NAME
    m = _metrics(server)
    assert m["transformers_jax_num_slots"] == 2 and m["transformers_jax_active_slots"] == 0
    assert "transformers_jax_queue_depth" in m and "transformers_jax_tokens_per_second" in m
    assert 'transformers_jax_time_to_first_token_seconds_bucket{le="+Inf"}' in m


def test_completion_greedy_equals_generate(client, model, tokenizer):
    prompt = "the quick brown fox"
    ids = tokenizer(prompt)["input_ids"]
    reference = _greedy(model, ids, 12)
    out = client.completions.create(model=NAME, prompt=prompt, max_tokens=12, temperature=0)
    assert out.choices[0].text == tokenizer.decode(reference, skip_special_tokens=True)
    assert out.choices[0].finish_reason == "length"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (len(ids), 12, len(ids) + 12)
    assert out.model == NAME and out.object == "text_completion"
    # a list of one string and token ids are the same prompt
    assert client.completions.create(model=NAME, prompt=[prompt], max_tokens=12, temperature=0).choices[0].text == \
        out.choices[0].text
    assert client.completions.create(model=NAME, prompt=ids, max_tokens=12, temperature=0).choices[0].text == \
        out.choices[0].text


def test_completion_stream_equals_non_stream(server, client, model, tokenizer):
    prompt = "once upon a time"
    full = client.completions.create(model=NAME, prompt=prompt, max_tokens=20, temperature=0).choices[0].text
    chunks = list(client.completions.create(model=NAME, prompt=prompt, max_tokens=20, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == full
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20
    # the wire format: SSE "data: {json}" events ending with "data: [DONE]"
    status, text = _post(server, "/v1/completions",
                         {"model": NAME, "prompt": prompt, "max_tokens": 20, "temperature": 0, "stream": True})
    assert status == 200
    events = _sse_events(text)
    assert events[-1] == "[DONE]"
    assert "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1]) == full


def test_chat_greedy_equals_generate_streamed_and_not(client, model, tokenizer):
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True)
    expected = tokenizer.decode(_greedy(model, ids, 16), skip_special_tokens=True)
    out = client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=16, temperature=0)
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content == expected
    assert out.choices[0].finish_reason == "length"
    assert out.usage.prompt_tokens == len(ids) and out.usage.completion_tokens == 16
    stream = client.chat.completions.create(model=NAME, messages=MESSAGES, max_completion_tokens=16, temperature=0,
                                            stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_sequences_cut_the_text(client, model, tokenizer):
    prompt = "jax compiles"
    text = tokenizer.decode(_greedy(model, tokenizer(prompt)["input_ids"], 24), skip_special_tokens=True)
    assert len(text) > 12, text
    stop = text[6:9]
    expected = text[: text.find(stop)]
    for stream in (False, True):
        kwargs = dict(model=NAME, prompt=prompt, max_tokens=24, temperature=0, stop=[stop, "\u2603never"])
        if stream:
            chunks = list(client.completions.create(stream=True, **kwargs))
            got = "".join(c.choices[0].text for c in chunks)
            reason = chunks[-1].choices[0].finish_reason
        else:
            out = client.completions.create(**kwargs)
            got, reason = out.choices[0].text, out.choices[0].finish_reason
            assert out.usage.completion_tokens < 24
        assert (got, reason) == (expected, "stop"), (stream, text, stop)
    # a stop string that never occurs changes nothing
    out = client.completions.create(model=NAME, prompt=prompt, max_tokens=24, temperature=0, stop="\u2603")
    assert (out.choices[0].text, out.choices[0].finish_reason) == (text, "length")


def test_detokenizer_holds_back_partial_stop_strings(tokenizer):
    ids = tokenizer("hello world paris")["input_ids"][1:]
    detok = Detokenizer(tokenizer, ["wor", "zz"])
    pieces = [detok.add([t]) for t in ids]
    assert "".join(pieces) == "hello " and detok.stopped
    detok = Detokenizer(tokenizer, ["paris!"])
    assert "".join(detok.add([t]) for t in ids) + detok.flush() == "hello world paris"


def test_seeded_sampling_is_reproducible(client):
    kwargs = dict(model=NAME, prompt="hello", max_tokens=16, temperature=1.0, top_p=0.9)
    a = client.completions.create(seed=7, **kwargs).choices[0].text
    assert client.completions.create(seed=7, **kwargs).choices[0].text == a
    others = {client.completions.create(seed=s, **kwargs).choices[0].text for s in range(8, 12)}
    assert others != {a}


# --------------------------------------------------------------------------------------------- bad requests

C, CH = "/v1/completions", "/v1/chat/completions"
OK_C = {"model": NAME, "prompt": "hello", "max_tokens": 4}
OK_CH = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
BAD = [  # (name, path, body (dict, or bytes sent as is), status, expected words in the message, param)
    ("malformed json", C, b'{"model": "tiny-llama", "prompt": ', 400, "parse the JSON", None),
    ("not an object", C, b"[1, 2]", 400, "JSON object", None),
    ("empty body", C, b"", 400, "empty", None),
    ("invalid utf-8", C, b'{"model": "\xff\xfe"}', 400, "UTF-8", None),
    ("NaN temperature", C, b'{"model": "tiny-llama", "prompt": "x", "temperature": NaN}', 400, "NaN", None),
    ("missing model", C, {"prompt": "hello"}, 400, "model", "model"),
    ("model not a string", C, {**OK_C, "model": 5}, 400, "string", "model"),
    ("unknown model", C, {**OK_C, "model": "gpt-5"}, 404, "does not exist", "model"),
    ("missing prompt", C, {"model": NAME}, 400, "prompt", "prompt"),
    ("prompt wrong type", C, {**OK_C, "prompt": {"text": "x"}}, 400, "prompt", "prompt"),
    ("two prompts", C, {**OK_C, "prompt": ["a", "b"]}, 400, "one prompt", "prompt"),
    ("token id out of range", C, {**OK_C, "prompt": [1, 99999]}, 400, "out of range", "prompt"),
    ("prompt too long", C, {**OK_C, "prompt": "hello world " * 200}, 400, "maximum context length", "prompt"),
    ("max_tokens too large", C, {**OK_C, "max_tokens": 5000}, 400, "maximum context length", "max_tokens"),
    ("max_tokens zero", C, {**OK_C, "max_tokens": 0}, 400, "at least 1", "max_tokens"),
    ("max_tokens negative", C, {**OK_C, "max_tokens": -3}, 400, "at least 1", "max_tokens"),
    ("max_tokens string", C, {**OK_C, "max_tokens": "10"}, 400, "integer", "max_tokens"),
    ("max_tokens bool", C, {**OK_C, "max_tokens": True}, 400, "integer", "max_tokens"),
    ("temperature too high", C, {**OK_C, "temperature": 2.5}, 400, "temperature", "temperature"),
    ("temperature negative", C, {**OK_C, "temperature": -0.1}, 400, "temperature", "temperature"),
    ("temperature string", C, {**OK_C, "temperature": "hot"}, 400, "number", "temperature"),
    ("top_p zero", C, {**OK_C, "top_p": 0}, 400, "top_p", "top_p"),
    ("n = 2", C, {**OK_C, "n": 2}, 400, "n=1", "n"),
    ("stream not bool", C, {**OK_C, "stream": "yes"}, 400, "boolean", "stream"),
    ("stop wrong type", C, {**OK_C, "stop": 7}, 400, "stop", "stop"),
    ("too many stops", C, {**OK_C, "stop": list("abcde")}, 400, "at most 4", "stop"),
    ("empty stop", C, {**OK_C, "stop": [""]}, 400, "empty", "stop"),
    ("seed float", C, {**OK_C, "seed": 1.5}, 400, "integer", "seed"),
    ("unknown field", C, {**OK_C, "temprature": 0.5}, 400, "Unrecognized", "temprature"),
    ("unsupported logprobs", C, {**OK_C, "logprobs": 3}, 400, "not supported", "logprobs"),
    ("stream_options without stream", C, {**OK_C, "stream_options": {"include_usage": True}}, 400, "stream", None),
    ("missing messages", CH, {"model": NAME}, 400, "messages", "messages"),
    ("empty messages", CH, {**OK_CH, "messages": []}, 400, "must not be empty", "messages"),
    ("messages not a list", CH, {**OK_CH, "messages": "hi"}, 400, "array", "messages"),
    ("message not an object", CH, {**OK_CH, "messages": ["hi"]}, 400, "object", "messages[0]"),
    ("wrong role", CH, {**OK_CH, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "must be one of",
     "messages[0].role"),
    ("missing role", CH, {**OK_CH, "messages": [{"content": "hi"}]}, 400, "role", "messages[0].role"),
    ("content wrong type", CH, {**OK_CH, "messages": [{"role": "user", "content": 5}]}, 400, "content",
     "messages[0].content"),
    ("chat n = 3", CH, {**OK_CH, "n": 3}, 400, "n=1", "n"),
    ("chat tools", CH, {**OK_CH, "tools": [{"type": "function"}]}, 400, "not supported", "tools"),
    ("chat prompt too long", CH, {**OK_CH, "messages": [{"role": "user", "content": "hello world " * 200}]}, 400,
     "maximum context length", "messages"),
]


@pytest.mark.parametrize("name,path,body,status,words,param", BAD, ids=[b[0] for b in BAD])
def test_bad_request_gets_openai_error(server, name, path, body, status, words, param):
    got, answer = _post(server, path, None if isinstance(body, bytes) else body,
                        raw=body if isinstance(body, bytes) else None)
    assert got == status, answer
    error = answer["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert words.lower() in error["message"].lower(), error
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    assert _post(server, "/health", None, method="GET")[0] == 200


def test_http_level_errors_are_openai_shaped(server):
    for method, path, raw, status in [("GET", "/v1/nothing", None, 404), ("GET", C, None, 405),
                                      ("DELETE", "/v1/models", None, 405),
                                      ("POST", C, b'{"prompt": "' + b"a" * (2 << 20) + b'"}', 413)]:
        got, answer = _post(server, path, None, raw=raw, method=method)
        assert got == status and answer["error"]["message"], (path, got, answer)


def test_openai_client_raises_the_right_errors(client):
    with pytest.raises(openai.BadRequestError, match="n=1"):
        client.completions.create(model=NAME, prompt="hi", n=2)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="nope", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="must be one of"):
        client.chat.completions.create(model=NAME, messages=[{"role": "robot", "content": "x"}])
    assert client.completions.create(model=NAME, prompt="hi", max_tokens=2).usage.completion_tokens == 2


def _fuzz_body(rng: random.Random):
    values = [None, True, False, 0, 1, -1, 2, 7, 0.5, -0.5, 1.5, 3.0, 1e9, 2**70, -(2**70), "", "x", "hello world",
              "\u00e9\u2603\ud83d\ude00", [], [1], [1, 2, 3], [-1], ["a"], ["a", "b"], [[1, 2]], [None], {}, {"a": 1},
              {"include_usage": True}, {"include_usage": "x"}, [{"role": "user", "content": "x"}],
              [{"role": "bogus", "content": "x"}], [{"role": "user"}], [{"role": "user", "content": None}],
              [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], [{"role": "user", "content": [1]}],
              NAME, "NaN"]
    keys = ["model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
            "stop", "stream", "stream_options", "n", "seed", "logprobs", "echo", "user", "frequency_penalty", "zzz"]
    path = rng.choice([C, CH] * 5 + ["/v1/models", "/metrics", "/v1/embeddings"])
    body = dict(rng.choice([OK_C, OK_CH]))
    for _ in range(rng.randint(0, 3)):
        key = rng.choice(keys)
        if rng.random() < 0.25:
            body.pop(key, None)
        else:
            body[key] = rng.choice(values)
    data = json.dumps(body).encode()
    mutation = rng.random()
    if mutation < 0.1:
        data = data[: rng.randint(0, len(data))]
    elif mutation < 0.15:
        data = bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 64)))
    elif mutation < 0.18:
        data = b"[" * rng.randint(1, 100000)
    elif mutation < 0.2:
        data = json.dumps(rng.choice(values)).encode()
    return path, data


def test_fuzzed_bodies_never_cause_a_server_error(server):
    rng = random.Random(1234)
    statuses = {}
    for i in range(300):
        path, data = _fuzz_body(rng)
        status, answer = _post(server, path, None, raw=data)
        assert status < 500, (i, path, data[:300], answer)
        if status >= 400:
            assert isinstance(answer, dict) and answer["error"]["message"], (i, path, data[:300], answer)
        statuses[status] = statuses.get(status, 0) + 1
    assert statuses.get(200, 0) >= 30 and statuses.get(400, 0) >= 100, statuses  # both kinds were exercised
    assert _post(server, "/health", None, method="GET")[0] == 200
    assert _wait_for(lambda: _metrics(server)["transformers_jax_active_slots"] == 0)
    assert not any(k.startswith("transformers_jax_http_requests_total") and 'status="500"' in k
                   for k in _metrics(server))


# --------------------------------------------------------------------------------------------- disconnects, load

def test_client_disconnect_mid_stream_frees_the_slot(server, engine):
    before = _metrics(server)
    cancelled_before = engine.metrics()["requests_finished"].get("cancelled", 0)
    engine.chunk_delay = 0.05  # 100 tokens in chunks of 4 now take > 1 s
    try:
        body = json.dumps({"model": NAME, "prompt": "hello world", "max_tokens": 100, "temperature": 0,
                           "stream": True}).encode()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        received = b""
        while b'"text"' not in received:
            chunk = sock.recv(4096)
            assert chunk, received
            received += chunk
        assert received.startswith(b"HTTP/1.1 200") and b"text/event-stream" in received
        assert _metrics(server)["transformers_jax_active_slots"] == 1
        sock.close()
        t0 = time.monotonic()
        assert _wait_for(lambda: _metrics(server)["transformers_jax_active_slots"] == 0, timeout=5)
        freed_after = time.monotonic() - t0
    finally:
        engine.chunk_delay = 0.0
    assert freed_after < 1.0  # far sooner than the 25 chunks the request had left
    assert engine.metrics()["requests_finished"].get("cancelled", 0) == cancelled_before + 1
    after = _metrics(server)
    key = 'transformers_jax_finish_reason_total{reason="cancelled"}'
    assert after[key] == before.get(key, 0) + 1
    assert after["transformers_jax_tokens_generated_total"] - before["transformers_jax_tokens_generated_total"] < 100
    assert _post(server, "/health", None, method="GET")[0] == 200


def test_concurrent_requests_all_answered(client):
    results, errors = [None] * 6, []

    def ask(i):
        try:
            results[i] = client.completions.create(model=NAME, prompt=CORPUS[i], max_tokens=10, temperature=0)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and all(r.usage.completion_tokens == 10 for r in results)
    alone = client.completions.create(model=NAME, prompt=CORPUS[3], max_tokens=10, temperature=0)
    assert results[3].choices[0].text == alone.choices[0].text


def test_queue_full_gives_429_and_shutdown_is_graceful(model, tokenizer):
    # An engine with one slot and a queue of one, not started yet: the first request waits in the queue.
    engine = SlowEngine(model, num_slots=1, max_length=32, chunk_steps=4, max_queue=1)
    thread = ServerThread(OpenAIServer(engine, tokenizer, model_name=NAME, shutdown_timeout=30),
                          start_engine=False).start()
    client = openai.OpenAI(base_url=thread.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    results = {}

    def ask(key, **kwargs):
        results[key] = client.completions.create(model=NAME, prompt="hello", temperature=0, **kwargs)

    first = threading.Thread(target=ask, args=("queued",), kwargs={"max_tokens": 8})
    first.start()
    try:
        assert _wait_for(lambda: _metrics(thread)["transformers_jax_queue_depth"] == 1)
        with pytest.raises(openai.RateLimitError) as info:
            client.completions.create(model=NAME, prompt="hello", max_tokens=4)
        assert info.value.status_code == 429 and "queue is full" in info.value.message
        assert 'transformers_jax_http_requests_total{endpoint="completions",status="429"}' in _metrics(thread)
        engine.start()  # the queued request now runs and completes normally
        first.join(60)
        assert results["queued"].usage.completion_tokens == 8
        assert results["queued"].choices[0].text == tokenizer.decode(
            _greedy(model, tokenizer("hello")["input_ids"], 8), skip_special_tokens=True)

        # graceful shutdown: a request in flight when shutdown starts still gets its whole answer
        engine.chunk_delay = 0.05
        second = threading.Thread(target=ask, args=("in_flight",), kwargs={"max_tokens": 20})
        second.start()
        assert _wait_for(lambda: _metrics(thread)["transformers_jax_active_slots"] == 1)
    finally:
        t0 = time.monotonic()
        thread.stop(timeout=30)
    assert time.monotonic() - t0 < 20
    second.join(10)
    assert results["in_flight"].usage.completion_tokens == 20
    assert results["in_flight"].choices[0].finish_reason == "length"
    assert not engine.metrics()["running"]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", thread.port), timeout=2).close()


# --------------------------------------------------------------------------------------------- real model

@pytest.fixture(scope="module")
def smollm2_server(smollm2_model, smollm2_tokenizer):
    model, tokenizer = smollm2_model, smollm2_tokenizer
    engine = Engine(model, num_slots=2, max_length=128, chunk_steps=8)
    engine.start(warmup=False)  # compiles only the buckets the test's prompts need
    thread = ServerThread(OpenAIServer(engine, tokenizer, model_name="SmolLM2-135M-Instruct"),
                          start_engine=False).start()
    yield thread
    thread.stop(timeout=30)


def test_smollm2_chat_knows_the_capital_of_france(smollm2_server):
    client = openai.OpenAI(base_url=smollm2_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    out = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=messages, temperature=0,
                                         max_tokens=32)
    answer = out.choices[0].message.content
    assert re.search(r"\bParis\b", answer), answer
    assert out.choices[0].finish_reason == "stop" and 0 < out.usage.completion_tokens < 32
    streamed = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=messages, temperature=0,
                                              max_tokens=32, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == answer
