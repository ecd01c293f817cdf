"""MetricsLogger (JSON lines, TensorBoard, progress bar) and the FLOPs/MFU helpers."""
import json
import math
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from train.flops import flops_per_token, matmul_param_count, mfu, param_count, peak_flops_per_device
from train.logging import MetricsLogger
from transformers_jax.models.bert.configuration_bert import BertConfig
from transformers_jax.models.bert.modeling_bert import BertForMaskedLM
from transformers_jax.models.llama.configuration_llama import LlamaConfig
from transformers_jax.models.llama.modeling_llama import LlamaForCausalLM
from transformers_jax.params import abstract_params, flatten_tree


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# ----------------------------------------------------------------------------- logger
def test_logger_writes_jsonl_and_tensorboard(tmp_path):
    with MetricsLogger(tmp_path, total_steps=3, progress=False) as logger:
        for step in (1, 2, 3):
            logger.log(step, {"train/loss": 4.0 - step, "train/learning_rate": 1e-3 * step})
        logger.log(3, {"eval/accuracy": jnp.float32(0.75)})
    rows = _read_jsonl(tmp_path / "metrics.jsonl")
    assert rows[0] == {"step": 1, "train/loss": 3.0, "train/learning_rate": 1e-3}
    assert rows[-1] == {"step": 3, "eval/accuracy": 0.75}
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert {"train/loss", "train/learning_rate", "eval/accuracy"} <= set(acc.Tags()["scalars"])
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2, 3]
    assert [e.value for e in loss] == pytest.approx([3.0, 2.0, 1.0])
    assert [(e.step, e.value) for e in acc.Scalars("eval/accuracy")] == [(3, 0.75)]


def test_jsonl_is_flushed_every_call_and_appended_on_resume(tmp_path):
    logger = MetricsLogger(tmp_path, 10, report_to="jsonl", progress=False)
    logger.log(1, {"loss": 1.5})
    assert _read_jsonl(tmp_path / "metrics.jsonl") == [{"step": 1, "loss": 1.5}]  # before close
    logger.close()
    logger.close()  # idempotent
    with pytest.raises(RuntimeError, match="after close"):
        logger.log(2, {"loss": 1.0})
    with MetricsLogger(tmp_path, 10, report_to=["jsonl"], progress=False, initial_step=1) as resumed:
        resumed.log(2, {"loss": 1.25})
    assert [r["step"] for r in _read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]
    assert not (tmp_path / "tensorboard").exists()


def test_progress_bar_resumes_and_shows_postfix(tmp_path):
    logger = MetricsLogger(tmp_path, 100, report_to="none", initial_step=40)
    bar = logger.progress_bar
    assert bar.n == 40 and bar.total == 100
    logger.log(42, {"train/loss": 2.345678, "train/learning_rate": 3e-4,
                    "train/tokens_per_second": 12345.0, "train/mfu": 0.4123})
    logger.log(42, {"eval/loss": 2.5})
    text = str(bar)
    assert bar.n == 42
    for piece in ("loss=2.3457", "lr=3.00e-04", "tok/s=12.3k", "mfu=41.2%", "eval_loss=2.5000"):
        assert piece in text, text
    logger.close()
    assert list(tmp_path.iterdir()) == []  # report_to="none" writes no files


def test_non_main_process_writes_nothing(tmp_path):
    out = tmp_path / "run"
    with MetricsLogger(out, 5, is_main_process=False) as logger:
        logger.log(1, {"train/loss": 1.0})
        assert logger.progress_bar is None
    assert not out.exists()


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown report_to value\(s\) \['wandb'\]; known: jsonl, tensorboard, none"):
        MetricsLogger(tmp_path, 5, report_to=("jsonl", "wandb"))
    with pytest.raises(ValueError, match="'none' cannot be combined"):
        MetricsLogger(tmp_path, 5, report_to=("none", "jsonl"))
    with pytest.raises(ValueError, match="total_steps must be a positive int"):
        MetricsLogger(tmp_path, 0)
    with MetricsLogger(tmp_path, 5, report_to="jsonl", progress=False) as logger:
        with pytest.raises(ValueError, match="metric 'train/loss' must be a number, got str"):
            logger.log(1, {"train/loss": "low"})
        with pytest.raises(ValueError, match="step must be non-negative"):
            logger.log(-1, {"train/loss": 1.0})
    assert (tmp_path / "metrics.jsonl").read_text() == ""  # rejected calls wrote nothing


# ----------------------------------------------------------------------------- flops
def _kernel_sizes(specs, skip=()):
    """Sizes of the matmul weights (``kernel`` leaves), counted from the specs."""
    return sum(math.prod(s.shape) for path, s in flatten_tree(specs).items()
               if path[-1] == "kernel" and not any(p in path for p in skip))


def test_param_count_of_specs_and_arrays():
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    specs = LlamaForCausalLM.param_specs(config)
    by_hand = 32 * 16 * 2 + 16 + 2 * (2 * 16 + 16 * 16 + 2 * 16 * 8 + 16 * 16 + 3 * 16 * 24)
    assert param_count(specs) == by_hand
    assert param_count(abstract_params(specs)) == by_hand
    assert param_count({"w": jnp.zeros((3, 5))}) == 15
    with pytest.raises(ValueError, match="leaf of type str has no shape"):
        param_count({"w": "oops"})


