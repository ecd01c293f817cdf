"""Sharded inference on 8 simulated CPU devices: ``model.shard(mesh, rules)`` / ``from_pretrained(mesh=...)``,
then ``generate`` and the serving engine run on the mesh.

Greedy ``generate`` under ``tp`` (data 4 x tensor 2) and ``fsdp_tp`` (fsdp 2 x tensor 4) gives the tokens of one
device, and the logits agree to float32 rounding, for a Llama and a Qwen2 (q/k/v biases); the engine on a mesh
answers concurrent requests with the unsharded engine's tokens. Read from the running programs: params are split
per the rules (per-device shard shapes), the KV cache's rows (slots) lie on ``data`` and its KV heads on
``tensor``, the cache is donated (its buffers deleted, not copied), and each bucket compiles once. KV heads the
tensor axis does not divide, slots the data axis does not divide, and unknown presets are named errors.
"""
import jax
import numpy as np
import pytest

import transformers_jax as tj
from parity import assert_same_up_to_rounding, count_compiles
from serving.engine import Engine, SamplingParams
from sharding import create_mesh
from transformers_jax import hlo_text
from transformers_jax.generation.utils import recorded_loops
from transformers_jax.partitioning import logical_sharding

VOCAB = 97
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, pad_token_id=0, eos_token_id=None,
              tie_word_embeddings=False)
FAMILIES = {"llama": tj.LlamaForCausalLM, "qwen2": tj.Qwen2ForCausalLM}
# (preset, mesh, KV heads): tp keeps 2 KV heads on tensor 2 and splits rows 4 ways; fsdp_tp splits the
# params' embed axis over fsdp too, and 4 KV heads over tensor 4.
MESHES = {"tp": ({"data": 4, "tensor": 2}, 2), "fsdp_tp": ({"fsdp": 2, "tensor": 4}, 4)}


def make_model(family, kv_heads=2, **overrides):
    cls = FAMILIES[family]
    return cls(cls.config_class.from_dict({**COMMON, "num_key_value_heads": kv_heads, **overrides}), seed=0)


def sharded_copy(model, mesh, rules):
    """The same weights in a second model object, placed on ``mesh``."""
    return type(model)(model.config, jax.tree.map(np.asarray, model.params)).shard(mesh, rules)


def prompts(rows=4, length=12, seed=0):
    rng = np.random.RandomState(seed)
    ids = rng.randint(3, VOCAB, (rows, length)).astype(np.int32)
    mask = np.ones_like(ids)
    ids[1, :5], mask[1, :5] = 0, 0  # a left-padded row
    return ids, mask


@pytest.mark.parametrize("family,preset", [("llama", "tp"), ("llama", "fsdp_tp"), ("qwen2", "tp")])
def test_greedy_generate_on_a_mesh_equals_one_device(family, preset):
    shape, kv_heads = MESHES[preset]
    one = make_model(family, kv_heads)
    mesh = create_mesh(shape)
    sharded = sharded_copy(one, mesh, preset)
    ids, mask = prompts()
    expected = np.asarray(one.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False))
    got = np.asarray(sharded.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False))
    np.testing.assert_array_equal(got, expected)
    # 3 rows on 4 (or 2) data-parallel ways: padded with copies of the last row, which are cut off again
    got = np.asarray(sharded.generate(ids[:3], attention_mask=mask[:3], max_new_tokens=10, do_sample=False))
    np.testing.assert_array_equal(got, expected[:3])
    # the logits: the same sums, split over devices and added in another order
    with logical_sharding(mesh, sharded.mesh_rules.rules):
        logits = np.asarray(sharded(ids, attention_mask=mask).logits)
    assert_same_up_to_rounding(logits, np.asarray(one(ids, attention_mask=mask).logits), name="logits")


def test_params_and_cache_are_split_and_a_bucket_compiles_once():
    """tp on data 4 x tensor 2: each device holds half of every attention and MLP weight; generate's compiled loop
    makes its KV cache in its shards (rows over data, KV heads over tensor: no device ever holds more) and
    compiles once for prompts and budgets within one bucket."""
    model = make_model("llama").shard(create_mesh(MESHES["tp"][0]), "tp")
    layers = model.params["model"]["layers"]
    for name, shard_shape in [(("self_attn", "q_proj"), (2, 64, 32)), (("self_attn", "k_proj"), (2, 64, 16)),
                              (("self_attn", "o_proj"), (2, 32, 64)), (("mlp", "down_proj"), (2, 64, 64))]:
        kernel = layers[name[0]][name[1]]["kernel"]
        assert kernel.sharding.shard_shape(kernel.shape) == shard_shape, name
    assert model.params["model"]["norm"]["scale"].sharding.is_fully_replicated

    ids, mask = prompts(length=24)  # a prompt bucket (32) the other tests do not compile
    with count_compiles("jit(_decode_loop)") as compiles, recorded_loops() as calls:
        model.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False)
        model.generate(ids[:, 5:], attention_mask=mask[:, 5:], max_new_tokens=13, do_sample=False)  # same buckets
    assert len(compiles) == 1, compiles
    # the per-device program: the cache [L, B, K, S, D] = [2, 4, 2, 48, 16] is one row and one KV head per device
    shapes = {shape for _, shape in hlo_text.shapes(calls[0]().compile().as_text())}
    assert (2, 1, 1, 48, 16) in shapes
    assert not shapes & {(2, 4, 2, 48, 16), (2, 4, 1, 48, 16), (2, 1, 2, 48, 16)}  # never more of it


