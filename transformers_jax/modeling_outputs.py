"""Output containers that read like Hugging Face's: attributes, ``out["logits"]``, ``out[0]``, unpacking.

As in Hugging Face, fields that are None are left out of the tuple and dict views.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax


@dataclasses.dataclass
class ModelOutput:
    """Base output: a dataclass that also behaves like an ordered dict and a tuple."""

    def _items(self) -> list[tuple[str, Any]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def keys(self):
        return [k for k, _ in self._items()]

    def values(self):
        return [v for _, v in self._items()]

    def items(self):
        return self._items()

    def to_tuple(self) -> tuple:
        return tuple(self.values())

    def __getitem__(self, key):
        if isinstance(key, str):
            return dict(self._items())[key]
        return self.to_tuple()[key]

    def __contains__(self, key) -> bool:
        return key in self.keys()

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items())


def _register(cls):
    """Make an output class a dataclass and a pytree node (so it can cross jit boundaries)."""
    cls = dataclasses.dataclass(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    jax.tree_util.register_pytree_node(
        cls,
        lambda o: ([getattr(o, n) for n in names], None),
        lambda _, children: cls(*children),
    )
    return cls


@_register
class BaseModelOutput(ModelOutput):
    last_hidden_state: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_register
class MoeModelOutput(ModelOutput):
    """A mixture-of-experts base model's output: also each sparse layer's router logits [B*T, E]
    (in Hugging Face's field order)."""
    last_hidden_state: Any = None
    router_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_register
class MoeCausalLMOutput(ModelOutput):
    """A mixture-of-experts causal LM's output: ``aux_loss`` (load balancing) and ``router_logits``
    when router logits are requested; ``loss`` then includes ``router_aux_loss_coef * aux_loss``."""
    loss: Any = None
    aux_loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None
    router_logits: Any = None


@_register
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_register
class CausalLMOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_register
class MaskedLMOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_register
class NextSentencePredictorOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_register
class PreTrainingOutput(ModelOutput):
    loss: Any = None
    prediction_logits: Any = None
    seq_relationship_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_register
class SequenceClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_register
class TokenClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_register
class QuestionAnsweringModelOutput(ModelOutput):
    loss: Any = None
    start_logits: Any = None
    end_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_register
class MultipleChoiceModelOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


# ----------------------------------------------------------------------------- encoder-decoder
# Hugging Face's field order; ``cache`` stays None until seq2seq decoding with a KV cache exists.
@_register
class Seq2SeqModelOutput(ModelOutput):
    last_hidden_state: Any = None
    cache: Any = None
    decoder_hidden_states: Any = None
    decoder_attentions: Any = None
    cross_attentions: Any = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: Any = None
    encoder_attentions: Any = None


@_register
class Seq2SeqLMOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    cache: Any = None
    decoder_hidden_states: Any = None
    decoder_attentions: Any = None
    cross_attentions: Any = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: Any = None
    encoder_attentions: Any = None


@_register
class Seq2SeqSequenceClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    cache: Any = None
    decoder_hidden_states: Any = None
    decoder_attentions: Any = None
    cross_attentions: Any = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: Any = None
    encoder_attentions: Any = None


@_register
class Seq2SeqQuestionAnsweringModelOutput(ModelOutput):
    loss: Any = None
    start_logits: Any = None
    end_logits: Any = None
    cache: Any = None
    decoder_hidden_states: Any = None
    decoder_attentions: Any = None
    cross_attentions: Any = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: Any = None
    encoder_attentions: Any = None


@_register
class CausalLMOutputWithCrossAttentions(ModelOutput):
    loss: Any = None
    logits: Any = None
    cache: Any = None
    hidden_states: Any = None
    attentions: Any = None
    cross_attentions: Any = None
