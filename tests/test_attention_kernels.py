"""Attention kernels chosen by ``attn_implementation`` (``layers/attention_kernels.py``).

Splash (TPU Pallas) runs here in interpret mode on the CPU, in float32, against the XLA attention:
the layer forward and its gradients wrt q, k, v for causal, padded, sliding-window, packed-document
and soft-capped masks with grouped key/value heads (lengths that are not a multiple of 128, so the
padding to splash's blocks is exercised; padded query rows are undefined in both and left out), under
a sharded mesh too; then tiny Llama, Mistral (sliding window) and Gemma 2 (soft-capping, local and
global layers mixed) models with ``attn_implementation="splash"``: the same logits and loss gradients
as "xla". The config field, HF's aliases and every refusal are checked by their messages. An
ahead-of-time compile for a described v5e TPU shows the splash program keeps no [T, T] float32
buffer where XLA's does. The cuDNN comparison runs only with a GPU (skipped on CPU; no coverage).

Tolerance: kernel and XLA compute the same float32 function with sums in another order (blockwise
online softmax); they must agree to 84 ulps of each tensor's largest magnitude, i.e. 1e-5 relative.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

import transformers_jax as tj
from parity import assert_same_up_to_rounding, assert_trees_same_up_to_rounding
from transformers_jax.layers import attention_kernels as AK
from transformers_jax.partitioning import logical_sharding

ULPS = 84  # 84 * 1.19e-7 = 1e-5 of the tensor's scale
B, T, H, K, D = 2, 150, 4, 2, 16  # T > 128 and not a multiple of it: two splash blocks, the second padded


def _qkv(seed=0):
    kq, kk, kv = jax.random.split(jax.random.key(seed), 3)
    return (jax.random.normal(kq, (B, T, H, D)), jax.random.normal(kk, (B, T, K, D)),
            jax.random.normal(kv, (B, T, K, D)))


LEFT_PADDED = np.stack([np.ones(T), np.arange(T) >= 37]).astype(np.int32)  # row 1: 37 pads on the left
RIGHT_PADDED = np.stack([np.arange(T) < 101, np.ones(T)]).astype(np.int32)
PACKED = np.stack([np.repeat([1, 2, 3], [40, 70, 40]), np.repeat([0, 1, 2, 0], [5, 60, 70, 15])]).astype(np.int32)
MASKS = {  # name: (key_mask, window, logit_softcap)
    "causal": (None, None, None),
    "left_padded": (LEFT_PADDED, None, None),
    "right_padded_window": (RIGHT_PADDED, 17, None),
    "window": (None, 33, None),
    "packed": (PACKED, None, None),
    "packed_window_softcap": (PACKED, 29, 2.0),
}


def _attention_loss(implementation, key_mask, window, softcap):
    """(loss over real query rows, output) of one attention call, differentiable in q, k, v."""
    real = np.ones((B, T), bool) if key_mask is None else key_mask > 0
    weights = jax.random.normal(jax.random.key(7), (B, T, H, D)) * real[:, :, None, None]

    def loss(q, k, v):
        spec = AK.CausalMaskSpec(None if key_mask is None else jnp.asarray(key_mask), 0, window)
        out, _ = AK.causal_attention(q, k, v, spec, implementation=implementation, scale=D**-0.5,
                                     logit_softcap=softcap, interpret=True)
        return jnp.sum(out * weights), out

    return jax.jit(jax.value_and_grad(loss, (0, 1, 2), has_aux=True)), real


@pytest.mark.parametrize("name", list(MASKS))
def test_splash_matches_xla_forward_and_backward(name):
    key_mask, window, softcap = MASKS[name]
    q, k, v = _qkv()
    results = {}
    for implementation in ("xla", "splash"):
        step, real = _attention_loss(implementation, key_mask, window, softcap)
        results[implementation] = step(q, k, v)
    (loss_x, out_x), grads_x = results["xla"]
    (loss_s, out_s), grads_s = results["splash"]
    assert_same_up_to_rounding(np.asarray(out_s)[real], np.asarray(out_x)[real], ULPS, name=f"{name} output")
    for which, gs, gx in zip("qkv", grads_s, grads_x):
        assert_same_up_to_rounding(gs, gx, ULPS, name=f"{name} d{which}")


def test_splash_sharded_over_batch_and_heads():
    """Under ``logical_sharding`` on 8 simulated devices the kernel runs per device (shard_map over
    batch and heads): the same output and gradients as XLA on one device."""
    q, k, v = _qkv(1)
    step, real = _attention_loss("xla", LEFT_PADDED, 17, None)
    (_, out_x), grads_x = step(q, k, v)
    mesh = Mesh(np.array(jax.devices()[:4]).reshape(2, 2), ("data", "tensor"))
    with logical_sharding(mesh, (("batch", "data"), ("act_heads", "tensor"))):
        step, _ = _attention_loss("splash", LEFT_PADDED, 17, None)
        jaxpr = jax.make_jaxpr(step)(q, k, v)
        assert "shard_map" in str(jaxpr)
        (_, out_s), grads_s = step(q, k, v)
    assert_same_up_to_rounding(np.asarray(out_s)[real], np.asarray(out_x)[real], ULPS, name="sharded output")
    for which, gs, gx in zip("qkv", grads_s, grads_x):
        assert_same_up_to_rounding(gs, gx, ULPS, name=f"sharded d{which}")


# ----------------------------------------------------------------------------- models
TINY = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=160, pad_token_id=0)
MODELS = {
    "llama": (tj.LlamaForCausalLM, tj.LlamaConfig, dict(TINY)),
    "mistral": (tj.MistralForCausalLM, tj.MistralConfig, dict(TINY, sliding_window=24)),
    "gemma2": (tj.Gemma2ForCausalLM, tj.Gemma2Config,
               dict(TINY, head_dim=8, sliding_window=24, attn_logit_softcapping=5.0, final_logit_softcapping=None,
                    query_pre_attn_scalar=8, layer_types=["sliding_attention", "full_attention"])),
}


@pytest.mark.parametrize("family", list(MODELS))
def test_model_splash_matches_xla(family):
    """Logits on real tokens, the loss and its gradient wrt every param: splash (interpret) equals XLA.
    Row 0 packs two documents (ids 1 and 2), row 1 is padded on the right (training's convention: a
    left-padded row's first label would be predicted from a padding position, whose output is
    undefined, see ``CausalMaskSpec``); 100 tokens, longer than the windows."""
    model_class, config_class, fields = MODELS[family]
    length = 100
    config = config_class(**fields)
    params = model_class(config, seed=0).params
    ids = np.random.RandomState(0).randint(1, config.vocab_size, (2, length))
    mask = np.stack([np.repeat([1, 2], [45, 55]), np.arange(length) < 70]).astype(np.int32)
    labels = np.where(mask > 0, ids, -100)

    def run(implementation):
        cfg = config.replace(attn_implementation=implementation, pallas_interpret=True)

        def loss(p):
            out = model_class.forward(p, cfg, ids, mask, labels=labels)
            return out.loss, out.logits

        return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

    (loss_x, logits_x), grads_x = run("xla")
    (loss_s, logits_s), grads_s = run("splash")
    real = mask > 0
    assert_same_up_to_rounding(np.asarray(logits_s)[real], np.asarray(logits_x)[real], ULPS, name="logits")
    assert_same_up_to_rounding(loss_s, loss_x, ULPS, name="loss")
    assert_trees_same_up_to_rounding(grads_s, grads_x, ULPS)


def test_splash_model_generates_through_xla_decode():
    """A model set to splash still generates: prefill and decode steps over the KV cache run XLA."""
    model_class, config_class, fields = MODELS["llama"]
    config = config_class(**fields)
    xla = model_class(config, seed=0)
    splash = model_class(config.replace(attn_implementation="splash"), params=xla.params)  # no interpret: never used
    prompt = np.array([[5, 6, 7, 8]])
    kwargs = dict(max_new_tokens=3, do_sample=False, pad_token_id=0, eos_token_id=None)
    np.testing.assert_array_equal(splash.generate(prompt, **kwargs), xla.generate(prompt, **kwargs))


# ----------------------------------------------------------------------------- the config field
def test_config_field_aliases_and_runtime():
    config = tj.LlamaConfig(**TINY)
    assert config.attn_implementation == "auto" and config.pallas_interpret is False
    assert tj.LlamaConfig(**TINY, attn_implementation="eager").attn_implementation == "xla"
    assert tj.LlamaConfig(**TINY, attn_implementation="sdpa").attn_implementation == "auto"
    splash = config.replace(attn_implementation="splash", pallas_interpret=True)
    assert "attn_implementation" not in splash.to_dict() and "pallas_interpret" not in splash.to_dict()
    assert hash(splash) != hash(config)  # a static jit argument: changing the kernel retraces


def test_from_pretrained_takes_attn_implementation(tmp_path):
    model = tj.LlamaForCausalLM(tj.LlamaConfig(**TINY), seed=0)
    model.save_pretrained(tmp_path)
    for asked, stored in (("eager", "xla"), ("sdpa", "auto"), ("splash", "splash")):
        loaded = tj.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation=asked)
        assert loaded.config.attn_implementation == stored
    assert "attn_implementation" not in (tmp_path / "config.json").read_text()
    made = tj.AutoModelForCausalLM.from_config(tj.LlamaConfig(**TINY), attn_implementation="eager")
    assert made.config.attn_implementation == "xla"


def test_unknown_value_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"attn_implementation='fast' is not one of 'auto', 'xla', 'splash', 'cudnn'"):
        tj.LlamaConfig(**TINY, attn_implementation="fast")
    with pytest.raises(ValueError, match="use 'cudnn' on an NVIDIA GPU or 'splash' on TPU"):
        tj.LlamaConfig(**TINY, attn_implementation="flash_attention_2")


def test_kernels_refused_for_models_outside_the_shared_decoder():
    with pytest.raises(ValueError, match=r"BertConfig: attn_implementation='splash' is not available for this model"):
        tj.BertConfig(attn_implementation="splash")
    assert tj.BertConfig(attn_implementation="eager").attn_implementation == "xla"


def _forward(config, ids, **kwargs):
    return tj.LlamaForCausalLM.forward(tj.LlamaForCausalLM(config, seed=0).params, config, ids, **kwargs)


def test_splash_on_cpu_without_interpret_says_how_to_enable_it():
    config = tj.LlamaConfig(**TINY, attn_implementation="splash")
    with pytest.raises(ValueError, match=r"platform is 'cpu'.*pallas_interpret=True"):
        _forward(config, np.ones((1, 8), np.int32))


def test_cudnn_without_a_gpu():
    if jax.default_backend() == "gpu":
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match=r"attn_implementation='cudnn' needs a GPU \(the platform is 'cpu'\)"):
        _forward(tj.LlamaConfig(**TINY, attn_implementation="cudnn"), np.ones((1, 8), np.int32))


def test_unsupported_features_are_named():
    config = tj.LlamaConfig(**TINY, attn_implementation="splash", pallas_interpret=True)
    with pytest.raises(ValueError, match=r"'splash' does not support output_attentions=True"):
        _forward(config, np.ones((1, 8), np.int32), output_attentions=True)
    dropping = config.replace(attention_dropout=0.1)
    with pytest.raises(ValueError, match=r"'splash' does not support attention dropout"):
        _forward(dropping, np.ones((1, 8), np.int32), dropout_rng=jax.random.key(0))
    select = dict(dtype=jnp.float32, head_dim=8, interpret=True)
    with pytest.raises(ValueError, match=r"does not support an additive attention bias \(e.g. ALiBi\)"):
        AK.select_attention_implementation("splash", bias=True, **select)
    with pytest.raises(ValueError, match=r"does not support head_mask"):
        AK.select_attention_implementation("splash", head_mask=True, **select)
    # "auto" is allowed to choose: XLA for what no kernel does, and for every decode step with a cache
    assert AK.select_attention_implementation("auto", output_attentions=True, **select) == "xla"
    assert AK.select_attention_implementation("splash", cached=True, **select) == "xla"
    assert AK.select_attention_implementation("auto", **select) == "xla"  # on the CPU, interpret mode or not


# ----------------------------------------------------------------------------- TPU, compiled ahead of time
def _v5e_device():
    """One described TPU v5e chip (libtpu is a test extra: a missing one fails here, it is not skipped)."""
    from train.aot import topology_devices

    return topology_devices("v5e:2x2")[1][0]


def test_splash_compiles_for_tpu_without_a_scores_buffer():
    """Forward and backward of one attention layer compiled for a v5e chip (on this CPU host): XLA's
    program holds [.., T, T] float32 buffers (scores, probabilities), splash's none."""
    device = _v5e_device()
    length = 512  # no other dimension of the program is 512
    mesh = Mesh(np.array([device]), ("data",))
    shape = jax.ShapeDtypeStruct
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    args = [shape((1, length, 8, 64), jnp.bfloat16, sharding=sharding),
            shape((1, length, 2, 64), jnp.bfloat16, sharding=sharding),
            shape((1, length, 2, 64), jnp.bfloat16, sharding=sharding)]
    scores = re.compile(rf"f32\[(\d+,)*{length},{length}\]")
    found = {}
    for implementation in ("xla", "splash"):
        def loss(q, k, v):
            out, _ = AK.causal_attention(q, k, v, AK.CausalMaskSpec(), implementation=implementation, scale=0.125)
            return jnp.sum(out.astype(jnp.float32))

        with logical_sharding(mesh, ()):
            compiled = jax.jit(jax.grad(loss, (0, 1, 2))).lower(*args).compile()
        text = compiled.as_text()
        found[implementation] = bool(scores.search(text))
        assert ("tpu_custom_call" in text) == (implementation == "splash")  # the Mosaic kernel, not interpret mode
    assert found == {"xla": True, "splash": False}


# ----------------------------------------------------------------------------- GPU only
@pytest.mark.skipif(jax.default_backend() != "gpu", reason="GPU only: cuDNN attention needs an NVIDIA GPU")
def test_gpu_only_cudnn_matches_xla():
    """bfloat16 cuDNN flash attention against XLA on the same bfloat16 inputs (padded, windowed, GQA)."""
    q, k, v = (x.astype(jnp.bfloat16) for x in _qkv(2))
    spec = AK.CausalMaskSpec(jnp.asarray(LEFT_PADDED), 0, 17)
    outs = {impl: AK.causal_attention(q, k, v, spec, implementation=impl, scale=D**-0.5)[0].astype(jnp.float32)
            for impl in ("xla", "cudnn")}
    real = LEFT_PADDED > 0
    np.testing.assert_allclose(np.asarray(outs["cudnn"])[real], np.asarray(outs["xla"])[real], atol=2e-2)
