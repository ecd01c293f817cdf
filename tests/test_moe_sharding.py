"""MoE on 8 simulated CPU devices: the ``ep`` and ``fsdp_ep`` presets (expert parallelism) and ``fsdp``
(the local dispatch: every device routes its own tokens against all experts) train like one device
(aux loss included); the compiled expert-parallel step exchanges tokens by all-to-all and never gathers
whole expert weights, the compiled fsdp step exchanges no tokens at all; the expert-parallel forward
equals one device (also when every token picks the same experts), an expert axis that does not divide
the experts is refused, and FLOPs count active params.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

import transformers_jax as tj
from parity import assert_same_up_to_rounding, assert_trees_same_up_to_rounding
from sharding import create_mesh
from sharding.placement import place_batch
from sharding.rules import check_rules, rules_for_mesh
from transformers_jax.layers import moe
from transformers_jax.partitioning import logical_sharding, param_shardings

COMMON = dict(vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
              output_router_logits=True, router_aux_loss_coef=0.05)
CONFIGS = {
    # 8 experts of width 24, top-2 (renormalised).
    "mixtral": (tj.MixtralForCausalLM, dict(COMMON, intermediate_size=24, num_local_experts=8, num_experts_per_tok=2)),
    # 16 experts of width 12, top-4, a shared expert, and a dense layer between two sparse ones.
    "qwen2_moe": (tj.Qwen2MoeForCausalLM, dict(COMMON, num_hidden_layers=3, mlp_only_layers=[1], intermediate_size=40,
                                              moe_intermediate_size=12, shared_expert_intermediate_size=20,
                                              num_experts=16, num_experts_per_tok=4)),
}
MESHES = {"ep": {"data": 2, "expert": 4}, "fsdp_ep": {"fsdp": 2, "expert": 4}, "fsdp": {"data": 2, "fsdp": 4}}


def make_model(name, seed=3, **overrides):
    cls, values = CONFIGS[name]
    return cls, cls.config_class.from_dict({**values, **overrides})


def make_batch(vocab, rows=24, length=16, seed=0):
    rng = np.random.RandomState(seed)
    ids = rng.randint(3, vocab, (rows, length)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[::3, 12:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": np.where(mask == 1, ids, -100)}


def train_three_steps(cls, config, mesh, preset, folder, monkeypatch):
    """Three sgd steps of the Trainer; returns (trainer, logged losses, the compiled train step)."""
    from train import step as steps
    from train.data import ArrayDataset
    from train.trainer import Trainer
    from train.training_args import TrainingArguments

    made = []
    original = steps.make_train_step
    monkeypatch.setattr(steps, "make_train_step", lambda *a, **k: made.append(original(*a, **k)) or made[-1])
    rows = 8 // mesh.devices.size
    args = TrainingArguments(output_dir=str(folder), max_steps=3, per_device_train_batch_size=rows, optim="sgd",
                             learning_rate=0.1, logging_steps=1, save_strategy="no", report_to="none",
                             disable_tqdm=True, sharding=preset, train_sampling_strategy="sequential")
    trainer = Trainer(cls(config, seed=3), args, train_dataset=ArrayDataset(make_batch(config.vocab_size)), mesh=mesh)
    trainer.train()
    return trainer, [r["loss"] for r in trainer.state.log_history if "loss" in r], made[0]


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def trained(request, tmp_path_factory):
    """One device and each expert-parallel preset, three steps each, for one config."""
    name = request.param
    cls, config = make_model(name)
    folder = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as monkeypatch:
        runs = {"one": train_three_steps(cls, config, Mesh(np.array(jax.devices()[:1]), ("data",)), "dp",
                                         folder / "one", monkeypatch)}
        for preset, shape in MESHES.items():
            runs[preset] = train_three_steps(cls, config, create_mesh(shape), preset, folder / preset, monkeypatch)
    return cls, config, runs


@pytest.mark.parametrize("preset", sorted(MESHES))
def test_three_steps_equal_one_device(trained, preset):
    cls, config, runs = trained
    single, single_loss, _ = runs["one"]
    sharded, sharded_loss, _ = runs[preset]
    assert len(single_loss) == 3
    assert_same_up_to_rounding(sharded_loss, single_loss, ulps=16, name="losses")
    assert_trees_same_up_to_rounding(sharded.model.params, single.model.params, ulps=16, floor=0.1)


def test_logged_loss_includes_aux_loss(trained):
    """The first step's logged loss is the forward's loss on the first 8 rows (sequential sampling)
    with the router's load-balancing loss, not without it."""
    cls, config, runs = trained
    first = {k: v[:8] for k, v in make_batch(config.vocab_size).items()}
    params = cls(config, seed=3).params
    with_aux = jax.jit(lambda p, b: cls.forward(p, config, **b))(params, first)
    without = jax.jit(lambda p, b: cls.forward(p, config, **b, output_router_logits=False))(params, first)
    assert float(with_aux.aux_loss) > 0.5
    assert float(with_aux.loss - without.loss) == pytest.approx(config.router_aux_loss_coef * float(with_aux.aux_loss))
    for preset in ("one", *MESHES):
        assert runs[preset][1][0] == pytest.approx(float(with_aux.loss), abs=1e-5)


