"""SmolLM3: Llama with NoPE layers (no rotary embedding in every ``no_rope_layer_interval``-th
layer) and optional sliding-window layers: the shared decoder (``models/_decoder.py``) with
:class:`SmolLM3Config`, whose ``rope_layers()`` turns RoPE off per layer inside the one scan."""
from __future__ import annotations

from transformers_jax.models._decoder import build_family
from transformers_jax.models.smollm3.configuration_smollm3 import SmolLM3Config

# build_family defines SmolLM3PreTrainedModel, SmolLM3Model, SmolLM3ForCausalLM, SmolLM3ForSequenceClassification,
# SmolLM3ForTokenClassification, SmolLM3ForQuestionAnswering.
globals().update(build_family("SmolLM3", SmolLM3Config, __name__, head_prefixes={"question_answering": "transformer"}))
