"""``generate`` of the encoder-decoder families (tests/seq2seq_cases/) against Hugging Face PyTorch.

Each family's generating head is built once in HF (tiny config, weights perturbed so that the choices
are not near ties), saved, and loaded here. On a right-padded batch whose rows end at different steps,
our tokens equal HF's for greedy search, beam search (2-5 beams, length_penalty 0.5/1/2,
early_stopping True/False/"never", num_return_sequences > 1, no_repeat_ngram_size, min_length),
the repetition penalty, forced BOS/EOS tokens and decoder prompts given as ``decoder_input_ids``;
the defaults of a ``generation_config.json`` (BART-CNN style) are read as HF reads them. Then what
HF cannot be compared on: sampling is a function of the key, ``top_k=1`` is greedy, the encoder
output can be given instead of the input ids, one bucket compiles once, and bad input is named.
"""
import jax
import numpy as np
import pytest
import torch

import transformers_jax as tj
from parity import CLOSEST_CALL, BeamMargins, count_compiles, perturb_torch
from seq2seq_cases import all_families

FAMILIES = {family.name: family for family in all_families()}
ROWS, LENGTHS = 3, (9, 6, 4)  # right-padded encoder inputs


def generating_heads():
    """(family, class name, config name) of every generating head the families list for parity."""
    out = []
    for family in FAMILIES.values():
        for class_name, config_name in family.parity:
            if class_name.endswith(("ForConditionalGeneration", "MTModel")):
                out.append((family.name, class_name, config_name))
    return out


HEADS = generating_heads()
IDS = [f"{f}-{c}-{n}" for f, c, n in HEADS]


# (seed, scale) of the weight noise. Scale 0.5 separates the choices well for most families. BART's post-norm
# decoder saturates at that scale: its output barely depends on the order of the context, so permuted
# continuations score within an ulp of each other. Hence its smaller noise. BeamMargins checks every beam case.
NOISE = {("bart", "base"): (2, 0.1), ("bart", "untied"): (5, 0.1)}