def _collectives(hlo: str, op: str) -> list[tuple[int, ...]]:
    """Result shapes of every ``op`` (all-gather, all-to-all, ...) in an HLO text."""
    shapes = []
    for line in hlo.splitlines():
        match = re.search(rf"= \(?\w+\[([\d,]*)\][^=]*? {op}(-start)?\(", line)
        if match:
            shapes.append(tuple(int(d) for d in match.group(1).split(",") if d))
    return shapes


def test_compiled_ep_step_uses_all_to_all_and_keeps_experts_split(trained):
    cls, config, runs = trained
    trainer, _, step_fn = runs["ep"]
    batch = place_batch({k: v[:8] for k, v in make_batch(config.vocab_size).items()}, trainer.mesh, trainer.rules)
    hlo = step_fn.lower(trainer._train_state, batch).compile().as_text()
    assert _collectives(hlo, "all-to-all"), "expert-parallel step has no all-to-all"
    full = {tuple(leaf.shape[-3:]) for path, leaf in jax.tree_util.tree_leaves_with_path(trainer.model.params)
            if "experts" in jax.tree_util.keystr(path)}
    gathered = [s for s in _collectives(hlo, "all-gather") if tuple(s[-3:]) in full]
    assert not gathered, f"all-gathers of whole expert weights {gathered} (experts {sorted(full)})"


def test_compiled_fsdp_step_keeps_tokens_on_their_devices(trained):
    """Under fsdp (no expert axis) each device sorts its own tokens: no all-to-all, and no collective of the
    global batch's N * k (token, expert) assignments or of its [N, D] tokens (the single-program dispatch
    sorts the global assignments and gathers [N * k, D] rows to do it); the expert kernels are gathered."""
    cls, config, runs = trained
    trainer, _, step_fn = runs["fsdp"]
    batch = place_batch({k: v[:8] for k, v in make_batch(config.vocab_size).items()}, trainer.mesh, trainer.rules)
    hlo = step_fn.lower(trainer._train_state, batch).compile().as_text()
    tokens, dim = batch["input_ids"].size, config.hidden_size
    assignments = tokens * config.num_experts_per_tok
    assert not _collectives(hlo, "all-to-all")
    for op in ("all-gather", "all-reduce", "collective-permute", "reduce-scatter"):
        shapes = _collectives(hlo, op)
        assert not [s for s in shapes if assignments in s or s[-2:] == (tokens, dim)], (op, shapes)
    full = {tuple(leaf.shape[-3:]) for path, leaf in jax.tree_util.tree_leaves_with_path(trainer.model.params)
            if "experts" in jax.tree_util.keystr(path)}
    assert [s for s in _collectives(hlo, "all-gather") if tuple(s[-3:]) in full], "expert kernels are not gathered"


