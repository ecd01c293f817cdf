"""Ahead-of-time compilation for TPU topologies that are not attached: does a recipe fit, what does it move.

With ``libtpu`` installed (``pip install "jax[tpu]==<jax version>"``) and ``JAX_PLATFORMS=cpu``, JAX can
describe a TPU slice (``jax.experimental.topologies.get_topology_desc``) and compile a jitted function for
its devices without owning any. This module builds the real train step of :mod:`train.step` (the one the
Trainer runs: same optimizer, shardings, donation) on abstract params, compiles it for a slice, and reads
the compiled program:

* memory per device from ``memory_analysis()`` (arguments, outputs, temporaries; donated arguments alias
  their outputs), next to :func:`sharding.memory.estimate_memory` and the chip's HBM;
* FLOPs per device counted from the optimized HLO: every ``dot`` and ``convolution`` times the trip
  count of the loops around it. ``cost_analysis()`` counts a ``while`` body once (a scanned layer stack
  would be counted as one layer), so its figure is printed too but not used;
* the collectives in the HLO (kind, how many run per step, bytes of their results), trip counts applied;
* a roofline: step time >= max(FLOPs / peak FLOP/s, bytes that must cross HBM / bandwidth), from the
  chip's published figures, and the MFU bound that follows from the model FLOPs of :mod:`train.flops`.

The same for the serving decode step is :func:`compile_decode_step`.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections import defaultdict

import jax
import jax.numpy as jnp

from transformers_jax import hlo_text

# Published per-chip figures: dense bf16 peak FLOP/s, HBM bytes, HBM bandwidth (bytes/s).
CHIPS = {
    "v4": {"peak_flops": 275e12, "hbm_bytes": 32 * 2**30, "hbm_bandwidth": 1.2e12, "cores_per_chip": 2},
    "v5e": {"peak_flops": 197e12, "hbm_bytes": 16 * 2**30, "hbm_bandwidth": 0.819e12, "cores_per_chip": 1},
    "v5p": {"peak_flops": 459e12, "hbm_bytes": 95 * 2**30, "hbm_bandwidth": 2.765e12, "cores_per_chip": 2},
    "v6e": {"peak_flops": 918e12, "hbm_bytes": 32 * 2**30, "hbm_bandwidth": 1.64e12, "cores_per_chip": 1},
}
# Chip grids of the slices by chip count: 2-D tori for v5e/v6e, 3-D for v4/v5p.
_GRIDS_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}
_GRIDS_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8",
             512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16", 4096: "16x16x16"}


class TopologyError(ValueError):
    """A topology name that cannot be described, or a mesh that does not fit its devices."""


class DoesNotFit(RuntimeError):
    """The compiler refused the program: its buffers outgrow the chip's HBM. ``estimate`` is ours, by component."""

    def __init__(self, message: str, required: float | None, available: float | None, estimate: dict | None,
                 advice: str | None = None):
        super().__init__(message)
        self.required, self.available, self.estimate, self.advice = required, available, estimate, advice


def parse_topology(name: str) -> tuple[str, str]:
    """``(chip, grid)`` of a slice name: ``v5p:4x4x4`` (chip grid, as ``get_topology_desc`` takes it) or the
    Cloud name ``v5p-128`` (v4/v5p count TensorCores, two per chip; v5e/v6e count chips)."""
    match = re.fullmatch(r"(v4|v5e|v5p|v6e)([:-])([0-9x]+)", name.strip().lower())
    if not match:
        raise TopologyError(f"unknown topology {name!r}: expected <chip>:<grid> or <chip>-<size> with chip one of "
                            f"{', '.join(CHIPS)} (e.g. v5p:4x4x4, v5p-128, v5e:2x2, v5e-16)")
    chip, sep, size = match.groups()
    three_d = chip in ("v4", "v5p")
    if sep == ":":
        dims = size.split("x")
        if len(dims) != (3 if three_d else 2) or not all(d.isdigit() and int(d) > 0 for d in dims):
            raise TopologyError(f"topology {name!r}: a {chip} grid has {3 if three_d else 2} dimensions, like "
                                f"{'4x4x4' if three_d else '4x4'}")
        return chip, size
    if not size.isdigit():
        raise TopologyError(f"topology {name!r}: the size after '-' must be a number")
    cores = int(size)
    chips, rest = divmod(cores, CHIPS[chip]["cores_per_chip"])
    grids = _GRIDS_3D if three_d else _GRIDS_2D
    if rest or chips not in grids:
        known = ", ".join(f"{chip}-{n * CHIPS[chip]['cores_per_chip']}" for n in grids)
        raise TopologyError(f"topology {name!r} is not a slice shape this knows; known: {known}")
    return chip, grids[chips]


