"""Training checkpoints (orbax): round trips, keep-N, restore onto a mesh, shape checks, a save
killed mid-write, and conversion to and from Hugging Face directories (checked against PyTorch)."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import transformers_jax as tj
from parity import assert_accurate, hf_pair
from train.checkpointing import CheckpointManager, export_to_hf, flat_with_paths
from transformers_jax.partitioning import param_shardings

REPO = Path(__file__).resolve().parents[1]
TINY = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2)
RULES = [("embed", "fsdp"), ("heads", "tensor"), ("kv_heads", "tensor"), ("mlp", "tensor"), ("vocab", "tensor")]


def _train_state(config, seed=0, step=7):
    params = tj.LlamaForCausalLM(config, seed=seed).params
    opt = optax.adamw(1e-3)
    opt_state = opt.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, opt_state = opt.update(grads, opt_state, params)  # non-trivial mu, nu and count
    return {"step": jnp.asarray(step, jnp.int32), "params": params, "opt_state": opt_state,
            "rng": jax.random.PRNGKey(seed + 100)}


def _metadata(config, **extra):
    return {"model_class": "LlamaForCausalLM", "config": config.to_dict(), "data_state": {"epoch": 1, "batch": 3},
            "training_args": {"learning_rate": 1e-3}, **extra}


def _assert_trees_equal(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for (path, a), b in zip(flat_with_paths(got).items(), jax.tree.leaves(want)):
        assert np.asarray(a).dtype == np.asarray(b).dtype, path
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=path)


@pytest.fixture(scope="module")
def config():
    return tj.LlamaConfig(**TINY)


@pytest.fixture(scope="module")
def state(config):
    return _train_state(config)


def _env():
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8",
                PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")


def _run_script(*args):
    """``transformers-jax convert ...`` in a fresh process (the installed console script)."""
    exe = Path(sys.executable).with_name("transformers-jax")
    proc = subprocess.run([str(exe), "convert", *map(str, args)], env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


# ----------------------------------------------------------------------------- save / restore
def test_async_round_trip_is_exact(tmp_path, config, state):
    metadata = _metadata(config)
    manager = CheckpointManager(tmp_path / "ckpt", async_save=True)
    manager.save(7, state, metadata)
    manager.save(9, jax.tree.map(lambda x: x + 1 if x.dtype != jnp.uint32 else x, state), metadata)
    manager.wait_until_finished()
    assert manager.all_steps() == [7, 9] and manager.latest_step() == 9
    restored, got_metadata = manager.restore(7, jax.eval_shape(lambda: state))
    _assert_trees_equal(restored, state)
    assert got_metadata == metadata
    assert isinstance(restored["opt_state"][0], optax.ScaleByAdamState)
    manager.close()
    # A fresh manager sees the same steps; without a target the arrays come back as saved.
    reopened = CheckpointManager(tmp_path / "ckpt", read_only=True)
    assert reopened.latest_step() == 9
    latest, _ = reopened.restore()
    np.testing.assert_array_equal(latest["params"]["lm_head"]["kernel"], state["params"]["lm_head"]["kernel"] + 1)
    assert int(latest["step"]) == 8
    _assert_trees_equal(reopened.restore_params(7), state["params"])


def test_keeps_only_the_newest_steps(tmp_path):
    manager = CheckpointManager(tmp_path, max_to_keep=2)
    for step in (1, 2, 3, 4):
        manager.save(step, {"x": jnp.full((3,), step, jnp.float32)}, {"step": step})
    manager.close()
    assert manager.all_steps() == [3, 4]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["3", "4"]
    restored, metadata = manager.restore(3, {"x": jax.ShapeDtypeStruct((3,), jnp.float32)})
    np.testing.assert_array_equal(restored["x"], [3, 3, 3])
    assert metadata == {"step": 3}


def test_existing_step_is_refused_unless_overwrite(tmp_path):
    manager = CheckpointManager(tmp_path, async_save=False)
    manager.save(5, {"x": jnp.zeros(2)}, {})
    with pytest.raises(ValueError, match=r"checkpoint step 5 already exists in .*overwrite=True"):
        manager.save(5, {"x": jnp.ones(2)}, {})
    manager.save(5, {"x": jnp.ones(2)}, {"v": 2}, overwrite=True)
    restored, metadata = manager.restore(5, {"x": jax.ShapeDtypeStruct((2,), jnp.float32)})
    np.testing.assert_array_equal(restored["x"], [1, 1])
    assert metadata == {"v": 2}
    with pytest.raises(TypeError, match="JSON-serializable"):
        manager.save(6, {"x": jnp.zeros(2)}, {"bad": object()})
    with pytest.raises(TypeError, match=r"state leaf 'rng' is a typed PRNG key; save jax.random.key_data"):
        manager.save(6, {"rng": jax.random.key(0)}, {})
    assert manager.all_steps() == [5]
    with pytest.raises(ValueError, match="max_to_keep must be at least 1"):
        CheckpointManager(tmp_path / "other", max_to_keep=0)
    manager.close()


def test_restore_onto_a_mesh(tmp_path, config, state):
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("fsdp", "tensor"))
    shardings = param_shardings(tj.LlamaForCausalLM.param_specs(config), mesh, RULES)
    flat_param_shardings = flat_with_paths(shardings)
    assert any(s.spec != PartitionSpec() for s in flat_param_shardings.values())  # the test shards something
    replicated = NamedSharding(mesh, PartitionSpec())

    def wanted(path):
        for prefix in ("params/", "opt_state/0/mu/", "opt_state/0/nu/"):
            if path.startswith(prefix):
                return flat_param_shardings[path[len(prefix):]]
        return replicated

    abstract = jax.eval_shape(lambda: state)
    paths = list(flat_with_paths(abstract))
    leaves, treedef = jax.tree.flatten(abstract)
    abstract = treedef.unflatten([jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=wanted(p))
                                  for p, x in zip(paths, leaves)])
    manager = CheckpointManager(tmp_path)
    manager.save(7, state, {})
    restored, _ = manager.restore(None, abstract)
    for path, leaf in flat_with_paths(restored).items():
        assert leaf.sharding == wanted(path), path
    _assert_trees_equal(restored, state)
    # A sharded state saves too, and restores onto other devices.
    manager.save(8, restored, {})
    single, _ = manager.restore(8, jax.eval_shape(lambda: state))
    assert single["params"]["lm_head"]["kernel"].sharding == jax.sharding.SingleDeviceSharding(jax.devices()[0])
    _assert_trees_equal(single, state)
    params = manager.restore_params(7, shardings=shardings)
    for path, leaf in flat_with_paths(params).items():
        assert leaf.sharding == flat_param_shardings[path], path
    _assert_trees_equal(params, state["params"])
    bad = {k: v for k, v in shardings.items() if k != "lm_head"}
    with pytest.raises(ValueError, match=r"params/lm_head/kernel: no sharding given"):
        manager.restore_params(shardings=bad)
    manager.close()


def test_other_model_shape_is_refused_with_the_key(tmp_path, config, state):
    manager = CheckpointManager(tmp_path)
    manager.save(7, state, {})
    bigger = jax.eval_shape(lambda: _train_state(config.replace(intermediate_size=128)))
    with pytest.raises(ValueError) as err:
        manager.restore(7, bigger)
    message = str(err.value)
    assert f"checkpoint {tmp_path}/7 does not fit" in message
    assert "params/model/layers/mlp/down_proj/kernel: checkpoint has shape (2, 64, 32), " \
           "this model expects (2, 128, 32)" in message
    extra = dict(jax.eval_shape(lambda: state), ema=jax.ShapeDtypeStruct((3,), jnp.float32))
    with pytest.raises(ValueError, match=r"ema: missing from the checkpoint"):
        manager.restore(7, extra)
    in_bf16 = jax.eval_shape(lambda: jax.tree.map(lambda x: x.astype(jnp.bfloat16) if x.dtype == jnp.float32 else x,
                                                  state))
    with pytest.raises(ValueError, match=r"params/lm_head/kernel: checkpoint has dtype float32, this model expects "
                                         r"bfloat16"):
        manager.restore(7, in_bf16)
    manager.close()


def test_missing_directory_and_step_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"checkpoint directory {tmp_path / 'nope'} does not exist"):
        CheckpointManager(tmp_path / "nope", read_only=True)
    manager = CheckpointManager(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=f"no checkpoint in {tmp_path / 'empty'}"):
        manager.restore()
    manager.save(1, {"x": jnp.zeros(2)}, {})
    manager.save(2, {"x": jnp.zeros(2)}, {})
    with pytest.raises(FileNotFoundError, match=r"checkpoint step 7 not found in .*empty; available steps: \[1, 2\]"):
        manager.restore(7)
    manager.close()


# ----------------------------------------------------------------------------- a save killed mid-write
_KILLED_CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import jax, jax.numpy as jnp
    from train.checkpointing import CheckpointManager

    def state(seed):  # 8M floats = 32 MB, so the background write takes a while
        w = jax.random.normal(jax.random.PRNGKey(seed), (4096, 2048), jnp.float32)
        return {"step": jnp.asarray(seed, jnp.int32), "params": {"w": w}, "rng": jax.random.PRNGKey(seed)}

    directory = sys.argv[1]
    manager = CheckpointManager(directory, async_save=True)
    manager.save(1, state(1), {"step": 1})
    manager.wait_until_finished()
    big = jax.block_until_ready(state(2))
    manager.save(2, big, {"step": 2})
    # The background write makes its temporary directory a moment after save() returns (later on a busy
    # machine): look once it is there, polling finely, long before 32 MB are written.
    import time
    deadline = time.monotonic() + 30
    while not any(n.startswith("2") for n in os.listdir(directory)) and time.monotonic() < deadline:
        time.sleep(0.001)
    report = {"finished": os.path.isdir(os.path.join(directory, "2")),
              "tmp": sorted(n for n in os.listdir(directory) if n.startswith("2.")),
              "listed": manager.all_steps()}
    print(json.dumps(report), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _big_state(seed):
    w = jax.random.normal(jax.random.PRNGKey(seed), (4096, 2048), jnp.float32)
    return {"step": jnp.asarray(seed, jnp.int32), "params": {"w": w}, "rng": jax.random.PRNGKey(seed)}


def test_save_killed_mid_write_is_never_seen(tmp_path):
    child = tmp_path / "child.py"
    child.write_text(_KILLED_CHILD)
    directory = tmp_path / "ckpt"
    proc = subprocess.run([sys.executable, str(child), str(directory)], env=_env(), capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == -9, proc.stderr[-3000:]  # killed by SIGKILL
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # The kill came while step 2 was still being written (into a temporary directory) ...
    assert report == {"finished": False, "tmp": ["2.orbax-checkpoint-tmp"], "listed": [1]}
    assert (directory / "2.orbax-checkpoint-tmp").is_dir() and not (directory / "2").exists()
    # ... so only step 1 exists, for readers and for a new writer, and it restores exactly.
    assert CheckpointManager(directory, read_only=True).all_steps() == [1]
    manager = CheckpointManager(directory)
    assert manager.latest_step() == 1
    want = _big_state(1)
    restored, metadata = manager.restore(abstract_state=jax.eval_shape(lambda: want))
    _assert_trees_equal(restored, want)
    assert metadata == {"step": 1}
    # The new writer cleans up the leftover and saves step 2 normally.
    manager.save(2, _big_state(2), {"step": 2})
    manager.close()
    assert manager.all_steps() == [1, 2]
    assert not (directory / "2.orbax-checkpoint-tmp").exists()
    restored, _ = manager.restore(2, jax.eval_shape(lambda: want))
    np.testing.assert_array_equal(restored["params"]["w"], _big_state(2)["params"]["w"])


# ----------------------------------------------------------------------------- Hugging Face conversion
def test_convert_to_hf_matches_pytorch(tmp_path, config, state):
    import torch
    import transformers as hf

    with CheckpointManager(tmp_path / "ckpt") as manager:
        manager.save(7, state, _metadata(config))
    _run_script("--checkpoint", tmp_path / "ckpt", "--step", 7, "--to-hf", tmp_path / "hf")
    torch_model = hf.LlamaForCausalLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    ids = np.random.RandomState(0).randint(0, config.vocab_size, (2, 9))
    want, exact = hf_pair(torch_model, lambda m: m(torch.tensor(ids)).logits)
    got = np.asarray(tj.LlamaForCausalLM(config, state["params"])(ids).logits)
    assert_accurate(got, want, exact)


def test_convert_hf_to_orbax_and_back(tmp_path):
    import torch
    import transformers as hf
    from safetensors.numpy import load_file

    torch.manual_seed(0)
    hf.LlamaForCausalLM(hf.LlamaConfig(**TINY)).save_pretrained(tmp_path / "hf")
    _run_script("--hf", tmp_path / "hf", "--to-orbax", tmp_path / "ckpt")
    manager = CheckpointManager(tmp_path / "ckpt", read_only=True)
    assert manager.all_steps() == [0]
    metadata = manager.read_metadata()
    assert metadata["model_class"] == "LlamaForCausalLM" and metadata["config"]["intermediate_size"] == 64
    _assert_trees_equal(manager.restore_params(), tj.LlamaForCausalLM.from_pretrained(tmp_path / "hf").params)
    _run_script("--checkpoint", tmp_path / "ckpt", "--to-hf", tmp_path / "back")
    original, back = load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    assert set(original) == set(back)
    for key in original:
        np.testing.assert_array_equal(back[key], original[key], err_msg=key)


class _Tokenizer:
    def save_pretrained(self, directory):
        (Path(directory) / "tokenizer.json").write_text("{}")


def test_export_to_hf_takes_a_name_and_a_config_dict(tmp_path, config, state):
    from safetensors import safe_open

    export_to_hf("LlamaForCausalLM", config.to_dict(), state["params"], tmp_path / "out", tokenizer=_Tokenizer())
    loaded = tj.LlamaForCausalLM.from_pretrained(tmp_path / "out")
    _assert_trees_equal(loaded.params, state["params"])
    assert (tmp_path / "out" / "tokenizer.json").read_text() == "{}"
    # bfloat16 params (a run with param_dtype bfloat16) are written as bfloat16, and say so.
    half = jax.tree.map(lambda x: x.astype(jnp.bfloat16), state["params"])
    export_to_hf(tj.LlamaForCausalLM, config.to_dict(), half, tmp_path / "half")
    assert json.loads((tmp_path / "half" / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(tmp_path / "half" / "model.safetensors", "pt") as f:
        assert str(f.get_tensor("lm_head.weight").dtype) == "torch.bfloat16"
    with pytest.raises(ValueError, match=r"unknown model class 'GPT9'; known: .*LlamaForCausalLM"):
        export_to_hf("GPT9", config.to_dict(), state["params"], tmp_path / "out2")


def test_convert_script_errors(tmp_path, capsys):
    from train.convert import main

    assert main(["--checkpoint", str(tmp_path / "missing"), "--to-hf", str(tmp_path / "o")]) == 2
    assert f"checkpoint directory {tmp_path / 'missing'} does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--checkpoint", str(tmp_path / "empty"), "--to-hf", str(tmp_path / "o")]) == 2
    assert f"no checkpoint in {tmp_path / 'empty'}" in capsys.readouterr().err
    with CheckpointManager(tmp_path / "nometa") as manager:
        manager.save(1, {"params": {"x": jnp.zeros(2)}}, {})
    assert main(["--checkpoint", str(tmp_path / "nometa"), "--to-hf", str(tmp_path / "o")]) == 2
    assert "has no 'model_class'" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "nometa" / "1" / "metadata")
    assert main(["--checkpoint", str(tmp_path / "nometa"), "--to-hf", str(tmp_path / "o")]) == 2
    assert f"checkpoint {tmp_path / 'nometa' / '1'} has no metadata" in capsys.readouterr().err
    with CheckpointManager(tmp_path / "unknown") as manager:
        manager.save(1, {"params": {"x": jnp.zeros(2)}}, {"model_class": "GPT9", "config": {}})
    assert main(["--checkpoint", str(tmp_path / "unknown"), "--to-hf", str(tmp_path / "o")]) == 2
    assert "unknown model class 'GPT9'" in capsys.readouterr().err
    assert main(["--hf", str(tmp_path / "nohf"), "--to-orbax", str(tmp_path / "o")]) == 2
    assert f"model path {str(tmp_path / 'nohf')!r} does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "unknown")])
    assert "one of the arguments --to-hf --to-flax --to-orbax is required" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