def _forward(cls, config, params, batch, mesh=None, rules=None):
    """Logits and aux loss of the causal LM, jitted; under ``mesh`` with params and batch placed."""
    def run(p, b):
        out = cls.forward(p, config, **b)
        return out.logits, out.aux_loss, jnp.stack(out.router_logits)

    if mesh is None:
        return jax.jit(run)(params, batch)
    params = jax.device_put(params, param_shardings(cls.param_specs(config), mesh, rules))
    with logical_sharding(mesh, rules):
        return jax.jit(run)(params, place_batch(batch, mesh, rules))


@pytest.mark.parametrize("rules", ["ep", "fsdp_ep", (("batch", "data"), ("expert", "expert"))],
                         ids=["ep", "fsdp_ep", "batch_not_over_expert"])
@pytest.mark.parametrize("collapsed", [False, True], ids=["routed", "all_to_two_experts"])
def test_forward_equals_one_device(rules, collapsed):
    """With the router kernels zero every token picks experts 0 and 1 (top-k takes the lowest ids
    among equal logits), both on the first device of the expert axis: the worst case of the static
    all-to-all bound, every assignment of every device sent to one device."""
    cls, config = make_model("mixtral")
    params = cls(config, seed=3).params
    if collapsed:
        gate = params["model"]["layers"]["mlp"]["gate"]
        gate["kernel"] = jnp.zeros_like(gate["kernel"])
    batch = {k: v[:8] for k, v in make_batch(config.vocab_size).items() if k != "labels"}
    mesh = create_mesh(MESHES["fsdp_ep" if rules == "fsdp_ep" else "ep"])
    logits, aux, router = _forward(cls, config, params, batch)
    table = rules_for_mesh(rules, mesh)
    assert moe.active_dispatch() is None
    with logical_sharding(mesh, table):
        assert moe.active_dispatch() is not None
    sharded_logits, sharded_aux, sharded_router = _forward(cls, config, params, batch, mesh, table)
    if collapsed:
        chosen = jax.lax.top_k(router, 2)[1]
        assert np.all(np.sort(np.asarray(chosen), -1) == [0, 1])
    assert_same_up_to_rounding(sharded_router, router, ulps=16, name="router logits")
    assert_same_up_to_rounding(sharded_logits, logits, ulps=16, name="logits")
    assert_same_up_to_rounding(sharded_aux, aux, ulps=16, name="aux loss")


@pytest.mark.parametrize("preset", ["fsdp_ep", "fsdp"])
@pytest.mark.parametrize("implementation", ["tiled", "ragged_dot"])
def test_dispatch_equals_single_device_with_gradients(implementation, preset):
    """The dispatch function alone on uneven routing, values and gradients, under ``fsdp_ep`` (expert
    parallel) and ``fsdp`` (local); 60 tokens over 8 devices are padded to 64 inside."""
    rng = np.random.RandomState(0)
    e, d, f, n, k = 8, 16, 12, 60, 2
    params = {name: {"kernel": jnp.asarray(rng.randn(*shape), jnp.float32)}
              for name, shape in (("gate_proj", (e, d, f)), ("up_proj", (e, d, f)), ("down_proj", (e, f, d)))}
    x = jnp.asarray(rng.randn(n, d), jnp.float32)
    logits = jnp.asarray(rng.randn(n, e) + 3 * (np.arange(e) == 5), jnp.float32)  # expert 5 is popular
    weights, experts = moe.route(logits, k, True)
    mesh = create_mesh(MESHES[preset])
    make = moe.expert_parallel_dispatch if preset == "fsdp_ep" else moe.local_dispatch
    dispatch = make(mesh, rules_for_mesh(preset, mesh))
    cotangent = jnp.asarray(rng.randn(n, d), jnp.float32)

    def value_and_grads(fn, p, inputs, w):  # the output [N, D] and the gradients of <output, cotangent>
        out, pullback = jax.vjp(lambda p, i, w: fn(p, i, w, experts, "silu", implementation), p, inputs, w)
        return out, pullback(cotangent)

    want = value_and_grads(moe.dispatch_combine, params, x, weights)
    got = jax.jit(lambda p, i, w: value_and_grads(dispatch, p, i, w))(params, x, weights)
    assert_trees_same_up_to_rounding(got, want, ulps=16)