def topology_devices(name: str) -> tuple[str, list]:
    """``(chip, devices)`` of a described TPU slice (needs libtpu; JAX itself may stay on the CPU)."""
    chip, grid = parse_topology(name)
    import os

    from jax.experimental import topologies

    # libtpu takes a lock file so that one process owns the chips; describing a slice owns none, so several
    # processes (parallel test workers, two compiles) may load it at once.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

    try:
        topology = topologies.get_topology_desc(topology_name=f"{chip}:{grid}", platform="tpu")
    except Exception as err:  # libtpu missing or the grid refused
        raise TopologyError(f"cannot describe TPU topology {chip}:{grid} ({type(err).__name__}: {err}); "
                            "AOT compilation needs libtpu: pip install \"jax[tpu]==" + jax.__version__ + "\"") from err
    return chip, list(topology.devices)


# ----------------------------------------------------------------------------- reading the HLO
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


@dataclasses.dataclass
class HloSummary:
    """The collectives one compiled program runs per call, loops unrolled by their trip counts."""

    collectives: dict  # kind -> {"count": runs per call, "bytes": result bytes summed over runs}
    unknown_trip_counts: int  # while loops whose trip count could not be read (their body counted once)


def _trip_count(line: str, computations: dict) -> int | None:
    """A ``while``'s trip count: XLA's ``known_trip_count`` when printed, else read from its condition when that
    is ``counter < constant`` (what ``lax.scan`` and ``fori_loop`` lower to, counting from 0)."""
    known = re.search(r'"known_trip_count":\{"n":"(\d+)"\}', line)
    if known:
        return int(known.group(1))
    condition = re.search(r"condition=%?([\w.\-]+)", line)
    body = computations.get(condition.group(1), []) if condition else []
    constants = [int(m.group(1)) for l in body for m in [re.search(r"= s32\[\][^=]* constant\((\d+)\)", l)] if m]
    compares_lt = any(l.lstrip().startswith("ROOT") and "compare(" in l and "direction=LT" in l for l in body)
    return constants[0] if len(constants) == 1 and compares_lt else None


def summarize_hlo(text: str) -> HloSummary:
    """The collectives of an optimized HLO module's text, each counted as many times as it runs: the entry
    computation once, a ``while`` body times its trip count, and whatever a computation calls (fusions, async
    wrappers, conditionals' branches) as often as its caller. Bytes are each collective's result size."""
    computations, entry = hlo_text.computations(text)
    runs: dict[str, float] = defaultdict(float)
    scattered: dict[str, list[str]] = defaultdict(list)  # computation -> its reduce-scatter fusion calls
    unknown = 0

    def visit(name: str, times: float, depth: int = 0):
        nonlocal unknown
        if name not in computations or depth > 64:
            return
        runs[name] += times
        for line in computations[name]:
            trip = 1
            if " while(" in line:
                trip = _trip_count(line, computations)
                if trip is None:
                    unknown, trip = unknown + 1, 1
            for callee in re.findall(r"(?:body|calls|true_computation|false_computation)=%?([\w.\-]+)", line):
                if callee.startswith("all-reduce-scatter"):  # TPU's reduce-scatter: an all-reduce fused with its slice
                    scattered[name].append(line)
                else:
                    visit(callee, times * trip, depth + 1)
            branches = re.search(r"branch_computations=\{([^}]*)\}", line)
            for callee in branches.group(1).split(",") if branches else ():
                visit(callee.strip().lstrip("%"), times, depth + 1)

    visit(entry, 1.0)
    collectives: dict[str, dict] = {}

    def add(kind, times, size):
        entry_ = collectives.setdefault(kind, {"count": 0.0, "bytes": 0.0})
        entry_["count"] += times
        entry_["bytes"] += times * size

    for name, times in runs.items():
        for line in dict.fromkeys(scattered[name]):
            add("reduce-scatter", times, hlo_text.nbytes(hlo_text.shapes(line.split("=", 1)[1].split(" fusion(", 1)[0])))
        opcodes = {m.group(1): m.group(2) for line in computations[name]
                   for m in [re.match(r"\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*\S.*?\s([a-z][\w\-]*)\(", line)] if m}
        for line in computations[name]:
            for kind in COLLECTIVES:
                match = re.search(rf"=\s*(.*?)\s{kind}(-start)?\((.*?)\)", line)
                if match:
                    shapes = hlo_text.shapes(match.group(1))
                    size = max((hlo_text.nbytes([shape]) for shape in shapes), default=0) if match.group(2) else hlo_text.nbytes(shapes)
                    operands = [o.strip().lstrip("%") for o in match.group(3).split(",")]
                    if kind == "all-reduce" and all(opcodes.get(o) == "dynamic-update-slice" or "dynamic-update-slice"
                                                    in o for o in operands):
                        kind = "all-gather"  # XLA:TPU's gather as a sum of zero buffers each holding one shard
                    add(kind, times, size)
                    break
    return HloSummary(collectives=collectives, unknown_trip_counts=unknown)


