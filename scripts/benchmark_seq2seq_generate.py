"""Encoder-decoder generation benchmark: transformers_jax generate() beside Hugging Face PyTorch generate().

Same machine, same random weights (HF builds them from a config, we load its checkpoint), float32: a
T5-small-sized T5 (d_model 512, 6 + 6 layers, 8 heads, d_ff 2048, vocabulary 32128, relative position
buckets) or, with ``--model bart-base``, a BART-base-sized BART. A batch of 4 encoder inputs of 128 tokens;
exactly 32 new tokens (``min_new_tokens=32`` on both sides, so neither stops early), greedy and beam search
with 4 beams. Reports the median seconds per generate call of each library, their ratio (HF / ours: above
1 means we are faster), and our first call's compile time separately.

    python scripts/benchmark_seq2seq_generate.py [--model t5-small|bart-base] [--repeats 5]
Run it alone: on a 2-core machine any other busy process spoils the numbers.
"""
from __future__ import annotations

import argparse
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
from scripts.benchmark import median_time  # noqa: E402

MODELS = {
    "t5-small": ("t5", dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
                            num_heads=8, feed_forward_proj="relu", pad_token_id=0, eos_token_id=1,
                            decoder_start_token_id=0)),
    "bart-base": ("bart", dict(vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6,
                               encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072,
                               decoder_ffn_dim=3072, max_position_embeddings=1024)),
}
BATCH, INPUT, NEW = 4, 128, 32
SETTINGS = {"greedy": dict(num_beams=1), "beam 4": dict(num_beams=4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", choices=sorted(MODELS), default="t5-small")
    args = parser.parse_args()
    torch.manual_seed(0)
    model_type, config = MODELS[args.model]
    hf_model = hf.AutoModelForSeq2SeqLM.from_config(hf.AutoConfig.for_model(model_type, **config)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf_model.save_pretrained(tmp)
        ours = tj.AutoModelForSeq2SeqLM.from_pretrained(tmp)
    print(f"jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{args.model}: {sum(p.numel() for p in hf_model.parameters()) / 1e6:.1f}M params, batch {BATCH}, "
          f"{INPUT} input tokens, {NEW} new tokens")
    ids = np.random.RandomState(0).randint(3, config["vocab_size"], (BATCH, INPUT))
    mask = np.ones_like(ids)
    common = dict(max_new_tokens=NEW, min_new_tokens=NEW)
    print(f"| setting | HF PyTorch s/call | ours s/call | HF / ours | our compile s | same tokens |")
    print("|---|---|---|---|---|---|")
    for name, setting in SETTINGS.items():
        kwargs = {**common, **setting}

        def run_hf():
            with torch.no_grad():
                return hf_model.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), **kwargs).numpy()

        def run_ours():
            return np.asarray(ours.generate(ids, attention_mask=mask, **kwargs))

        start = time.perf_counter()
        first = run_ours()
        first_seconds = time.perf_counter() - start
        ours_seconds = median_time(run_ours, args.repeats)
        want = run_hf()
        hf_seconds = median_time(run_hf, args.repeats)
        same = first.shape == want.shape and bool((first == want).all())
        print(f"| {name} | {hf_seconds:.3f} | {ours_seconds:.3f} | {hf_seconds / ours_seconds:.2f}x | "
              f"{first_seconds - ours_seconds:.1f} | {same} |", flush=True)


if __name__ == "__main__":
    main()
