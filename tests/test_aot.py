"""AOT compilation for a TPU slice on this CPU host (train/aot.py, scripts/aot_compile.py; libtpu is a test extra).

The real train step of a pretraining recipe is compiled for ``v5e:2x2`` (4 described TPU v5e chips) and its
program is read: the arguments are exactly the params, Adam state and batch shards we expect; the total
memory is within 15% of sharding.memory's estimate at a realistic shape; under fsdp the gradients are
reduce-scattered (under dp they are all-reduced); the program's FLOPs (scan bodies times their length) sit
between train/flops.py's model FLOPs and that plus a full remat recompute. Bad topology names, meshes that
do not match the slice and recipes that cannot fit are named.
"""
import math

import jax
import jax.numpy as jnp
import pytest
import yaml

from train import aot, cli
from train.pretrain import DATA_DEFAULTS

# A Llama at realistic proportions (vocab 32k, 1k-token rows, F = 3D) but small enough to compile in seconds.
RECIPE = {
    "model": {"config": {"model_type": "llama", "vocab_size": 32000, "hidden_size": 512, "intermediate_size": 1536,
                         "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 4,
                         "max_position_embeddings": 1024}},
    "data": {"token_file": None, "max_length": 1024},
    "training": {"output_dir": "unused", "max_steps": 10, "per_device_train_batch_size": 2, "learning_rate": 1e-3,
                 "mesh": {"fsdp": -1}, "sharding": "fsdp", "bf16": True, "remat": "full"},
}


def recipe(tmp_path, *sets):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    return cli.load_recipe(path, list(sets), DATA_DEFAULTS), path


@pytest.fixture(scope="module")
def fsdp_report(tmp_path_factory):
    loaded, _ = recipe(tmp_path_factory.mktemp("aot"))
    return aot.compile_train_step(loaded, "v5e:2x2")


def test_topology_names():
    assert aot.parse_topology("v5p-128") == ("v5p", "4x4x4")  # v5p counts TensorCores: 64 chips
    assert aot.parse_topology("v5p:4x4x8") == ("v5p", "4x4x8")
    assert aot.parse_topology("v5e-16") == ("v5e", "4x4")
    assert aot.parse_topology("v6e-8") == ("v6e", "2x4")
    assert aot.parse_topology("v4-32") == ("v4", "2x2x4")
    chip, devices = aot.topology_devices("v5e-4")
    assert chip == "v5e" and len(devices) == 4 and "v5" in devices[0].device_kind.lower()
    for bad, words in [("v7x-8", "unknown topology"), ("v5e-3", "not a slice shape"), ("v5p:4x4", "3 dimensions"),
                       ("tpu", "unknown topology")]:
        with pytest.raises(aot.TopologyError, match=words):
            aot.parse_topology(bad)


def test_arguments_are_exactly_the_state_and_batch_shards(fsdp_report):
    """Params (float32 master weights), Adam's two moments and the batch, each split 4 ways over fsdp, plus the
    step counter, the PRNG key and Adam's step count (and the padding of small leaves to TPU tiles): nothing
    replicated that should be split."""
    import transformers_jax as tj

    config = tj.LlamaConfig(**{k: v for k, v in RECIPE["model"]["config"].items() if k != "model_type"})
    params = sum(math.prod(x.shape) for x in jax.tree.leaves(tj.LlamaForCausalLM.abstract_params(config)))
    rows, seq = 2 * 4, 1024
    expected = (3 * params * 4 + 2 * rows * seq * 4) / 4  # params + mu + nu (float32), input_ids + labels (int32)
    memory = fsdp_report.memory
    assert expected <= memory["argument"] <= expected * 1.001, (memory, expected)  # TPU tiles pad small leaves
    assert memory["alias"] >= 3 * params * 4 / 4  # the donated state is updated in place


def test_memory_within_15_percent_of_our_estimate(fsdp_report):
    ratio = fsdp_report.memory["total"] / fsdp_report.estimate["total"]
    assert 0.85 <= ratio <= 1.15, fsdp_report.format()


