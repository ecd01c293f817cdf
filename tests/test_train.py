"""The train step and Trainer: sharded steps equal one device, pmap equals jit, gradient
accumulation equals a big batch, parity with a PyTorch AdamW step, freezing, bf16, learning."""
import copy

import jax
import numpy as np
import pytest
import torch
from jax.sharding import Mesh, PartitionSpec

import transformers_jax as tj
from parity import (EPS32, assert_accurate, assert_same_up_to_rounding, assert_trees_same_up_to_rounding, assert_within,
                    count_compiles, hf_pair, perturb_params)
from sharding import create_mesh
from train.data import ArrayDataset
from train.trainer import Trainer
from train.training_args import TrainingArguments

LLAMA = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=64, max_position_embeddings=64)
BERT = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, num_labels=3)


def lm_dataset(rows=64, length=16, seed=0, pad=True):
    rng = np.random.RandomState(seed)
    ids = ((np.arange(length)[None] * rng.randint(1, 4, (rows, 1)) + rng.randint(0, 90, (rows, 1))) % 90 + 3)
    mask = np.ones_like(ids)
    if pad:  # ragged rows: different label counts per micro-batch
        for r in range(rows):
            mask[r, length - r % 5:] = 0
    labels = np.where(mask == 1, ids, -100)
    return ArrayDataset({"input_ids": ids.astype(np.int32), "attention_mask": mask.astype(np.int32),
                         "labels": labels.astype(np.int32)})


def cls_dataset(rows=64, length=12, seed=0):
    rng = np.random.RandomState(seed)
    ids = rng.randint(4, 96, (rows, length))
    labels = ids[:, 1] % 3
    mask = np.ones_like(ids)
    mask[::3, length - 4:] = 0
    return ArrayDataset({"input_ids": ids.astype(np.int32), "attention_mask": mask.astype(np.int32),
                         "labels": labels.astype(np.int32)})


# Runs that must agree with each other (sharded vs one device, pmap vs jit, accumulated vs whole batches)
# are the same float32 computation with sums in another order, so they are compared up to rounding. They
# train with SGD, whose update is linear in the gradient: AdamW divides each gradient by its running RMS
# and so turns rounding noise in a near-zero gradient into an update of up to ~lr, a difference no
# tolerance can bound. AdamW itself is checked against torch.optim.AdamW, both against a float64 run.
# Params are compared to within rounding of at least lr: an SGD update is lr times a gradient whose
# terms are O(1), so a param the loss does not move (a key bias) still carries lr-sized rounding.
SGD = dict(optim="sgd", learning_rate=0.1)
PARAM_FLOOR = SGD["learning_rate"]


def args_for(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=1, learning_rate=1e-3,
                logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True)
    base.update(kw)
    return TrainingArguments(**base)


def one_device_mesh():
    return Mesh(np.array(jax.devices()[:1]), ("data",))


def run(model, args, dataset, mesh=None):
    trainer = Trainer(model, args, train_dataset=dataset, mesh=mesh)
    trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    return trainer, losses


def flat(params):
    return {jax.tree_util.keystr(p): np.asarray(jax.device_get(v)) for p, v in jax.tree_util.tree_leaves_with_path(params)}


# ----------------------------------------------------------------------------- sharded == one device
PRESET_MESHES = {
    "dp": {"data": 8},
    "fsdp": {"data": 2, "fsdp": 4},
    "tp": {"data": 4, "tensor": 2},
    "fsdp_tp": {"data": 2, "fsdp": 2, "tensor": 2},
}
EXPECTED_Q_PROJ = {"dp": PartitionSpec(None, None, None), "fsdp": PartitionSpec(None, "fsdp", None),
                   "tp": PartitionSpec(None, None, "tensor"), "fsdp_tp": PartitionSpec(None, "fsdp", "tensor")}


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    """Two steps of a tiny Llama on one device, global batch 8: the reference of every preset."""
    config = tj.LlamaConfig.from_dict(LLAMA)
    return run(tj.LlamaForCausalLM(config, seed=3),
               args_for(tmp_path_factory.mktemp("single"), per_device_train_batch_size=8, max_steps=2, **SGD),
               lm_dataset(), one_device_mesh())


