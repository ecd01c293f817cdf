"""Per-device memory estimates (sharding.memory) and multi-host start-up (sharding.distributed)."""
import dataclasses
import os
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from sharding import distributed
from sharding.memory import check_fits, device_memory_bytes, estimate_memory
from transformers_jax.models.llama.configuration_llama import LlamaConfig
from transformers_jax.models.llama.modeling_llama import LlamaForCausalLM
from transformers_jax.params import abstract_params
from transformers_jax.partitioning import param_shardings

TINY = dict(vocab_size=32, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2)


def _tiny():
    config = LlamaConfig(**TINY)
    return config, LlamaForCausalLM.param_specs(config)


def _tiny_param_scalars():
    d, f, v, layers, kv = 16, 24, 32, 2, 8
    per_layer = 2 * d + d * d + 2 * d * kv + d * d + 3 * d * f  # 2 norms, q, k, v, o, gate/up/down
    return 2 * v * d + d + layers * per_layer  # embed + lm_head, final norm, layers


# ----------------------------------------------------------------------------- estimate
def test_tiny_estimate_by_hand():
    config, specs = _tiny()
    p = _tiny_param_scalars()
    b, t, d, f, h, v, layers = 2, 8, 16, 24, 4, 32, 2
    est = estimate_memory(config, specs, batch_per_device=b, seq_len=t)
    one_layer = b * t * (8 * d + 4 * f) * 4 + b * h * t * t * 4
    assert (est.params, est.gradients, est.optimizer_state) == (4 * p, 4 * p, 2 * 4 * p)
    assert est.activations == layers * one_layer
    assert est.logits == 2 * b * t * v * 4
    assert est.total == 16 * p + layers * one_layer + 2 * b * t * v * 4
    assert est.dominant() == "optimizer_state"

    half = estimate_memory(config, specs, batch_per_device=b, seq_len=t, optimizer="sgd",
                           param_dtype="bfloat16", compute_dtype="bfloat16")
    assert (half.params, half.gradients, half.optimizer_state) == (2 * p, 2 * p, 0)
    assert half.activations == layers * (b * t * (8 * d + 4 * f) * 2 + b * h * t * t * 4)
    table = est.format()
    assert "optimizer_state" in table and "total" in table and "MiB" in table
    assert "remat=none" in table


def test_remat_lowers_activations():
    config, specs = _tiny()
    b, t, d, f, h, layers = 2, 8, 16, 24, 4, 2
    plain = estimate_memory(config, specs, batch_per_device=b, seq_len=t, remat=False)
    full = estimate_memory(config, specs, batch_per_device=b, seq_len=t, remat="full")
    from_config = estimate_memory(config.replace(remat=True), specs, batch_per_device=b, seq_len=t)
    one_layer = b * t * (8 * d + 4 * f) * 4 + b * h * t * t * 4
    assert full.activations == layers * b * t * d * 4 + one_layer
    assert full.activations < plain.activations
    assert from_config.activations == full.activations
    assert full.params == plain.params


@pytest.mark.parametrize("shape, rules", [
    ((8,), (("embed", "fsdp"), ("norm", "fsdp"))),
    ((2, 4), (("embed", "fsdp"), ("norm", "fsdp"), ("heads", "tensor"), ("kv_heads", "tensor"),
              ("mlp", "tensor"), ("vocab", "tensor"))),
])
def test_sharded_estimate_equals_placed_shards(shape, rules):
    config, specs = _tiny()
    names = ("fsdp",) if len(shape) == 1 else ("fsdp", "tensor")
    mesh = Mesh(np.array(jax.devices()[:8]).reshape(shape), names)  # Mesh(...): default (auto) axis types
    est = estimate_memory(config, specs, mesh, rules, batch_per_device=1, seq_len=4)
    host = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract_params(specs))
    params = jax.device_put(host, param_shardings(specs, mesh, rules))
    dev0 = jax.devices()[0]
    placed = sum(next(s.data.nbytes for s in leaf.addressable_shards if s.device == dev0)
                 for leaf in jax.tree.leaves(params))
    assert est.params == placed
    if shape == (8,):  # every leaf has an fsdp-sharded axis that 8 divides
        assert est.params * 8 == 4 * _tiny_param_scalars()
        assert est.optimizer_state == 2 * est.params
    assert est.params < 4 * _tiny_param_scalars() / 4


