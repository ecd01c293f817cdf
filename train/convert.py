"""Convert checkpoints between formats: orbax (training), Hugging Face safetensors, Hugging Face Flax, GGUF.

    transformers-jax convert SOURCE --to-hf OUT | --to-flax OUT | --to-orbax OUT

A source is one of:

    --checkpoint DIR [--step N]   an orbax training checkpoint (step N, default the latest); the model
                                  class and config come from its metadata
    --hf DIR_OR_REPO [--from-flax] [--revision R]
                                  a Hugging Face directory or hub repo (safetensors; or Flax weights,
                                  read unasked when they are the only weights)
    --gguf FILE                   a GGUF file (model, config, tokenizer and chat template inside)

and a target one of:

    --to-hf OUT      config.json + model.safetensors in PyTorch names (transformers loads it)
    --to-flax OUT    config.json + flax_model.msgpack as transformers 4.x's Flax classes wrote it
    --to-orbax OUT   an orbax checkpoint (step 0; state {"step", "params"}; metadata {"model_class",
                     "config", "source"}) that --checkpoint and the Trainer's checkpoint reader load

--model-class NAME picks our class (default: the checkpoint's, or the config's first "architectures"
entry). The tokenizer goes along into HF and Flax directories: the GGUF's own, the source directory's,
or the one --tokenizer DIR names. Errors go to stderr with exit status 2; nothing is half-written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transformers_jax import compilation_cache


class ConversionError(Exception):
    """A problem with the inputs, reported without a traceback."""


def _model_class(name: str | None, config_dict: dict | None, where: str):
    from train.checkpointing import model_class_from_name

    if name is None:
        architectures = (config_dict or {}).get("architectures") or []
        if not architectures:
            raise ConversionError(f"{where} names no architectures; pass --model-class")
        name = architectures[0]
    return model_class_from_name(name)


def load_orbax(checkpoint: str, step: int | None = None, model_class: str | None = None):
    """(model, None) from training checkpoint ``checkpoint`` (step ``step``, default the latest)."""
    from train.checkpointing import CheckpointManager

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
    from train.checkpointing import params_dtype

    cls = _model_class(model_class or metadata["model_class"], None, checkpoint)
    dtype = params_dtype(params)
    config = cls.config_class.from_dict(metadata["config"], **({"param_dtype": dtype} if dtype else {}))
    return cls(config, params), None


def load_hf(name_or_path: str, model_class: str | None = None, from_flax: bool | None = None,
            revision: str | None = None):
    """(model, tokenizer or None) from a Hugging Face directory or hub repo."""
    from transformers_jax import AutoConfig, AutoTokenizer

    hub = {"revision": revision} if revision else {}
    config = AutoConfig.from_pretrained(name_or_path, **hub)
    cls = _model_class(model_class, {"architectures": config.architectures}, f"the config.json of {name_or_path}")
    model = cls.from_pretrained(name_or_path, from_flax=from_flax, **hub)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **hub)
    except (OSError, ValueError):  # a checkpoint without tokenizer files converts without one
        tokenizer = None
    return model, tokenizer


def load_gguf(path: str, model_class: str | None = None):
    """(model, tokenizer) from a GGUF file."""
    from transformers_jax import AutoModelForCausalLM, AutoTokenizer

    if not Path(path).is_file():
        raise ConversionError(f"GGUF file {path} does not exist")
    if model_class is not None:
        model = _model_class(model_class, None, path).from_pretrained(path)
    else:
        model = AutoModelForCausalLM.from_pretrained(path)
    return model, AutoTokenizer.from_pretrained(path)


def save(model, tokenizer, out: str, target: str, source: str) -> Path:
    """Write ``model`` (and ``tokenizer``) to ``out`` as ``target``: "hf", "flax" or "orbax"."""
    if target == "orbax":
        import jax.numpy as jnp

        from train.checkpointing import CheckpointManager

        state = {"step": jnp.asarray(0, jnp.int32), "params": model.params}
        metadata = {"model_class": type(model).__name__, "config": model.config.to_dict(), "source": source}
        with CheckpointManager(out, async_save=False) as manager:
            manager.save(0, state, metadata)
        return Path(out)
    from transformers_jax.hub import staged_directory

    with staged_directory(Path(out)) as stage:  # model and tokenizer land together, or not at all
        model.save_pretrained(stage, save_format="flax" if target == "flax" else "safetensors")
        if tokenizer is not None:
            tokenizer.save_pretrained(stage)
    return Path(out)


def convert(args: argparse.Namespace) -> Path:
    """Read the source the arguments name and write the target."""
    if args.checkpoint:
        model, tokenizer = load_orbax(args.checkpoint, args.step, args.model_class)
        source = str(Path(args.checkpoint).absolute())
    elif args.hf:
        model, tokenizer = load_hf(args.hf, args.model_class, True if args.from_flax else None, args.revision)
        source = str(Path(args.hf).absolute()) if Path(args.hf).exists() else args.hf
    else:
        model, tokenizer = load_gguf(args.gguf, args.model_class)
        source = str(Path(args.gguf).absolute())
    if args.tokenizer is not None:
        from transformers_jax import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    target, out = next((t, o) for t, o in (("hf", args.to_hf), ("flax", args.to_flax), ("orbax", args.to_orbax)) if o)
    return save(model, tokenizer, out, target, source)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transformers-jax convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="orbax training checkpoint directory to read")
    source.add_argument("--hf", help="Hugging Face directory or hub repo id to read")
    source.add_argument("--gguf", help="GGUF file to read")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-hf", help="Hugging Face (safetensors) directory to write")
    target.add_argument("--to-flax", help="Hugging Face Flax (flax_model.msgpack) directory to write")
    target.add_argument("--to-orbax", help="orbax checkpoint directory to write")
    parser.add_argument("--step", type=int, default=None, help="--checkpoint step to read (default: the latest)")
    parser.add_argument("--from-flax", action="store_true", help="--hf: read flax_model.msgpack")
    parser.add_argument("--revision", default=None, help="--hf: hub branch, tag or commit")
    parser.add_argument("--tokenizer", default=None, help="tokenizer directory to save alongside (HF and Flax targets)")
    parser.add_argument("--model-class", default=None, help="our class name, e.g. LlamaForCausalLM")
    compilation_cache.add_arguments(parser)
    return parser


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.step is not None and not args.checkpoint:
        parser.error("--step goes with --checkpoint")
    if (args.from_flax or args.revision) and not args.hf:
        parser.error("--from-flax and --revision go with --hf")
    compilation_cache.configure_from_args(args)
    try:
        out = convert(args)
    except (ConversionError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