@pytest.mark.parametrize("preset", list(PRESET_MESHES))
def test_sharded_step_equals_one_device(tmp_path, preset, one_device_run):
    config = tj.LlamaConfig.from_dict(LLAMA)
    mesh = create_mesh(PRESET_MESHES[preset])
    batch_rows = {"dp": 1, "fsdp": 1, "tp": 2, "fsdp_tp": 2}[preset]  # global batch 8 everywhere
    sharded, sharded_loss = run(tj.LlamaForCausalLM(config, seed=3),
                                args_for(tmp_path, sharding=preset, per_device_train_batch_size=batch_rows,
                                         max_steps=2, **SGD), lm_dataset(), mesh)
    single, single_loss = one_device_run
    assert_same_up_to_rounding(sharded_loss, single_loss, ulps=16, name="losses")
    assert_trees_same_up_to_rounding(sharded.model.params, single.model.params, ulps=16, floor=PARAM_FLOOR)
    q = sharded.model.params["model"]["layers"]["self_attn"]["q_proj"]["kernel"]
    assert q.sharding.spec == EXPECTED_Q_PROJ[preset]
    assert len(q.sharding.device_set) == 8


def test_adam_moments_live_where_their_params_live_in_float32(tmp_path):
    """AdamW under fsdp_tp with bf16 compute: each moment has its param's sharding and stays float32."""
    config = tj.LlamaConfig.from_dict(LLAMA)
    trainer, _ = run(tj.LlamaForCausalLM(config, seed=3),
                     args_for(tmp_path, sharding="fsdp_tp", per_device_train_batch_size=2, bf16=True), lm_dataset(),
                     create_mesh(PRESET_MESHES["fsdp_tp"]))
    adam = trainer._train_state["opt_state"][1][0]
    params = trainer.model.params
    for moments in (adam.mu, adam.nu):
        shardings = jax.tree.map(lambda m, p: m.sharding == p.sharding, moments, params)
        assert all(jax.tree.leaves(shardings))
        assert all(m.dtype == np.float32 for m in jax.tree.leaves(moments))
    assert adam.mu["model"]["layers"]["self_attn"]["q_proj"]["kernel"].sharding.spec == EXPECTED_Q_PROJ["fsdp_tp"]


def test_sharded_step_with_dropout_equals_one_device(tmp_path):
    """Dropout masks do not depend on how the batch is split (partitionable threefry)."""
    config = tj.BertConfig.from_dict(BERT)  # hidden and attention dropout 0.1
    data = cls_dataset()
    sharded, l1 = run(tj.BertForSequenceClassification(config, seed=2),
                      args_for(tmp_path / "a", sharding="fsdp_tp", **SGD), data,
                      create_mesh({"data": 2, "fsdp": 2, "tensor": 2}))
    single, l2 = run(tj.BertForSequenceClassification(config, seed=2),
                     args_for(tmp_path / "b", per_device_train_batch_size=4, **SGD), data, one_device_mesh())
    assert_same_up_to_rounding(l1, l2, ulps=16, name="losses")
    assert_trees_same_up_to_rounding(sharded.model.params, single.model.params, ulps=16, floor=PARAM_FLOOR)
    # Dropout was really on: the first step's loss differs from the same batch's loss without dropout.
    first = single._loader(data, single.train_batch_size, train=True).load_batch(0, 0)
    plain = tj.BertForSequenceClassification(config, seed=2)(**first).loss
    assert abs(float(plain) - l2[0]) > 1e-4


