"""The continuous-batching engine (serving/engine.py) on tiny random Llamas.

Greedy output of every request equals ``model.generate``'s new tokens while requests of mixed
lengths and budgets join and leave a smaller number of slots (at once and over time, with and
without EOS, with extra stop ids); nothing compiles after warm-up; sampling is per row (greedy and
sampling rows mixed, top-k respected, reproducible per seed whatever else runs); cancel frees the
slot; a full queue, bad requests and shutdown (drain or not) behave as documented.
"""
import asyncio
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import transformers_jax as tj
from parity import count_compiles
from serving.engine import Engine, EngineClosed, QueueFull, SamplingParams
from transformers_jax.generation import logits_process as lp

VOCAB = 97
BASE = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, pad_token_id=0,
            tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 1000.0})
GREEDY = dict(temperature=0.0)
# Engines of one shape share their compiled programs (serving.engine.programs): most tests use this one;
# the cancel and shutdown tests need a single slot and long budgets.
SHAPE = dict(num_slots=4, max_length=64, chunk_steps=4)
ONE_SLOT = dict(num_slots=1, max_length=128, chunk_steps=2)


@pytest.fixture(scope="module")
def model():
    """No EOS: every greedy request runs to its budget."""
    return tj.LlamaForCausalLM(tj.LlamaConfig.from_dict({**BASE, "eos_token_id": None}), seed=0)


@pytest.fixture(scope="module")
def eos_model():
    """EOS = 2 (this random model emits it often)."""
    return tj.LlamaForCausalLM(tj.LlamaConfig.from_dict({**BASE, "eos_token_id": 2}), seed=0)


def reference(model, prompt, n, **kwargs):
    out = np.asarray(model.generate(np.asarray(prompt, np.int32)[None], max_new_tokens=n, do_sample=False, **kwargs))
    return out[0, len(prompt):].tolist()


def make_requests(seed, count, max_prompt=40, max_new=24):
    rng = np.random.RandomState(seed)
    return [(rng.randint(3, VOCAB, rng.randint(1, max_prompt + 1)).tolist(), int(rng.randint(1, max_new + 1)))
            for _ in range(count)]


def test_greedy_matches_generate_while_requests_join_and_leave(model):
    engine = Engine(model, **SHAPE, max_queue=64)
    engine.start()  # warm-up compiles every prompt bucket and the decode chunk
    requests = make_requests(0, 64)  # 64 concurrent requests of mixed lengths, 4 slots
    peak = 0
    with count_compiles() as compiles:
        handles = [engine.submit(p, SamplingParams(max_tokens=n, **GREEDY)) for p, n in requests[:48]]
        for p, n in requests[48:]:  # the rest trickle in while the first ones run
            time.sleep(0.005)
            peak = max(peak, engine.metrics()["active_slots"])
            handles.append(engine.submit(p, SamplingParams(max_tokens=n, **GREEDY)))
        results = [h.result(timeout=60) for h in handles]
    engine.shutdown()
    assert compiles == [], f"compiled after warm-up: {compiles}"
    assert 1 <= peak <= 4
    for (prompt, n), handle, got in zip(requests, handles, results):
        assert got == reference(model, prompt, n), (len(prompt), n)
        assert handle.finish_reason == "length" and handle.num_prompt_tokens == len(prompt)
    m = engine.metrics()
    assert m["requests_total"] == 64 and m["tokens_generated_total"] == sum(n for _, n in requests)
    assert m["ttft_seconds"]["count"] == 64 and m["active_slots"] == 0 and m["queue_depth"] == 0


def test_greedy_with_eos_and_extra_stop_ids(eos_model):
    engine = Engine(eos_model, **SHAPE)
    engine.start()
    requests = make_requests(1, 16)
    extra = (30,)  # a frequent token of this model, as a user stop id for every other request
    handles = [engine.submit(p, SamplingParams(max_tokens=n, stop_token_ids=extra if i % 2 else (), **GREEDY))
               for i, (p, n) in enumerate(requests)]
    results = [h.result(timeout=60) for h in handles]
    engine.shutdown()
    reasons = set()
    for i, ((prompt, n), handle, got) in enumerate(zip(requests, handles, results)):
        stops = [2, *extra] if i % 2 else [2]
        assert got == reference(eos_model, prompt, n, eos_token_id=stops)
        assert handle.finish_reason == ("stop" if got[-1] in stops else "length")
        reasons.add(handle.finish_reason)
    assert reasons == {"stop", "length"}  # both ways of finishing were exercised


def test_sampling_rows_beside_greedy_rows(model):
    engine = Engine(model, **SHAPE)
    engine.start()
    prompts = make_requests(2, 4, max_new=1)
    sample = SamplingParams(max_tokens=20, temperature=1.3, top_k=5, top_p=0.9, seed=7)
    mixed = [engine.submit(prompts[0][0], sample),
             engine.submit(prompts[1][0], SamplingParams(max_tokens=20, **GREEDY)),
             engine.submit(prompts[2][0], SamplingParams(max_tokens=20, top_k=1, seed=3)),  # top-1 sampling = greedy
             engine.submit(prompts[3][0], SamplingParams(max_tokens=20, do_sample=False, temperature=0.7))]
    tokens = [h.result(timeout=60) for h in mixed]
    alone = engine.submit(prompts[0][0], sample).result(timeout=60)  # same request with no neighbours
    other_seed = engine.submit(prompts[0][0], SamplingParams(**{**sample.__dict__, "seed": 8})).result(timeout=60)
    engine.shutdown()
    assert tokens[0] == alone  # reproducible per seed, whatever else shares the batch
    assert tokens[0] != other_seed
    for i in (1, 2, 3):
        assert tokens[i] == reference(model, prompts[i][0], 20)
    # every sampled token lies in the top 5 of the model's next-token scores
    seq = np.asarray(prompts[0][0] + tokens[0])[None]
    logits = np.asarray(model(seq).logits)[0, len(prompts[0][0]) - 1:-1]
    top5 = np.argsort(-logits, axis=-1)[:, :5]
    assert all(t in row for t, row in zip(tokens[0], top5))
    assert tokens[0] != reference(model, prompts[0][0], 20)  # it did sample


