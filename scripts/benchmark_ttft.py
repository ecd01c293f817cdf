"""Time to first token beside Hugging Face, with a prompt and an output budget.

Same machine, same random weights (HF builds a ~125M Llama, we load its checkpoint), float32, greedy. HF: generate
with one new token (its cache grows with the tokens, so the budget costs it nothing). Ours: generate with
``max_new_tokens=budget`` whose first token is made the EOS, so the loop ends after the prefill and the time is
the prefill into a cache of ``prompt + budget`` slots (buckets), plus the one-new-token call for comparison.

    python scripts/benchmark_ttft.py [--repeats 7]
Run it alone: on a 2-core machine any other busy process spoils the numbers.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import transformers_jax as tj  # noqa: E402
from scripts.benchmark import LLAMA_125M, llama_pair, median_time  # noqa: E402

SETTINGS = [(1, 16, 512), (1, 200, 1024), (8, 200, 1024)]  # (batch, prompt, budget)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    hf_model, ours = llama_pair(max_position_embeddings=2048)
    print(f"transformers_jax from {Path(tj.__file__).parent}; ~125M Llama, float32, greedy")
    print("| batch | prompt | budget | HF first token ms | ours, 1 new token, ms | ours, with the budget, ms |")
    print("|---|---|---|---|---|---|")
    for batch, prompt, budget in SETTINGS:
        ids = np.random.RandomState(prompt).randint(3, LLAMA_125M["vocab_size"], (batch, prompt))
        ids_t = torch.tensor(ids)

        def run_hf():
            with torch.inference_mode():
                return hf_model.generate(ids_t, attention_mask=torch.ones_like(ids_t), max_new_tokens=1,
                                         do_sample=False)

        first = np.asarray(ours.generate(ids, max_new_tokens=1))[:, -1]
        if not (first == run_hf().numpy()[:, -1]).all():
            sys.exit("the first tokens differ from HF's")
        stop = dict(max_new_tokens=budget, eos_token_id=sorted(set(first.tolist())), pad_token_id=0)
        if np.asarray(ours.generate(ids, **stop)).shape[1] != prompt + 1:
            sys.exit("generate did not stop after its first token")
        hf_s = median_time(run_hf, args.repeats)
        one_s = median_time(lambda: np.asarray(ours.generate(ids, max_new_tokens=1)), args.repeats)
        budget_s = median_time(lambda: np.asarray(ours.generate(ids, **stop)), args.repeats)
        print(f"| {batch} | {prompt} | {budget} | {hf_s * 1e3:.1f} | {one_s * 1e3:.1f} | {budget_s * 1e3:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
