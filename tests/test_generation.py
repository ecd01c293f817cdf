"""Compiled generation against Hugging Face PyTorch ``generate``.

Greedy decoding is token-identical to HF (eager attention) on left-padded batches with EOS reached
mid-way, with repetition penalty, no-repeat n-grams and min_new_tokens; sampling is reproducible
per key and its filtered distributions match the expected ones; one bucket compiles once;
GenerationConfig round-trips with HF's; bad inputs get clear errors; SmolLM2 answers a chat.
"""
import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers as hf

import transformers_jax as tj
from parity import assert_same_up_to_rounding, count_compiles, perturb_torch
from transformers_jax.generation import GenerationConfig, logits_process as lp
from transformers_jax.generation.utils import bucket_size

PAD = 0
BASE = dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, pad_token_id=PAD, bos_token_id=1, eos_token_id=2,
            tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 1000.0})
LENGTHS = (9, 5, 2)  # a left-padded batch of three prompts


def build(seed, tmp_path_factory, **overrides):
    torch.manual_seed(seed)
    model = perturb_torch(hf.LlamaForCausalLM(hf.LlamaConfig(**{**BASE, **overrides})), seed=seed + 1, scale=0.3).eval()
    model.set_attn_implementation("eager")
    path = tmp_path_factory.mktemp(f"llama{seed}")
    model.save_pretrained(path)
    return model, tj.LlamaForCausalLM.from_pretrained(path), path


def prompts(seed, lengths=LENGTHS, vocab=BASE["vocab_size"]):
    rng = np.random.RandomState(seed)
    width = max(lengths)
    ids = np.full((len(lengths), width), PAD, np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, width - n:] = rng.randint(3, vocab, size=n)
        mask[row, width - n:] = 1
    return ids, mask


def hf_generate(model, ids, mask, **kwargs):
    with torch.no_grad():
        out = model.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), **kwargs)
    return out.numpy()


def ours(model, ids, mask, **kwargs):
    return np.asarray(model.generate(ids, attention_mask=mask, **kwargs))


_MODELS = {}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    def get(seed):
        if seed not in _MODELS:
            _MODELS[seed] = build(seed, tmp_path_factory)
        return _MODELS[seed]

    yield get
    _MODELS.clear()


# ----------------------------------------------------------------------------- greedy parity


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_matches_hf_with_padding_and_eos_midway(models, seed):
    hf_model, model, _ = models(seed)
    ids, mask = prompts(seed)
    no_eos = dict(max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=PAD)
    first = ours(model, ids, mask, **no_eos)
    np.testing.assert_array_equal(first, hf_generate(hf_model, ids, mask, **no_eos))
    assert first.shape == (3, ids.shape[1] + 12)
    # an EOS the model actually produces mid-way in one row (not at the first step)
    new = first[:, ids.shape[1]:]
    eos = int(new[0, 4])
    settings = dict(max_new_tokens=12, do_sample=False, eos_token_id=eos, pad_token_id=PAD)
    expected = hf_generate(hf_model, ids, mask, **settings)
    got = ours(model, ids, mask, **settings)
    np.testing.assert_array_equal(got, expected)
    finished = [(row[ids.shape[1]:] == eos).any() for row in got]
    assert any(finished), "the chosen EOS must end at least one row"
    # after a row's EOS only padding follows
    for row in got:
        new_row = row[ids.shape[1]:]
        hits = np.flatnonzero(new_row == eos)
        if hits.size:
            assert (new_row[hits[0] + 1:] == PAD).all()


def test_output_stops_when_all_rows_finish(models):
    hf_model, model, _ = models(0)
    ids, mask = prompts(0, lengths=(6,))
    free = ours(model, ids, mask, max_new_tokens=10, eos_token_id=None)
    eos = int(free[0, ids.shape[1] + 2])
    got = ours(model, ids, mask, max_new_tokens=10, eos_token_id=eos, pad_token_id=PAD)
    first_hit = int(np.flatnonzero(free[0, ids.shape[1]:] == eos)[0])
    assert got.shape == (1, ids.shape[1] + first_hit + 1)  # shorter than the budget, like HF
    np.testing.assert_array_equal(got, hf_generate(hf_model, ids, mask, max_new_tokens=10, eos_token_id=eos, pad_token_id=PAD))