def test_fsdp_reduce_scatters_gradients(fsdp_report):
    """Gradients of split params leave the backward pass reduce-scattered (XLA:TPU runs most of that as a ring of
    collective-permutes inside the layer loop, the rest as reduce-scatter): at least as many bytes as the
    bfloat16 gradient shards, while what is all-reduced is small (norm vectors, the loss, counts)."""
    collectives = fsdp_report.hlo.collectives
    params = (fsdp_report.memory["argument"] - 2 * 8 * 1024 * 4 / 4) / 3  # float32 param shards per device
    scattered = sum(collectives.get(kind, {"bytes": 0})["bytes"] for kind in ("reduce-scatter", "collective-permute"))
    assert collectives["reduce-scatter"]["count"] >= 1
    assert scattered >= 0.9 * params / 2, fsdp_report.format()
    all_reduced = collectives.get("all-reduce", {"bytes": 0})["bytes"]
    assert all_reduced < 0.05 * params, fsdp_report.format()
    assert collectives["all-gather"]["count"] >= 2 * 2, "each layer's weights are gathered in forward and backward"


def test_data_parallel_all_reduces_gradients(tmp_path):
    """The contrast: replicated params (dp) all-reduce whole gradients and reduce-scatter nothing."""
    loaded, _ = recipe(tmp_path, "training.sharding=dp", "model.config.vocab_size=512", "data.max_length=128",
                       "model.config.intermediate_size=512")
    report = aot.compile_train_step(loaded, "v5e:2x2", {"data": 4})
    params = (report.memory["argument"] - 2 * 8 * 128 * 4 / 4) / 3
    assert "reduce-scatter" not in report.hlo.collectives
    assert report.hlo.collectives["all-reduce"]["bytes"] >= 0.9 * params / 2, report.format()


def test_program_flops_follow_the_scan_and_remat(fsdp_report):
    """cost_analysis counts the layer scan's body once; the program count multiplies it by the layers and lands
    between the model FLOPs (6N + attention) and those plus one more forward (full remat recomputes it)."""
    ratio = fsdp_report.program_flops / fsdp_report.model_flops
    assert 1.0 <= ratio <= 1.0 + 2 / 6 + 0.05, fsdp_report.format()
    assert fsdp_report.roofline_seconds > 0 and 0 < fsdp_report.mfu_bound <= 1.0
    assert fsdp_report.fits


def test_jaxpr_flops_counts_scans_and_conditionals():
    def f(x, w):
        def body(carry, _):
            return jnp.tanh(carry @ w), None
        y, _ = jax.lax.scan(body, x, None, length=5)
        return jax.lax.cond(y.sum() > 0, lambda: y @ w, lambda: y) .sum()

    x, w = jnp.ones((4, 8)), jnp.ones((8, 8))
    assert aot.jaxpr_flops(jax.make_jaxpr(f)(x, w)) == 2 * 4 * 8 * 8 * (5 + 1)
    grad_flops = aot.jaxpr_flops(jax.make_jaxpr(jax.grad(f, argnums=(0, 1)))(x, w))
    assert grad_flops == 3 * 2 * 4 * 8 * 8 * (5 + 1)  # forward, and the backward's two products per matmul


def test_summarize_hlo_counts_loop_bodies_by_trip_count():
    text = """HloModule m

%cond (p: (s32[], f32[8])) -> pred[] {
  %p = (s32[], f32[8]) parameter(0)
  %c = s32[] constant(6)
  %i = s32[] get-tuple-element(%p), index=0
  ROOT %lt = pred[] compare(%i, %c), direction=LT
}

%body (p: (s32[], f32[8])) -> (s32[], f32[8]) {
  %p = (s32[], f32[8]) parameter(0)
  %x = f32[8] get-tuple-element(%p), index=1
  %ag = f32[32] all-gather(%x), dimensions={0}
  ROOT %t = (s32[], f32[8]) tuple(%i, %x)
}

ENTRY %main (a: f32[8]) -> f32[8] {
  %a = f32[8] parameter(0)
  %w = (s32[], f32[8]) while(%t0), condition=%cond, body=%body
  %ar = f32[8] all-reduce(%a), to_apply=%add
  ROOT %r = f32[8] get-tuple-element(%w), index=1
}
"""
    summary = aot.summarize_hlo(text)
    assert summary.collectives["all-gather"] == {"count": 6, "bytes": 6 * 32 * 4}
    assert summary.collectives["all-reduce"] == {"count": 1, "bytes": 8 * 4}
    assert summary.unknown_trip_counts == 0


