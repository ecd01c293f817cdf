"""GGUF checkpoints (llama.cpp's format): reading, dequantizing, and per-architecture maps to Hugging Face.

* :func:`read_gguf` -- config dict and float32 state dict under Hugging Face PyTorch names.
* :func:`read_gguf_metadata` -- the metadata alone (what the tokenizer is built from, by
  ``transformers_jax.tokenization``; this package never imports the tokenizer layer).
* :mod:`~transformers_jax.gguf.architectures` -- one entry per supported ``general.architecture``.
"""
from transformers_jax.gguf.architectures import (
    ARCHITECTURES,
    SUPPORTED_ARCHITECTURES,
    GGUFArchitecture,
    GGUFMetadataError,
    architecture_for,
)
from transformers_jax.gguf.reader import GGUF_MAGIC, GGUFCheckpoint, read_gguf, read_gguf_metadata, tokenizer_metadata

__all__ = [
    "ARCHITECTURES",
    "GGUF_MAGIC",
    "GGUFArchitecture",
    "GGUFCheckpoint",
    "GGUFMetadataError",
    "SUPPORTED_ARCHITECTURES",
    "architecture_for",
    "read_gguf",
    "read_gguf_metadata",
    "tokenizer_metadata",
]