@pytest.fixture(scope="module")
def requests():
    rng = np.random.RandomState(1)
    return [(rng.randint(3, VOCAB, rng.randint(1, 30)).tolist(), int(rng.randint(1, 12))) for _ in range(6)]


def run_engine(engine, requests):
    engine.start(warmup=False)
    try:
        handles = [engine.submit(p, SamplingParams(max_tokens=n, temperature=0.0)) for p, n in requests]
        return [h.result(timeout=300) for h in handles]
    finally:
        engine.shutdown()


def test_engine_on_a_mesh_answers_like_one_device(requests):
    """6 concurrent requests over 4 slots (slots over data 4, KV heads over tensor 2): the unsharded engine's
    tokens; the slot cache lives split and is donated by every chunk; after warm-up nothing compiles."""
    model = make_model("llama")
    expected = run_engine(Engine(model, num_slots=4, max_length=32, chunk_steps=4), requests)
    engine = Engine(model, num_slots=4, max_length=32, chunk_steps=4, mesh=create_mesh(MESHES["tp"][0]), rules="tp")
    assert model.mesh_rules is None  # the engine placed its own params; the model is left as it was
    for entry in engine._cache.values():  # [L, slots, K, S, D]
        assert tuple(entry.sharding.spec)[:3] == (None, "data", "tensor")
        assert entry.sharding.shard_shape(entry.shape) == (2, 1, 1, 32, 16)
    with count_compiles() as compiles:
        engine.warmup()
    assert compiles.count("jit(_decode_chunk)") == len(engine.buckets())  # one chunk program per window bucket
    before = engine._cache
    with count_compiles() as compiles:
        got = run_engine(engine, requests)
    assert compiles == [], f"compiled after warm-up: {compiles}"
    assert got == expected
    assert all(entry.is_deleted() for entry in before.values())


def test_from_pretrained_on_a_mesh(tmp_path):
    """``from_pretrained(mesh=, sharding_rules=)`` loads each param into its shards and generates as one device."""
    one = make_model("llama", 4)
    one.save_pretrained(tmp_path)
    mesh = create_mesh(MESHES["fsdp_tp"][0])
    loaded = tj.AutoModelForCausalLM.from_pretrained(tmp_path, mesh=mesh, sharding_rules="fsdp_tp")
    kernel = loaded.params["model"]["layers"]["mlp"]["up_proj"]["kernel"]  # [L, embed/fsdp, mlp/tensor]
    assert kernel.sharding.shard_shape(kernel.shape) == (2, 32, 32)
    ids, mask = prompts(rows=2)
    np.testing.assert_array_equal(np.asarray(loaded.generate(ids, attention_mask=mask, max_new_tokens=6)),
                                  np.asarray(one.generate(ids, attention_mask=mask, max_new_tokens=6)))


def test_bad_placements_are_named():
    model = make_model("llama")  # 2 KV heads
    with pytest.raises(ValueError, match=r"num_key_value_heads \(the KV heads of the cache\) = 2 is not divisible by "
                                         r"4, the size of the mesh axes \('tensor',\)"):
        model.shard(create_mesh({"fsdp": 2, "tensor": 4}), "fsdp_tp")
    assert model.mesh_rules is None
    with pytest.raises(ValueError, match=r"num_slots = 6 is not divisible by 4, the size of the mesh axes \('data',\)"):
        Engine(model, num_slots=6, max_length=32, mesh=create_mesh({"data": 4, "tensor": 2}), rules="tp")
    with pytest.raises(ValueError, match=r"unknown sharding preset 'tpp'; known presets: \[.*'fsdp_tp'.*'tp'"):
        model.shard(create_mesh({"tensor": 8}), "tpp")
    with pytest.raises(ValueError, match="rules needs a mesh"):
        Engine(model, rules="tp")
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh"):
        model.shard({"tensor": 2}, "tp")
    sharded = make_model("llama").shard(create_mesh({"data": 4, "tensor": 2}), "tp")
    with pytest.raises(NotImplementedError, match=r"beam search \(num_beams=2\)"):
        sharded.generate(prompts()[0], max_new_tokens=2, num_beams=2)


def test_serve_command_line_mesh_flags():
    from serving.cli import mesh_settings, parse_serve_args

    settings = parse_serve_args(["--model", "m", "--mesh", "data=2,tensor=-1", "--sharding", "fsdp_tp"])
    assert settings["mesh"] == {"data": 2, "tensor": -1} and settings["sharding"] == "fsdp_tp"
    assert parse_serve_args(["--model", "m", "--mesh", "tensor=8"])["sharding"] == "tp"
    assert mesh_settings({"tensor": 8}, None) == ({"tensor": 8}, "tp")  # a recipe's mesh: mapping
    for argv, words in [(["--mesh", "tensor"], "expected axis=size pairs"), (["--sharding", "tp"], "needs --mesh"),
                        (["--mesh", "tensor=8", "--sharding", "tpp"], "unknown --sharding preset 'tpp'")]:
        with pytest.raises(ValueError, match=words):
            mesh_settings(*(dict(zip(argv[::2], argv[1::2])).get(k) for k in ("--mesh", "--sharding")))