def jaxpr_flops(closed_jaxpr) -> float:
    """Matmul FLOPs of a traced program (global, all devices together): ``2 * out * contracted`` per
    ``dot_general`` and ``ragged_dot``, a ``shard_map`` body times its devices, a ``scan`` body times its length, a Pallas kernel's block times its grid (every block,
    also those a causal kernel skips), every other sub-program (jit, remat's recomputation, custom
    derivatives, conditionals' largest branch) as often as it is called, a ``while`` body once."""
    def count(jaxpr) -> float:
        total = 0.0
        for eqn in jaxpr.eqns:
            if eqn.primitive.name in ("dot_general", "ragged_dot_general"):
                numbers = eqn.params.get("dimension_numbers") or eqn.params["ragged_dot_dimension_numbers"]
                (contract, _), _ = getattr(numbers, "dot_dimension_numbers", numbers)
                lhs = eqn.invars[0].aval.shape  # a ragged product: each row meets one group's matrix
                total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
                continue
            subs = [count(sub.jaxpr if hasattr(sub, "jaxpr") else sub) for sub in _sub_jaxprs(eqn.params)]
            if eqn.primitive.name == "cond":
                total += max(subs, default=0.0)
            elif eqn.primitive.name == "scan":
                total += eqn.params["length"] * sum(subs)
            elif eqn.primitive.name == "pallas_call":  # the kernel body is one block: times the grid
                total += math.prod(eqn.params["grid_mapping"].grid) * sum(subs)
            elif eqn.primitive.name == "shard_map":  # the body sees one device's shard: times the manual devices
                mesh = eqn.params["mesh"]
                manual = eqn.params.get("newly_manual_axes", eqn.params.get("manual_axes", mesh.axis_names))
                total += math.prod(mesh.shape[a] for a in manual) * sum(subs)
            else:
                total += sum(subs)
        return total

    return count(closed_jaxpr.jaxpr)


def _sub_jaxprs(params: dict) -> list:
    from jax.extend import core as jcore

    found = []
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, (jcore.Jaxpr, jcore.ClosedJaxpr)):
                found.append(item)
    return found


