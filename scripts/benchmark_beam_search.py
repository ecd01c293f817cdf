"""Beam search beside Hugging Face: a causal LM continuing a long prompt.

Same machine, same random weights (HF builds a ~125M Llama, we load its checkpoint), float32, ``num_beams`` beams,
exactly ``--new`` new tokens (min_new_tokens on both sides), early stopping off. Reports seconds per call and
whether the sequences are the same. A long prompt is where the per-step reorder of the cache costs: every step
gathers each beam's source beam (HF: ``index_select`` on every layer's cache; ours: the generated slots only, the
prompt's being the same in every beam of a prompt).

    python scripts/benchmark_beam_search.py [--prompt 400 --new 32 --beams 4 --batch 2 --repeats 3]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", type=int, default=400)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    hf_model, ours = llama_pair(max_position_embeddings=2048)
    ids = np.random.RandomState(0).randint(3, LLAMA_125M["vocab_size"], (args.batch, args.prompt))
    settings = dict(max_new_tokens=args.new, min_new_tokens=args.new, num_beams=args.beams, do_sample=False,
                    early_stopping=False)

    def run_hf():
        with torch.inference_mode():
            return hf_model.generate(torch.tensor(ids), attention_mask=torch.ones(ids.shape, dtype=torch.long),
                                     **settings).numpy()

    def run_ours():
        return np.asarray(ours.generate(ids, **settings))

    same = np.array_equal(run_ours(), run_hf())
    hf_s, ours_s = median_time(run_hf, args.repeats), median_time(run_ours, args.repeats)
    print(f"transformers_jax from {Path(tj.__file__).parent}; ~125M Llama, float32, batch {args.batch}, "
          f"{args.beams} beams, prompt {args.prompt}, {args.new} new tokens")
    print(f"HF {hf_s:.3f} s, ours {ours_s:.3f} s per call ({hf_s / ours_s:.2f}x), same sequences: {same}")


if __name__ == "__main__":
    main()
