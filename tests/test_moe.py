"""The mixture-of-experts layer (``layers/moe.py``) and what the MoE families add around it.

Grouped (ragged) dispatch equals computing every expert on every token (the dense reference), forward
and in gradients (to 1e-6 of the largest magnitude: float32 sums in another order), for both
grouped-matmul implementations and for skewed routings (experts without
tokens, one expert with all of them); the router losses equal Hugging Face's functions; training adds
the router losses; bad settings and checkpoints fail with errors that name the problem.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import transformers_jax as tj
from transformers_jax.layers import moe

IMPLEMENTATIONS = ("tiled", "ragged_dot")


def per_group_reference(x, w, sizes):
    """Each group's rows times its matrix, in float64; rows past the last group are zero."""
    out = np.zeros((x.shape[0], w.shape[-1]))
    start = 0
    for g, size in enumerate(sizes):
        out[start:start + size] = x[start:start + size].astype(np.float64) @ w[g].astype(np.float64)
        start += size
    return out


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("sizes", [[3, 0, 7, 0], [0, 0, 0, 20], [1, 1, 1, 1], [5, 9, 2, 1], [2, 0, 3, 0]],
                         ids=["empty_groups", "one_group_all", "one_each", "uneven", "rows_past_groups"])
def test_grouped_matmul_equals_per_group_products(implementation, sizes):
    rng = np.random.default_rng(0)
    rows = 20 if sum(sizes) <= 20 else sum(sizes)
    x = rng.normal(size=(rows, 6)).astype(np.float32)
    w = rng.normal(size=(4, 6, 5)).astype(np.float32)
    got = moe.grouped_matmul(jnp.asarray(x), jnp.asarray(w), jnp.asarray(sizes, jnp.int32), implementation)
    np.testing.assert_allclose(np.asarray(got), per_group_reference(x, w, sizes), rtol=0, atol=2e-6)


def tiny_experts(num_experts=8, dim=16, width=24, seed=0):
    rng = np.random.default_rng(seed)
    return {"gate_proj": {"kernel": jnp.asarray(rng.normal(0, 0.3, (num_experts, dim, width)), jnp.float32)},
            "up_proj": {"kernel": jnp.asarray(rng.normal(0, 0.3, (num_experts, dim, width)), jnp.float32)},
            "down_proj": {"kernel": jnp.asarray(rng.normal(0, 0.3, (num_experts, width, dim)), jnp.float32)}}


