"""Generation benchmark: transformers_jax generate() against Hugging Face PyTorch generate().

Same machine, same random weights (HF builds them, we load its checkpoint): a ~125M Llama, or with
``--model gpt2`` GPT-2 124M (the real architecture: learned positions, LayerNorm, GELU MLP, tied head), float32,
greedy, prompt of 16 tokens, exactly 64 new tokens (min_new_tokens=64 on both sides). Reports new
tokens/s at batch 1 and 8, time to first token (generate with one new token: prefill + one step),
compile time (first call minus a warm call) separately, and batch-1 decode as a fraction of the
memory-bandwidth limit: (bytes of weights + KV cache read per token) / measured read bandwidth.

    python scripts/benchmark_generate.py [--model llama-125m|gpt2] [--repeats 5]
    python scripts/benchmark_generate.py --gpu        # bfloat16 on one GPU, HF on the same GPU (gpu_check.sh)
Run it alone: on a 2-core machine any other busy process spoils the numbers.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers as hf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import transformers_jax as tj  # noqa: E402
from scripts.benchmark import LLAMA_125M, median_time as timed  # noqa: E402

# --model: (model_type, config.json keys). GPT-2 124M is the real GPT-2 small shape.
MODELS = {
    "llama-125m": ("llama", dict(LLAMA_125M, bos_token_id=1, eos_token_id=2, pad_token_id=0)),
    "gpt2": ("gpt2", dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024, pad_token_id=0)),
    # the train benchmark's ~1.2B Llama (--gpu-1b there): on a GPU a 125M model is launch-bound, not bandwidth-bound
    "llama-1b": ("llama", dict(vocab_size=32000, hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                               num_key_value_heads=8, intermediate_size=8192, max_position_embeddings=2048,
                               tie_word_embeddings=True, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                               pad_token_id=0)),
}

PROMPT, NEW = 16, 64


def read_bandwidth() -> float:
    """Bytes/s at which XLA reads a large array (a sum over 256 MiB) on this machine: decoding one
    token must read every weight once, so this bounds batch-1 decode speed."""
    x = jnp.ones((64 * 2**20,), jnp.float32)  # 256 MiB
    total = jax.jit(jnp.sum)
    seconds = timed(lambda: total(x).block_until_ready(), 5)
    return x.nbytes / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", choices=sorted(MODELS), default="llama-125m")
    parser.add_argument("--gpu", action="store_true", help="bfloat16 weights and compute, both frameworks on the GPU")
    args = parser.parse_args()
    if args.gpu and jax.devices()[0].platform != "gpu":
        sys.exit(f"--gpu needs a GPU; JAX sees {jax.devices()[0].platform}")
    if args.gpu and not torch.cuda.is_available():
        sys.exit("--gpu needs a CUDA build of torch")
    device, dtype = ("cuda", "bfloat16") if args.gpu else ("cpu", "float32")
    torch.manual_seed(0)
    model_type, config = MODELS[args.model]
    hf_model = hf.AutoModelForCausalLM.from_config(hf.AutoConfig.for_model(model_type, **config)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf_model.save_pretrained(tmp)
        ours = tj.AutoModelForCausalLM.from_pretrained(tmp, **({"dtype": dtype, "param_dtype": dtype} if args.gpu else {}))
    hf_model = hf_model.to(device, getattr(torch, dtype))
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, torch {torch.__version__} on {device} "
          f"({torch.get_num_threads()} threads), transformers {hf.__version__}; {args.model}, "
          f"{ours.num_parameters() / 1e6:.0f}M params, {dtype}, greedy")
    print("| batch | HF new tok/s | ours new tok/s | speedup | HF first token ms | ours first token ms | "
          "ours compile s | same tokens |")
    print("|---|---|---|---|---|---|---|---|")
    for batch in (1, 8):
        ids = np.random.RandomState(batch).randint(3, ours.config.vocab_size, (batch, PROMPT))
        mask = np.ones_like(ids)
        ids_t, mask_t = torch.tensor(ids, device=device), torch.tensor(mask, device=device)

        def run_hf(new=NEW):
            with torch.inference_mode():
                out = hf_model.generate(ids_t, attention_mask=mask_t, max_new_tokens=new, min_new_tokens=new,
                                        do_sample=False)
            return out.cpu()  # waits for the device

        def run_ours(new=NEW):
            return np.asarray(ours.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                            do_sample=False))

        start = time.perf_counter()
        first = run_ours()
        first_call = time.perf_counter() - start
        ours_s = timed(run_ours, args.repeats)
        compile_s = first_call - ours_s
        same = bool((first == run_hf().numpy()).all())
        hf_s = timed(run_hf, args.repeats)
        hf_first = timed(lambda: run_hf(1), args.repeats)
        ours_first = timed(lambda: run_ours(1), args.repeats)
        tokens = batch * NEW
        print(f"| {batch} | {tokens / hf_s:.1f} | {tokens / ours_s:.1f} | {hf_s / ours_s:.2f}x | "
              f"{hf_first * 1e3:.0f} | {ours_first * 1e3:.0f} | {compile_s:.1f} | {same} |", flush=True)
        if batch == 1:
            bandwidth = read_bandwidth()
            item = np.dtype(jnp.dtype(dtype)).itemsize
            weight_bytes = item * ours.num_parameters()
            c = ours.config
            kv_bytes = 2 * item * c.num_hidden_layers * (PROMPT + NEW) * c.num_key_value_heads * c.head_dim
            per_token = (ours_s - ours_first) / (NEW - 1)
            limit = (weight_bytes + kv_bytes) / bandwidth
            print(f"batch-1 decode: {per_token * 1e3:.1f} ms/token; bandwidth limit {limit * 1e3:.1f} ms/token "
                  f"({(weight_bytes + kv_bytes) / 1e6:.0f} MB per token at {bandwidth / 1e9:.1f} GB/s read) "
                  f"-> {limit / per_token:.0%} of the limit")


if __name__ == "__main__":
    main()
