"""Beam search against Hugging Face ``generate(num_beams=..., do_sample=False)``, token for token.

Tiny random Llamas (seeded, saved by transformers and loaded by transformers_jax) decode left-padded
batches with prompts of different lengths. The EOS id of each case is a token that greedy decoding
actually produces part-way, so finished hypotheses, their length-penalised scores and the padding of
shorter outputs all matter. Covered: num_beams 2/3/4, length_penalty 0.5/1/2, early_stopping
True/False/"never", num_return_sequences 1 and > 1, min_new_tokens, min_length, repetition penalty
and no_repeat_ngram_size, several EOS ids, an EOS early enough to end the loop before the budget,
several seeds, ``model.generate`` dispatching here, and that calls in the same length bucket reuse one
compiled program.
"""
import functools
import tempfile

import numpy as np
import pytest
import torch
import transformers as hf

from parity import CLOSEST_CALL, BeamMargins, count_compiles

import transformers_jax as tj
from transformers_jax.generation.beam_search import beam_search

PAD = 0
VOCAB = 48
CONFIG = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, pad_token_id=PAD, bos_token_id=1,
              eos_token_id=2, tie_word_embeddings=False, initializer_range=0.5)
LENGTHS = (7, 3, 5)


@functools.lru_cache(maxsize=None)
def build(seed):
    """(seed, HF model, our model loaded from its checkpoint, left-padded ids, mask)."""
    torch.manual_seed(seed)
    hf_model = hf.LlamaForCausalLM(hf.LlamaConfig(**CONFIG, attn_implementation="eager")).eval()
    path = tempfile.mkdtemp(prefix=f"beam_llama{seed}_")
    hf_model.save_pretrained(path)
    ours = tj.LlamaForCausalLM.from_pretrained(path)
    rng = np.random.RandomState(seed)
    width = max(LENGTHS)
    ids = np.full((len(LENGTHS), width), PAD, np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(LENGTHS):
        ids[row, width - n:] = rng.randint(3, VOCAB, n)
        mask[row, width - n:] = 1
    return seed, hf_model, ours, ids, mask


@pytest.fixture(scope="module", params=[0, 1, 2])
def models(request):
    return build(request.param)


def hf_generate(hf_model, ids, mask, **kwargs):
    with torch.no_grad():
        out = hf_model.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                                **kwargs)
    return out.numpy()


def eos_from_search(hf_model, ids, mask, steps=10):
    """A token that beam search of row 0 (without EOS) produces at step 3 or later, and not before."""
    out = hf_generate(hf_model, ids, mask, max_new_tokens=steps, num_beams=2, pad_token_id=PAD, eos_token_id=None)
    generated = out[0, ids.shape[1]:]
    for token in generated[3:]:
        if token not in generated[:3] and token != PAD:
            return int(token)
    return int(generated[3])


def check(hf_model, ours, ids, mask, **kwargs):
    with BeamMargins(hf_model) as margins:
        expected = hf_generate(hf_model, ids, mask, **kwargs)
    assert margins.closest > CLOSEST_CALL, f"HF's search made a call within rounding of a tie ({margins.closest:.1e})"
    got = beam_search(ours, ids, mask, **kwargs)
    assert got.shape == expected.shape, (got.shape, expected.shape, kwargs)
    np.testing.assert_array_equal(got, expected, err_msg=str(kwargs))
    return expected


