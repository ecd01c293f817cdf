"""Decoder families under test: one module per family declares a :class:`Family`.

``tests/test_decoder_families.py`` parametrizes over every module here, so adding a family to the
suite is adding a file. Configs are tiny and exercise the family's odd settings (sliding windows
shorter than the prompts, soft-capping, biases, q/k norms, fused tensors ...).
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil


@dataclasses.dataclass
class Family:
    """A decoder family's test cases against Hugging Face.

    ``heads``: {our class name: HF class} for every head class HF has for the family.
    ``configs``: named tiny config dicts (HF's ``config.json`` keys).
    ``parity``: (our class name, config name) pairs checked in both directions (outputs, hidden
    states, attentions, loss, key sets).
    ``generation_config``: the config used for greedy and beam ``generate``, the engine, and training.
    ``prompt_lengths``: the left-padded generation batch (make some longer than a sliding window).
    """

    name: str
    hf_config_class: type
    heads: dict[str, type]
    configs: dict[str, dict]
    parity: list[tuple[str, str]]
    generation_config: str
    prompt_lengths: tuple[int, ...] = (14, 9, 4)
    max_new_tokens: int = 10

    @property
    def config_class_name(self) -> str:
        return next(iter(self.heads)).replace("ForCausalLM", "").replace("Model", "") + "Config"


def all_families() -> list[Family]:
    """Every ``FAMILY`` declared by a module of this package, by name."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(module.FAMILY)
    return sorted(found, key=lambda f: f.name)
