"""``AutoTokenizer``: HF's entry point; every tokenizer here is a :class:`PreTrainedTokenizerFast`."""
from __future__ import annotations

import os

from transformers_jax.tokenization.tokenizer import PreTrainedTokenizerFast


class AutoTokenizer:
    """HF-style entry point: ``AutoTokenizer.from_pretrained(...)`` returns a :class:`PreTrainedTokenizerFast`."""

    def __init__(self):
        raise EnvironmentError("AutoTokenizer is used through AutoTokenizer.from_pretrained(...).")

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | os.PathLike, *args, **kwargs) -> PreTrainedTokenizerFast:
        """Load a tokenizer; see :meth:`PreTrainedTokenizerFast.from_pretrained`."""
        return PreTrainedTokenizerFast.from_pretrained(path_or_hub_id, *args, **kwargs)
