"""The chunked causal-LM loss (``config.loss_chunk_size``, ``TrainingArguments.loss_chunk_size``): the same loss
and gradients as the whole-logits loss, no [B, T, V] array in the compiled step, the Trainer and its eval path,
the memory estimate, and the errors."""
import jax
import numpy as np
import pytest

import transformers_jax as tj
from family_cases.gemma2 import BASE as GEMMA2
from family_cases.qwen2_moe import BASE as QWEN2_MOE
from parity import assert_same_up_to_rounding, assert_trees_same_up_to_rounding
from sharding import create_mesh
from sharding.memory import estimate_memory
from train.trainer import Trainer
from train.training_args import TrainingArguments
from test_train import LLAMA, SGD, args_for, lm_dataset, one_device_mesh, run

# untied head (Llama); tied head with final soft-capping (Gemma 2); MoE with router losses in the loss (Qwen2-MoE)
CASES = {
    "llama": (tj.LlamaForCausalLM, tj.LlamaConfig, dict(LLAMA, tie_word_embeddings=False)),
    "gemma2": (tj.Gemma2ForCausalLM, tj.Gemma2Config, GEMMA2),
    "qwen2_moe": (tj.Qwen2MoeForCausalLM, tj.Qwen2MoeConfig, dict(QWEN2_MOE, output_router_logits=True)),
}


CHUNKS = (4, 5, 64)  # divides T, leaves a padded last chunk, longer than T


@pytest.mark.parametrize("family", list(CASES))
def test_chunked_loss_and_gradients_equal_the_whole_logits_loss(family):
    model_class, config_class, values = CASES[family]
    config = config_class.from_dict(values)
    model = model_class(config, seed=1)
    rng = np.random.RandomState(0)
    ids = rng.randint(3, config.vocab_size, (3, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 9:] = 0
    labels = np.where(mask == 1, ids, -100)
    labels[0, :3] = -100
    configs = [config] + [config.replace(loss_chunk_size=chunk) for chunk in CHUNKS]

    def loss(params, cfg):
        return model_class.forward(params, cfg, ids, attention_mask=mask, labels=labels).loss

    # one compiled program for the whole loss and every chunking
    results = jax.jit(lambda p: [jax.value_and_grad(loss)(p, cfg) for cfg in configs])(model.params)
    (whole, whole_grads), chunked_results = results[0], results[1:]
    for chunk, (chunked, chunked_grads) in zip(CHUNKS, chunked_results):
        assert_same_up_to_rounding(chunked, whole, ulps=16, name=f"loss, chunks of {chunk}")
        assert_trees_same_up_to_rounding(chunked_grads, whole_grads, ulps=64)
    out = jax.jit(lambda p: model_class.forward(p, configs[1], ids, attention_mask=mask, labels=labels))(model.params)
    assert out.logits is None and out.loss is not None  # the point: the whole logits are never made
    assert "loss_chunk_size" not in configs[1].to_dict()  # a runtime field, never written to config.json


def _logits_shapes(hlo: str, rows: int, length: int, vocab: int) -> int:
    """How many arrays of the optimized HLO are [rows, length, vocab] (the whole logits)."""
    return sum(hlo.count(f"{dtype}[{rows},{length},{vocab}]") for dtype in ("f32", "bf16"))


def test_the_compiled_step_holds_one_chunk_of_logits():
    config = tj.LlamaConfig.from_dict(dict(LLAMA, vocab_size=4096, tie_word_embeddings=False))
    model = tj.LlamaForCausalLM(config, seed=0)
    ids = np.random.RandomState(0).randint(0, 4096, (2, 64)).astype(np.int32)

    def hlo(cfg):
        grad = jax.jit(jax.grad(lambda p: tj.LlamaForCausalLM.forward(p, cfg, ids, labels=ids).loss))
        return grad.lower(model.params).compile().as_text()

    assert _logits_shapes(hlo(config), 2, 64, 4096) > 0  # the check sees the whole logits where they are
    chunked = hlo(config.replace(loss_chunk_size=16))
    assert _logits_shapes(chunked, 2, 64, 4096) == 0
    assert _logits_shapes(chunked, 2, 16, 4096) > 0  # one chunk's logits instead


def test_trainer_with_a_chunked_loss_logs_the_same_losses_and_evaluates(tmp_path):
    config = tj.LlamaConfig.from_dict(LLAMA)
    data = lm_dataset(rows=16)
    whole_trainer, whole = run(tj.LlamaForCausalLM(config, seed=3),
                               args_for(tmp_path / "whole", per_device_train_batch_size=4, max_steps=2, **SGD),
                               data, one_device_mesh())
    chunked_trainer, chunked = run(tj.LlamaForCausalLM(config, seed=3),
                                   args_for(tmp_path / "chunked", per_device_train_batch_size=4, max_steps=2,
                                            loss_chunk_size=5, **SGD), data, one_device_mesh())
    assert chunked_trainer.config.loss_chunk_size == 5 and whole_trainer.config.loss_chunk_size == 0
    assert len(chunked) == 2
    assert_same_up_to_rounding(chunked, whole, ulps=64, name="losses")
    assert_trees_same_up_to_rounding(chunked_trainer.model.params, whole_trainer.model.params, ulps=64,
                                     floor=SGD["learning_rate"])
    # evaluation: the loss alone goes through the chunks; predictions (the logits) through the whole head
    metrics = chunked_trainer.evaluate(data)
    assert_same_up_to_rounding(metrics["eval_loss"], whole_trainer.evaluate(data)["eval_loss"], ulps=64)
    prediction = chunked_trainer.predict(data)
    assert prediction.predictions.shape == (16, 16, config.vocab_size)


def test_the_memory_estimate_counts_one_chunk_of_logits():
    config = tj.LlamaConfig.from_dict(dict(LLAMA, vocab_size=4096))
    specs = tj.LlamaForCausalLM.param_specs(config)
    mesh = create_mesh({"data": 1}, devices=jax.devices()[:1])
    whole = estimate_memory(config, specs, mesh, (), batch_per_device=2, seq_len=64)
    chunked = estimate_memory(config.replace(loss_chunk_size=16), specs, mesh, (), batch_per_device=2, seq_len=64)
    assert whole.logits == 4 * chunked.logits > 0
    assert chunked.activations == whole.activations


def test_bad_chunk_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="loss_chunk_size must be an integer >= 0"):
        args_for(tmp_path, loss_chunk_size=-1)
    with pytest.raises(ValueError, match="loss_chunk_size=8 and label_smoothing_factor=0.1 cannot be combined"):
        args_for(tmp_path, loss_chunk_size=8, label_smoothing_factor=0.1)
    bert = tj.BertForMaskedLM(tj.BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                            intermediate_size=64))
    with pytest.raises(ValueError, match="loss_chunk_size=8: BertForMaskedLM has no chunked loss"):
        Trainer(bert, args_for(tmp_path, loss_chunk_size=8))
    assert isinstance(TrainingArguments(output_dir=str(tmp_path), max_steps=1).loss_chunk_size, int)