# ----------------------------------------------------------------------------- compiling the train step
@dataclasses.dataclass
class AotReport:
    """The compiled program's figures per device, next to our own estimates and the chip's limits."""

    what: str  # "train step" or "decode step"
    topology: str
    chip: str
    devices: int
    mesh: dict
    memory: dict  # argument / output / alias / temp / total bytes per device (compiled)
    estimate: dict | None  # our estimate per device (sharding.memory), by component, with "total"
    hlo: HloSummary
    program_flops: float  # per device: the traced program's matmul FLOPs (jaxpr_flops) / devices
    cost_analysis_flops: float | None  # XLA's figure (a while body counted once)
    model_flops: float | None  # per device per call: 6*N*tokens+attention (train) or 2*N*tokens (decode)
    hbm_bytes_min: int  # bytes that must cross HBM per call at least (arguments read, outputs written)
    tokens: int  # tokens per call, all devices
    compile_seconds: float
    advice: str | None = None  # what to try should it not fit (``MemoryEstimate.advice``)
    text: str = dataclasses.field(repr=False, default="")

    @property
    def chip_spec(self) -> dict:
        return CHIPS[self.chip]

    @property
    def fits(self) -> bool:
        return self.memory["total"] <= self.chip_spec["hbm_bytes"]

    @property
    def roofline_seconds(self) -> float:
        spec = self.chip_spec
        return max(self.program_flops / spec["peak_flops"], self.hbm_bytes_min / spec["hbm_bandwidth"])

    @property
    def mfu_bound(self) -> float | None:
        if not self.model_flops:
            return None
        return self.model_flops / (self.roofline_seconds * self.chip_spec["peak_flops"])

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) lines of the report."""
        from sharding.memory import format_bytes

        spec = self.chip_spec
        mem = self.memory
        out = [("program", f"{self.what} for {self.topology} ({self.devices} x TPU {self.chip}), mesh {self.mesh}"),
               ("compile time", f"{self.compile_seconds:.1f} s"),
               ("arguments", format_bytes(mem["argument"])), ("outputs", format_bytes(mem["output"])),
               ("aliased (donated)", format_bytes(mem["alias"])), ("temporaries", format_bytes(mem["temp"])),
               ("total per device", f"{format_bytes(mem['total'])} of {format_bytes(spec['hbm_bytes'])} HBM "
                                    f"({100 * mem['total'] / spec['hbm_bytes']:.0f}%)")]
        if self.estimate:
            est = self.estimate
            out.append(("our estimate", f"{format_bytes(est['total'])} ("
                        + ", ".join(f"{k} {format_bytes(v)}" for k, v in est.items() if k != "total") + ")"))
            out.append(("compiled / estimate", f"{mem['total'] / max(est['total'], 1):.2f}"))
        out.append(("FLOPs per device (program: dots x scan lengths / devices)", f"{self.program_flops:.4g}"))
        if self.cost_analysis_flops is not None:
            out.append(("FLOPs per device (cost_analysis, loop bodies once)", f"{self.cost_analysis_flops:.4g}"))
        if self.model_flops:
            out.append(("model FLOPs per device (train/flops.py)", f"{self.model_flops:.4g}"))
        for kind in COLLECTIVES:
            if kind in self.hlo.collectives:
                c = self.hlo.collectives[kind]
                out.append((f"collective {kind}", f"{c['count']:.0f} per call, {format_bytes(c['bytes'])}"))
        if self.hlo.unknown_trip_counts:
            out.append(("loops without a known trip count (counted once)", str(self.hlo.unknown_trip_counts)))
        seconds = self.roofline_seconds
        out.append(("roofline time per call", f"{1e3 * seconds:.2f} ms (peak {spec['peak_flops'] / 1e12:.0f} TFLOP/s, "
                                               f"HBM {spec['hbm_bandwidth'] / 1e9:.0f} GB/s)"))
        out.append(("roofline tokens/s (all devices)", f"{self.tokens / seconds:,.0f}"))
        if self.mfu_bound is not None:
            out.append(("MFU bound", f"{100 * self.mfu_bound:.1f}%"))
        out.append(("fits", "yes" if self.fits else f"NO: needs {format_bytes(mem['total'])}, the chip has "
                                                     f"{format_bytes(spec['hbm_bytes'])}"))
        return out

    def format(self) -> str:
        rows = self.rows()
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _memory(compiled) -> dict:
    stats = compiled.memory_analysis()
    memory = {"argument": int(stats.argument_size_in_bytes), "output": int(stats.output_size_in_bytes),
              "alias": int(stats.alias_size_in_bytes), "temp": int(stats.temp_size_in_bytes)}
    memory["total"] = memory["argument"] + memory["output"] - memory["alias"] + memory["temp"]
    return memory


def _cost_flops(compiled) -> float | None:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # not every backend reports it
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float(cost["flops"]) if cost and "flops" in cost else None


def _compile(lowered, chip: str, estimate: dict | None, advice: str | None = None):
    """``lowered.compile()``; the compiler's out-of-memory refusal becomes :class:`DoesNotFit` with its figures."""
    try:
        return lowered.compile()
    except Exception as err:  # jax.errors.JaxRuntimeError on the versions we support
        text = str(err)
        if "RESOURCE_EXHAUSTED" not in text and "Ran out of memory" not in text:
            raise
        sizes = re.findall(r"\(([0-9.]+)([KMGT])\)", text)
        scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
        values = [float(v) * scale[u] for v, u in sizes]
        required, available = (values + [None, None])[:2]
        raise DoesNotFit(text.splitlines()[0], required, available, estimate, advice) from None


