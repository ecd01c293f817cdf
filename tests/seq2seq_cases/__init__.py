"""Encoder-decoder families under test: one module per family declares a :class:`Seq2SeqFamily`.

``tests/test_seq2seq_families.py`` parametrizes over every module here, so adding a family to the
suite is adding a file. Configs are tiny and exercise the family's odd settings (scaled embeddings,
untied or unshared tables, pre-norm with final norms, fixed sinusoidal positions).
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Callable


@dataclasses.dataclass
class Seq2SeqFamily:
    """An encoder-decoder family's test cases against Hugging Face.

    ``heads``: {our class name: HF class} for every head class HF has for the family.
    ``configs``: named tiny config dicts (HF's ``config.json`` keys).
    ``parity``: (our class name, config name) pairs checked in both directions.
    ``prepare_hf``: applied to HF's model after its weights are perturbed (Marian puts its fixed
    sinusoidal tables back: they are not weights a checkpoint may change).
    """

    name: str
    hf_config_class: type
    heads: dict[str, type]
    configs: dict[str, dict]
    parity: list[tuple[str, str]]
    prepare_hf: Callable | None = None


def all_families() -> list[Seq2SeqFamily]:
    """Every ``FAMILY`` declared by a module of this package, by name."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(module.FAMILY)
    return sorted(found, key=lambda f: f.name)
