"""Tokenizers with Hugging Face transformers' user experience, backed by the Rust ``tokenizers`` library.

* :class:`BatchEncoding` -- the dict returned by a tokenizer call (``batch_encoding``).
* :class:`PreTrainedTokenizerFast` -- HF's fast-tokenizer calling conventions over a ``tokenizers.Tokenizer``
  (``tokenizer``; special tokens, padding/truncation and chat templates are mixed in from ``special_tokens``,
  ``batch_encoding`` and ``chat_template``).
* :class:`MarianTokenizer` -- Marian's two SentencePiece models over one vocabulary (``marian``).
* :class:`AutoTokenizer` -- ``AutoTokenizer.from_pretrained`` (``auto``).
* :func:`normalize_messages` -- the one check of a conversation before it is rendered (``chat_template``).
* Files: ``files`` (tokenizer.json / tokenizer_config.json / special tokens / chat templates, reading and saving),
  ``backends`` (the HF class defaults table; vocab.txt WordPiece, vocab.json + merges.txt byte-level BPE),
  ``gguf_tokenizer`` (GGUF metadata).
"""
from transformers_jax.tokenization.auto import AutoTokenizer
from transformers_jax.tokenization.batch_encoding import LARGE_INTEGER, VERY_LARGE_INTEGER, BatchEncoding
from transformers_jax.tokenization.marian import MarianTokenizer
from transformers_jax.tokenization.chat_template import MessagesError, normalize_messages
from transformers_jax.tokenization.special_tokens import SPECIAL_TOKENS_ATTRIBUTES
from transformers_jax.tokenization.tokenizer import PreTrainedTokenizerFast

__all__ = [
    "LARGE_INTEGER",
    "SPECIAL_TOKENS_ATTRIBUTES",
    "VERY_LARGE_INTEGER",
    "AutoTokenizer",
    "BatchEncoding",
    "MarianTokenizer",
    "MessagesError",
    "PreTrainedTokenizerFast",
    "normalize_messages",
]
