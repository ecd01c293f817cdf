"""BART: the shared encoder-decoder (``models/_seq2seq.py``) as configured by :class:`BartConfig`,
with every Hugging Face head: the bare model, conditional generation, sequence classification
(pooled at the last eos token), question answering and the decoder-only causal LM."""
from transformers_jax.models._seq2seq import build_seq2seq_family
from transformers_jax.models.bart.configuration_bart import BartConfig

globals().update(build_seq2seq_family("Bart", BartConfig, __name__))
