"""Forward-pass benchmark: transformers_jax against Hugging Face PyTorch, same machine, same weights.

Both sides run float32 inference on random weights (the HF model is built from a config, saved,
and loaded here, so the numbers are computed from identical parameters; outputs are checked to
agree before timing). Reports the median wall time, the ratio (HF time / our time) and the
achieved GFLOP/s (matmul FLOPs: 2 x matmul params x tokens + attention scores and values).

    python scripts/benchmark.py                 # all cases
    python scripts/benchmark.py --case bert     # one case ("gemm": the raw matmul of each framework)
Run it alone: on a 2-core machine a second busy process makes the figures meaningless.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import torch
import transformers as hf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import transformers_jax as tj  # noqa: E402

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512)
LLAMA_125M = dict(vocab_size=32000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  num_key_value_heads=12, intermediate_size=2048, max_position_embeddings=1024,
                  tie_word_embeddings=False)


def llama_pair(**overrides):
    """(HF's model, ours): a Llama of ``LLAMA_125M`` (with ``overrides``) that HF builds with random weights (torch
    seed 0), and ours loaded from its checkpoint; float32, for benchmarks that run both on the same weights."""
    torch.manual_seed(0)
    config = hf.AutoConfig.for_model("llama", **{**LLAMA_125M, **overrides})
    hf_model = hf.AutoModelForCausalLM.from_config(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf_model.save_pretrained(tmp)
        return hf_model, tj.AutoModelForCausalLM.from_pretrained(tmp)


def forward_flops(config: dict, batch: int, length: int, kind: str) -> float:
    """Matmul FLOPs of one forward pass (embeddings lookups excluded, the LM head included)."""
    d, layers, ff = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    tokens = batch * length
    if kind == "bert":
        per_layer = 4 * d * d + 2 * d * ff
        head = 0  # BertModel: last hidden state (+ a pooler on one token per row, negligible)
    else:
        kv = config["num_key_value_heads"] * d // config["num_attention_heads"]
        per_layer = 2 * d * d + 2 * d * kv + 3 * d * ff
        head = d * config["vocab_size"]
    attention = 2 * 2 * batch * length * length * d * layers
    return 2 * tokens * (layers * per_layer + head) + attention


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (and compile, for JAX)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_ceiling(repeats: int) -> dict:
    """The float32 matmul each framework reaches alone: [1024, 768] x [768, 3072], BERT-base's MLP
    shape at batch 8 x 128. It bounds what any forward pass can reach on this machine."""
    m, k, n = 1024, 768, 3072
    a, b = jax.numpy.ones((m, k)), jax.numpy.ones((k, n))
    matmul = jax.jit(lambda x, y: x @ y)
    ta, tb = torch.ones(m, k), torch.ones(k, n)
    flops = 2 * m * k * n
    jax_s = median_time(lambda: matmul(a, b).block_until_ready(), repeats * 4)
    with torch.inference_mode():
        torch_s = median_time(lambda: ta @ tb, repeats * 4)
    return {"case": "float32 GEMM 1024x768x3072", "batch": m, "length": n, "max_abs_diff": 0.0,
            "hf_ms": torch_s * 1e3, "ours_ms": jax_s * 1e3, "speedup": torch_s / jax_s,
            "hf_gflops": flops / torch_s / 1e9, "ours_gflops": flops / jax_s / 1e9, "first_call_s": 0.0}


def run_case(name: str, kind: str, config: dict, batch: int, length: int, repeats: int) -> dict:
    torch.manual_seed(0)
    if kind == "bert":
        hf_model, ours_cls = hf.BertModel(hf.BertConfig(**config)), tj.BertModel
    else:
        hf_model, ours_cls = hf.LlamaForCausalLM(hf.LlamaConfig(**config)), tj.LlamaForCausalLM
    hf_model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf_model.save_pretrained(tmp)
        ours = ours_cls.from_pretrained(tmp)
    ids = np.random.RandomState(0).randint(0, config["vocab_size"], (batch, length))
    mask = np.ones_like(ids)
    ids_t, mask_t = torch.tensor(ids), torch.tensor(mask)
    ids_j, mask_j = jax.device_put(ids), jax.device_put(mask)
    key = "last_hidden_state" if kind == "bert" else "logits"

    def run_hf():
        with torch.inference_mode():
            return hf_model(ids_t, attention_mask=mask_t)[key]

    def run_ours():
        return jax.block_until_ready(ours(ids_j, attention_mask=mask_j)[key])

    compile_start = time.perf_counter()
    out = run_ours()
    compile_s = time.perf_counter() - compile_start
    diff = float(np.abs(np.asarray(out) - run_hf().numpy()).max())
    hf_s = median_time(run_hf, repeats)
    ours_s = median_time(run_ours, repeats)
    flops = forward_flops(config, batch, length, kind)
    return {
        "case": name, "batch": batch, "length": length, "max_abs_diff": diff,
        "hf_ms": hf_s * 1e3, "ours_ms": ours_s * 1e3, "speedup": hf_s / ours_s,
        "hf_gflops": flops / hf_s / 1e9, "ours_gflops": flops / ours_s / 1e9, "first_call_s": compile_s,
    }


CASES = {
    "bert": ("BERT-base forward", "bert", BERT_BASE, 8, 128),
    "llama_8x128": ("Llama ~125M forward", "llama", LLAMA_125M, 8, 128),
    "llama_1x512": ("Llama ~125M forward", "llama", LLAMA_125M, 1, 512),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=["gemm", *sorted(CASES)], action="append", help="case(s) to run (default: all)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), transformers {hf.__version__}")
    results = []
    print("| case | batch x length | HF PyTorch ms | ours ms | speedup | HF GFLOP/s | ours GFLOP/s | max abs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.case or ["gemm", *CASES]:
        r = gemm_ceiling(args.repeats) if name == "gemm" else run_case(*CASES[name], repeats=args.repeats)
        results.append(r)
        print(f"| {r['case']} | {r['batch']} x {r['length']} | {r['hf_ms']:.1f} | {r['ours_ms']:.1f} | "
              f"{r['speedup']:.2f}x | {r['hf_gflops']:.0f} | {r['ours_gflops']:.0f} | {r['max_abs_diff']:.1e} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