@pytest.mark.parametrize("tied", [False, True])
def test_llama_flops_per_token_matches_spec_count(tied):
    config = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=tied)
    specs = LlamaForCausalLM.param_specs(config)
    n = _kernel_sizes(specs) + (40 * 16 if tied else 0)  # a tied head multiplies by the embedding
    assert matmul_param_count(config) == n
    seq = 12
    assert flops_per_token(config, seq) == 6 * n + 12 * 3 * seq * 4 * 8
    assert flops_per_token(config, seq, lm_head=False) == 6 * (n - 40 * 16) + 12 * 3 * seq * 32
    assert flops_per_token(config, seq, num_params=1000) == 6000 + 12 * 3 * seq * 32


def test_bert_flops_per_token_matches_spec_count():
    config = BertConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                        num_attention_heads=4)
    specs = BertForMaskedLM.param_specs(config)  # tied decoder: the word embeddings are the head
    n = _kernel_sizes(specs) + 50 * 16
    assert flops_per_token(config, 10) == 6 * n + 12 * 2 * 10 * 16
    with pytest.raises(ValueError, match="seq_len must be a positive int"):
        flops_per_token(config, 0)
    with pytest.raises(ValueError, match="no FLOP count for model_type 'nonesuch'"):
        matmul_param_count(SimpleNamespace(model_type="nonesuch", hidden_size=8, intermediate_size=8,
                                           num_hidden_layers=1, vocab_size=8))


def test_albert_shared_layers_count_once_per_layer():
    from transformers_jax.models.albert import AlbertConfig, AlbertForPreTraining

    shared = AlbertConfig(vocab_size=50, embedding_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=4,
                          num_hidden_groups=2, num_attention_heads=4)
    separate = shared.replace(num_hidden_groups=4)  # the same compute, twice the layer params
    assert param_count(AlbertForPreTraining.param_specs(shared)) < param_count(AlbertForPreTraining.param_specs(separate))
    # 4 layers x (q, k, v, o + ffn in and out), the embedding projection, the MLM transform and the
    # tied decoder (pooler and sentence-order head run once per sequence).
    n = 4 * (4 * 16 * 16 + 2 * 16 * 32) + 8 * 16 + 16 * 8 + 50 * 8
    assert matmul_param_count(shared) == matmul_param_count(separate) == n
    assert flops_per_token(shared, 10) == 6 * n + 12 * 4 * 10 * 16


def test_peak_flops_table_and_mfu():
    dev = lambda kind, platform="gpu": SimpleNamespace(device_kind=kind, platform=platform)  # noqa: E731
    assert peak_flops_per_device(dev("NVIDIA H100 80GB HBM3"), "bfloat16") == 989.4e12
    assert peak_flops_per_device(dev("NVIDIA H100 80GB HBM3"), jnp.float32) == 494.7e12
    assert peak_flops_per_device(dev("NVIDIA H200"), "bfloat16") == 989.4e12
    assert peak_flops_per_device(dev("NVIDIA H100 PCIe"), "bfloat16") == 756e12
    assert peak_flops_per_device(dev("NVIDIA A100-SXM4-80GB"), "float32") == 156e12
    assert peak_flops_per_device(dev("TPU v5 lite", "tpu"), jnp.bfloat16) == 197e12
    assert peak_flops_per_device(dev("TPU v5", "tpu"), "bfloat16") == 459e12
    assert peak_flops_per_device(dev("TPU v6 lite", "tpu"), "bfloat16") == 918e12
    assert peak_flops_per_device(dev("TPU v4", "tpu"), "bfloat16") == 275e12
    assert peak_flops_per_device(dev("Some Future Chip"), "bfloat16") is None
    assert peak_flops_per_device(jax.devices()[0]) is None  # CPU
    with pytest.raises(ValueError, match="dtype 'int8' has no peak FLOP/s entry"):
        peak_flops_per_device(dev("TPU v4", "tpu"), "int8")
    assert mfu(1000.0, 6e9, 8, 1e12) == pytest.approx(0.75)
    assert mfu(1000.0, 6e9, 8, None) is None
    with pytest.raises(ValueError, match="must be positive"):
        mfu(1000.0, 6e9, 0, 1e12)


def test_logged_tokens_per_second_waits_for_the_steps(tmp_path, monkeypatch):
    """The step runs asynchronously; a window's time must include waiting for its last step's result.
    Each step's loss here becomes ready only ~0.5 s after the step is dispatched."""
    import time

    import numpy as np

    from train import step as steps
    from train.data import ArrayDataset
    from train.trainer import Trainer
    from train.training_args import TrainingArguments

    delay = 0.5
    slow = jax.jit(lambda x: jax.pure_callback(lambda v: (time.sleep(delay), v)[1],
                                               jax.ShapeDtypeStruct(x.shape, x.dtype), x))
    real = steps.make_train_step

    def make_slow_step(*args, **kwargs):
        step = real(*args, **kwargs)

        def slow_step(state, batch):
            state, metrics = step(state, batch)
            return state, {**metrics, "loss": slow(metrics["loss"])}
        return slow_step

    monkeypatch.setattr(steps, "make_train_step", make_slow_step)
    config = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16)
    rows = 4 * jax.device_count()  # one global batch a step
    ids = np.random.default_rng(0).integers(0, 50, (2 * rows, 8)).astype(np.int32)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, logging_steps=1,
                             save_strategy="no", report_to="none", disable_tqdm=True)
    trainer = Trainer(LlamaForCausalLM(config, seed=0), args, train_dataset=ArrayDataset({"input_ids": ids, "labels": ids}))
    trainer.train()
    speeds = [r["tokens_per_second"] for r in trainer.state.log_history if "tokens_per_second" in r]
    assert len(speeds) == 2
    assert max(speeds) <= rows * 8 / delay  # rows x 8 tokens a step, each step at least `delay` long
