"""Batch generation: JSONL prompts in, JSONL completions out (resumable; see serving/batch.py).

    python scripts/batch_generate.py --model PATH [--gguf-file NAME] --input in.jsonl --output out.jsonl \
        [--batch-size 8] [--max-new-tokens 64] [--errors out.jsonl.errors.jsonl] [--seed 0] [--no-progress]
    python scripts/batch_generate.py --model PATH --dataset DIR_OR_NAME [--split train] --output out.jsonl ...

Input lines: {"id": ..., "prompt": "..."} or {"id": ..., "messages": [...]}, optionally with
max_new_tokens, do_sample, temperature, top_p, top_k, seed. Output lines: {"id", "text",
"num_prompt_tokens", "num_new_tokens", "finish_reason"}. Bad lines go to stderr and the errors
file. Rerunning the same command after a crash finishes the remaining ids only.
--dataset reads the same fields from the rows of a Hugging Face dataset instead (needs the `datasets`
package): a directory written by Dataset.save_to_disk, else anything datasets.load_dataset takes (a
directory of parquet/csv/json files, a hub id); errors are then numbered by row.
Exit status: 0 when every line succeeded, 2 when some input lines were bad (the rest still ran).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_split(spec: str, split: str):
    """One split of a dataset: ``load_from_disk`` for a ``save_to_disk`` directory, else ``load_dataset``."""
    try:
        import datasets
    except ImportError:
        raise SystemExit("--dataset needs the datasets package: pip install 'transformers_jax[datasets]'") from None
    path = Path(spec)
    if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
        loaded = datasets.load_from_disk(spec)
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise SystemExit(f"{spec} has no split {split!r}; its splits are {sorted(loaded)}")
            loaded = loaded[split]
        return loaded
    return datasets.load_dataset(spec, split=split)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model directory or hub repo id")
    parser.add_argument("--gguf-file", default=None, help="GGUF file name inside --model")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="JSONL file of requests")
    source.add_argument("--dataset", help="a datasets.save_to_disk directory, or a datasets.load_dataset path/name")
    parser.add_argument("--split", default="train", help="split of --dataset (default: train)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--errors", default=None, help="errors file (default: <output>.errors.jsonl)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="default for lines without their own")
    parser.add_argument("--seed", type=int, default=0, help="run seed for sampled lines without a 'seed'")
    parser.add_argument("--dtype", default=None, help="compute dtype, e.g. bfloat16")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    inputs = args.input if args.input is not None else load_split(args.dataset, args.split)
    import transformers_jax as tj
    from serving.batch import run_batch

    load_kwargs = {"gguf_file": args.gguf_file} if args.gguf_file else {}
    model_kwargs = dict(load_kwargs, **({"dtype": args.dtype} if args.dtype else {}))
    model = tj.AutoModelForCausalLM.from_pretrained(args.model, **model_kwargs)
    tokenizer = tj.AutoTokenizer.from_pretrained(args.model, **load_kwargs)
    summary = run_batch(
        model, tokenizer, inputs, args.output, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        errors_path=args.errors, seed=args.seed, progress=not args.no_progress,
    )
    print(
        f"{summary.num_done} done, {summary.num_skipped} already done, {summary.num_errors} bad lines "
        f"({summary.errors_path}); {summary.new_tokens} new tokens in {summary.seconds:.1f} s "
        f"({summary.tokens_per_second:.1f} tok/s) -> {summary.output_path}",
        file=sys.stderr,
    )
    return 2 if summary.num_errors else 0


if __name__ == "__main__":
    sys.exit(main())