def _with_sharding(tree, shardings):
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def _model_class(config, task: str):
    from transformers_jax.models.auto import MODEL_MAPPING

    return MODEL_MAPPING[task][config.model_type]


def compile_train_step(recipe, topology: str, mesh_spec=None, check_fits: bool = True) -> AotReport:
    """Compile the Trainer's train step of ``recipe`` (a :class:`train.cli.Recipe` of the pretraining script)
    for the TPU slice ``topology`` on abstract params, and read the program (see the module docstring).
    ``mesh_spec`` overrides ``training.mesh``. Raises :class:`TopologyError` for a mesh that does not match the
    slice's devices."""
    import time

    from sharding.memory import estimate_memory
    from sharding.mesh import create_mesh, data_parallel_size
    from sharding.placement import batch_sharding, like_params_shardings, check_batch_size
    from sharding.rules import check_rules, rules_for_mesh
    from train import cli
    from train import step as steps
    from train.flops import flops_per_token
    from train.optim import lr_schedule, make_optimizer, warmup_steps_for
    from train.pretrain import OBJECTIVES, objective
    from transformers_jax.partitioning import param_shardings

    args = recipe.training
    chip, devices = topology_devices(topology)
    spec = dict(mesh_spec or args.mesh)
    try:
        mesh = create_mesh(spec, devices)
    except ValueError as err:
        raise TopologyError(f"mesh {spec} does not match {topology} ({len(devices)} devices): {err}") from None
    config = cli.build_config(recipe.model)
    task = objective(config, recipe.data.get("objective"))
    model_class = _model_class(config, OBJECTIVES[task])
    config = args.run_config(model_class, config)  # as the Trainer
    rules = rules_for_mesh(args.sharding, mesh)
    specs = model_class.param_specs(config)
    check_rules(rules, mesh, specs)
    params_shardings = param_shardings(specs, mesh, rules)
    params = _with_sharding(model_class.abstract_params(config), params_shardings)

    total = max(args.max_steps, 1)
    schedule = lr_schedule(args.lr_scheduler_type, args.learning_rate, total,
                           warmup_steps_for(total, args.warmup_steps, args.warmup_ratio))
    optimizer = make_optimizer(params, optim=args.optim, schedule=schedule, weight_decay=args.weight_decay,
                               adam_beta1=args.adam_beta1, adam_beta2=args.adam_beta2, adam_epsilon=args.adam_epsilon,
                               max_grad_norm=args.max_grad_norm, freeze=args.freeze)
    opt_state = jax.eval_shape(optimizer.init, params)
    opt_shardings = like_params_shardings(opt_state, params_shardings, mesh)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    shardings = {"step": replicated, "params": params_shardings, "opt_state": opt_shardings, "rng": replicated}
    state = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": params, "opt_state": opt_state,
             "rng": jax.eval_shape(lambda: jax.random.PRNGKey(0))}
    state = _with_sharding(state, shardings)

    seq_len = int(recipe.data["max_length"])
    rows = args.per_device_train_batch_size * data_parallel_size(mesh, rules) * args.gradient_accumulation_steps
    check_batch_size(rows, mesh, rules)
    names = ("input_ids", "labels") if task == "clm" else ("input_ids", "attention_mask", "labels")
    batch_shardings = {name: batch_sharding(mesh, rules, 2) for name in names}
    batch = {name: jax.ShapeDtypeStruct((rows, seq_len), jnp.int32, sharding=batch_shardings[name]) for name in names}
    step_fn = steps.make_train_step(model_class, config, optimizer, schedule, mesh=mesh, rules=rules,
                                    state_shardings=shardings, batch_shardings=batch_shardings,
                                    accumulation_steps=args.gradient_accumulation_steps)
    optimizer_kind = "sgd" if args.optim == "sgd" else "adamw"
    estimate = estimate_memory(config, specs, mesh, rules, optimizer=optimizer_kind,
                               batch_per_device=args.per_device_train_batch_size, seq_len=seq_len)
    estimate_parts = {**{k: getattr(estimate, k) for k in ("params", "gradients", "optimizer_state", "activations",
                                                           "logits")}, "total": estimate.total}
    start = time.perf_counter()
    advice = estimate.advice()
    compiled = _compile(step_fn.lower(state, batch), chip, estimate_parts, advice)
    seconds = time.perf_counter() - start
    text = compiled.as_text()
    memory = _memory(compiled)
    tokens = rows * seq_len
    try:
        model_flops = flops_per_token(config, seq_len, model_class=model_class) * tokens / len(devices)
    except (TypeError, ValueError):
        model_flops = None
    return AotReport(
        what="train step", topology=topology, chip=chip, devices=len(devices), mesh=dict(mesh.shape),
        memory=memory, estimate=estimate_parts,
        hlo=summarize_hlo(text), program_flops=jaxpr_flops(jax.make_jaxpr(step_fn)(state, batch)) / len(devices),
        cost_analysis_flops=_cost_flops(compiled), model_flops=model_flops,
        hbm_bytes_min=memory["argument"] + memory["output"], tokens=tokens,
        compile_seconds=seconds, advice=advice, text=text)


