"""Structural facts of the compiled decoding program (``generate``'s loop) that make a token cost little more than
reading the weights once, asserted on its optimized HLO so the gain cannot silently regress (issue 15):
each weight matrix read by exactly one dot per step and never copied, the KV cache updated in place and never
copied whole, the prompt's logits made for its last position only, and the decoding params laid out once."""
import itertools

import jax
import numpy as np
import pytest

import transformers_jax as tj
from transformers_jax import hlo_text
from transformers_jax.generation.utils import recorded_loops

VOCAB, LAYERS = 389, 2  # sizes found nowhere else in the program
LLAMA = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=LAYERS, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=False, bos_token_id=1,
             eos_token_id=2, pad_token_id=0)
PROMPT, NEW = 12, 20  # buckets of 16 and 32: 48 cache slots
XLA_CPU_ONLY = pytest.mark.skipif(jax.default_backend() != "cpu",
                                  reason="the decoding layout asserted here is XLA:CPU's")
BOOKKEEPING = ("parameter", "get-tuple-element", "tuple", "bitcast", "constant", "while")  # ops that move nothing


@pytest.fixture(scope="module")
def model():
    return tj.LlamaForCausalLM(tj.LlamaConfig.from_dict(LLAMA), seed=0)


def compiled_loop(model, batch):
    ids = np.random.RandomState(batch).randint(3, VOCAB, (batch, PROMPT))
    with recorded_loops() as calls:
        tokens = model.generate(ids, max_new_tokens=NEW, min_new_tokens=NEW)
    assert len(calls) == 1 and tokens.shape == (batch, PROMPT + NEW)
    ops = hlo_text.instructions(calls[0]().compile().as_text())
    return ops, hlo_text.loop_instructions(ops)


def weight_shapes(model) -> set:
    """The 2-D weight matrices a decoding step reads, in the layout generation reads them."""
    leaves = jax.tree.leaves(model.decoding_params())
    return {tuple(a.shape) for a in leaves if a.ndim == 2 and a.shape[0] != VOCAB}  # (the embedding is gathered)


def layer_buffer_shape(batch):
    """One layer's keys (or values) as the decoding loop holds them (``kv_cache.split_layers``): [B*K, S, D]."""
    config = tj.LlamaConfig.from_dict(LLAMA)
    return (batch * config.num_key_value_heads, 48, config.head_dim)


@XLA_CPU_ONLY
@pytest.mark.parametrize("batch", [1, 3])
def test_a_decode_step_reads_each_weight_once_and_copies_no_weight_and_no_cache(model, batch):
    ops, loop = compiled_loop(model, batch)
    assert loop, "the decoding loop (a while) is missing from the program"
    body = [ops[name] for name in loop]
    weights = weight_shapes(model)
    # q/k/v and gate/up are fused: per layer qkv, o, gate_up, down; plus the LM head
    assert len(weights) == 5 and (64, 64 + 2 * 32) in weights and (64, 2 * 160) in weights
    weight_dots = [op for op in body if hlo_text.is_product(op) and any(s[1] in weights for s in op.operands)]
    assert len(weight_dots) == 4 * LAYERS + 1  # every matrix read by one product per step, none twice
    moves = [op for op in body if not hlo_text.is_product(op) and op.opcode not in BOOKKEEPING]
    copied_weights = [op.name for op in moves if any(s[1] in weights for s in op.result)]
    assert copied_weights == []  # no per-layer slice or copy of any weight inside the loop
    assert_cache_updated_in_place_and_never_copied(moves, layer_buffer_shape(batch), batch)