CASES = [
    dict(num_beams=2, length_penalty=1.0, early_stopping=False),
    dict(num_beams=3, length_penalty=0.5, early_stopping=True),
    dict(num_beams=4, length_penalty=2.0, early_stopping=False, num_return_sequences=3),
    dict(num_beams=4, length_penalty=1.0, early_stopping=True, num_return_sequences=2),
    dict(num_beams=3, length_penalty=2.0, early_stopping="never", num_return_sequences=3),
    dict(num_beams=2, length_penalty=0.5, early_stopping="never", min_new_tokens=4),
    dict(num_beams=3, length_penalty=1.0, early_stopping=False, repetition_penalty=1.5, no_repeat_ngram_size=2,
         num_return_sequences=2, min_length=12),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_matches_transformers(models, case):
    seed, hf_model, ours, ids, mask = models
    eos = eos_from_search(hf_model, ids, mask)
    kwargs = dict(CASES[case], max_new_tokens=10, eos_token_id=eos, pad_token_id=PAD)
    out = check(hf_model, ours, ids, mask, **kwargs)
    assert out.shape[1] > ids.shape[1]


def test_finished_hypotheses_matter(models):
    """EOS is produced mid-way: some outputs end early and are padded, and the result differs from a
    search without that EOS (so the finished pool is really exercised)."""
    seed, hf_model, ours, ids, mask = models
    eos = eos_from_search(hf_model, ids, mask)
    kwargs = dict(num_beams=3, max_new_tokens=12, eos_token_id=eos, pad_token_id=PAD, num_return_sequences=3)
    out = check(hf_model, ours, ids, mask, **kwargs)
    generated = out[:, ids.shape[1]:]
    assert (generated == eos).any()
    unconstrained = beam_search(ours, ids, mask, **dict(kwargs, eos_token_id=[VOCAB + 5]))
    assert unconstrained.shape[1] == ids.shape[1] + 12
    assert not np.array_equal(unconstrained[:, :out.shape[1]], out)


def test_several_eos_ids_and_no_padding(models):
    seed, hf_model, ours, ids, mask = models
    eos = eos_from_search(hf_model, ids, mask)
    check(hf_model, ours, ids, mask, num_beams=2, max_new_tokens=9, eos_token_id=[eos, 5], pad_token_id=PAD)
    # one unpadded row, pad id left to default to the EOS id
    row = ids[:1, ids.shape[1] - LENGTHS[0]:]
    check(hf_model, ours, row, np.ones_like(row), num_beams=3, max_new_tokens=7, eos_token_id=eos,
          pad_token_id=eos, length_penalty=0.5)


def test_compiles_once_per_bucket():
    seed, hf_model, ours, ids, mask = build(0)

    with count_compiles() as compiles:
        # num_beams=5 is used by no other test, so the first call here must compile
        short = beam_search(ours, ids[:, 3:], mask[:, 3:], num_beams=5, max_new_tokens=6, eos_token_id=2,
                            pad_token_id=PAD)
        assert len(compiles) == 1
        long = beam_search(ours, ids, mask, num_beams=5, max_new_tokens=9, eos_token_id=3, pad_token_id=PAD,
                           length_penalty=2.0)
        assert len(compiles) == 1  # other prompt length, budget, EOS id and penalty: same bucket, no compile
    assert short.shape[0] == long.shape[0] == ids.shape[0]
    np.testing.assert_array_equal(
        long, hf_generate(hf_model, ids, mask, num_beams=5, max_new_tokens=9, eos_token_id=3, pad_token_id=PAD,
                          length_penalty=2.0))


@pytest.mark.parametrize("early_stopping", [True, False])
def test_early_eos_stops_the_loop(models, early_stopping):
    """A very early EOS: every row fills its finished pool quickly, the loop ends before the budget and
    the output is cropped to the longest returned hypothesis."""
    seed, hf_model, ours, ids, mask = models
    first = hf_generate(hf_model, ids, mask, max_new_tokens=3, num_beams=2, pad_token_id=PAD, eos_token_id=None)
    eos = [int(first[0, ids.shape[1] + 1]), int(first[1, ids.shape[1]])]
    out = check(hf_model, ours, ids, mask, num_beams=2, max_new_tokens=24, eos_token_id=eos, pad_token_id=PAD,
                early_stopping=early_stopping, num_return_sequences=2)
    if early_stopping:
        assert out.shape[1] < ids.shape[1] + 24


def test_generate_dispatches_to_beam_search(models):
    """``model.generate(num_beams > 1)`` goes through beam_search with HF's result."""
    seed, hf_model, ours, ids, mask = models
    eos = eos_from_search(hf_model, ids, mask)
    kwargs = dict(num_beams=3, max_new_tokens=8, eos_token_id=eos, pad_token_id=PAD, num_return_sequences=2,
                  length_penalty=0.5)
    got = np.asarray(ours.generate(ids, mask, do_sample=False, **kwargs))
    np.testing.assert_array_equal(got, hf_generate(hf_model, ids, mask, **kwargs))