def routing(kind, tokens=24, num_experts=8, top_k=2, seed=1):
    """Router logits [N, E] giving a routing of ``kind``: random, or every token to experts 3 and 5
    (the others empty), or to the last k experts only."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(tokens, num_experts)).astype(np.float32)
    if kind == "all_to_one":
        logits[:, 3] += 20.0  # expert 3 is every token's first choice, expert 5 its second
        logits[:, 5] += 10.0
    elif kind == "few_experts":
        logits[:, : num_experts - top_k] -= 20.0  # only the last k experts get tokens
    return jnp.asarray(logits)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", ["random", "all_to_one", "few_experts"])
def test_grouped_dispatch_equals_dense_reference_forward_and_gradients(implementation, kind):
    params = tiny_experts()
    x = jnp.asarray(np.random.default_rng(2).normal(size=(24, 16)), jnp.float32)
    logits = routing(kind)
    weights, experts = moe.route(logits, 2, normalize=True)
    counts = np.bincount(np.asarray(experts).ravel(), minlength=8)
    if kind == "all_to_one":
        assert counts[3] == 24  # one expert receives every token
    if kind != "random":
        assert (counts == 0).sum() >= 5  # most experts receive no token

    def grouped(p, x, w):
        return moe.dispatch_combine(p, x, w, experts, "silu", implementation)

    def dense(p, x, w):
        return moe.moe_dense_reference(p, x, w, experts, "silu")

    want = dense(params, x, weights)
    np.testing.assert_allclose(grouped(params, x, weights), want, rtol=0, atol=1e-6 * float(jnp.abs(want).max()))
    probe = jnp.asarray(np.random.default_rng(3).normal(size=(24, 16)), jnp.float32)
    grads = [jax.grad(lambda *a, f=f: jnp.sum(f(*a) * probe), argnums=(0, 1, 2))(params, x, weights)
             for f in (grouped, dense)]
    for got, want in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
        scale = max(1.0, float(jnp.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * scale)


def test_route_renormalises_only_when_asked():
    logits = routing("random", tokens=5)
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))
    for normalize in (False, True):
        weights, experts = moe.route(logits, 3, normalize)
        top = np.sort(probs, axis=-1)[:, ::-1][:, :3]
        want = top / top.sum(-1, keepdims=True) if normalize else top
        np.testing.assert_allclose(np.asarray(weights), want, rtol=1e-6)
        np.testing.assert_array_equal(np.take_along_axis(probs, np.asarray(experts), -1), top)


@pytest.mark.parametrize("masked", [False, True])
def test_load_balancing_loss_equals_hf(masked):
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    batch, length, num_experts, layers = 3, 7, 8, 2
    logits = np.random.default_rng(4).normal(size=(layers, batch * length, num_experts)).astype(np.float32)
    mask = np.ones((batch, length), np.int64)
    mask[0, :3] = 0
    mask[2, 5:] = 0
    hf_mask = torch.tensor(mask) if masked else None
    want = float(load_balancing_loss_func(tuple(torch.tensor(layer) for layer in logits), num_experts, 2, hf_mask))
    got = float(moe.load_balancing_loss(jnp.asarray(logits), 2, jnp.asarray(mask) if masked else None))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_router_z_loss_is_mean_squared_logsumexp_over_real_tokens():
    logits = np.random.default_rng(5).normal(size=(2, 6, 4)).astype(np.float64)
    mask = np.array([[1, 1, 0], [1, 0, 1]])
    z = np.log(np.exp(logits).sum(-1)) ** 2  # [L, N]
    keep = mask.reshape(-1).astype(bool)
    np.testing.assert_allclose(float(moe.router_z_loss(jnp.asarray(logits, jnp.float32))), z.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(moe.router_z_loss(jnp.asarray(logits, jnp.float32), jnp.asarray(mask))),
                               z[:, keep].mean(), rtol=1e-5)


TINY = dict(vocab_size=64, hidden_size=16, intermediate_size=12, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=32, num_local_experts=4, num_experts_per_tok=2,
            router_aux_loss_coef=0.05)


@pytest.fixture(scope="module")
def tiny_mixtral():
    return tj.MixtralForCausalLM(tj.MixtralConfig(**TINY), seed=0)


def batch_of(vocab=64):
    rng = np.random.default_rng(6)
    ids = rng.integers(3, vocab, (2, 8)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, :3] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": np.where(mask == 1, ids, -100)}


def test_both_grouped_matmuls_give_the_same_model_outputs(tiny_mixtral):
    batch = batch_of()
    outs = {impl: tiny_mixtral.__class__(tiny_mixtral.config.replace(moe_implementation=impl),
                                         params=tiny_mixtral.params)(**batch, output_router_logits=True)
            for impl in IMPLEMENTATIONS}
    np.testing.assert_allclose(outs["tiled"].logits, outs["ragged_dot"].logits, rtol=0, atol=1e-5)
    np.testing.assert_allclose(outs["tiled"].aux_loss, outs["ragged_dot"].aux_loss, rtol=1e-6)


def test_training_loss_includes_the_router_losses(tiny_mixtral):
    from train.step import model_loss

    cls, config, params = type(tiny_mixtral), tiny_mixtral.config, tiny_mixtral.params
    batch = {k: jnp.asarray(v) for k, v in batch_of().items()}
    plain = cls.forward(params, config, **batch)
    assert plain.aux_loss is None  # router logits only on request, as in HF
    with_router = cls.forward(params, config, **batch, output_router_logits=True)
    loss, _ = model_loss(cls, config, params, batch)
    np.testing.assert_allclose(float(loss), float(plain.loss) + 0.05 * float(with_router.aux_loss), rtol=1e-6)
    assert float(with_router.aux_loss) > 0.5
    # An optional z-loss term (ours: router_z_loss_coef) adds on top.
    z_config = config.replace(router_z_loss_coef=0.01)
    z_loss, _ = model_loss(cls, z_config, params, batch)
    z = moe.router_z_loss(jnp.stack(with_router.router_logits), batch["attention_mask"])
    np.testing.assert_allclose(float(z_loss), float(loss) + 0.01 * float(z), rtol=1e-6)
    # Label smoothing replaces the LM loss but keeps the router losses.
    smoothed, _ = model_loss(cls, config, params, batch, label_smoothing=0.1)
    from transformers_jax.losses import label_smoothed_loss

    lm = label_smoothed_loss(plain.logits, batch["labels"], 0.1, shift_labels=True)
    np.testing.assert_allclose(float(smoothed), float(lm) + 0.05 * float(with_router.aux_loss), rtol=1e-6)


def test_more_experts_per_token_than_experts_is_refused():
    with pytest.raises(ValueError, match=r"num_experts_per_tok=5 is larger than the number of experts \(4\)"):
        tj.MixtralConfig(**{**TINY, "num_experts_per_tok": 5})
    with pytest.raises(ValueError, match=r"mlp_only_layers names layer 7"):
        tj.Qwen2MoeConfig(num_hidden_layers=2, num_experts=4, num_experts_per_tok=2, mlp_only_layers=[7])


def test_auto_grouped_matmul_follows_the_target_platform():
    """"auto" is the tiled loop for a CPU program and ragged_dot for a TPU one, the platform being that of the
    active ``logical_sharding`` mesh: an ahead-of-time compile for a described TPU slice on this CPU host gets
    ragged_dot (libtpu is a test extra: a missing one fails here, it is not skipped)."""
    from jax.sharding import Mesh

    from train.aot import topology_devices
    from transformers_jax.partitioning import logical_sharding, target_platform

    args = (jnp.ones((8, 4)), jnp.ones((2, 4, 3)), jnp.array([5, 3], jnp.int32))

    def primitives():
        jaxpr = jax.make_jaxpr(lambda x, w, g: moe.grouped_matmul(x, w, g, "auto"))(*args)
        return {str(eqn.primitive) for eqn in jaxpr.jaxpr.eqns}

    assert target_platform() == "cpu" and "ragged_dot_general" not in primitives()
    tpu = Mesh(np.array(topology_devices("v5e:2x2")[1][:1]), ("data",))
    with logical_sharding(tpu, ()):
        assert target_platform() == "tpu"
        assert "ragged_dot_general" in primitives()


def test_unknown_grouped_matmul_implementation_is_refused():
    with pytest.raises(ValueError, match="moe_implementation='megablox' is not one of"):
        tj.MixtralConfig(**TINY, moe_implementation="megablox")
    with pytest.raises(ValueError, match="unknown grouped matmul implementation 'dense'"):
        moe.grouped_matmul(jnp.ones((2, 3)), jnp.ones((1, 3, 4)), jnp.array([2]), "dense")


def test_checkpoint_keeps_hf_per_expert_tensors_and_names_a_missing_one(tiny_mixtral, tmp_path):
    cls, config = type(tiny_mixtral), tiny_mixtral.config
    state = cls.params_to_state_dict(tiny_mixtral.params, config)
    experts = [k for k in state if ".experts." in k]
    assert len(experts) == 2 * 4 * 3  # layers x experts x (w1, w2, w3)
    assert state["model.layers.1.block_sparse_moe.experts.2.w2.weight"].shape == (16, 12)  # [out, in] as HF
    stacked = np.asarray(tiny_mixtral.params["model"]["layers"]["mlp"]["experts"]["down_proj"]["kernel"])
    np.testing.assert_array_equal(state["model.layers.1.block_sparse_moe.experts.2.w2.weight"], stacked[1, 2].T)
    back = cls.state_dict_to_params(state, config)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(tiny_mixtral.params)):
        np.testing.assert_array_equal(a, b)
    missing = dict(state)
    del missing["model.layers.0.block_sparse_moe.experts.3.w3.weight"]
    with pytest.raises(ValueError, match=r"missing weight 'model.layers.0.block_sparse_moe.experts.3.w3.weight'"):
        cls.state_dict_to_params(missing, config)
    bad = dict(state)
    bad["model.layers.0.block_sparse_moe.experts.1.w1.weight"] = np.zeros((12, 15), np.float32)
    with pytest.raises(ValueError, match=r"'model.layers.0.block_sparse_moe.experts.1.w1.weight' .* shape \(12, 15\)"):
        cls.state_dict_to_params(bad, config)


def test_router_jitter_applies_in_training_only(tiny_mixtral):
    cls, params = type(tiny_mixtral), tiny_mixtral.params
    batch = {k: jnp.asarray(v) for k, v in batch_of().items() if k != "labels"}
    key = jax.random.PRNGKey(0)
    plain = cls.forward(params, tiny_mixtral.config, **batch).logits
    np.testing.assert_array_equal(cls.forward(params, tiny_mixtral.config, **batch, dropout_rng=key).logits, plain)
    jittery = tiny_mixtral.config.replace(router_jitter_noise=0.2)
    np.testing.assert_array_equal(cls.forward(params, jittery, **batch).logits, plain)  # no key: evaluation
    trained = cls.forward(params, jittery, **batch, dropout_rng=key).logits
    assert float(jnp.abs(trained - plain).max()) > 1e-3


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe_mixed"])
def test_hf_v5_module_state_dict_with_fused_experts_loads(family, tmp_path):
    """``model.state_dict()`` of HF v5 holds each layer's experts fused (``mlp.experts.gate_up_proj``
    [E, 2F, D], ``mlp.experts.down_proj`` [E, D, F]; Mixtral's block under ``mlp``): it loads to the
    params its ``save_pretrained`` checkpoint (per-expert tensors) gives."""
    import transformers as hf

    if family == "mixtral":
        hf_config, ours_cls = hf.MixtralConfig(**TINY), tj.MixtralForCausalLM
        hf_cls = hf.MixtralForCausalLM
    else:
        hf_config = hf.Qwen2MoeConfig(vocab_size=64, hidden_size=16, intermediate_size=20, moe_intermediate_size=12,
                                      shared_expert_intermediate_size=8, num_hidden_layers=3, num_attention_heads=4,
                                      num_key_value_heads=2, num_experts=4, num_experts_per_tok=2, mlp_only_layers=[1])
        ours_cls, hf_cls = tj.Qwen2MoeForCausalLM, hf.Qwen2MoeForCausalLM
    torch.manual_seed(0)
    model = hf_cls(hf_config)
    module_state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    assert any(k.endswith("mlp.experts.gate_up_proj") for k in module_state)
    model.save_pretrained(tmp_path)
    want = ours_cls.from_pretrained(tmp_path)
    got = ours_cls.state_dict_to_params(module_state, want.config)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want.params), strict=True):
        np.testing.assert_array_equal(a, b)
    bad = dict(module_state)
    key = next(k for k in bad if k.endswith("experts.gate_up_proj"))
    bad[key] = bad[key][:, :-1]
    with pytest.raises(ValueError, match=r"fused expert weight .*gate_up_proj.* has shape"):
        ours_cls.state_dict_to_params(bad, want.config)