def assert_cache_updated_in_place_and_never_copied(moves, buffer, rows, update="dynamic-update-slice"):
    """Of the loop's ops that move data (``moves``), the only ones whose result is a layer's keys or values are
    their in-place updates (``update``: a slice update, or a scatter for one slot per row): one K and one V per
    layer, each the very [B*K, S, D] buffer the loop carries; no slice of a stacked cache, no copy, no transposed
    copy, in any arrangement of the rows, heads, slots and head dim (a batch of 1 dropped included)."""
    heads = buffer[0] // rows
    layouts = set(itertools.permutations(buffer)) | set(itertools.permutations((rows, heads) + buffer[1:]))
    layouts |= set(itertools.permutations((heads,) + buffer[1:])) | {(LAYERS, rows, heads) + buffer[1:]}
    cache_sized = [op for op in moves if any(s[1] in layouts for s in op.result)]
    assert all(update in op.name and op.result[0][1] == buffer for op in cache_sized), \
        [(op.name, op.result) for op in cache_sized]
    assert len(cache_sized) == 2 * LAYERS


@XLA_CPU_ONLY
def test_generate_holds_the_cache_once():
    """The program makes its KV cache itself and holds it once: no argument or result is a cache (no donated
    stacked cache beside the loop's per-layer buffers), and the prefill attends over the prompt's slots only (no
    scores against every empty slot). Before, its memory was the cache as argument and result plus ~3x in
    temporaries."""
    config = tj.LlamaConfig.from_dict(dict(LLAMA, max_position_embeddings=1024))
    model = tj.LlamaForCausalLM(config, seed=0)
    batch, new = 4, 500  # buckets: 16 prompt slots + 512 new ones
    ids = np.random.RandomState(0).randint(3, VOCAB, (batch, PROMPT))
    with recorded_loops() as calls:
        model.generate(ids, max_new_tokens=new, min_new_tokens=new)
    compiled = calls[0]().compile()
    memory = compiled.memory_analysis()
    # the prefill's 16 queries meet the 16 prompt slots only: no scores or mask [..., 16, 528] against all slots
    assert not [s for _, s in hlo_text.shapes(compiled.as_text()) if s[-2:] == (16, 16 + 512)]
    cache_bytes = 2 * LAYERS * batch * config.num_key_value_heads * (16 + 512) * config.head_dim * 4
    params_bytes = sum(a.nbytes for a in jax.tree.leaves(model.decoding_params()))
    assert memory.argument_size_in_bytes < params_bytes + cache_bytes // 8  # the params, ids, mask, key, knobs
    assert memory.output_size_in_bytes < cache_bytes // 8  # the tokens and the step count
    assert memory.temp_size_in_bytes < 1.5 * cache_bytes, (memory.temp_size_in_bytes, cache_bytes)


@XLA_CPU_ONLY
def test_the_serving_engine_chunk_reads_its_cache_window_in_place(model):
    from serving.engine import Engine

    engine = Engine(model, num_slots=3, max_length=48)
    lowered = engine._chunk.lower(engine._decode_params, engine._cache, engine._state, window=32, sharding=None)
    ops = hlo_text.instructions(lowered.compile().as_text())
    body = [ops[name] for name in hlo_text.loop_instructions(ops)]
    assert any(hlo_text.is_product(op) for op in body), "the chunk's decoding loop is missing"
    moves = [op for op in body if not hlo_text.is_product(op) and op.opcode not in BOOKKEEPING]
    # the window's 32 slots, [slots * KV heads, 32, D]; one slot per row is written by a scatter
    assert_cache_updated_in_place_and_never_copied(moves, (3 * 2, 32, 16), 3, update="scatter")


