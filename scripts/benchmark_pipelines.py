"""Pipelines beside Hugging Face's, same machine, same weights, one process.

1. Sentence embeddings: the ``feature-extraction`` pipeline over the shipped all-MiniLM-L6-v2 at
   ``batch_size=64``, mean-pooled into one vector per sentence (as sentence-transformers does);
   sentences/s for ours and for ``transformers.pipeline`` on the same files.
2. Text classification: ``text-classification`` over 1,000 texts with a MiniLM encoder and a
   2-label head (the HF model is built from the MiniLM checkpoint with a seeded head, saved, and
   both pipelines load that directory); texts/s for both.

Before timing, both pipelines' results are checked to agree (embeddings to 1e-4, labels equal,
scores to 1e-4). Each side runs once untimed first (ours compiles one program per length bucket
then; HF warms its kernels), then the median of ``--repeats`` timed runs is reported.

    python scripts/benchmark_pipelines.py [--sentences 1024] [--texts 1000] [--repeats 3]
Run it alone: on a 2-core machine a second busy process makes the figures meaningless.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers as hf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import transformers_jax as tj  # noqa: E402
from train.cli import shipped_minilm_dir as minilm_dir  # noqa: E402

WORDS = ("the quick brown fox jumps over a lazy dog while JAX compiles programs for every bucket of "
         "sentences that people embed search rank and classify in batches on machines large and small").split()


def make_texts(count: int, seed: int) -> list[str]:
    """Sentences of 4 to 40 words drawn from a fixed vocabulary (varied lengths exercise the buckets)."""
    rng = np.random.RandomState(seed)
    return [" ".join(rng.choice(WORDS, rng.randint(4, 41))).capitalize() + "." for _ in range(count)]


def timed(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up (compiles ours)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def mean_pool(token_vectors, lengths) -> np.ndarray:
    """[1, T, D] per sentence (the pipeline's nested lists) -> [N, D] means over each sentence's own
    tokens (HF's batched feature extraction returns vectors padded to the batch's longest input)."""
    return np.stack([np.asarray(v, np.float32)[0, :n].mean(axis=0) for v, n in zip(token_vectors, lengths)])


def embeddings(count: int, repeats: int) -> dict:
    texts = make_texts(count, 0)
    ours = tj.pipeline("feature-extraction", model=str(minilm_dir()), batch_size=64)
    theirs = hf.pipeline("feature-extraction", model=str(minilm_dir()), batch_size=64, device="cpu")
    lengths = [len(ids) for ids in ours.tokenizer(texts)["input_ids"]]
    t_ours, r_ours = timed(lambda: mean_pool(ours(texts), lengths), repeats)
    t_hf, r_hf = timed(lambda: mean_pool(theirs(texts), lengths), repeats)
    error = float(np.abs(r_ours - r_hf).max())
    assert error < 1e-4, f"embeddings differ by {error}"
    return {"case": f"sentence embeddings, MiniLM, {count} sentences, batch 64", "unit": "sentences/s",
            "ours": count / t_ours, "hf": count / t_hf, "max_abs_diff": error}


def classification(count: int, repeats: int, folder: Path) -> dict:
    torch.manual_seed(0)
    model = hf.BertForSequenceClassification.from_pretrained(minilm_dir(), num_labels=2)
    model.config.id2label, model.config.label2id = {0: "NEGATIVE", 1: "POSITIVE"}, {"NEGATIVE": 0, "POSITIVE": 1}
    model.save_pretrained(folder)
    hf.AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(folder)
    texts = make_texts(count, 1)
    ours = tj.pipeline("text-classification", model=str(folder), batch_size=64)
    theirs = hf.pipeline("text-classification", model=str(folder), batch_size=64, device="cpu")
    t_ours, r_ours = timed(lambda: ours(texts), repeats)
    t_hf, r_hf = timed(lambda: theirs(texts), repeats)
    assert [r["label"] for r in r_ours] == [r["label"] for r in r_hf]
    error = max(abs(a["score"] - b["score"]) for a, b in zip(r_ours, r_hf))
    assert error < 1e-4, f"scores differ by {error}"
    return {"case": f"text-classification, MiniLM + 2-label head, {count} texts, batch 64", "unit": "texts/s",
            "ours": count / t_ours, "hf": count / t_hf, "max_abs_diff": error}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as folder:
        rows = [embeddings(args.sentences, args.repeats), classification(args.texts, args.repeats, Path(folder))]
    print("| case | ours | HF PyTorch | ours / HF | max abs diff |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['ours']:.1f} {row['unit']} | {row['hf']:.1f} {row['unit']} | "
              f"{row['ours'] / row['hf']:.2f}x | {row['max_abs_diff']:.1e} |")


if __name__ == "__main__":
    main()