@pytest.mark.parametrize("settings", [
    dict(repetition_penalty=1.8),
    dict(repetition_penalty=0.6),
    dict(no_repeat_ngram_size=2),
    dict(no_repeat_ngram_size=3, repetition_penalty=1.3),
    dict(min_new_tokens=8),
    dict(min_length=14),
])
def test_processors_greedy_match_hf(models, settings):
    hf_model, model, _ = models(1)
    ids, mask = prompts(1)
    free = ours(model, ids, mask, max_new_tokens=12, eos_token_id=None)
    # an EOS early enough that min_new_tokens/min_length matter
    eos = int(free[1, ids.shape[1] + 1])
    kwargs = dict(max_new_tokens=12, do_sample=False, eos_token_id=eos, pad_token_id=PAD, **settings)
    expected = hf_generate(hf_model, ids, mask, **kwargs)
    got = ours(model, ids, mask, **kwargs)
    np.testing.assert_array_equal(got, expected)
    plain = hf_generate(hf_model, ids, mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=PAD)
    assert plain.shape != expected.shape or not np.array_equal(plain, expected), "the setting must change the output"


def test_generation_config_from_checkpoint_and_precedence(models, tmp_path):
    hf_model, model, path = models(0)
    ids, mask = prompts(0)
    # HF writes generation_config.json with the model's special tokens; ours reads it on load
    assert model.generation_config.eos_token_id == 2 and model.generation_config.pad_token_id == PAD
    original = copy.deepcopy(hf_model.generation_config)
    hf_model.generation_config.max_new_tokens = 5
    hf_model.generation_config.repetition_penalty = 1.5
    try:
        _check_generation_config_precedence(hf_model, tmp_path, ids, mask)
    finally:
        hf_model.generation_config = original  # the HF model is shared with later tests


def _check_generation_config_precedence(hf_model, tmp_path, ids, mask):
    hf_model.save_pretrained(tmp_path)
    loaded = tj.LlamaForCausalLM.from_pretrained(tmp_path)
    assert loaded.generation_config.max_new_tokens == 5
    np.testing.assert_array_equal(ours(loaded, ids, mask), hf_generate(hf_model, ids, mask))
    # generation_config= overrides the model's, kwargs override both
    got = ours(loaded, ids, mask, generation_config=GenerationConfig(max_new_tokens=7), repetition_penalty=1.0)
    assert got.shape[1] <= ids.shape[1] + 7
    np.testing.assert_array_equal(got, hf_generate(hf_model, ids, mask, max_new_tokens=7, repetition_penalty=1.0))
    # our save writes it back, HF reads it
    loaded.save_pretrained(tmp_path / "ours")
    assert hf.GenerationConfig.from_pretrained(tmp_path / "ours").max_new_tokens == 5


# ----------------------------------------------------------------------------- sampling


