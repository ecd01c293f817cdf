"""The KV cache's per-layer form (``kv_cache.split_layers``): what a decoding loop over unrolled layers holds, equal
entry for entry to the stacked cache it came from and goes back to."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transformers_jax.layers import kv_cache, unstack_layers

LAYERS, ROWS, HEADS, SLOTS, DIM = 3, 2, 2, 8, 4


def random_cache(seed=0, cross=False):
    rng = np.random.default_rng(seed)
    shape = (LAYERS, ROWS, HEADS, SLOTS, DIM)
    cache = {"k": jnp.asarray(rng.standard_normal(shape), jnp.float32),
             "v": jnp.asarray(rng.standard_normal(shape), jnp.float32)}
    if cross:
        enc = jnp.asarray(rng.standard_normal((LAYERS, ROWS, 5, HEADS, DIM)), jnp.float32)  # [L, B, S_enc, K, D]
        cache.update(kv_cache.cross_entries(enc, enc + 1, np.ones((ROWS, 5), np.int32)))
        np.testing.assert_array_equal(kv_cache.cross_layer(cache, 1)[1], enc[1] + 1)  # stored heads first, read back
    return cache


def new_entries(seed, length):
    rng = np.random.default_rng(seed)
    shape = (ROWS, length, HEADS, DIM)  # [B, T, K, D] as attention makes them
    return jnp.asarray(rng.standard_normal(shape), jnp.float32), jnp.asarray(rng.standard_normal(shape), jnp.float32)


def test_split_and_stack_give_back_the_cache_and_its_cross_entries():
    cache = random_cache(cross=True)
    split = kv_cache.split_layers(cache)
    assert kv_cache.is_split(split) and not kv_cache.is_split(cache)
    assert len(split["k"]) == LAYERS and split["k"][1].shape == (ROWS * HEADS, SLOTS, DIM)  # [B*K, S, D]
    np.testing.assert_array_equal(split["v"][2].reshape(ROWS, HEADS, SLOTS, DIM), cache["v"][2])
    assert len(split["cross_k"]) == LAYERS and split["cross_mask"] is cache["cross_mask"]
    assert kv_cache.cache_length(split) == kv_cache.cache_length(cache) == SLOTS
    k, v = kv_cache.cross_layer(split, np.int64(2))  # the encoder's keys/values as attention takes them
    np.testing.assert_array_equal(k, kv_cache.cross_layer(cache, 2)[0])
    np.testing.assert_array_equal(v, kv_cache.cross_layer(cache, 2)[1])
    assert k.shape == (ROWS, 5, HEADS, DIM)  # [B, S_enc, K, D]
    back = kv_cache.stack_layers(split, cache)
    assert set(back) == set(cache)
    for name in cache:
        np.testing.assert_array_equal(back[name], cache[name])


@pytest.mark.parametrize("index", [3, np.array([1, 5], np.int32)], ids=["one slot", "a slot per row"])
def test_writing_the_split_form_equals_writing_the_stacked_cache(index):
    cache = random_cache(1)
    k, v = new_entries(2, 1)
    stacked, k_view, v_view = kv_cache.write(cache, 1, index, k, v)
    split, split_k, split_v = kv_cache.write(kv_cache.split_layers(cache), np.int64(1), index, k, v)
    np.testing.assert_array_equal(split_k, k_view)  # attention sees the same [B, S, K, D] keys and values
    np.testing.assert_array_equal(split_v, v_view)
    assert split_k.shape == (ROWS, SLOTS, HEADS, DIM)
    for name in ("k", "v"):
        np.testing.assert_array_equal(kv_cache.stack_layers(split, cache)[name], stacked[name])


def test_a_split_cache_under_a_scan_is_a_clear_error():
    split = kv_cache.split_layers(random_cache())
    k, v = new_entries(3, 1)
    with pytest.raises(ValueError, match="static layer index.*unrolled"):
        jax.lax.scan(lambda c, layer: (kv_cache.write(c, layer, 0, k, v)[0], None), split, jnp.arange(LAYERS))
    split = kv_cache.split_layers(random_cache(cross=True))
    with pytest.raises(ValueError, match="static layer index.*unrolled"):
        jax.lax.scan(lambda c, layer: (c, kv_cache.cross_layer(split, layer)[0]), 0, jnp.arange(LAYERS))


def test_a_loop_holds_the_split_form_only_over_unrolled_layers_off_a_mesh():
    cache = random_cache()
    stacked_params = {"model": {"layers": {"w": jnp.zeros((LAYERS, 2, 2))}, "norm": jnp.zeros(2)}}
    unrolled = {"model": {**stacked_params["model"], "layers": unstack_layers(stacked_params["model"]["layers"])}}
    assert kv_cache.is_split(kv_cache.loop_form(cache, unrolled))
    assert kv_cache.loop_form(cache, stacked_params) is cache
    assert kv_cache.loop_form(cache, unrolled, sharding=object()) is cache  # a placed cache keeps its shardings


def test_reordering_beams_in_the_split_form_equals_the_stacked_cache():
    cache = random_cache(4, cross=True)
    rows = jnp.asarray([1, 1], jnp.int32)  # both rows continue row 1
    stacked = kv_cache.reorder_beams(cache, rows)
    split = kv_cache.reorder_beams(kv_cache.split_layers(cache), rows)
    for name in cache:
        np.testing.assert_array_equal(kv_cache.stack_layers(split, cache)[name], stacked[name])
    np.testing.assert_array_equal(stacked["k"][:, 0], cache["k"][:, 1])


@pytest.mark.parametrize("split", [False, True])
def test_beams_sharing_their_prompt_slots_gather_only_the_later_ones(split):
    """Rows 0 and 1 are two beams of one prompt (the same first 5 slots): reordering with ``shared_slots=5`` gives
    what gathering every slot gives, in either form."""
    cache = random_cache(5, cross=True)
    cache = {**cache, **{name: cache[name].at[:, 1, :, :5].set(cache[name][:, 0, :, :5]) for name in ("k", "v")}}
    rows = jnp.asarray([1, 1], jnp.int32)
    want = kv_cache.reorder_beams(cache, rows)
    form = kv_cache.split_layers(cache) if split else cache
    got = kv_cache.reorder_beams(form, rows, shared_slots=5)
    got = kv_cache.stack_layers(got, cache) if split else got
    for name in cache:
        np.testing.assert_array_equal(got[name], want[name])
    unshared = {**cache, "k": cache["k"].at[:, 0, :, 0].add(1.0)}  # the assumption broken: slot 0 is kept as it was
    kept = kv_cache.reorder_beams(unshared, rows, shared_slots=5)
    np.testing.assert_array_equal(kept["k"][:, 0, :, 0], unshared["k"][:, 0, :, 0])
    np.testing.assert_array_equal(kept["k"][:, 0, :, 5:], unshared["k"][:, 1, :, 5:])
