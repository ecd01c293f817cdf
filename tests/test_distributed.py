"""Multi-process start-up settings (sharding/distributed.py): what reaches ``jax.distributed.initialize``, and the
error each bad setting gives, in-process and from a training script. Nothing here starts JAX's distributed runtime
(``jax.distributed.initialize`` is replaced by a recorder); tests/test_multiprocess.py runs real processes."""
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from sharding import distributed

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "JAX_DISTRIBUTED_AUTO")


@pytest.fixture
def started(monkeypatch):
    """Clean settings; ``jax.distributed.initialize`` recorded instead of run. Yields the recorded calls."""
    for key in SETTINGS:
        monkeypatch.delenv(key, raising=False)
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False, raising=False)
    monkeypatch.setitem(distributed._STATE, "initialized", False)
    yield calls


def test_single_process_starts_nothing(started, monkeypatch):
    assert distributed.initialize() is False
    monkeypatch.setenv("JAX_NUM_PROCESSES", "1")
    assert distributed.initialize() is False
    assert started == []


def test_settings_from_environment_and_arguments(started, monkeypatch, capsys):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", " 4 ")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    assert distributed.initialize(local_device_ids=[0, 1]) is True
    assert started == [{"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3,
                        "local_device_ids": [0, 1]}]
    assert "process 3 of 4 joining the coordinator at 10.0.0.1:1234" in capsys.readouterr().err
    assert distributed.initialize() is True and len(started) == 1  # a second call is a no-op
    distributed._STATE["initialized"] = False
    distributed.initialize("127.0.0.1:99", num_processes=2, process_id=0)  # arguments override the environment
    assert started[-1] == {"coordinator_address": "127.0.0.1:99", "num_processes": 2, "process_id": 0}


def test_auto_detection_passes_what_is_missing_as_none(started, monkeypatch):
    monkeypatch.setenv("JAX_DISTRIBUTED_AUTO", "yes")
    assert distributed.initialize() is True
    assert started == [{"coordinator_address": None, "num_processes": None, "process_id": None}]


@pytest.mark.parametrize("env, message", [
    ({"JAX_NUM_PROCESSES": "2"}, "JAX_NUM_PROCESSES=2 needs JAX_COORDINATOR_ADDRESS too"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_COORDINATOR_ADDRESS": "h:1"}, "JAX_NUM_PROCESSES=2 needs JAX_PROCESS_ID too"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1"}, "JAX_COORDINATOR_ADDRESS is set but JAX_NUM_PROCESSES is not"),
    ({"JAX_PROCESS_ID": "0"}, "JAX_PROCESS_ID is set but JAX_NUM_PROCESSES is not"),
    ({"JAX_NUM_PROCESSES": "two"}, "JAX_NUM_PROCESSES must be an integer, got 'two'"),
    ({"JAX_NUM_PROCESSES": "0"}, "JAX_NUM_PROCESSES must be at least 1, got 0"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "-1"}, "JAX_PROCESS_ID must be non-negative, got -1"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2", "JAX_COORDINATOR_ADDRESS": "h:1"},
     r"JAX_PROCESS_ID \(2\) must be less than JAX_NUM_PROCESSES \(2\)"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0", "JAX_COORDINATOR_ADDRESS": "localhost"},
     "must look like host:port, got 'localhost'"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0", "JAX_COORDINATOR_ADDRESS": "h:port"},
     "must look like host:port, got 'h:port'"),
    ({"JAX_DISTRIBUTED_AUTO": "maybe"}, "JAX_DISTRIBUTED_AUTO must be 1/true/yes or 0/false/no, got 'maybe'"),
])
def test_bad_settings_name_the_setting(started, monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=message):
        distributed.initialize()
    assert started == []


def test_script_exits_with_the_message(tmp_path):
    """A training script refuses bad settings before reading its recipe: exit code 2, the message on stderr."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_PROCESSES": "2", "JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"}
    env.pop("JAX_PROCESS_ID", None)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "pretrain.py"), "--config", "missing.yaml"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "multi-process settings: JAX_NUM_PROCESSES=2 needs JAX_PROCESS_ID too" in done.stderr
    assert "Traceback" not in done.stderr