def test_bad_estimate_arguments():
    config, specs = _tiny()
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'; known: adamw, adam, lion, momentum, sgd"):
        estimate_memory(config, specs, batch_per_device=1, seq_len=4, optimizer="adagrad")
    with pytest.raises(ValueError, match="remat must be one of"):
        estimate_memory(config, specs, batch_per_device=1, seq_len=4, remat="dots")
    with pytest.raises(ValueError, match="seq_len must be a positive int, got 0"):
        estimate_memory(config, specs, batch_per_device=1, seq_len=0)
    with pytest.raises(ValueError, match="SimpleNamespace lacks intermediate_size"):
        estimate_memory(SimpleNamespace(hidden_size=4, num_hidden_layers=1, num_attention_heads=1, vocab_size=8),
                        specs, batch_per_device=1, seq_len=4)


def test_moe_estimate_counts_all_experts_and_top_k_activations():
    """Params: every expert, split over the expert mesh axis. Activations: the top-k experts' MLP
    values and dispatch buffers (times the expert axis size: the static all-to-all bound), a shared
    expert and the router logits; a dense layer among sparse ones keeps the dense formula."""
    from sharding.rules import rules_for_mesh
    from transformers_jax.models.qwen2_moe.configuration_qwen2_moe import Qwen2MoeConfig
    from transformers_jax.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeForCausalLM

    d, f, fe, fs, e, k, h, v = 16, 40, 12, 20, 8, 2, 4, 32
    config = Qwen2MoeConfig(vocab_size=v, hidden_size=d, intermediate_size=f, moe_intermediate_size=fe,
                            shared_expert_intermediate_size=fs, num_experts=e, num_experts_per_tok=k,
                            num_hidden_layers=3, mlp_only_layers=[1], num_attention_heads=h, num_key_value_heads=2)
    specs = Qwen2MoeForCausalLM.param_specs(config)
    scalars = sum(int(np.prod(s.shape)) for s in jax.tree.leaves(specs, is_leaf=lambda x: hasattr(x, "axes")))
    experts = 2 * e * 3 * d * fe  # two sparse layers, three [E, D, Fe] kernels each
    b, t = 2, 8

    def layers(shards):
        attention = b * h * t * t * 4
        dense = b * t * (8 * d + 4 * f) * 4 + attention
        sparse = b * t * (8 * d + shards * k * (4 * fe + 2 * d) + e + 4 * fs) * 4 + attention
        return dense + 2 * sparse

    one = estimate_memory(config, specs, batch_per_device=b, seq_len=t)
    assert one.params == 4 * scalars
    assert one.activations == layers(1)
    mesh = Mesh(np.array(jax.devices()[:8]).reshape(2, 4), ("data", "expert"))
    ep = estimate_memory(config, specs, mesh, rules_for_mesh("ep", mesh), batch_per_device=b, seq_len=t)
    assert ep.params == 4 * (scalars - experts + experts // 4)
    assert ep.activations == layers(4)


# ----------------------------------------------------------------------------- fits
def _llama_1b():
    config = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True)
    return config, LlamaForCausalLM.param_specs(config)


def test_llama_1b_does_not_fit_and_says_why():
    config, specs = _llama_1b()
    est = estimate_memory(config, specs, batch_per_device=1, seq_len=512)
    assert 1.2e9 < est.params / 4 < 1.3e9  # Llama-3.2-1B has 1.24B params
    with pytest.raises(ValueError) as err:
        check_fits(est, available=2 * 2**30)
    msg = str(err.value)
    assert "does not fit in 90% of 2.00 GiB available" in msg
    assert "optimizer_state dominates" in msg and "fsdp" in msg
    assert "params" in msg and "GiB" in msg  # the breakdown table

    long = estimate_memory(config, specs, batch_per_device=4, seq_len=4096)
    with pytest.raises(ValueError, match=r"activations dominates \(\d+% of the total\); try: turn on remat"):
        check_fits(long, available=2 * 2**30)
    remat = estimate_memory(config, specs, batch_per_device=4, seq_len=4096, remat=True)
    assert remat.activations < long.activations / 10
    # activations still dominating under full remat: the advice does not say to turn remat on
    longer = estimate_memory(config, specs, batch_per_device=256, seq_len=4096, remat=True)
    longer = dataclasses.replace(longer, logits=0)  # (as under a chunked loss)
    assert longer.dominant() == "activations" and longer.settings["remat"] == "full"
    with pytest.raises(ValueError, match=r"activations dominates .*; try: remat is already full: lower") as err:
        check_fits(longer, available=2 * 2**30)
    assert "turn on remat" not in str(err.value)
    assert check_fits(est, available=10**12) == pytest.approx(est.total / 10**12)


