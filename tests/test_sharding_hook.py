"""Params placed on 8 simulated CPU devices by logical-axis rules give the single-device outputs."""
import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import transformers_jax as tj
from transformers_jax.partitioning import logical_sharding, logical_to_partition_spec, param_shardings, validate_rules
from parity import assert_same_up_to_rounding

# fsdp over the embedding dim, tensor parallel over heads and MLP.
RULES = (("embed", "fsdp"), ("heads", "tensor"), ("kv_heads", "tensor"), ("mlp", "tensor"), ("batch", None))  # params only; activations use act_* names


@pytest.fixture(scope="module")
def mesh():
    devices = np.array(jax.devices())
    assert devices.size == 8, "tests need XLA_FLAGS=--xla_force_host_platform_device_count=8 (set in conftest.py)"
    return Mesh(devices.reshape(4, 2), ("fsdp", "tensor"))


def _bert():
    config = tj.BertConfig.from_dict(dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                          intermediate_size=64, max_position_embeddings=32))
    return tj.BertForMaskedLM(config, seed=1), "logits"


def _llama():
    config = tj.LlamaConfig.from_dict(dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                           num_key_value_heads=2, intermediate_size=64, max_position_embeddings=32))
    return tj.LlamaForCausalLM(config, seed=1), "logits"


@pytest.mark.parametrize("build", [_bert, _llama])
def test_sharded_forward_equals_single_device(build, mesh):
    model, key = build()
    ids = np.random.RandomState(0).randint(0, 96, (4, 12))
    mask = np.ones_like(ids)
    mask[1, 9:] = 0
    expected = np.asarray(model(ids, attention_mask=mask)[key])

    shardings = param_shardings(model.param_specs(model.config), mesh, RULES)
    sharded = jax.tree.map(jax.device_put, model.params, shardings)
    # The params really carry the shardings the rules say.
    flat = jax.tree_util.tree_leaves_with_path(sharded)
    specs = {jax.tree_util.keystr(p): leaf.sharding.spec for p, leaf in flat}
    if isinstance(model, tj.LlamaForCausalLM):
        assert specs["['model']['layers']['self_attn']['q_proj']['kernel']"] == PartitionSpec(None, "fsdp", "tensor")
        assert specs["['model']['layers']['mlp']['down_proj']['kernel']"] == PartitionSpec(None, "tensor", "fsdp")
    else:
        assert specs["['bert']['encoder']['layer']['intermediate']['dense']['kernel']"] == PartitionSpec(None, "fsdp", "tensor")
    assert len(sharded_devices := {d for _, leaf in flat for d in leaf.sharding.device_set}) == 8, sharded_devices

    with logical_sharding(mesh, RULES):
        out = model(ids, attention_mask=mask, params=sharded)[key]
    # per-device partial sums and an all-reduce instead of one sum: equal up to rounding
    assert_same_up_to_rounding(out, expected, ulps=64)
    assert isinstance(out.sharding, NamedSharding) or len(out.sharding.device_set) == 8


def test_rules_refuse_a_reused_mesh_axis():
    rules = (("embed", "tensor"), ("heads", "tensor"))
    with pytest.raises(ValueError, match="mesh axis 'tensor' is used by both logical axes 'embed' and 'heads' of one array"):
        logical_to_partition_spec(("embed", "heads"), rules)
    with pytest.raises(ValueError, match="logical axis 'embed' appears twice"):
        validate_rules((("embed", "fsdp"), ("embed", "tensor")))