def build_hf(family, class_name, config_name, path, generation_config=None):
    """HF's model with noisy weights (see NOISE) and the EOS id pushed up so that rows stop at different
    steps; saved to ``path``."""
    config = family.hf_config_class(**family.configs[config_name])
    torch.manual_seed(0)
    seed, scale = NOISE.get((family.name, config_name), (1, 0.5))
    model = perturb_torch(family.heads[class_name](config), seed=seed, scale=scale).eval()
    if family.prepare_hf is not None:
        family.prepare_hf(model)
    ids, mask = encoder_batch(config, seed=5)
    target_vocab = getattr(config, "decoder_vocab_size", None) or config.vocab_size
    head_inputs = []  # what the LM head reads (T5: the scaled decoder output)
    hook = model.get_output_embeddings().register_forward_hook(lambda module, args, out: head_inputs.append(args[0]))
    with torch.no_grad():  # EOS's logit brought to 1.5 below the typical best one
        logits = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                       decoder_input_ids=torch.tensor(ids[:, :6] % target_vocab)).logits
        hook.remove()
        gap = float(logits.max(-1).values.mean() - logits[..., config.eos_token_id].mean())
        if hasattr(model, "final_logits_bias"):
            model.final_logits_bias[0, config.eos_token_id] += gap - 1.5
        else:  # T5 has no output bias: EOS's output row moves along the mean head input, by the gap on average
            mean = head_inputs[0].reshape(-1, head_inputs[0].shape[-1]).mean(0)
            model.get_output_embeddings().weight[config.eos_token_id] += (gap - 1.5) * mean / (mean @ mean)
    if generation_config is not None:
        model.generation_config = generation_config
    model.save_pretrained(path)
    return model


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(HF model, ours) per generating head, each built once."""
    cache = {}

    def get(key):
        if key not in cache:
            family_name, class_name, config_name = key
            path = tmp_path_factory.mktemp(f"gen_{family_name}_{config_name}")
            hf_model = build_hf(FAMILIES[family_name], class_name, config_name, path)
            cache[key] = (hf_model, getattr(tj, class_name).from_pretrained(path))
        return cache[key]

    return get


def encoder_batch(config, seed=0):
    rng = np.random.RandomState(seed)
    length = max(LENGTHS)
    mask = (np.arange(length)[None] < np.asarray(LENGTHS)[:, None]).astype(np.int64)
    ids = rng.randint(3, config.vocab_size, (ROWS, length))
    ids[mask == 0] = config.pad_token_id
    return ids, mask


def hf_generate(hf_model, ids, mask, **kwargs):
    with torch.no_grad():
        return hf_model.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), **kwargs).numpy()


def assert_same_tokens(ours, want):
    ours = np.asarray(ours)
    assert ours.shape == want.shape, f"shape {ours.shape} != HF's {want.shape}\nours:\n{ours}\nHF:\n{want}"
    np.testing.assert_array_equal(ours, want)


CASES = {
    "greedy-default-length": {},
    "greedy-min-new-tokens": dict(max_new_tokens=12, min_new_tokens=5),
    "greedy-repetition-ngram": dict(max_new_tokens=14, repetition_penalty=1.4, no_repeat_ngram_size=2),
    "greedy-forced-bos": dict(max_new_tokens=8, forced_bos_token_id=5),
    "beam2-lp0.5-early": dict(num_beams=2, length_penalty=0.5, early_stopping=True, max_new_tokens=10),
    "beam3-lp1-return2": dict(num_beams=3, length_penalty=1.0, num_return_sequences=2, max_new_tokens=12),
    "beam4-never-return3": dict(num_beams=4, early_stopping="never", num_return_sequences=3, max_new_tokens=9),
    "beam5-lp2-ngram-minlen": dict(num_beams=5, length_penalty=2.0, no_repeat_ngram_size=2, min_length=6,
                                   max_length=16),
    "beam3-forced-bos": dict(num_beams=3, forced_bos_token_id=7, max_new_tokens=7),
}


@pytest.fixture
def release_programs():
    """Drop the compiled programs after the test (each head compiles ~20 programs used by no other test;
    see conftest's ``_release_compiled_programs``)."""
    yield
    jax.clear_caches()


@pytest.mark.parametrize("head", HEADS, ids=IDS)
def test_generate_matches_hf(pair, head, release_programs):
    """Every case of CASES on one family: the same tokens as HF; across the cases some rows stop early."""
    hf_model, ours = pair(head)
    ids, mask = encoder_batch(hf_model.config)
    stopped_early = False
    eos = hf_model.config.eos_token_id
    for name, kwargs in CASES.items():
        with BeamMargins(hf_model) as margins:
            want = hf_generate(hf_model, ids, mask, **kwargs)
        assert margins.closest > CLOSEST_CALL, (
            f"case {name}: HF's beam search made a call within {margins.closest:.1e} (relative) of a tie; the "
            "fixture cannot demand equal tokens there (change NOISE for this family)")
        got = ours.generate(ids, attention_mask=mask, **kwargs)
        try:
            assert_same_tokens(got, want)
        except AssertionError as error:
            raise AssertionError(f"case {name} {kwargs}: {error}") from None
        stopped_early |= bool((want[:, 1:-1] == eos).any())
    assert stopped_early, "no row ended before the length budget: the cases do not exercise EOS handling"


@pytest.mark.parametrize("head", HEADS[:1], ids=IDS[:1])
def test_decoder_prompt_continues(pair, head):
    """``decoder_input_ids`` without the start token get it prepended (as HF does) and are continued."""
    hf_model, ours = pair(head)
    ids, mask = encoder_batch(hf_model.config, seed=1)
    prompt = np.random.RandomState(2).randint(3, hf_model.config.vocab_size, (ROWS, 3))
    for kwargs in (dict(max_new_tokens=6), dict(max_new_tokens=6, num_beams=3)):
        with torch.no_grad():
            want = hf_model.generate(torch.tensor(ids), attention_mask=torch.tensor(mask),
                                     decoder_input_ids=torch.tensor(prompt), **kwargs).numpy()
        got = ours.generate(ids, attention_mask=mask, decoder_input_ids=prompt, **kwargs)
        assert want.shape[1] >= 4 and (want[:, 1:4] == prompt).all()
        assert_same_tokens(got, want)


def test_generation_config_defaults_are_read(tmp_path):
    """A checkpoint's generation_config.json (BART-CNN style: beams, length penalty, no-repeat n-grams, min and
    max length, early stopping) sets generate's defaults here as in HF."""
    import transformers as hf

    family = FAMILIES["bart"]
    hf_gc = hf.GenerationConfig(num_beams=4, length_penalty=2.0, no_repeat_ngram_size=3, min_length=8, max_length=18,
                                early_stopping=True, decoder_start_token_id=2, forced_eos_token_id=2, bos_token_id=0,
                                eos_token_id=2, pad_token_id=1, forced_bos_token_id=0)
    hf_model = build_hf(family, "BartForConditionalGeneration", "base", tmp_path, generation_config=hf_gc)
    ours = tj.BartForConditionalGeneration.from_pretrained(tmp_path)
    assert ours.generation_config.num_beams == 4 and ours.generation_config.length_penalty == 2.0
    ids, mask = encoder_batch(hf_model.config, seed=3)
    with BeamMargins(hf_model) as margins:
        want = hf_generate(hf_model, ids, mask)
    assert margins.closest > CLOSEST_CALL and margins.gaps
    assert 8 <= want.shape[1] <= 18 and (want[:, 1] == 0).all()  # min/max length and the forced BOS from the file
    assert_same_tokens(ours.generate(ids, attention_mask=mask), want)


# ----------------------------------------------------------------------------- beyond HF's reach
@pytest.fixture(scope="module")
def bart(pair):
    return pair(("bart", "BartForConditionalGeneration", "base"))


def test_sampling_is_a_function_of_the_key(bart):
    hf_model, ours = bart
    ids, mask = encoder_batch(hf_model.config)
    kwargs = dict(do_sample=True, max_new_tokens=10, top_k=0, temperature=1.5)
    first = np.asarray(ours.generate(ids, attention_mask=mask, prng_key=jax.random.PRNGKey(3), **kwargs))
    again = np.asarray(ours.generate(ids, attention_mask=mask, prng_key=jax.random.PRNGKey(3), **kwargs))
    np.testing.assert_array_equal(first, again)
    others = [np.asarray(ours.generate(ids, attention_mask=mask, prng_key=jax.random.PRNGKey(s), **kwargs)) for s in (4, 5)]
    assert any(o.shape != first.shape or (o != first).any() for o in others), "different keys drew the same tokens"
    several = np.asarray(ours.generate(ids, attention_mask=mask, prng_key=jax.random.PRNGKey(3), num_return_sequences=2,
                                       **kwargs))
    assert several.shape[0] == 2 * ROWS


def test_top_k_one_is_greedy(bart):
    hf_model, ours = bart
    ids, mask = encoder_batch(hf_model.config)
    greedy = ours.generate(ids, attention_mask=mask, max_new_tokens=10)
    sampled = ours.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=True, top_k=1,
                            prng_key=jax.random.PRNGKey(9))
    assert_same_tokens(sampled, np.asarray(greedy))


