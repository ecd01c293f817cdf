"""``transformers-jax``: the command-line tool installed with the package.

    transformers-jax serve         OpenAI-compatible HTTP server over the continuous-batching engine
    transformers-jax chat          talk to a chat model in the terminal (replies stream)
    transformers-jax generate      batch generation: JSONL or a dataset in, JSONL out (resumable)
    transformers-jax pipeline      any pipeline task over a JSONL file, JSONL out (resumable)
    transformers-jax convert       checkpoints between orbax, Hugging Face (safetensors, Flax) and GGUF
    transformers-jax finetune      fine-tune a sequence classifier from a YAML recipe
    transformers-jax pretrain      pre-train (masked or causal LM) from a YAML recipe
    transformers-jax prepare-data  tokenize a corpus into packed token shards (resumable, worker processes)
    transformers-jax env           versions, devices and settings, for bug reports

Each command's code lives in the package it belongs to (``serving/cli.py``, ``train/``); this module
only dispatches, so the model library itself never imports the training or serving layers.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "serve": ("serving.cli", "serve_main", "OpenAI-compatible HTTP server over the continuous-batching engine"),
    "chat": ("serving.cli", "chat_main", "talk to a chat model in the terminal (replies stream)"),
    "generate": ("serving.cli", "generate_main", "batch generation: JSONL or a dataset in, JSONL out (resumable)"),
    "pipeline": ("serving.pipeline_batch", "main", "any pipeline task over a JSONL file, JSONL out (resumable)"),
    "convert": ("train.convert", "main", "convert checkpoints: orbax, Hugging Face safetensors and Flax, GGUF"),
    "finetune": ("train.finetune", "main", "fine-tune a sequence classifier from a YAML recipe"),
    "pretrain": ("train.pretrain", "main", "pre-train a masked or causal LM from a YAML recipe"),
    "prepare-data": ("train.prepare_data", "main", "tokenize a corpus into packed token shards for pretraining"),
    "env": ("transformers_jax_cli.env", "main", "versions, devices and settings, for bug reports"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return ("usage: transformers-jax COMMAND [options]   (transformers-jax COMMAND --help for its options)\n\n"
            "commands:\n" + "\n".join(lines) + "\n")


def main(argv=None) -> int:
    """Run ``transformers-jax COMMAND ...``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0
    if argv[0] in ("-V", "--version"):
        from transformers_jax import __version__

        print(f"transformers-jax {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"transformers-jax: unknown command {name!r}\n\n{usage()}", end="", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[name]
    result = getattr(importlib.import_module(module), function)(rest)
    return result if isinstance(result, int) else 0


def console_main() -> None:
    """The console-script entry point (``[project.scripts]``)."""
    sys.exit(main())
