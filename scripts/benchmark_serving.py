"""Serving benchmark: 64 concurrent requests through the continuous-batching engine against the same
requests served one by one with generate().

A random ~10M-param Llama (hidden 256, 6 layers, vocab 8192), float32, greedy, prompts of 8-64
tokens, 64 new tokens each. Reports requests/s, new tokens/s and time to first token, and checks
that every engine output equals its own offline generate() output.

    python scripts/benchmark_serving.py
Run it alone: on a 2-core machine any other busy process spoils the numbers.
"""
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import transformers_jax as tj  # noqa: E402
from serving.engine import Engine, SamplingParams  # noqa: E402

NUM_REQUESTS, NEW = 64, 64


def main():
    config = tj.LlamaConfig.from_dict(dict(
        vocab_size=8192, hidden_size=256, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=8,
        num_key_value_heads=4, max_position_embeddings=512, eos_token_id=None, bos_token_id=1, pad_token_id=0))
    model = tj.LlamaForCausalLM(config, seed=0)
    rng = np.random.RandomState(0)
    prompts = [rng.randint(3, 8192, rng.randint(8, 65)).tolist() for _ in range(NUM_REQUESTS)]
    print(f"{model.num_parameters() / 1e6:.1f}M params on {jax.devices()[0].platform}; "
          f"{NUM_REQUESTS} requests, prompts 8-64 tokens, {NEW} new tokens each, greedy")

    def generate(prompt):
        return np.asarray(model.generate(np.array(prompt)[None], max_new_tokens=NEW, do_sample=False))[0, len(prompt):]

    for length in (8, 20, 40):  # compile the prompt buckets first
        generate(prompts[0][:length])
    start = time.perf_counter()
    references = [generate(p).tolist() for p in prompts]
    one_by_one = time.perf_counter() - start
    print("| server | requests/s | new tokens/s | TTFT p50 s | TTFT p90 s | equal to generate |")
    print("|---|---|---|---|---|---|")
    print(f"| generate, one by one | {NUM_REQUESTS / one_by_one:.2f} | {NUM_REQUESTS * NEW / one_by_one:.0f} | | | |")
    for slots, chunk in ((16, 8), (64, 16)):
        engine = Engine(model, num_slots=slots, max_length=256, chunk_steps=chunk, max_queue=256)
        engine.start()  # warm-up compiles every bucket (not timed)
        start = time.perf_counter()
        handles = [engine.submit(p, SamplingParams(max_tokens=NEW, temperature=0)) for p in prompts]
        results = [h.result(timeout=600) for h in handles]
        seconds = time.perf_counter() - start
        ttft = engine.metrics()["ttft_seconds"]
        engine.shutdown()
        equal = sum(r == ref for r, ref in zip(results, references))
        print(f"| engine, {slots} slots, chunk {chunk} | {NUM_REQUESTS / seconds:.2f} | {NUM_REQUESTS * NEW / seconds:.0f} "
              f"| {ttft['p50']:.2f} | {ttft['p90']:.2f} | {equal}/{NUM_REQUESTS} |", flush=True)


if __name__ == "__main__":
    main()