# ----------------------------------------------------------------------------- pmap == jit, accumulation
def test_pmap_path_equals_jit_path(tmp_path):
    config = tj.BertConfig.from_dict(dict(BERT, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    data = cls_dataset()
    kw = dict(max_steps=3, per_device_train_batch_size=2, gradient_accumulation_steps=2, **SGD)
    pmapped, l1 = run(tj.BertForSequenceClassification(config, seed=4), args_for(tmp_path / "a", parallelism="pmap", **kw), data)
    jitted, l2 = run(tj.BertForSequenceClassification(config, seed=4), args_for(tmp_path / "b", **kw), data)
    assert_same_up_to_rounding(l1, l2, ulps=16, name="losses")
    assert_trees_same_up_to_rounding(pmapped.model.params, jitted.model.params, ulps=16, floor=PARAM_FLOOR)
    assert len(l1) == 3 and l1[0] != l1[-1]


def test_gradient_accumulation_equals_big_batch(tmp_path, one_device_run):
    """4 micro-batches of 2 ragged rows == one batch of 8 (the loss is a mean over all tokens)."""
    config = tj.LlamaConfig.from_dict(LLAMA)
    data = lm_dataset()
    accumulated, l1 = run(tj.LlamaForCausalLM(config, seed=3),
                          args_for(tmp_path / "a", per_device_train_batch_size=2, gradient_accumulation_steps=4,
                                   max_steps=2, **SGD), data, one_device_mesh())
    big, l2 = one_device_run  # the same run with one batch of 8 per step
    assert_same_up_to_rounding(l1, l2, ulps=16, name="losses")
    assert_trees_same_up_to_rounding(accumulated.model.params, big.model.params, ulps=16, floor=PARAM_FLOOR)
    # a mean of per-micro-batch means would differ on these ragged rows: the test can tell
    model = tj.LlamaForCausalLM(config, perturb_params(tj.LlamaForCausalLM(config, seed=3).params, 0, scale=0.5))
    rows = [data[i] for i in range(8)]
    batch = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    whole = float(model(**batch).loss)
    means = np.mean([float(model(**{k: v[i::4] for k, v in batch.items()}).loss) for i in range(4)])
    assert abs(whole - means) > 1e-4


# ----------------------------------------------------------------------------- parity with PyTorch AdamW
ADAM_EPS = 1e-3


def test_steps_match_pytorch_adamw_with_schedule_clipping_and_decay_mask(tmp_path):
    """Three updates of ours == torch AdamW + HF linear warm-up schedule + grad clipping, with
    weight decay off biases and LayerNorm weights (Hugging Face Trainer's groups)."""
    import transformers

    config_dict = dict(BERT, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ours = tj.BertForSequenceClassification(tj.BertConfig.from_dict(config_dict), seed=6)
    ours.save_pretrained(tmp_path / "init")
    theirs = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "init", attn_implementation="eager")
    data = cls_dataset(rows=24)
    args = args_for(tmp_path / "run", max_steps=3, per_device_train_batch_size=8, learning_rate=5e-3,
                    weight_decay=0.1, warmup_steps=1, max_grad_norm=0.5, adam_epsilon=ADAM_EPS)
    trainer = Trainer(ours, args, train_dataset=data, mesh=one_device_mesh())
    trainer.train()

    loader = trainer._loader(data, 8, train=True)
    batches = [loader.load_batch(0, step) for step in range(3)]

    def torch_run(model):
        """HF's Trainer recipe in plain PyTorch: AdamW groups, linear warm-up, clipping; (losses, state dict)."""
        decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
        no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=5e-3, eps=ADAM_EPS)
        sched = transformers.get_scheduler("linear", opt, num_warmup_steps=1, num_training_steps=3)
        losses = []
        for batch in batches:
            out = model(**{k: torch.from_numpy(np.asarray(v)).long() for k, v in batch.items()})
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(out.loss.item())
        return losses, {k: v.detach().numpy() for k, v in model.state_dict().items()}

    # Both float32 runs are compared with the same run in float64 (exact to float32 eyes): ours must be
    # as close to it as PyTorch's float32 run is (parity.assert_accurate).
    exact_losses, exact_state = torch_run(copy.deepcopy(theirs).double())
    torch_losses, torch_state = torch_run(theirs)
    ours_losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert_accurate(ours_losses, torch_losses, exact_losses, name="losses")
    ours.save_pretrained(tmp_path / "after")
    from safetensors.numpy import load_file

    saved = load_file(tmp_path / "after" / "model.safetensors")
    assert saved.keys() <= torch_state.keys()
    # AdamW's update lr * m / (sqrt(v) + eps) changes by at most lr / eps per unit change of a gradient,
    # so after 3 steps a param may differ by 3 * lr / eps times its gradient's rounding (16 ulps of O(1)
    # terms): 2.9e-5 with eps = 1e-3. A wrong optimizer (bias correction, decay groups, schedule,
    # clipping) moves params by O(lr) = 5e-3. (With eps = 1e-8 the same bound would exceed lr: Adam
    # turns rounding noise in a near-zero gradient into a full step, so no tolerance could tell.)
    bound = 3 * 5e-3 / ADAM_EPS * 16 * EPS32
    for key, value in saved.items():
        assert_within(torch_state[key], exact_state[key], bound, name=f"PyTorch {key}")
        assert_within(value, exact_state[key], bound, name=key)


# ----------------------------------------------------------------------------- freezing, bf16
def test_freezing_a_subtree_keeps_it_and_allocates_no_moments(tmp_path):
    config = tj.BertConfig.from_dict(BERT)
    model = tj.BertForSequenceClassification(config, seed=7)
    before = flat(model.params)
    trainer, _ = run(model, args_for(tmp_path, freeze=("bert/encoder", "bert/embeddings"), max_steps=2,
                                     per_device_train_batch_size=1), cls_dataset())
    after = flat(trainer.model.params)
    for key in before:
        changed = not np.array_equal(before[key], after[key])
        frozen = "['encoder']" in key or "['embeddings']" in key
        assert changed != frozen, key
    moments = jax.tree.leaves(trainer._train_state["opt_state"])
    trainable = sum(v.size for k, v in after.items() if "['encoder']" not in k and "['embeddings']" not in k)
    assert sum(np.size(m) for m in moments) < 3 * trainable + 10
    with pytest.raises(ValueError, match="freeze pattern 'nothing/here' matches no param"):
        run(tj.BertForSequenceClassification(config), args_for(tmp_path / "x", freeze=("nothing/here",)), cls_dataset())


def test_bf16_compute_keeps_float32_master_weights(tmp_path, one_device_run):
    config = tj.LlamaConfig.from_dict(LLAMA)
    bf16, l1 = run(tj.LlamaForCausalLM(config, seed=3),
                   args_for(tmp_path, bf16=True, per_device_train_batch_size=8, max_steps=2, **SGD), lm_dataset(),
                   one_device_mesh())
    f32, l2 = one_device_run  # the same run in float32
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(bf16.model.params))  # master weights
    # bf16 keeps 8 significant bits (eps 2**-7): the losses agree to a few bf16 ulps, not float32's
    assert_same_up_to_rounding(l1, l2, ulps=2 ** 16 * 4, name="bf16 vs float32 losses")  # 4 bf16 ulps
    assert not np.allclose(l1, l2, rtol=1e-6, atol=0)  # bf16 really ran