# ----------------------------------------------------------------------------- compiling the decode step
def compile_decode_step(recipe, topology: str, mesh_spec=None, batch: int = 8, max_length: int = 4096) -> AotReport:
    """Compile one step of the serving engine's decode program (``serving.engine``'s decode chunk, the program
    a server runs, here with one step per call) of the recipe's causal LM for ``topology``: ``batch`` slots each
    feed one token and attend to a KV cache of ``max_length`` slots (bfloat16 params and cache, as served).
    Params follow ``training.sharding`` (e.g. ``tp`` or ``fsdp_tp``); the cache is split as the engine splits it
    on a mesh (``layers.kv_cache.shardings``: slots over the batch axes, KV heads over the tensor axes; either
    not splitting evenly is an error) and donated (updated in place). The roofline is the HBM time to read every
    param and cache byte of a device once per step."""
    import time

    from serving.engine import empty_state, programs
    from sharding.mesh import create_mesh
    from train import cli
    from transformers_jax.layers import kv_cache
    from transformers_jax.partitioning import mesh_rules

    chip, devices = topology_devices(topology)
    spec = dict(mesh_spec or recipe.training.mesh)
    try:
        mesh = create_mesh(spec, devices)
    except ValueError as err:
        raise TopologyError(f"mesh {spec} does not match {topology} ({len(devices)} devices): {err}") from None
    config = cli.build_config(recipe.model).replace(param_dtype="bfloat16", compute_dtype="bfloat16")
    model_class = _model_class(config, "causal_lm")
    placement = mesh_rules(mesh, recipe.training.sharding)
    model_class.check_placement(config, placement)
    params = _with_sharding(model_class.abstract_params(config), placement.params(model_class.param_specs(config)))
    cache = jax.eval_shape(lambda: model_class.init_cache(config, batch, max_length))
    cache = _with_sharding(cache, kv_cache.shardings(cache, placement, rows="--batch (the decode step's slots)"))
    state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=placement.replicated),
                         empty_state(batch))
    _, chunk = programs(model_class.decode, model_class.init_cache, config, 1)

    def step_fn(params, cache, state):  # one decoding step of every slot, the whole cache attended
        return chunk(params, cache, state, window=max_length, sharding=placement)

    start = time.perf_counter()
    compiled = _compile(chunk.lower(params, cache, state, window=max_length, sharding=placement), chip, None)
    seconds = time.perf_counter() - start
    text = compiled.as_text()
    memory = _memory(compiled)
    param_bytes = sum(_device_bytes(x) for x in jax.tree.leaves(params))
    cache_bytes = sum(_device_bytes(x) for x in cache.values())
    return AotReport(
        what=f"decode step (batch {batch}, {max_length} cache slots)", topology=topology, chip=chip,
        devices=len(devices), mesh=dict(mesh.shape), memory=memory, estimate=None, hlo=summarize_hlo(text),
        program_flops=jaxpr_flops(jax.make_jaxpr(step_fn)(params, cache, state)) / len(devices),
        cost_analysis_flops=_cost_flops(compiled), model_flops=None, hbm_bytes_min=param_bytes + cache_bytes,
        tokens=batch, compile_seconds=seconds, text=text)


def _device_bytes(x) -> int:
    """Bytes of one device's shard of an abstract array with a sharding."""
    return math.prod(x.sharding.shard_shape(x.shape)) * jnp.dtype(x.dtype).itemsize


# ----------------------------------------------------------------------------- command line
def _advice(estimate: dict | None, advice: str | None) -> str:
    if not estimate:
        return ""
    from sharding.memory import format_bytes

    dominant = max((k for k in estimate if k != "total"), key=estimate.get)
    return (f"; our estimate's largest component is {dominant} ({format_bytes(estimate[dominant])} of "
            f"{format_bytes(estimate['total'])}): {advice}")


