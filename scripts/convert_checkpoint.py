"""Convert between orbax training checkpoints and Hugging Face (PyTorch-format) directories.

    python scripts/convert_checkpoint.py --checkpoint DIR [--step N] --to-hf OUT [--tokenizer TOK]
    python scripts/convert_checkpoint.py --hf DIR --to-orbax OUT [--model-class NAME]

The first writes the params of training checkpoint DIR (step N, default the latest) as a Hugging
Face directory, using the model class and config in the checkpoint's metadata; --tokenizer copies a
tokenizer from a model directory alongside. The second writes a Hugging Face directory as an orbax
checkpoint (step 0, state {"step", "params"}, metadata {"model_class", "config", "source"}) that
--to-hf and the Trainer's checkpoint reader load. The model class defaults to the first entry of
the config's "architectures". Errors go to stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class ConversionError(Exception):
    """A problem with the inputs, reported without a traceback."""


def orbax_to_hf(checkpoint: str, out: str, step: int | None = None, tokenizer: str | None = None) -> Path:
    """Training checkpoint ``checkpoint`` (step ``step``, default the latest) -> HF directory ``out``."""
    from train.checkpointing import CheckpointManager, export_to_hf

    if not Path(checkpoint).is_dir():
        raise ConversionError(f"checkpoint directory {checkpoint} does not exist")
    manager = CheckpointManager(checkpoint, read_only=True)
    try:
        metadata = manager.read_metadata(step)
        for key in ("model_class", "config"):
            if key not in metadata:
                raise ConversionError(f"metadata of checkpoint {checkpoint} has no {key!r}; cannot build the model")
        params = manager.restore_params(step)
    finally:
        manager.close()
    tok = None
    if tokenizer is not None:
        from transformers_jax import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer)
    return export_to_hf(metadata["model_class"], metadata["config"], params, out, tokenizer=tok)


def hf_to_orbax(hf_dir: str, out: str, model_class: str | None = None) -> Path:
    """HF directory ``hf_dir`` -> orbax checkpoint ``out`` holding step 0."""
    import jax.numpy as jnp

    from train.checkpointing import CheckpointManager, model_class_from_name
    from transformers_jax.configuration_utils import CONFIG_NAME, read_config_dict

    config_path = Path(hf_dir) / CONFIG_NAME
    if not Path(hf_dir).is_dir():
        raise ConversionError(f"Hugging Face directory {hf_dir} does not exist")
    if model_class is None:
        architectures = read_config_dict(config_path).get("architectures") or []
        if not architectures:
            raise ConversionError(f"{config_path} names no architectures; pass --model-class")
        model_class = architectures[0]
    cls = model_class_from_name(model_class)
    model = cls.from_pretrained(hf_dir)
    state = {"step": jnp.asarray(0, jnp.int32), "params": model.params}
    metadata = {"model_class": cls.__name__, "config": model.config.to_dict(), "source": str(Path(hf_dir).absolute())}
    with CheckpointManager(out, async_save=False) as manager:
        manager.save(0, state, metadata)
    return Path(out)


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="orbax training checkpoint directory to read")
    parser.add_argument("--step", type=int, default=None, help="step to read (default: the latest)")
    parser.add_argument("--to-hf", help="Hugging Face directory to write")
    parser.add_argument("--tokenizer", default=None, help="model directory whose tokenizer to copy into --to-hf")
    parser.add_argument("--hf", help="Hugging Face directory to read")
    parser.add_argument("--to-orbax", help="orbax checkpoint directory to write")
    parser.add_argument("--model-class", default=None, help="our class name, e.g. LlamaForCausalLM")
    args = parser.parse_args(argv)
    if bool(args.checkpoint) == bool(args.hf):
        parser.error("give either --checkpoint DIR --to-hf OUT or --hf DIR --to-orbax OUT")
    if args.checkpoint and not args.to_hf:
        parser.error("--checkpoint needs --to-hf OUT")
    if args.hf and not args.to_orbax:
        parser.error("--hf needs --to-orbax OUT")
    try:
        if args.checkpoint:
            out = orbax_to_hf(args.checkpoint, args.to_hf, step=args.step, tokenizer=args.tokenizer)
        else:
            out = hf_to_orbax(args.hf, args.to_orbax, model_class=args.model_class)
    except (ConversionError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
