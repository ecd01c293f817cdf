#!/usr/bin/env python
"""Train-step benchmark: our compiled JAX step against Hugging Face PyTorch, same machine.

One training step = forward + backward + clip-by-global-norm(1.0) + AdamW update on one batch of
causal-LM data, float32. Ours is ``train.step.make_train_step`` (the Trainer's step) on a
one-device mesh; Hugging Face's is ``transformers.LlamaForCausalLM`` with ``torch.optim.AdamW``.
The model is a GPT-2-small-sized (124M) Llama: hidden 768, 12 layers, 12 heads, MLP 3072, vocab
50257, tied embeddings; batch 4 x 256 tokens.

Reported: ms/step (median of the timed steps, after warm-up and compilation), tokens/s, the ratio
ours/HF in tokens/s, and MFU = tokens/s x FLOPs/token (``train.flops.flops_per_token``) / peak,
where the peak on a CPU is measured here: the best float32 GEMM (N x N, default 2048) FLOP/s of
torch and of JAX. On a GPU/TPU the datasheet peak from ``train.flops`` is used.

    python scripts/benchmark_train.py                       # CPU, both frameworks
    python scripts/benchmark_train.py --steps 5 --warmup 2  # more repeats
    python scripts/benchmark_train.py --gpu-1b              # ~1.2B Llama, bf16, on one GPU
Run it alone: on a small machine another busy process makes the figures meaningless.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GPT2_SIZE = dict(vocab_size=50257, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 num_key_value_heads=12, intermediate_size=3072, max_position_embeddings=1024,
                 tie_word_embeddings=True)
LLAMA_1B = dict(vocab_size=32000, hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, intermediate_size=8192, max_position_embeddings=2048,
                tie_word_embeddings=True, rms_norm_eps=1e-5)
LEARNING_RATE, WEIGHT_DECAY, MAX_GRAD_NORM = 1e-4, 0.01, 1.0
# --model: (model_type, config.json keys): a Llama of GPT-2 small's size, or GPT-2 small itself.
MODELS = {
    "llama-124m": ("llama", GPT2_SIZE),
    "gpt2": ("gpt2", dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024)),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per framework (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (compilation; default 1)")
    parser.add_argument("--batch", type=int, default=None, help="rows per step (default 4; 8 with --gpu-1b)")
    parser.add_argument("--seq", type=int, default=None, help="tokens per row (default 256; 2048 with --gpu-1b)")
    parser.add_argument("--attn", choices=("sdpa", "eager"), default="sdpa", help="HF attention implementation")
    parser.add_argument("--skip-hf", action="store_true", help="time ours only")
    parser.add_argument("--model", choices=sorted(MODELS), default="llama-124m", help="architecture (default llama-124m)")
    parser.add_argument("--gemm-size", type=int, default=2048, help="N of the N x N float32 GEMM peak probe")
    parser.add_argument("--gpu-1b", action="store_true",
                        help="a ~1.2B Llama in bf16 (float32 master weights, full remat) on one GPU")
    args = parser.parse_args(argv)
    args.batch = args.batch or (8 if args.gpu_1b else 4)
    args.seq = args.seq or (2048 if args.gpu_1b else 256)
    for name in ("steps", "batch", "seq", "gemm_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 1:
        parser.error("--warmup must be >= 1 (the first step compiles)")
    return args


def timed(step, warmup: int, steps: int) -> list[float]:
    """Seconds of each of ``steps`` calls of ``step()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------- peak
def gemm_peak(n: int, repeats: int = 5) -> dict:
    """Measured float32 N x N GEMM FLOP/s of torch and of JAX (median of ``repeats``)."""
    import jax
    import jax.numpy as jnp
    import torch

    flops = 2.0 * n ** 3
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y)
    jax_s = statistics.median(timed(lambda: matmul(a, a).block_until_ready(), 1, repeats))
    t = torch.randn(n, n)
    with torch.no_grad():
        torch_s = statistics.median(timed(lambda: t @ t, 1, repeats))
    return {"jax": flops / jax_s, "torch": flops / torch_s}


# ----------------------------------------------------------------------------- ours
def our_step(config_dict: dict, batch: np.ndarray, bf16: bool = False, remat: bool = False, model_type: str = "llama"):
    """A ``step()`` closure running our compiled train step on one device, and a loss reader."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import transformers_jax as tj
    from sharding.placement import batch_sharding, like_params_shardings
    from sharding.rules import rules_for_mesh
    from train.optim import lr_schedule, make_optimizer
    from train.step import make_train_step
    from transformers_jax.partitioning import param_shardings

    from transformers_jax.models.auto import MODEL_MAPPING

    model_class = MODEL_MAPPING["causal_lm"][model_type]
    config = model_class.config_class.from_dict(config_dict, param_dtype="float32",
                                                compute_dtype="bfloat16" if bf16 else "float32", remat=remat)
    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    rules = rules_for_mesh("dp", mesh)
    specs = model_class.param_specs(config)
    shardings = param_shardings(specs, mesh, rules)
    params = jax.jit(lambda: model_class(config, seed=0).params, out_shardings=shardings)()
    schedule = lr_schedule("constant", LEARNING_RATE, 1)
    optimizer = make_optimizer(params, optim="adamw", schedule=schedule, weight_decay=WEIGHT_DECAY,
                               max_grad_norm=MAX_GRAD_NORM)
    replicated = NamedSharding(mesh, PartitionSpec())
    opt_shardings = like_params_shardings(jax.eval_shape(optimizer.init, params), shardings, mesh)
    state = {"step": jnp.int32(0), "params": params,
             "opt_state": jax.jit(optimizer.init, out_shardings=opt_shardings)(params),
             "rng": jax.random.PRNGKey(0)}
    state_shardings = {"step": replicated, "params": shardings, "opt_state": opt_shardings, "rng": replicated}
    inputs = {"input_ids": batch, "labels": batch}
    batch_shardings = {k: batch_sharding(mesh, rules, 2) for k in inputs}
    train_step = make_train_step(model_class, config, optimizer, schedule, mesh=mesh, rules=rules,
                                 state_shardings=state_shardings, batch_shardings=batch_shardings, use_dropout=False)
    inputs = jax.device_put(inputs, batch_shardings)
    box = {"state": jax.device_put(state, state_shardings), "loss": None}

    def step():
        box["state"], metrics = train_step(box["state"], inputs)
        box["loss"] = float(jax.block_until_ready(metrics["loss"]))

    return step, config, lambda: box["loss"]


# ----------------------------------------------------------------------------- Hugging Face
def hf_step(config_dict: dict, batch: np.ndarray, attn: str, device: str = "cpu", bf16: bool = False,
            remat: bool = False, model_type: str = "llama"):
    """A ``step()`` closure running an HF PyTorch train step (AdamW, grad clipping), and a loss reader."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(model_type, **config_dict, attn_implementation=attn)
    model = transformers.AutoModelForCausalLM.from_config(config).to(device).train()
    if remat:
        model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    ids = torch.as_tensor(batch, dtype=torch.long, device=device)
    box = {"loss": None}

    def step():
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        box["loss"] = float(loss.detach())  # synchronises on CUDA

    return step, lambda: box["loss"]