def _fit_message(report: AotReport) -> str:
    from sharding.memory import format_bytes

    mem, hbm = report.memory, report.chip_spec["hbm_bytes"]
    parts = {"arguments (params, optimizer state, batch)": mem["argument"],
             "outputs not aliased": mem["output"] - mem["alias"], "temporaries (activations, logits, buffers)": mem["temp"]}
    largest = max(parts, key=parts.get)
    return (f"does not fit: {format_bytes(mem['total'])} per device, the {report.chip} chip has "
            f"{format_bytes(hbm)} (over by {format_bytes(mem['total'] - hbm)}); the largest term is {largest} "
            f"at {format_bytes(parts[largest])}" + _advice(report.estimate, report.advice))


def _refusal_message(err: DoesNotFit) -> str:
    from sharding.memory import format_bytes

    if err.required is None or err.available is None:
        return f"does not fit: the compiler refused the program ({err})" + _advice(err.estimate, err.advice)
    return (f"does not fit: the compiler needs {format_bytes(err.required)} of temporaries per device, the chip offers "
            f"{format_bytes(err.available)} (over by {format_bytes(err.required - err.available)}); the largest term "
            f"is the temporaries (activations, logits, buffers)" + _advice(err.estimate, err.advice))


def main(argv=None) -> AotReport:
    """``scripts/aot_compile.py``: compile a pretraining recipe's train step for a TPU slice and print the
    report; exit code 1 when it does not fit, 2 for a bad recipe, topology or mesh."""
    import argparse
    import json
    import os
    import sys

    from train import cli
    from train.pretrain import DATA_DEFAULTS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="pretraining recipe (YAML), as scripts/pretrain.py takes")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--topology", required=True, help="v5p:4x4x4, v5p-128, v5e:2x2, v5e-16, v4-32, v6e-8 ...")
    parser.add_argument("--mesh", help="mesh axes, e.g. fsdp=64 or data=2,fsdp=-1 (default: training.mesh)")
    parser.add_argument("--json", help="also write the report as JSON to this file")
    parser.add_argument("--hlo", help="write the optimized HLO text to this file")
    parser.add_argument("--decode", action="store_true",
                        help="compile one step of the serving engine's decode program (bf16) instead of the train step")
    parser.add_argument("--batch", type=int, default=8, help="--decode: rows decoded together (default 8)")
    parser.add_argument("--max-length", type=int, default=4096, help="--decode: KV cache slots per row")
    args = parser.parse_args(argv)
    if os.environ.get("JAX_PLATFORMS", "") != "cpu":
        print("note: run with JAX_PLATFORMS=cpu so JAX itself stays on the host CPU", file=sys.stderr)
    mesh = None
    if args.mesh:
        from sharding.mesh import parse_mesh_spec

        try:
            mesh = parse_mesh_spec(args.mesh)
        except ValueError as err:
            parser.error(str(err))
    try:
        recipe = cli.load_recipe(args.config, args.sets, DATA_DEFAULTS,
                                 extra=[(["training", "output_dir"], "/tmp/aot_compile", "aot")])
        if args.decode:
            report = compile_decode_step(recipe, args.topology, mesh, args.batch, args.max_length)
        else:
            report = compile_train_step(recipe, args.topology, mesh)
    except (cli.RecipeError, TopologyError, ValueError) as err:
        parser.error(str(err))
    except DoesNotFit as err:
        print(_refusal_message(err), file=sys.stderr)
        sys.exit(1)
    print(report.format())
    if args.json:
        record = {"what": report.what, "topology": report.topology, "chip": report.chip, "devices": report.devices,
                  "mesh": report.mesh, "memory": report.memory, "estimate": report.estimate,
                  "collectives": report.hlo.collectives, "program_flops": report.program_flops,
                  "cost_analysis_flops": report.cost_analysis_flops, "model_flops": report.model_flops,
                  "roofline_seconds": report.roofline_seconds, "mfu_bound": report.mfu_bound, "fits": report.fits,
                  "compile_seconds": report.compile_seconds}
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    if args.hlo:
        with open(args.hlo, "w") as f:
            f.write(report.text)
    if not report.fits:
        print(_fit_message(report), file=sys.stderr)
        sys.exit(1)
    return report