def test_cancel_frees_the_slot(model):
    engine = Engine(model, **ONE_SLOT)
    engine.start()
    long = engine.submit([5, 6, 7], SamplingParams(max_tokens=120, **GREEDY))
    waiting = engine.submit([8, 9], SamplingParams(max_tokens=10, **GREEDY))
    never = engine.submit([10], SamplingParams(max_tokens=10, **GREEDY))
    stream = iter(long)
    first = next(stream)
    assert engine.metrics()["active_slots"] == 1 and engine.metrics()["queue_depth"] == 2
    never.cancel()
    long.cancel()
    got = long.result(timeout=30)
    assert long.finish_reason == "cancelled" and 1 <= len(got) < 120 and got[0] == first
    assert got == reference(model, [5, 6, 7], len(got))
    assert waiting.result(timeout=30) == reference(model, [8, 9], 10)  # it got the freed slot
    assert never.result(timeout=30) == [] and never.finish_reason == "cancelled"
    deadline = time.monotonic() + 10
    while engine.metrics()["active_slots"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.metrics()["active_slots"] == 0
    engine.shutdown()


def test_queue_full_and_bad_requests(model):
    engine = Engine(model, num_slots=2, max_length=32, max_queue=2)  # not started: the queue only fills
    engine.submit([3, 4], SamplingParams(max_tokens=4))
    engine.submit([3, 4], SamplingParams(max_tokens=4))
    with pytest.raises(QueueFull, match="queue is full"):
        engine.submit([3, 4], SamplingParams(max_tokens=4))
    assert engine.metrics()["queue_depth"] == 2
    with pytest.raises(ValueError, match=r"prompt length 30 plus max_tokens 3 = 33 exceeds the engine's max_length 32"):
        engine.submit(list(range(3, 33)), SamplingParams(max_tokens=3))
    with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 97\), e.g. 97"):
        engine.submit([3, 97], SamplingParams(max_tokens=3))
    with pytest.raises(ValueError, match="non-empty"):
        engine.submit([], SamplingParams())
    with pytest.raises(ValueError, match="top_p"):
        engine.submit([3], SamplingParams(top_p=0.0))
    with pytest.raises(ValueError, match="max_tokens"):
        engine.submit([3], SamplingParams(max_tokens=0))
    with pytest.raises(ValueError, match="stop_token_ids"):
        engine.submit([3], SamplingParams(stop_token_ids=(VOCAB,)))
    engine.shutdown()


def test_shutdown_drains_or_cancels(model):
    engine = Engine(model, **SHAPE)
    engine.start()
    requests = make_requests(3, 6)
    handles = [engine.submit(p, SamplingParams(max_tokens=n, **GREEDY)) for p, n in requests]
    engine.shutdown(drain=True, timeout=60)
    assert not engine.metrics()["running"]
    for (prompt, n), handle in zip(requests, handles):
        assert handle.done and handle.finish_reason == "length"
        assert handle.result(timeout=0) == reference(model, prompt, n)
    with pytest.raises(EngineClosed):
        engine.submit([3], SamplingParams())

    engine = Engine(model, **ONE_SLOT)
    engine.start()
    handles = [engine.submit([3, 4], SamplingParams(max_tokens=100, **GREEDY)) for _ in range(3)]
    next(iter(handles[0]))
    engine.shutdown(drain=False, timeout=30)
    assert [h.finish_reason for h in handles] == ["cancelled"] * 3
    assert len(handles[0].result(timeout=0)) < 100 and handles[2].result(timeout=0) == []


def test_async_stream(model):
    engine = Engine(model, **SHAPE)
    engine.start()
    prompt = [4, 5, 6, 7]

    async def collect():
        handle = engine.submit(prompt, SamplingParams(max_tokens=11, **GREEDY))
        return [t async for t in handle.stream()], handle

    streamed, handle = asyncio.run(collect())
    engine.shutdown()
    assert streamed == handle.result() == reference(model, prompt, 11)
    assert list(handle) == streamed  # iterating a finished handle replays its tokens


def test_warpers_accept_one_setting_per_row():
    logits = jax.random.normal(jax.random.PRNGKey(0), (3, 11))
    temps, ks, ps = jnp.array([0.5, 1.0, 2.0]), jnp.array([1, 4, 11]), jnp.array([0.3, 0.8, 1.0])
    rows = lambda f, values: jnp.concatenate([f(logits[i:i + 1], values[i]) for i in range(3)])
    np.testing.assert_array_equal(lp.temperature(logits, temps), rows(lp.temperature, temps))
    np.testing.assert_array_equal(lp.top_k(logits, ks), rows(lp.top_k, ks))
    np.testing.assert_array_equal(lp.top_p(logits, ps), rows(lp.top_p, ps))
    assert int(jnp.isfinite(lp.top_k(logits, ks)[0]).sum()) == 1  # really per row
