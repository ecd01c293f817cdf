#!/usr/bin/env python
"""Mixture-of-experts train-step benchmark: grouped (dropless) experts against computing every expert,
against the dense model of equal active params, and against Hugging Face PyTorch's Mixtral, in one run.

One training step = forward + backward + clip-by-global-norm(1.0) + AdamW on one batch of causal-LM
data, float32, one device (``scripts/benchmark_train.py``'s steps). The MoE model is a small Mixtral:
8 experts, top-2, hidden 512, expert MLP 1024, 4 layers, vocab 8192; router logits on, so both
frameworks add the load-balancing loss. The dense model is the same Llama with MLP width
2 x 1024 = 2048: the same matmul work per token as the MoE model's two routed experts.

Rows (ours): ``grouped (tiled)`` is the default on CPU (each expert multiplies only its rows);
``grouped (ragged_dot)`` is ``jax.lax.ragged_dot``, which XLA:CPU lowers to a product over every
expert; ``all experts`` replaces the dispatch by every expert on every token (the dense reference
of ``layers.moe``). FLOPs/token are ``6 N + attention`` with N the matmul params one token goes
through (``train.flops``: for the MoE model k/E of each expert kernel, the router in full; for the
all-experts row every expert).

    python scripts/benchmark_moe.py                 # CPU: ours (4 rows) and HF (2 rows)
    python scripts/benchmark_moe.py --steps 5       # more timed steps
    python scripts/benchmark_moe.py --generate      # batch-1 greedy decoding of the same Mixtral instead
Run it alone: on a small machine another busy process makes the figures meaningless.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_train import hf_step, our_step, row, timed  # noqa: E402

MOE = dict(vocab_size=8192, hidden_size=512, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=8,
           num_key_value_heads=4, max_position_embeddings=1024, num_local_experts=8, num_experts_per_tok=2,
           output_router_logits=True, tie_word_embeddings=False, rms_norm_eps=1e-5)
DENSE = {k: v for k, v in MOE.items() if k not in ("num_local_experts", "num_experts_per_tok", "output_router_logits")}
DENSE["intermediate_size"] = MOE["intermediate_size"] * MOE["num_experts_per_tok"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (compilation; default 1)")
    parser.add_argument("--batch", type=int, default=4, help="rows per step (default 4)")
    parser.add_argument("--seq", type=int, default=256, help="tokens per row (default 256)")
    parser.add_argument("--skip-hf", action="store_true", help="time ours only")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--generate", action="store_true",
                        help="time batch-1 greedy generate (16-token prompt, 64 new tokens) against HF instead")
    return parser.parse_args(argv)


def flops_per_token(config, seq: int, every_expert: bool = False) -> float:
    """``6 N + attention`` (``train.flops``), N with k/E of each expert kernel, or every expert."""
    from train.flops import flops_per_token as count, matmul_param_count

    return count(config, seq, num_params=matmul_param_count(config, active=not every_expert))


def all_experts_dispatch():
    """Swap the grouped dispatch for every expert on every token (``layers.moe.moe_dense_reference``)."""
    from transformers_jax.layers import moe

    moe.dispatch_combine = lambda params, x, weights, experts, act, implementation="auto": (
        moe.moe_dense_reference(params, x, weights, experts, act))


def generate_rows(new_tokens: int = 64, repeats: int = 3) -> dict:
    """Batch-1 greedy ``generate`` of the Mixtral, ours and HF's from the same weights: tokens/s
    (median of ``repeats`` timed calls after one untimed) and whether the tokens are equal."""
    import statistics
    import tempfile

    import torch
    import transformers

    import transformers_jax as tj

    hf_config = {k: v for k, v in MOE.items() if k != "output_router_logits"}
    torch.manual_seed(0)
    theirs = transformers.MixtralForCausalLM(transformers.MixtralConfig(**hf_config)).eval()
    folder = tempfile.mkdtemp()
    theirs.save_pretrained(folder)
    ours = tj.MixtralForCausalLM.from_pretrained(folder)
    ids = np.random.default_rng(0).integers(3, MOE["vocab_size"], (1, 16))
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)

    def ours_call():
        return np.asarray(ours.generate(ids, **kwargs))

    def hf_call():
        with torch.no_grad():
            return theirs.generate(torch.tensor(ids), pad_token_id=0, **kwargs).numpy()

    out = {}
    for name, call in (("ours", ours_call), ("HF PyTorch", hf_call)):
        tokens = call()
        out[name] = new_tokens / statistics.median(timed(call, 0, repeats))
        out[name + " tokens"] = tokens
    same = bool((out.pop("ours tokens") == out.pop("HF PyTorch tokens")).all())
    print(f"batch-1 greedy, 16-token prompt, {new_tokens} new tokens: ours {out['ours']:.1f} tok/s, "
          f"HF {out['HF PyTorch']:.1f} tok/s, ours / HF {out['ours'] / out['HF PyTorch']:.2f}x, same tokens: {same}")
    return {**out, "same_tokens": same}


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    import jax

    if args.generate:
        return [generate_rows()]

    batch = np.random.default_rng(0).integers(0, MOE["vocab_size"], (args.batch, args.seq)).astype(np.int32)
    tokens = args.batch * args.seq
    rows = []

    def ours(name, config_dict, model_type, every_expert=False):
        step, config, loss = our_step(config_dict, batch, model_type=model_type)
        times = timed(step, args.warmup, args.steps)
        out = row(name, times, tokens, 0.0, None, loss())
        out.pop("mfu")
        out["gflops_per_token"] = flops_per_token(config, args.seq, every_expert) / 1e9
        rows.append(out)
        print(json.dumps(out), flush=True)

    ours("ours: MoE, grouped (tiled)", dict(MOE, moe_implementation="tiled"), "mixtral")
    ours("ours: MoE, grouped (ragged_dot)", dict(MOE, moe_implementation="ragged_dot"), "mixtral")
    ours("ours: dense, equal active params", DENSE, "llama")
    if not args.skip_hf:
        for name, config_dict, model_type, attn in (("HF PyTorch: Mixtral", MOE, "mixtral", "sdpa"),
                                                     ("HF PyTorch: dense", DENSE, "llama", "sdpa")):
            step, loss = hf_step(config_dict, batch, attn, model_type=model_type)
            times = timed(step, args.warmup, args.steps)
            from transformers_jax.models.auto import MODEL_MAPPING

            config = MODEL_MAPPING["causal_lm"][model_type].config_class.from_dict(config_dict)
            out = row(name, times, tokens, 0.0, None, loss())
            out.pop("mfu")
            out["gflops_per_token"] = flops_per_token(config, args.seq) / 1e9
            rows.append(out)
            print(json.dumps(out), flush=True)
    all_experts_dispatch()  # last: it replaces the dispatch for the rest of the process
    ours("ours: MoE, all experts on every token", dict(MOE, moe_implementation="tiled"), "mixtral", every_expert=True)

    base = rows[0]["tokens_per_second"]
    print(f"\n{jax.devices()[0].device_kind}; batch {args.batch} x {args.seq} tokens, float32, AdamW\n")
    print("| step | ms/step | tokens/s | vs ours grouped | GFLOPs/token (6N + attention) | loss after |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['framework']} | {r['ms_per_step']:.0f} | {r['tokens_per_second']:.0f} | "
              f"{r['tokens_per_second'] / base:.2f}x | {r['gflops_per_token']:.3f} | {r['loss_after']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