# ----------------------------------------------------------------------------- report
def row(name: str, times: list[float], tokens: int, flops_per_token: float, peak: float | None, loss) -> dict:
    seconds = statistics.median(times)
    tokens_per_second = tokens / seconds
    mfu = tokens_per_second * flops_per_token / peak if peak else None
    return {"framework": name, "ms_per_step": seconds * 1e3, "tokens_per_second": tokens_per_second,
            "mfu": mfu, "loss_after": loss, "step_ms_all": [round(t * 1e3, 1) for t in times]}


def markdown(rows: list[dict], header: str) -> str:
    lines = [header, "", "| framework | ms/step | tokens/s | MFU | loss after the last step |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        mfu = "n/a" if r["mfu"] is None else f"{r['mfu']:.1%}"
        lines.append(f"| {r['framework']} | {r['ms_per_step']:.0f} | {r['tokens_per_second']:.0f} | {mfu} | "
                     f"{r['loss_after']:.3f} |")
    if len(rows) == 2:
        lines.append(f"\nours / HF tokens/s: {rows[0]['tokens_per_second'] / rows[1]['tokens_per_second']:.2f}x")
    return "\n".join(lines)


def peak_flops(args, device) -> tuple[float | None, str]:
    """(peak FLOP/s of one device, where it comes from)."""
    from train.flops import peak_flops_per_device

    if device.platform == "cpu":
        measured = gemm_peak(args.gemm_size)
        peak = max(measured.values())
        return peak, (f"measured float32 {args.gemm_size}^3 GEMM: torch {measured['torch'] / 1e9:.1f} GFLOP/s, "
                      f"jax {measured['jax'] / 1e9:.1f} GFLOP/s; peak = the higher")
    dtype = "bfloat16" if args.gpu_1b else "float32"
    peak = peak_flops_per_device(device, dtype)
    return peak, f"{device.device_kind} {dtype} datasheet peak from train/flops.py ({peak and peak / 1e12} TFLOP/s)"


def main(argv=None) -> dict:
    args = parse_args(argv)
    import jax

    from train.flops import flops_per_token

    device = jax.devices()[0]
    if args.gpu_1b and device.platform != "gpu":
        sys.exit(f"--gpu-1b needs a GPU; JAX sees {device.platform} ({device.device_kind})")
    model_type, config_dict = ("llama", LLAMA_1B) if args.gpu_1b else MODELS[args.model]
    batch = np.random.default_rng(0).integers(0, config_dict["vocab_size"], (args.batch, args.seq)).astype(np.int32)
    tokens = args.batch * args.seq
    peak, peak_source = peak_flops(args, device)

    step, config, loss = our_step(config_dict, batch, bf16=args.gpu_1b, remat=args.gpu_1b, model_type=model_type)
    fpt = flops_per_token(config, args.seq)
    rows = [row(f"transformers_jax (jit, {device.platform})", timed(step, args.warmup, args.steps), tokens, fpt,
                peak, loss())]
    del step
    torch_device = "cuda" if args.gpu_1b else "cpu"
    if not args.skip_hf and (torch_device == "cpu" or _torch_cuda()):
        step, loss = hf_step(config_dict, batch, args.attn, torch_device, bf16=args.gpu_1b, remat=args.gpu_1b,
                             model_type=model_type)
        rows.append(row(f"HF PyTorch ({args.attn}, {torch_device})", timed(step, args.warmup, args.steps), tokens,
                        fpt, peak, loss()))
    header = (f"{'Llama 1.2B bf16' if args.gpu_1b else args.model + ' float32'}, batch {args.batch} x {args.seq}, AdamW; "
              f"FLOPs/token {fpt / 1e9:.3f} G; peak {peak / 1e9 if peak else float('nan'):.1f} GFLOP/s "
              f"({peak_source}); {args.warmup} warm-up + {args.steps} timed steps, median")
    print(markdown(rows, header))
    result = {"config": config_dict, "batch": args.batch, "seq": args.seq, "flops_per_token": fpt, "peak": peak,
              "peak_source": peak_source, "rows": rows}
    print(json.dumps(result))
    return result


def _torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