def test_sampling_reproducible_and_topk1_is_greedy(models):
    _, model, _ = models(2)
    ids, mask = prompts(2)
    kw = dict(max_new_tokens=10, do_sample=True, eos_token_id=None, top_k=0, temperature=1.5)
    a = ours(model, ids, mask, prng_key=jax.random.PRNGKey(1), **kw)
    b = ours(model, ids, mask, prng_key=jax.random.PRNGKey(1), **kw)
    c = ours(model, ids, mask, prng_key=jax.random.PRNGKey(2), **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    greedy = ours(model, ids, mask, max_new_tokens=10, eos_token_id=None)
    top1 = ours(model, ids, mask, prng_key=jax.random.PRNGKey(3), max_new_tokens=10, do_sample=True, top_k=1, eos_token_id=None)
    np.testing.assert_array_equal(top1, greedy)
    # num_return_sequences with sampling: rows repeated, different draws
    many = ours(model, ids[:1], mask[:1], prng_key=jax.random.PRNGKey(4), num_return_sequences=4, **kw)
    assert many.shape[0] == 4 and len({tuple(r) for r in many}) > 1
    np.testing.assert_array_equal(many[:, : ids.shape[1]], np.repeat(ids[:1], 4, axis=0))


LOGITS = np.log(np.array([0.30, 0.20, 0.15, 0.12, 0.08, 0.06, 0.05, 0.04], np.float64))
N_SAMPLES = 20000
TV_TOL = 0.02  # total variation distance; the sampling noise at 20k draws over 8 outcomes is ~0.01


def _expected(temperature=1.0, k=None, p=None):
    logits = LOGITS / temperature
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    keep = np.ones_like(probs, bool)
    order = np.argsort(-probs)
    if k is not None:
        keep[order[k:]] = False
    if p is not None:
        # HF: drop the tokens whose ascending cumulative probability (within the top-k) is <= 1 - p
        kept = np.where(keep, probs, 0) / np.where(keep, probs, 0).sum()
        asc = np.argsort(kept)
        cum = np.cumsum(kept[asc])
        drop = asc[cum <= 1 - p]
        keep[drop] = False
        keep[order[0]] = True
    out = np.where(keep, probs, 0)
    return out / out.sum()


@pytest.mark.parametrize("temperature,k,p", [(1.0, None, None), (0.7, None, None), (1.3, 3, None),
                                             (1.0, None, 0.6), (0.8, 5, 0.7)])
def test_sampling_distribution(temperature, k, p):
    keys = jax.random.split(jax.random.PRNGKey(0), N_SAMPLES)
    logits = jnp.asarray(LOGITS, jnp.float32)[None]

    @jax.jit
    def draw(key):
        warped = lp.warp(logits, temp=temperature if temperature != 1.0 else None, k=k, p=p)
        return lp.sample(key, warped)[0]

    samples = np.asarray(jax.vmap(draw)(keys))
    freq = np.bincount(samples, minlength=len(LOGITS)) / N_SAMPLES
    expected = _expected(temperature, k, p)
    tv = 0.5 * np.abs(freq - expected).sum()
    assert tv < TV_TOL, (freq, expected, tv)
    assert (freq[expected == 0] == 0).all(), "filtered tokens must never be drawn"


def test_warpers_match_hf_on_random_logits():
    from transformers.generation import logits_process as hp

    rng = np.random.RandomState(0)
    scores = rng.standard_normal((4, 50)).astype(np.float32) * 3
    for temp, k, p in [(0.7, 10, None), (1.0, None, 0.8), (1.3, 7, 0.5)]:
        t = torch.tensor(scores)
        t = hp.TemperatureLogitsWarper(temp)(None, t)
        if k:
            t = hp.TopKLogitsWarper(k)(None, t)
        if p:
            t = hp.TopPLogitsWarper(p)(None, t)
        ours_ = np.asarray(lp.warp(jnp.asarray(scores), temp=temp, k=k, p=p))
        np.testing.assert_array_equal(np.isinf(ours_), np.isinf(t.numpy()))
        finite = np.isfinite(ours_)
        # one division by the temperature (XLA may multiply by the reciprocal): within an ulp or two
        assert_same_up_to_rounding(ours_[finite], t.numpy()[finite], ulps=4)


# ----------------------------------------------------------------------------- compilation


def test_one_bucket_compiles_once(models):
    _, model, _ = models(0)

    with count_compiles() as compiles:
        ids, mask = prompts(5, lengths=(7, 3))
        model.generate(ids, attention_mask=mask, max_new_tokens=9, eos_token_id=None)  # warm-up: compiles this bucket
        warm = len(compiles)
        assert warm >= 1
        for n, budget in [(9, 5), (12, 16), (16, 3), (10, 11), (14, 7)]:  # prompts 9..16, budgets <= 16
            ids, mask = prompts(n, lengths=(n, max(1, n - 4)))
            out = model.generate(ids, attention_mask=mask, max_new_tokens=budget, eos_token_id=None)
            assert out.shape == (2, n + budget)
        assert len(compiles) == warm, f"{len(compiles) - warm} extra compilations inside one bucket"
        ids, mask = prompts(0, lengths=(20, 3))  # the next prompt bucket compiles anew
        model.generate(ids, attention_mask=mask, max_new_tokens=9, eos_token_id=None)
        assert len(compiles) > warm
    assert bucket_size(1) == bucket_size(16) == 16 and bucket_size(17) == 32


# ----------------------------------------------------------------------------- configs and errors


def test_generation_config_round_trip_with_hf(tmp_path):
    ours_cfg = GenerationConfig(max_new_tokens=33, do_sample=True, temperature=0.7, top_k=20, top_p=0.9,
                                repetition_penalty=1.1, no_repeat_ngram_size=3, eos_token_id=[2, 5], pad_token_id=0,
                                bos_token_id=1, min_new_tokens=2, extra={"custom_key": "kept"})
    ours_cfg.save_pretrained(tmp_path / "a")
    theirs = hf.GenerationConfig.from_pretrained(tmp_path / "a")
    for name in ("max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "repetition_penalty",
                 "no_repeat_ngram_size", "pad_token_id", "bos_token_id", "min_new_tokens"):
        assert getattr(theirs, name) == getattr(ours_cfg, name), name
    assert list(theirs.eos_token_id) == [2, 5] and theirs.custom_key == "kept"
    theirs.num_beams = 4
    theirs.length_penalty = 0.5
    theirs.save_pretrained(tmp_path / "b")
    back = GenerationConfig.from_pretrained(tmp_path / "b")
    assert back.num_beams == 4 and back.length_penalty == 0.5 and back.eos_token_id == (2, 5)
    assert back.extra["custom_key"] == "kept" and "transformers_version" in back.extra
    assert back.replace(num_beams=4) == back and hash(back) == hash(GenerationConfig.from_pretrained(tmp_path / "b"))
    cfg = GenerationConfig.from_model_config(tj.LlamaConfig.from_dict({**BASE, "model_type": "llama"}))
    assert (cfg.eos_token_id, cfg.pad_token_id, cfg.bos_token_id) == (2, 0, 1)


def test_bad_inputs(models):
    _, model, _ = models(0)
    ids, mask = prompts(0)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive integer"):
        model.generate(ids, attention_mask=mask, max_new_tokens=0)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=64"):
        model.generate(ids, attention_mask=mask, max_new_tokens=60)
    with pytest.raises(ValueError, match=r"num_return_sequences \(3\) has to be smaller or equal to num_beams \(1\)"):
        model.generate(ids, attention_mask=mask, num_return_sequences=3)
    with pytest.raises(ValueError, match="no pad_token_id is known"):
        model.generate(ids, attention_mask=mask, pad_token_id=None, eos_token_id=None)
    with pytest.raises(ValueError, match="unknown generation argument.*'top_q'"):
        model.generate(ids, attention_mask=mask, top_q=0.5)
    with pytest.raises(ValueError, match="max_length=5 leaves no room"):
        model.generate(ids, attention_mask=mask, max_length=5)
    with pytest.raises(ValueError, match=r"temperature must be > 0 when sampling .*got 0"):
        model.generate(ids, attention_mask=mask, do_sample=True, temperature=0.0)
    with pytest.raises(ValueError, match=r"top_p must be a number in \(0, 1\].*got 1.5"):
        model.generate(ids, attention_mask=mask, top_p=1.5)


# ----------------------------------------------------------------------------- shared pieces (serving uses them too)


def test_validate_sampling_args_names_argument_and_value():
    from transformers_jax.generation.sampling import SamplingArgumentError, validate_sampling_args

    validate_sampling_args(max_new_tokens=3, do_sample=None, temperature=0.0, top_k=0, top_p=1.0)  # greedy: fine
    for kwargs, argument, value in [
        (dict(max_new_tokens=0, names={"max_new_tokens": "max_tokens"}), "max_tokens", "0"),
        (dict(temperature=-0.5), "temperature", "-0.5"),
        (dict(temperature=2.5, max_temperature=2.0), "temperature", "2.5"),
        (dict(top_k=True), "top_k", "True"),
        (dict(top_p=0.0), "top_p", "0.0"),
        (dict(do_sample="yes"), "do_sample", "'yes'"),
        (dict(repetition_penalty=float("nan")), "repetition_penalty", "nan"),
    ]:
        with pytest.raises(SamplingArgumentError) as info:
            validate_sampling_args(**kwargs)
        assert info.value.argument == argument and str(info.value).startswith(f"{argument} must be ")
        assert str(info.value).endswith(f"got {value}")


def test_buckets_and_eos_resolution():
    from transformers_jax.generation import buckets, resolve_eos_token_ids

    assert [buckets.bucket_size(n) for n in (1, 16, 17, 100)] == [16, 16, 32, 128]
    assert buckets.bucket_size(100, maximum=80) == 80 and buckets.bucket_size(3, minimum=4) == 4
    assert buckets.bucket_sizes(100) == [16, 32, 64, 100] and buckets.bucket_sizes(8) == [8]
    half = [buckets.bucket_size(n, half_steps=True) for n in (1, 16, 17, 24, 25, 33, 49, 65, 97)]
    assert half == [16, 16, 24, 24, 32, 48, 64, 96, 128]
    assert buckets.bucket_sizes(200, half_steps=True) == [16, 24, 32, 48, 64, 96, 128, 192, 200]
    assert buckets.bucket_size(7, minimum=5, half_steps=True) == 10  # no half step of an odd size
    ids, mask = buckets.pad_left(np.array([[5, 6]]), np.array([[1, 1]]), 4, fill=9)
    assert ids.tolist() == [[9, 9, 5, 6]] and mask.tolist() == [[0, 0, 1, 1]]

    class Obj:
        def __init__(self, eos):
            self.eos_token_id = eos

    class Model:
        generation_config, config = Obj(None), Obj([4, 5])

    assert resolve_eos_token_ids(Model(), Obj(7)) == (4, 5)
    assert resolve_eos_token_ids(None, Obj(7)) == (7,) and resolve_eos_token_ids() == ()
    assert resolve_eos_token_ids(Model(), generation_config=GenerationConfig(eos_token_id=3)) == (3,)


def test_choose_tokens_batch_wide_and_per_row():
    from transformers_jax.generation.sampling import choose_tokens, fold_in_rows, host_prng_key

    logits = jax.random.normal(jax.random.PRNGKey(1), (4, 30)) * 3
    best = np.asarray(jnp.argmax(logits, -1))
    np.testing.assert_array_equal(choose_tokens(logits, greedy=True), best)
    key = jax.random.PRNGKey(2)  # one key for the batch: generate's draw
    np.testing.assert_array_equal(choose_tokens(logits, key, top_k=jnp.int32(3)),
                                  lp.sample(key, lp.top_k(logits, 3)))
    keys = np.stack([host_prng_key(s) for s in range(4)])
    np.testing.assert_array_equal(keys[3], jax.random.PRNGKey(3))
    greedy = jnp.array([True, False, True, False])
    per_row = choose_tokens(logits, fold_in_rows(keys, jnp.arange(4)), greedy=greedy,
                            temperature=jnp.array([0.0, 0.7, 1.0, 1.0]), top_k=jnp.array([0, 1, 0, 1]),
                            top_p=jnp.ones(4))
    np.testing.assert_array_equal(per_row, best)  # greedy rows take the argmax, top_k=1 rows too


def test_num_beams_dispatches_to_beam_search(models):
    hf_model, model, _ = models(0)
    ids, mask = prompts(0)
    kw = dict(max_new_tokens=6, num_beams=2, eos_token_id=None, pad_token_id=PAD)
    got = ours(model, ids, mask, **kw)
    np.testing.assert_array_equal(got, hf_generate(hf_model, ids, mask, **kw))
    kw = dict(kw, repetition_penalty=1.5, num_return_sequences=2)  # settings travel in the config
    got = ours(model, ids, mask, **kw)
    np.testing.assert_array_equal(got, hf_generate(hf_model, ids, mask, **kw))
    with pytest.raises(ValueError, match="beam sampling"):
        model.generate(ids, attention_mask=mask, num_beams=2, do_sample=True)