def test_expert_axis_must_divide_experts(tmp_path):
    from train.data import ArrayDataset
    from train.trainer import Trainer
    from train.training_args import TrainingArguments

    cls, config = make_model("mixtral", num_local_experts=6)
    mesh = create_mesh(MESHES["ep"])
    rules = rules_for_mesh("ep", mesh)
    message = r"6 experts cannot be split evenly over the expert mesh axis \('expert',\) of size 4"
    with pytest.raises(ValueError, match=r"param model/layers/mlp/experts/\w+/kernel: " + message):
        check_rules(rules, mesh, cls.param_specs(config))
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=1, report_to="none",
                             sharding="ep", disable_tqdm=True)
    with pytest.raises(ValueError, match=message):
        Trainer(cls(config), args, train_dataset=ArrayDataset(make_batch(config.vocab_size, rows=8)), mesh=mesh)
    with pytest.raises(ValueError, match=message):
        param_shardings(cls.param_specs(config), mesh, rules)
    kernels = {name: {"kernel": jnp.zeros((6, 4, 4))} for name in ("gate_proj", "up_proj", "down_proj")}
    with pytest.raises(ValueError, match=message):
        moe.expert_parallel_dispatch(mesh, rules)(kernels, jnp.zeros((8, 4)), jnp.ones((8, 2)),
                                                  jnp.zeros((8, 2), jnp.int32), "silu")


def test_presets_place_the_expert_axis():
    mesh = create_mesh({"data": 2, "fsdp": 2, "expert": 2})
    assert dict(rules_for_mesh("ep", mesh)) == {"batch": ("data", "fsdp", "expert"), "expert": ("expert",)}
    assert dict(rules_for_mesh("fsdp_ep", mesh))["embed"] == ("fsdp",)
    assert dict(rules_for_mesh("fsdp_tp", mesh))["batch"] == ("data", "fsdp")  # older presets unchanged
    without = create_mesh({"data": 8})
    assert dict(rules_for_mesh("ep", without)) == {"batch": ("data",), "expert": None}
    with logical_sharding(without, rules_for_mesh("ep", without)):
        assert moe.active_dispatch().__name__ == "local"  # no expert axis: each device routes its tokens
    with logical_sharding(mesh, rules_for_mesh("ep", mesh)):
        assert moe.active_dispatch().__name__ == "expert_parallel"
    tensor = create_mesh({"fsdp": 4, "tensor": 2})
    with logical_sharding(tensor, rules_for_mesh("fsdp_tp", tensor)):
        assert moe.active_dispatch() is None  # experts split along mlp: one program, partitioned by the compiler
    one = Mesh(np.array(jax.devices()[:1]), ("data",))
    with logical_sharding(one, rules_for_mesh("fsdp", one)):
        assert moe.active_dispatch() is None


def test_flops_count_active_experts():
    """A Mixtral token costs what a Mistral with ``k`` times the MLP width costs, plus the router;
    ``param_counts`` tells total from active params."""
    from train.flops import flops_per_token, matmul_param_count, param_counts

    cls, config = make_model("mixtral")
    d, f, e, k, layers, v = 32, 24, 8, 2, 2, 101
    dense = tj.MistralConfig(vocab_size=v, hidden_size=d, intermediate_size=k * f, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=2, sliding_window=None)
    router = layers * d * e
    assert matmul_param_count(config) == matmul_param_count(dense) + router
    assert flops_per_token(config, 16) == flops_per_token(dense, 16) + 6 * router
    assert matmul_param_count(config, active=False) - matmul_param_count(config) == layers * 3 * d * f * (e - k)
    counts = param_counts(config)
    assert counts["total"] - counts["active"] == layers * 3 * d * f * (e - k)
    assert counts["active"] == param_counts(dense)["total"] + router
    kv = 2 * 8  # kv heads x head dim
    # q and o, k and v, gate/up/down, and the LM head
    assert matmul_param_count(dense) == layers * (2 * d * d + 2 * d * kv + 3 * d * k * f) + v * d