def test_script_exit_codes_name_the_problem(tmp_path, capsys):
    _, path = recipe(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        aot.main(["--config", str(path), "--topology", "v5e-7"])
    assert exit_.value.code == 2 and "not a slice shape" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        aot.main(["--config", str(path), "--topology", "v5e:2x2", "--mesh", "fsdp=8"])
    assert exit_.value.code == 2 and "fsdp': 8} does not match v5e:2x2 (4 devices)" in capsys.readouterr().err
    # 64 rows of 8k tokens per chip outgrow a v5e's 16 GiB
    with pytest.raises(SystemExit) as exit_:
        aot.main(["--config", str(path), "--topology", "v5e:2x2", "--set", "training.per_device_train_batch_size=64",
                  "--set", "data.max_length=8192", "--set", "model.config.max_position_embeddings=8192",
                  "--set", "model.config.num_hidden_layers=1"])
    captured = capsys.readouterr()
    assert exit_.value.code == 1, captured
    assert "does not fit" in captured.err and "over by" in captured.err and "the largest term is" in captured.err
    assert "our estimate's largest component is logits" in captured.err  # 64 x 8192 x 32000 of them per chip
    assert "set loss_chunk_size (a chunked loss)" in captured.err  # what to try, for that component


def test_jaxpr_flops_counts_shard_maps_and_ragged_products():
    """A shard_map body sees one device's shard (times the devices); a ragged product multiplies each row by one
    group's matrix (2 * rows * in * out, not times the groups)."""
    from jax.sharding import AxisType, PartitionSpec as P

    mesh = jax.make_mesh((4,), ("x",), axis_types=(AxisType.Auto,), devices=jax.devices()[:4])
    sharded = jax.jit(jax.shard_map(lambda a, w: a @ w, mesh=mesh, in_specs=(P("x"), P()), out_specs=P("x")))
    assert aot.jaxpr_flops(jax.make_jaxpr(sharded)(jnp.ones((16, 8)), jnp.ones((8, 3)))) == 2 * 16 * 8 * 3
    ragged = jax.make_jaxpr(jax.lax.ragged_dot)(jnp.ones((10, 8)), jnp.ones((4, 8, 3)), jnp.array([1, 2, 3, 4]))
    assert aot.jaxpr_flops(ragged) == 2 * 10 * 8 * 3


def test_decode_step_on_rows_and_heads_never_gathers_the_cache(tmp_path):
    """Slots over data and KV heads over tensor, several of each per chip: attention reads each chip's part of the
    cache where it lies. (Products over rows and heads merged into one axis made the partitioner gather the
    whole cache on every step; on a mesh they keep the two axes apart.)"""
    _, path = recipe(tmp_path)
    loaded = cli.load_recipe(path, ["training.sharding=tp", "model.config.num_key_value_heads=4",
                                    "model.config.vocab_size=512"], DATA_DEFAULTS)
    report = aot.compile_decode_step(loaded, "v5e:2x2", {"data": 2, "tensor": 2}, batch=8, max_length=256)
    c = RECIPE["model"]["config"]
    cache = 2 * c["num_hidden_layers"] * 8 * 4 * 256 * (512 // 8) * 2  # k and v [L, B, K, S, D] in bf16, all chips
    gathered = report.hlo.collectives.get("all-gather", {"bytes": 0})["bytes"]
    assert gathered < cache // 4, report.format()  # less than one chip's quarter of the cache, all gathers together


def test_decode_step_splits_params_and_cache_by_heads(tmp_path):
    """The serving decode step under tensor parallelism: each chip holds a quarter of the attention and MLP
    weights and of the KV cache (4 KV heads over 4 chips), the cache is donated (updated in place), and the
    roofline reads exactly those bytes once per step."""
    _, path = recipe(tmp_path)
    loaded = cli.load_recipe(path, ["training.sharding=tp", "model.config.num_key_value_heads=4",
                                    "model.config.vocab_size=512"], DATA_DEFAULTS)
    report = aot.compile_decode_step(loaded, "v5e:2x2", {"tensor": 4}, batch=2, max_length=256)
    c = RECIPE["model"]["config"]
    layers, d, f, head_dim = c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"], 512 // 8
    cache = 2 * layers * 2 * 256 * 4 * head_dim * 2  # k and v [L, B, K, S, D] in bf16, all chips together
    kv = 4 * head_dim
    split = (layers * (2 * d * d + 2 * d * kv + 3 * d * f) + 2 * 512 * d) * 2  # q/k/v/o, MLP, embedding, lm_head
    replicated = (2 * layers + 1) * d * 2  # the norms' scales
    assert report.hbm_bytes_min == (cache + split) // 4 + replicated, report.format()
    assert report.memory["alias"] >= cache // 4  # the cache is updated in place
    assert report.memory["argument"] >= report.hbm_bytes_min
    assert report.fits and report.tokens == 2 and "decode step" in report.what
