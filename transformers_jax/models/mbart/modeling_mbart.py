"""mBART: the shared encoder-decoder (``models/_seq2seq.py``) with pre-norm layers and final layer
norms (:class:`MBartConfig`), with every Hugging Face head."""
from transformers_jax.models._seq2seq import build_seq2seq_family
from transformers_jax.models.mbart.configuration_mbart import MBartConfig

globals().update(build_seq2seq_family("MBart", MBartConfig, __name__))
