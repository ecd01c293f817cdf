"""Marian: the shared encoder-decoder (``models/_seq2seq.py``) with fixed sinusoidal positions and no
embedding LayerNorm (:class:`MarianConfig`): ``MarianModel``, ``MarianMTModel`` (conditional
generation) and ``MarianForCausalLM``, as Hugging Face has them."""
from transformers_jax.models._seq2seq import build_seq2seq_family
from transformers_jax.models.marian.configuration_marian import MarianConfig

globals().update(build_seq2seq_family("Marian", MarianConfig, __name__, tasks=("base", "seq2seq_lm", "causal_lm"),
                                      class_names={"seq2seq_lm": "MarianMTModel"}))