def test_encoder_outputs_are_reused(bart):
    """``encoder_outputs=`` (a forward's encoder output) skips the encoder and gives the same tokens."""
    hf_model, ours = bart
    ids, mask = encoder_batch(hf_model.config)
    encoded = ours(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :1])
    for kwargs in (dict(max_new_tokens=9), dict(max_new_tokens=9, num_beams=3)):
        want = np.asarray(ours.generate(ids, attention_mask=mask, **kwargs))
        got = ours.generate(attention_mask=mask, encoder_outputs=(encoded.encoder_last_hidden_state,), **kwargs)
        assert_same_tokens(got, want)


def test_one_bucket_compiles_once(bart):
    """Encoder lengths and output budgets inside one bucket reuse the compiled programs."""
    hf_model, ours = bart
    ids, mask = encoder_batch(hf_model.config)
    with count_compiles() as compiles:
        ours.generate(ids, attention_mask=mask, max_new_tokens=9)
        ours.generate(ids, attention_mask=mask, max_new_tokens=9, num_beams=2)
        warm = len(compiles)
        ours.generate(ids[:, :7], attention_mask=mask[:, :7], max_new_tokens=12)
        ours.generate(ids[:, :5], attention_mask=mask[:, :5], max_new_tokens=15, num_beams=2)
        assert len(compiles) == warm, f"{len(compiles) - warm} extra compilations inside one bucket"
        long_ids = np.concatenate([ids] * 3, axis=1)  # 27 tokens: the next encoder bucket compiles anew
        ours.generate(long_ids, max_new_tokens=9)
        assert len(compiles) > warm


def test_bad_input_is_named(bart, tmp_path):
    hf_model, ours = bart
    ids, mask = encoder_batch(hf_model.config)
    with pytest.raises(ValueError, match="decoder_start_token_id or bos_token_id"):
        ours.generate(ids, attention_mask=mask, decoder_start_token_id=None, bos_token_id=None, max_new_tokens=3)
    with pytest.raises(ValueError, match="input_ids .* or encoder_outputs"):
        ours.generate(attention_mask=mask, max_new_tokens=3)
    with pytest.raises(ValueError, match="decoder_input_ids has 2 rows"):
        ours.generate(ids, attention_mask=mask, decoder_input_ids=np.ones((2, 1), np.int64), max_new_tokens=3)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings"):
        ours.generate(ids, attention_mask=mask, max_new_tokens=hf_model.config.max_position_embeddings + 1)
    causal = tj.LlamaForCausalLM(tj.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
                                                num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    with pytest.raises(TypeError, match="decoder_input_ids: only encoder-decoder models"):
        causal.generate(np.ones((1, 3), np.int32), decoder_input_ids=np.ones((1, 1), np.int32))
