"""``AutoTokenizer``: HF's entry point; a :class:`PreTrainedTokenizerFast`, or for Marian folders a
:class:`~transformers_jax.tokenization.marian.MarianTokenizer` (sentencepiece-backed, as HF's)."""
from __future__ import annotations

import os

from transformers_jax.tokenization.tokenizer import PreTrainedTokenizerFast


class AutoTokenizer:
    """HF-style entry point: ``AutoTokenizer.from_pretrained(...)`` returns a :class:`PreTrainedTokenizerFast` (a
    ``MarianTokenizer`` for ``tokenizer_class`` ``MarianTokenizer``)."""

    def __init__(self):
        raise EnvironmentError("AutoTokenizer is used through AutoTokenizer.from_pretrained(...).")

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | os.PathLike, *args, **kwargs) -> PreTrainedTokenizerFast:
        """Load a tokenizer; see :meth:`PreTrainedTokenizerFast.from_pretrained`."""
        return PreTrainedTokenizerFast.from_pretrained(path_or_hub_id, *args, _from_auto=True, **kwargs)