# ----------------------------------------------------------------------------- learning, export
def test_tiny_llama_pretraining_lowers_the_loss_and_exports_to_pytorch(tmp_path):
    import transformers

    config = tj.LlamaConfig.from_dict(LLAMA)
    model = tj.LlamaForCausalLM(config, seed=9)
    args = args_for(tmp_path, max_steps=60, per_device_train_batch_size=1, learning_rate=1e-2, warmup_steps=5,
                    logging_steps=10, weight_decay=0.01)
    trainer = Trainer(model, args, train_dataset=lm_dataset(rows=128, pad=False))
    trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert losses[-1] < 0.5 * losses[0], losses
    out = trainer.save_model(tmp_path / "hf")
    theirs = transformers.LlamaForCausalLM.from_pretrained(out, attn_implementation="eager")
    ids = np.asarray(lm_dataset(rows=2, pad=False)[0]["input_ids"])[None]
    assert_accurate(model(ids).logits, *hf_pair(theirs, lambda m: m(torch.from_numpy(ids).long()).logits))


def test_evaluate_and_predict_with_padded_last_batch(tmp_path):
    config = tj.BertConfig.from_dict(BERT)
    model = tj.BertForSequenceClassification(config, seed=10)
    data = cls_dataset(rows=21)

    def accuracy(pred):
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    trainer = Trainer(model, args_for(tmp_path, per_device_eval_batch_size=1), eval_dataset=data,
                      compute_metrics=accuracy)
    metrics = trainer.evaluate()
    batch = {k: np.stack([data[i][k] for i in range(21)]) for k in data[0]}
    out = model(**batch)
    assert_same_up_to_rounding(metrics["eval_loss"], float(out.loss), ulps=16)  # per-batch sums, then their mean
    expected = float((np.asarray(out.logits).argmax(-1) == batch["labels"]).mean())
    assert metrics["eval_accuracy"] == pytest.approx(expected)
    with count_compiles("jit(eval_step)") as compiles:  # later evaluations reuse the compiled step
        assert trainer.evaluate()["eval_loss"] == metrics["eval_loss"]
        prediction = trainer.predict(data)
    assert compiles == []
    assert prediction.predictions.shape == (21, 3)
    assert_same_up_to_rounding(prediction.predictions, out.logits, ulps=64)  # batch 1 vs batch 21 matmuls
    np.testing.assert_array_equal(prediction.label_ids, batch["labels"])


