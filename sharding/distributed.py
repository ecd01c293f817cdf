"""Multi-host start-up over ``jax.distributed``.

Call :func:`initialize` first thing in a training or serving script, before anything touches a
device (``jax.devices()``, creating arrays, building a mesh): JAX refuses to start the
distributed runtime once a backend exists.

Settings come from the arguments, else from the environment:

* ``JAX_COORDINATOR_ADDRESS``: ``host:port`` of process 0's coordinator service;
* ``JAX_NUM_PROCESSES``: number of processes in the job;
* ``JAX_PROCESS_ID``: this process's index, ``0 .. JAX_NUM_PROCESSES - 1``.

With none of them set (or one process) the run is single-process and nothing is started.
``JAX_DISTRIBUTED_AUTO=1`` (or ``auto_detect=True``) instead hands the missing values to JAX's
cluster auto-detection: ``jax.distributed.initialize()`` with arguments left ``None`` asks each
known cluster environment in turn (Cloud TPU VMs and GKE TPU pods via the metadata server, SLURM
via ``SLURM_*`` variables, Open MPI via ``OMPI_MCA_orte_hnp_uri``, Kubernetes, and mpi4py when
asked by ``cluster_detection_method``) for the coordinator address, process count and id, and
fails if none is present. JAX itself also reads ``JAX_COORDINATOR_ADDRESS`` and
``JAX_LOCAL_DEVICE_IDS``.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

import jax

_ENV_ADDRESS = "JAX_COORDINATOR_ADDRESS"
_ENV_NUM = "JAX_NUM_PROCESSES"
_ENV_ID = "JAX_PROCESS_ID"
_ENV_AUTO = "JAX_DISTRIBUTED_AUTO"
_STATE = {"initialized": False}


def _int_setting(value, name: str) -> int | None:
    """``value`` (an argument or an env string) as an int; the error names the setting."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _flag(value: str | None) -> bool:
    if value is None or value.strip().lower() in ("", "0", "false", "no"):
        return False
    if value.strip().lower() in ("1", "true", "yes"):
        return True
    raise ValueError(f"{_ENV_AUTO} must be 1/true/yes or 0/false/no, got {value!r}")


def _check_address(address: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"coordinator address ({_ENV_ADDRESS}) must look like host:port, got {address!r}")


def is_initialized() -> bool:
    """Whether the multi-process runtime has been started (by us or by a direct JAX call)."""
    jax_check = getattr(jax.distributed, "is_initialized", None)
    return _STATE["initialized"] or bool(jax_check and jax_check())


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: Sequence[int] | None = None,
               auto_detect: bool | None = None) -> bool:
    """Start JAX's multi-process runtime when the run spans several processes.

    Arguments override ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``.
    Returns False for a single-process run (nothing set, or one process) without calling
    ``jax.distributed.initialize``; True once the runtime is up. A second call is a no-op that
    returns True. ``auto_detect`` (default: env ``JAX_DISTRIBUTED_AUTO``) lets JAX detect unset
    values on TPU pods, SLURM, Open MPI or Kubernetes. Partial or inconsistent settings raise a
    ValueError naming the setting.
    """
    if is_initialized():
        return True
    auto = _flag(os.environ.get(_ENV_AUTO)) if auto_detect is None else bool(auto_detect)
    address = coordinator_address or os.environ.get(_ENV_ADDRESS) or None
    num = _int_setting(num_processes if num_processes is not None else os.environ.get(_ENV_NUM), _ENV_NUM)
    pid = _int_setting(process_id if process_id is not None else os.environ.get(_ENV_ID), _ENV_ID)
    if address is not None:
        _check_address(address)
    if num is not None and num < 1:
        raise ValueError(f"{_ENV_NUM} must be at least 1, got {num}")
    if pid is not None and pid < 0:
        raise ValueError(f"{_ENV_ID} must be non-negative, got {pid}")
    if pid is not None and num is not None and pid >= num:
        raise ValueError(f"{_ENV_ID} ({pid}) must be less than {_ENV_NUM} ({num})")
    if not auto:
        if num is None or num == 1:
            if num is None and (address is not None or pid is not None):
                given = _ENV_ADDRESS if address is not None else _ENV_ID
                raise ValueError(f"{given} is set but {_ENV_NUM} is not; set both (and {_ENV_ID}) for a multi-process run")
            return False
        for value, name in ((address, _ENV_ADDRESS), (pid, _ENV_ID)):
            if value is None:
                raise ValueError(f"{_ENV_NUM}={num} needs {name} too")
    kwargs = {"coordinator_address": address, "num_processes": num, "process_id": pid}
    if local_device_ids is not None:
        kwargs["local_device_ids"] = list(local_device_ids)
    # JAX waits (5 minutes by default) for every process to reach the coordinator, then ends the process from C++
    # without a Python exception: say first what this process is waiting for.
    who = "?" if pid is None else pid
    print(f"jax.distributed: process {who} of {num or '?'} joining the coordinator at "
          f"{address or '(auto-detected)'}", file=sys.stderr, flush=True)
    jax.distributed.initialize(**kwargs)
    _STATE["initialized"] = True
    return True