@XLA_CPU_ONLY
def test_beam_search_moves_only_the_generated_slots_of_its_cache(model, monkeypatch):
    """Each step reorders the beams' cache. The prompt's 16 slots, the same in every beam of a prompt, stay where
    they lie: the loop's ops the size of a layer's [rows * beams * K, 48, D] buffer are in-place updates only (the
    step's write and the gathered generated slots written back, 2 each per layer), never a copy; the gather moves
    the 32 generated slots."""
    from transformers_jax.generation import beam_search

    calls = []
    program = beam_search._beam_search_program
    monkeypatch.setattr(beam_search, "_beam_search_program", lambda *a, **k: calls.append((a, k)) or program(*a, **k))
    batch, beams = 2, 3
    ids = np.random.RandomState(0).randint(3, VOCAB, (batch, PROMPT))
    model.generate(ids, max_new_tokens=NEW, num_beams=beams)
    args, kwargs = calls[0]
    ops = hlo_text.instructions(program.lower(*args, **kwargs).compile().as_text())
    body = [ops[name] for name in hlo_text.loop_instructions(ops)]
    moves = [op for op in body if not hlo_text.is_product(op) and op.opcode not in BOOKKEEPING]
    rows = batch * beams * 2  # 2 KV heads
    whole = [op for op in moves if any(s[1] == (rows, 48, 16) for s in op.result)]
    assert all("dynamic-update-slice" in op.name for op in whole), [(op.name, op.opcode) for op in whole]
    assert len(whole) == 4 * LAYERS
    assert [op for op in moves if any(s[1] == (rows, 32, 16) for s in op.result)]  # the generated slots, gathered


@XLA_CPU_ONLY
def test_the_prefill_makes_logits_for_the_last_prompt_position_only(model):
    ops, loop = compiled_loop(model, 2)
    vocab_arrays = {s[1] for op in ops.values() for s in op.result if s[1] and s[1][-1] == VOCAB}
    assert (2, 1, VOCAB) in vocab_arrays or (2, VOCAB) in vocab_arrays
    assert (2, 16, VOCAB) not in vocab_arrays and (32, VOCAB) not in vocab_arrays  # no [B, prompt, V] logits


def test_decoding_params_are_made_once_and_follow_new_params(model):
    first = model.decoding_params()
    assert model.decoding_params() is first  # kept: a later generate does not lay them out again
    layers = first["model"]["layers"]
    if jax.default_backend() == "cpu":
        assert isinstance(layers, tuple) and len(layers) == LAYERS
        assert set(layers[0]["self_attn"]) >= {"qkv_proj", "o_proj"} and "q_proj" not in layers[0]["self_attn"]
        assert set(layers[0]["mlp"]) == {"gate_up_proj", "down_proj"}
        q = np.asarray(model.params["model"]["layers"]["self_attn"]["q_proj"]["kernel"][1])
        np.testing.assert_array_equal(np.asarray(layers[1]["self_attn"]["qkv_proj"]["kernel"])[:, :64], q)
    from serving.engine import Engine

    assert Engine(model, num_slots=2, max_length=32)._decode_params is first  # the engine shares generate's copy
    other = jax.tree.map(lambda a: a + 1, model.params)
    assert model.decoding_params(other) is not first


@XLA_CPU_ONLY
def test_an_encoder_decoder_step_reads_the_encoder_keys_and_values_as_they_lie():
    config = tj.BartConfig(vocab_size=VOCAB, d_model=64, encoder_layers=LAYERS, decoder_layers=LAYERS,
                           encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                           decoder_ffn_dim=128, max_position_embeddings=128)
    model = tj.BartForConditionalGeneration(config, seed=0)
    batch, source = 3, 40  # an encoder bucket of 64 slots
    ids = np.random.RandomState(0).randint(3, VOCAB, (batch, source))
    with recorded_loops() as calls:
        model.generate(ids, max_new_tokens=NEW, min_new_tokens=NEW)
    ops = hlo_text.instructions(calls[0]().compile().as_text())
    body = [ops[name] for name in hlo_text.loop_instructions(ops)]
    moves = [op for op in body if not hlo_text.is_product(op) and op.opcode not in BOOKKEEPING]
    heads, dim = 4, 16
    encoder_sized = {(batch * heads, 64, dim), (heads, batch, 64, dim), (batch, heads, 64, dim),
                     (batch, 64, heads, dim), (batch * heads, dim, 64), (LAYERS, batch, heads, 64, dim)}
    # the encoder's keys and values are read-only: no op of the loop copies, transposes or slices them
    assert [op.name for op in moves if any(s[1] in encoder_sized for s in op.result)] == []
    # the decoder's own: the start token and 32 new ones
    assert_cache_updated_in_place_and_never_copied(moves, (batch * heads, 33, dim), batch)
