"""Where a generated token's time goes: ``generate`` under the JAX profiler, op by op.

Runs a model's ``generate`` (greedy, ``--batch`` rows, a ``--prompt``-token prompt, exactly ``--new`` new tokens)
once under ``jax.profiler.trace`` (a Perfetto / TensorBoard trace is written to ``--trace-dir``), reads the
compiled decoding program's HLO (``generation.utils.recorded_loops``) to know every op's kind and the bytes
of its operands and result, and prints two tables from the trace:

* **per decode step** (the ops inside the decoding ``while`` loop, divided by its steps), and
* **prefill** (everything outside the loop: the prompt's forward, the first token),

each as time per op category (weight-reading dots, other dots, copies/transposes, dynamic-update-slices,
reductions, slices, other fusions), calls, MB moved (operands + results) and the bandwidth that implies.
Then the bound: the bytes of weights one step must read over the bandwidth XLA's own matrix-vector product
reaches on the model's weight shapes (each timed alone here, weights larger than the caches), next to the
measured tokens/s and time to first token (without the profiler). A step near the bound spends nearly all
its time in the weight dots; anything else in the table is what a token costs beyond reading the weights.

    python scripts/profile_decode.py [--model llama-125m|gpt2|llama-1b|PATH] [--batch 1] [--new 64]

Run it alone: on a 2-core machine any other busy process spoils the numbers.
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import transformers_jax as tj  # noqa: E402
from transformers_jax import hlo_text  # noqa: E402
from transformers_jax.generation.utils import recorded_loops  # noqa: E402

WEIGHT_ELEMENTS = 1 << 16  # a rank-2 dot operand at least this big is a weight matrix
CONTROL = ("while", "call", "conditional", "tuple", "get-tuple-element", "parameter", "constant", "bitcast")
CATEGORIES = ("weight dots", "other dots", "copies/transposes", "dynamic-update-slices", "reductions", "slices",
              "other fusions")


def weight_operands(op: hlo_text.Instruction) -> list:
    """The operands of a dot that are weight matrices (rank 2, at least WEIGHT_ELEMENTS)."""
    return [s for s in op.operands if len(s[1]) == 2 and np.prod(s[1]) >= WEIGHT_ELEMENTS]


def category(op: hlo_text.Instruction) -> str:
    """The table row of an HLO op, by what it does (fusions by the ops their names list)."""
    lowered = op.name.lower()
    if hlo_text.is_product(op):
        return "weight dots" if weight_operands(op) else "other dots"
    for key, row in (("dynamic-update-slice", "dynamic-update-slices"), ("copy", "copies/transposes"),
                     ("transpose", "copies/transposes"), ("reduce", "reductions"), ("slice", "slices")):
        if key in lowered or key == op.opcode:
            return row
    return "other fusions"


def moved_bytes(op: hlo_text.Instruction) -> int:
    """Bytes an op reads and writes: operands plus result (an upper bound for fusions that read part of an
    operand); a copy or slice reads and writes its result's bytes; an in-place dynamic-update-slice writes its
    update into the buffer it is given (the buffer itself is neither read nor copied)."""
    kind = category(op)
    if kind == "dynamic-update-slices":
        update = hlo_text.nbytes(op.operands) - max((hlo_text.nbytes([s]) for s in op.operands), default=0)
        return 2 * update
    if kind in ("copies/transposes", "slices"):  # they read what they write, out of a possibly larger operand
        return 2 * hlo_text.nbytes(op.result)
    return hlo_text.nbytes(op.result) + hlo_text.nbytes(op.operands)


def trace_events(trace_dir: str) -> list[dict]:
    files = glob.glob(f"{trace_dir}/**/*perfetto_trace.json.gz", recursive=True)
    if not files:
        sys.exit(f"no Perfetto trace under {trace_dir}: this jax does not write one (jax.profiler.trace)")
    data = json.load(gzip.open(max(files)))
    events = data["traceEvents"] if isinstance(data, dict) else data
    return [e for e in events if e.get("ph") == "X" and "dur" in e]


def table(title: str, rows: dict, divide: float, total_us: float):
    print(f"\n{title}")
    print("| category | calls | ms | MB read + written | GB/s | share |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in CATEGORIES:
        calls, us, moved = rows.get(name, (0, 0.0, 0))
        if not calls:
            continue
        rate = moved / (us * 1e-6) / 1e9 if us else float("nan")
        print(f"| {name} | {calls / divide:.0f} | {us / divide / 1e3:.2f} | {moved / divide / 1e6:.1f} | {rate:.1f} | "
              f"{us / total_us:.0%} |")
    print(f"| all ops | | {total_us / divide / 1e3:.2f} | | | |")


def matvec_bandwidth(shapes, rows: int, dtype) -> dict:
    """Bytes/s of XLA's ``[rows, K] x [K, N]`` on each weight shape: one program multiplies by enough separate
    weight arrays (>= 128 MB together) that they come from memory, not the caches; median of 20 runs."""
    out = {}
    for shape in sorted(set(shapes)):
        copies = max(2, int(np.ceil(128e6 / (np.prod(shape) * jnp.dtype(dtype).itemsize))))
        weights = [jnp.full(shape, 0.01 * (i + 1), dtype) for i in range(copies)]
        x = jnp.ones((rows, shape[0]), dtype)
        run = jax.jit(lambda weights, x: sum((x @ w)[:, :1] for w in weights))
        run(weights, x).block_until_ready()
        times = []
        for _ in range(20):
            start = time.perf_counter()
            run(weights, x).block_until_ready()
            times.append(time.perf_counter() - start)
        out[shape] = sum(w.nbytes for w in weights) / float(np.median(times))
    return out


def read_per_step(model) -> list[tuple[int, int]]:
    """The weight matrices one decoding step reads, as [in, out] shapes, one entry per matrix: every 2-D kernel
    of the decoding params (a stacked [L, in, out] leaf counts L times), the LM head (the embedding table when
    tied); the input embedding is a row lookup and not counted. (Mixture-of-experts layers are counted whole, an
    upper bound for a step that reads only the chosen experts.)"""
    shapes = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(model.decoding_params()):
        name = jax.tree_util.keystr(path)
        if leaf.ndim < 2 or "embed" in name:
            continue
        shapes += [tuple(leaf.shape[-2:])] * int(np.prod(leaf.shape[:-2], dtype=np.int64))
    if getattr(model.config, "tie_word_embeddings", False):
        shapes.append((model.config.hidden_size, model.config.vocab_size))
    return shapes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="llama-125m", help="llama-125m, gpt2, llama-1b, or a saved model folder")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trace-dir", default=None, help="where the trace goes (default: a temporary folder)")
    parser.add_argument("--gpu", action="store_true", help="bfloat16 weights and compute on the GPU (gpu_check.sh)")
    args = parser.parse_args()
    if args.gpu and jax.devices()[0].platform != "gpu":
        sys.exit(f"--gpu needs a GPU; JAX sees {jax.devices()[0].platform}")
    dtypes = {"dtype": "bfloat16", "param_dtype": "bfloat16"} if args.gpu else {}

    if Path(args.model).is_dir():
        model = tj.AutoModelForCausalLM.from_pretrained(args.model, **dtypes)
    else:
        from scripts.benchmark_generate import MODELS

        model_type, values = MODELS[args.model]
        with tempfile.TemporaryDirectory() as folder:  # random weights, loaded as a checkpoint is (dtypes applied)
            tj.AutoModelForCausalLM.from_config(tj.AutoConfig.for_model(model_type, **values)).save_pretrained(folder)
            model = tj.AutoModelForCausalLM.from_pretrained(folder, **dtypes)
    ids = np.random.RandomState(0).randint(3, model.config.vocab_size, (args.batch, args.prompt))

    def generate(new):
        return np.asarray(model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False))

    def median_seconds(new):
        generate(new)  # compiled (and the decoding params laid out) before timing
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            generate(new)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    total_s, first_s = median_seconds(args.new), median_seconds(1)
    with recorded_loops() as calls:
        generate(args.new)
    ops = hlo_text.instructions(calls[-1]().compile().as_text())
    loop_ops = hlo_text.loop_instructions(ops)

    trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="profile_decode_")
    shutil.rmtree(trace_dir, ignore_errors=True)
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        generate(args.new)
    events = [e for e in trace_events(trace_dir) if e["name"] in ops and ops[e["name"]].opcode not in CONTROL]
    inside = collections.defaultdict(lambda: [0, 0.0, 0])
    outside = collections.defaultdict(lambda: [0, 0.0, 0])
    for e in events:
        op = ops[e["name"]]
        row = (inside if op.name in loop_ops else outside)[category(op)]
        row[0] += 1
        row[1] += e["dur"]
        row[2] += moved_bytes(op)
    steps = args.new - 1  # the loop feeds every new token but the last
    inside_us = sum(r[1] for r in inside.values())
    outside_us = sum(r[1] for r in outside.values())
    weights = read_per_step(model)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; {args.model}, "
          f"{model.num_parameters() / 1e6:.0f}M params, {model.config.compute_dtype}, batch {args.batch}, prompt "
          f"{args.prompt}, {args.new} new tokens; trace in {trace_dir}")
    table(f"Per decode step ({steps} steps inside the loop; under the profiler)", inside, steps, inside_us)
    table("Prefill and first token (outside the loop; under the profiler)", outside, 1, outside_us)

    item = jnp.dtype(model.config.compute_dtype).itemsize
    weight_bytes_per_step = sum(np.prod(s) for s in weights) * item
    bandwidth = matvec_bandwidth(weights, args.batch, model.config.compute_dtype)
    matvec_bps = weight_bytes_per_step / sum(np.prod(s) * item / bandwidth[s] for s in weights)
    step_s = (total_s - first_s) / (args.new - 1)
    ceiling_s = weight_bytes_per_step / matvec_bps
    weight_share = inside.get("weight dots", [0, 0.0, 0])[1] / inside_us if inside_us else 0.0
    print(f"\nWithout the profiler: {args.batch * args.new / total_s:.1f} new tokens/s ({step_s * 1e3:.2f} ms per step), "
          f"first token {first_s * 1e3:.0f} ms")
    print(f"Weights read per step {weight_bytes_per_step / 1e6:.0f} MB; XLA's matvec on these shapes "
          f"{matvec_bps / 1e9:.1f} GB/s (" + ", ".join(f"{s[0]}x{s[1]} {b / 1e9:.0f}" for s, b in sorted(bandwidth.items()))
          + f") -> ceiling {ceiling_s * 1e3:.2f} ms per step = {args.batch / ceiling_s:.1f} tokens/s; "
          f"measured step at {ceiling_s / step_s:.0%} of the ceiling")
    print(f"Share of the profiled step outside the weight dots: {1 - weight_share:.0%}")


if __name__ == "__main__":
    main()