# ----------------------------------------------------------------------------- bad input
def test_bad_input_messages(tmp_path):
    config = tj.LlamaConfig.from_dict(LLAMA)
    model = tj.LlamaForCausalLM(config)
    with pytest.raises(ValueError, match=r"does not divide the 8 devices"):
        Trainer(model, args_for(tmp_path, mesh={"data": -1, "tensor": 3}))
    with pytest.raises(ValueError, match=r"needs 6 devices but 8 are available"):
        Trainer(model, args_for(tmp_path, mesh={"data": 3, "tensor": 2}))
    with pytest.raises(ValueError, match=r"reuse a mesh axis in param .*mesh axis 'fsdp' is used by both logical axes 'mlp' and 'embed'"):
        Trainer(model, args_for(tmp_path, mesh={"fsdp": 8}, sharding=[["embed", "fsdp"], ["mlp", "fsdp"]]))
    with pytest.raises(ValueError, match=r"names a mesh axis the mesh does not have"):
        Trainer(model, args_for(tmp_path, mesh={"data": 8}, sharding=[["batch", "data"], ["heads", "tensor"]]))
    with pytest.raises(ValueError, match=r"unknown sharding preset 'zero3'"):
        Trainer(model, args_for(tmp_path, sharding="zero3"))
    trainer = Trainer(model, args_for(tmp_path, mesh={"data": 4, "tensor": 2}, sharding="tp"), train_dataset=lm_dataset())
    from sharding import place_batch

    with pytest.raises(ValueError, match=r"not divisible by the 4-way data parallelism of mesh axes \('data',\)"):
        place_batch({"input_ids": np.zeros((6, 4), np.int32)}, trainer.mesh, trainer.rules)
    with pytest.raises(ValueError, match=r"TrainingArguments.lr_scheduler_type='warmup' is not one of"):
        args_for(tmp_path, lr_scheduler_type="warmup")
    with pytest.raises(ValueError, match=r"unknown TrainingArguments \['learning_rte'\]"):
        TrainingArguments.from_dict({"output_dir": "x", "learning_rte": 1.0})


def test_a_run_that_cannot_fit_is_refused_before_it_starts(tmp_path, monkeypatch, capsys):
    import sharding.memory

    monkeypatch.setattr(sharding.memory, "device_memory_bytes", lambda device=None: 200_000)
    config = tj.LlamaConfig.from_dict(LLAMA)
    trainer = Trainer(tj.LlamaForCausalLM(config), args_for(tmp_path, disable_tqdm=False), train_dataset=lm_dataset())
    with pytest.raises(ValueError, match=r"per device does not fit in 90% of .* available(.|\n)*dominates"):
        trainer.train()
    assert "params" in capsys.readouterr().err  # the estimate is printed before the run
    assert not (tmp_path / "checkpoints").exists()


def test_training_arguments_from_yaml_reads_yaml_1_2_scalars(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("training:\n  output_dir: out\n  learning_rate: 1e-4\n  save_strategy: no\n  mesh: {data: -1, fsdp: 2}\n")
    args = TrainingArguments.from_yaml(recipe, max_steps=7)
    assert args.learning_rate == 1e-4 and isinstance(args.learning_rate, float)
    assert args.save_strategy == "no" and args.max_steps == 7 and args.mesh == {"data": -1, "fsdp": 2}


@pytest.fixture(scope="module")
def epoch_run(tmp_path_factory):
    """Two epochs with eval and save at each epoch's end (8 rows per update, 32 rows: 4 updates per epoch)."""
    out = tmp_path_factory.mktemp("epochs")
    config = tj.LlamaConfig.from_dict(LLAMA)
    args = args_for(out, max_steps=-1, num_train_epochs=2, eval_strategy="epoch", save_strategy="epoch",
                    async_checkpointing=False, report_to=("jsonl", "tensorboard"))
    trainer = Trainer(tj.LlamaForCausalLM(config), args, train_dataset=lm_dataset(rows=32),
                      eval_dataset=lm_dataset(rows=8, seed=1))
    return trainer, trainer.train(), out


def test_epoch_strategies_evaluate_and_save_at_epoch_ends(epoch_run):
    """One eval record and one checkpoint per epoch; the train metrics carry HF's runtime keys."""
    trainer, out, tmp_path = epoch_run
    assert out.global_step == 8
    assert [r["step"] for r in trainer.state.log_history if "eval_loss" in r] == [4, 8]
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [4, 8]
    assert {"train_runtime", "train_samples_per_second", "train_steps_per_second"} <= set(out.metrics)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == list(range(1, 9))
    assert [e.step for e in events.Scalars("eval_loss")] == [4, 8]


def test_resuming_from_a_checkpoint_of_another_model_shape_is_refused(epoch_run):
    _, _, out = epoch_run
    wider = tj.LlamaConfig.from_dict(dict(LLAMA, intermediate_size=128))
    trainer = Trainer(tj.LlamaForCausalLM(wider), args_for(out, max_steps=9, save_strategy="no"),
                      train_dataset=lm_dataset(rows=32))
    with pytest.raises(ValueError, match=r"checkpoints/8 does not fit: params/model/layers/mlp/down_proj/kernel: checkpoint has shape \(2, 64, 32\), this model expects \(2, 128, 32\)"):
        trainer.train(resume_from_checkpoint=True)


