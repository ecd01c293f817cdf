"""Sequence (context) parallelism: the ``sequence`` mesh axis splits activations along the length through the
whole model (presets ``sp``, ``fsdp_sp``, ``fsdp_tp_sp``), on 8 simulated devices.

Three Trainer steps of a tiny Llama on a padded batch give the losses and params of one device when the
length is split 4 ways next to fsdp, and 2 ways next to fsdp and tensor. The compiled forward carries each
device's hidden states from layer to layer as [rows / fsdp, length / sequence, hidden].
"""
import re

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import transformers_jax as tj
from parity import assert_same_up_to_rounding, assert_trees_same_up_to_rounding

CONFIG = dict(vocab_size=97, hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
ROWS, LENGTH = 8, 32


def batch():
    rng = np.random.RandomState(0)
    ids = rng.randint(3, CONFIG["vocab_size"], (3 * ROWS, LENGTH)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[::3, 20:] = 0  # right padding on every third row
    return {"input_ids": ids, "attention_mask": mask, "labels": np.where(mask == 1, ids, -100)}


def train(mesh, sharding, rows_per_device, tmp_path, folder):
    from train.data import ArrayDataset
    from train.trainer import Trainer
    from train.training_args import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / folder), max_steps=3, per_device_train_batch_size=rows_per_device,
                             optim="sgd", learning_rate=0.1, logging_steps=1, save_strategy="no", report_to="none",
                             disable_tqdm=True, sharding=sharding)
    model = tj.LlamaForCausalLM(tj.LlamaConfig(**CONFIG), seed=3)
    trainer = Trainer(model, args, train_dataset=ArrayDataset(batch()), mesh=mesh)
    trainer.train()
    return trainer, [r["loss"] for r in trainer.state.log_history if "loss" in r]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return train(Mesh(np.array(jax.devices()[:1]), ("data",)), "dp", ROWS, tmp_path_factory.mktemp("sp"), "one")


@pytest.mark.parametrize("axes, sharding", [({"fsdp": 2, "sequence": 4}, "fsdp_sp"),
                                            ({"fsdp": 2, "sequence": 2, "tensor": 2}, "fsdp_tp_sp")])
def test_three_steps_equal_one_device(single, axes, sharding, tmp_path):
    from sharding import create_mesh

    one, one_loss = single
    mesh = create_mesh(axes)
    trainer, loss = train(mesh, sharding, ROWS // axes["fsdp"], tmp_path, sharding)
    assert len(one_loss) == 3
    assert_same_up_to_rounding(loss, one_loss, ulps=16, name="losses")
    assert_trees_same_up_to_rounding(trainer.model.params, one.model.params, ulps=16, floor=0.1)


def test_hidden_states_are_split_along_the_length():
    """The compiled forward under ``fsdp_sp`` (fsdp 2 x sequence 4) carries the residual stream from layer to
    layer (the layer scan's carry, what remat keeps) as a [4, 8, 48] block per device: rows / 2, length / 4.
    Inside a layer XLA gathers along the length what attention needs (and, on XLA:CPU, the MLP's input too:
    Megatron-style sequence parallelism)."""
    from sharding import create_mesh, rules_for_mesh
    from transformers_jax.partitioning import logical_sharding, param_shardings

    mesh = create_mesh({"fsdp": 2, "sequence": 4})
    rules = rules_for_mesh("fsdp_sp", mesh)
    model = tj.LlamaForCausalLM(tj.LlamaConfig(**CONFIG), seed=3)
    cls, config = type(model), model.config
    params = jax.device_put(model.params, param_shardings(cls.param_specs(config), mesh, rules))
    data = batch()
    ids = jax.device_put(data["input_ids"][:ROWS], jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("fsdp")))

    def forward(p, x):
        with logical_sharding(mesh, rules):
            return cls.forward(p, config, x).logits

    text = jax.jit(forward).lower(params, ids).compile().as_text()
    loops = [line for line in text.splitlines() if re.match(r"\s*%while[.\d]* = ", line)]
    assert len(loops) == 1, loops  # the layer scan
    assert "f32[4,8,48]" in loops[0] and "f32[4,32,48]" not in loops[0], loops[0][:300]
    assert re.search(r"all-gather\(.*dimensions=\{1\}", text), "nothing gathered along the length for attention"


def test_rules_refuse_sequence_twice():
    from sharding import create_mesh
    from sharding.rules import check_rules

    mesh = create_mesh({"fsdp": 2, "sequence": 4})
    rules = (("batch", "sequence"), ("length", "sequence"))
    with pytest.raises(ValueError, match="sequence"):
        check_rules(rules, mesh, tj.LlamaForCausalLM.param_specs(tj.LlamaConfig(**CONFIG)))


def test_memory_estimate_splits_the_length():
    """Under ``fsdp_sp`` the estimate's activations and logits are each device's stretch of the length: a quarter
    of those of the same rows without the sequence axis (attention scores: a quarter of the queries over every
    key)."""
    from sharding import create_mesh, rules_for_mesh
    from sharding.memory import estimate_memory

    config = tj.LlamaConfig(**CONFIG)
    specs = tj.LlamaForCausalLM.param_specs(config)
    split = create_mesh({"fsdp": 2, "sequence": 4})
    whole = create_mesh({"fsdp": 2, "data": 4})
    kwargs = dict(batch_per_device=2, seq_len=32, attention_scores=True)
    sp = estimate_memory(config, specs, split, rules_for_mesh("fsdp_sp", split), **kwargs)
    plain = estimate_memory(config, specs, whole, rules_for_mesh("fsdp", whole), **kwargs)
    assert sp.logits * 4 == plain.logits and sp.activations * 4 == plain.activations
    assert sp.params == plain.params
