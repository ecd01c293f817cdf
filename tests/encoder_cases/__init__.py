"""Encoder families under test: one module per family declares an :class:`EncoderFamily`.

``tests/test_encoder_families.py`` parametrizes over every module here, so adding a family to the
suite is adding a file. Configs are tiny and exercise the family's odd settings (factorised
embeddings, shared layer groups, relative positions ...).
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Callable


@dataclasses.dataclass
class EncoderFamily:
    """An encoder family's test cases against Hugging Face.

    ``heads``: {our class name: HF class} for every head class HF has for the family.
    ``configs``: named tiny config dicts (HF's ``config.json`` keys).
    ``parity``: (our class name, config name) pairs checked in both directions (outputs, hidden
    states, attentions, loss, key sets).
    ``train_config``: the config of the Trainer test (the family's sequence classifier, 3 steps on
    one device against ``fsdp_tp`` on 8 simulated devices).
    ``pretraining_labels``: (rng, ids, mask) -> the extra label inputs of the family's pre-training
    head besides MLM ``labels`` (BERT's ``next_sentence_label``, ALBERT's ``sentence_order_label``);
    None when the head takes other labels entirely (ELECTRA's discriminator: give ``labels`` here).
    ``lengths``: {config name: sequence length of its test batches} where 12 is not enough (MPNet's
    log-spaced relative buckets).
    ``config_errors``: (config dict, regex of the error message) for options the family refuses.
    """

    name: str
    hf_config_class: type
    heads: dict[str, type]
    configs: dict[str, dict]
    parity: list[tuple[str, str]]
    train_config: str | None  # None: the family reuses another's code (XLM-R is RoBERTa)
    pretraining_labels: Callable | None = None
    pretraining_has_mlm_labels: bool = True
    lengths: dict[str, int] = dataclasses.field(default_factory=dict)
    config_errors: list[tuple[dict, str]] = dataclasses.field(default_factory=list)


def all_families() -> list[EncoderFamily]:
    """Every ``FAMILY`` declared by a module of this package, by name."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(module.FAMILIES if hasattr(module, "FAMILIES") else [module.FAMILY])
    return sorted(found, key=lambda f: f.name)