def test_device_memory_bytes(monkeypatch):
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert device_memory_bytes(jax.devices()[0]) == host // len(jax.devices())
    gpu = SimpleNamespace(platform="gpu", memory_stats=lambda: {"bytes_limit": 80 * 2**30, "bytes_in_use": 0})
    assert device_memory_bytes(gpu) == 80 * 2**30
    assert device_memory_bytes(SimpleNamespace(platform="gpu", memory_stats=lambda: None)) is None
    config, specs = _tiny()
    est = estimate_memory(config, specs, batch_per_device=1, seq_len=4)
    monkeypatch.setattr("sharding.memory.device_memory_bytes", lambda device=None: None)
    with pytest.raises(ValueError, match="pass available="):
        check_fits(est)
    with pytest.raises(ValueError, match="headroom must be in"):
        check_fits(est, available=100, headroom=1.5)


# ----------------------------------------------------------------------------- distributed
@pytest.fixture
def fake_init(monkeypatch):
    """Clean env and state; record what jax.distributed.initialize would have been called with."""
    calls = []
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "JAX_DISTRIBUTED_AUTO"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(distributed, "_STATE", {"initialized": False})
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    return calls


def test_single_process_starts_nothing(fake_init, monkeypatch):
    assert distributed.initialize() is False
    monkeypatch.setenv("JAX_NUM_PROCESSES", "1")
    assert distributed.initialize() is False
    assert fake_init == []


def test_env_settings_are_passed_and_second_call_is_noop(fake_init, monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", " 3 ")
    assert distributed.initialize() is True
    assert distributed.initialize() is True
    assert fake_init == [{"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3}]
    assert distributed.is_initialized()


def test_arguments_override_env(fake_init, monkeypatch):
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    assert distributed.initialize("host:99", num_processes=2, process_id=0, local_device_ids=[0, 1]) is True
    assert fake_init == [{"coordinator_address": "host:99", "num_processes": 2, "process_id": 0,
                          "local_device_ids": [0, 1]}]


def test_auto_detect_leaves_unset_values_to_jax(fake_init, monkeypatch):
    monkeypatch.setenv("JAX_DISTRIBUTED_AUTO", "1")
    assert distributed.initialize() is True
    assert fake_init == [{"coordinator_address": None, "num_processes": None, "process_id": None}]


@pytest.mark.parametrize("env, message", [
    ({"JAX_COORDINATOR_ADDRESS": "h:1"}, "JAX_COORDINATOR_ADDRESS is set but JAX_NUM_PROCESSES is not"),
    ({"JAX_PROCESS_ID": "0"}, "JAX_PROCESS_ID is set but JAX_NUM_PROCESSES is not"),
    ({"JAX_NUM_PROCESSES": "two"}, "JAX_NUM_PROCESSES must be an integer, got 'two'"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2", "JAX_COORDINATOR_ADDRESS": "h:1"},
     r"JAX_PROCESS_ID \(2\) must be less than JAX_NUM_PROCESSES \(2\)"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "JAX_NUM_PROCESSES=2 needs JAX_COORDINATOR_ADDRESS too"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_COORDINATOR_ADDRESS": "h:1"}, "JAX_NUM_PROCESSES=2 needs JAX_PROCESS_ID too"),
    ({"JAX_NUM_PROCESSES": "0"}, "JAX_NUM_PROCESSES must be at least 1"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0", "JAX_COORDINATOR_ADDRESS": "nohost"}, "must look like host:port"),
    ({"JAX_DISTRIBUTED_AUTO": "maybe"}, "JAX_DISTRIBUTED_AUTO must be 1/true/yes"),
])
def test_bad_settings_name_the_variable(fake_init, monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        distributed.initialize()
    assert fake_init == []
