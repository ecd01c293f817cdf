"""Special and added tokens: the named special-token attributes, extra special tokens, adding tokens, and the
bos/eos post-processor built from ``add_bos_token`` / ``add_eos_token``."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tokenizers import AddedToken, processors

from transformers_jax.tokenization.batch_encoding import _to_python

SPECIAL_TOKENS_ATTRIBUTES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)


def _as_added_token(value: Any, *, special: bool | None = None) -> Any:
    """Turn a serialized AddedToken (``{"content": ..., ...}``, maybe with ``__type``) into an ``AddedToken``."""
    if isinstance(value, dict) and "content" in value:
        fields = {k: v for k, v in value.items() if k != "__type"}
        if special is not None:
            fields["special"] = special
        allowed = {"content", "single_word", "lstrip", "rstrip", "normalized", "special"}
        return AddedToken(**{k: v for k, v in fields.items() if k in allowed})
    return value


def _token_to_dict(token: AddedToken) -> dict:
    return {
        "content": token.content,
        "lstrip": token.lstrip,
        "normalized": token.normalized,
        "rstrip": token.rstrip,
        "single_word": token.single_word,
        "special": token.special,
    }


def _special_token_property(name: str):
    def getter(self):
        value = self._special_tokens.get(name)
        return None if value is None else str(value)

    def setter(self, value):
        if value is not None and not isinstance(value, (str, AddedToken)):
            raise ValueError(f"{name} must be a str, a tokenizers.AddedToken or None, got {type(value).__name__}")
        self._special_tokens[name] = value

    return property(getter, setter, doc=f"The {name.replace('_', ' ')} as a string (``None`` if not set).")


def _special_token_id_property(name: str):
    def getter(self):
        value = self._special_tokens.get(name)
        return None if value is None else self.convert_tokens_to_ids(str(value))

    def setter(self, value):
        self._special_tokens[name] = None if value is None else self.convert_ids_to_tokens(int(value))

    return property(getter, setter, doc=f"The id of the {name.replace('_', ' ')} (``None`` if not set).")


class SpecialTokensMixin:
    """The special-token side of :class:`~transformers_jax.tokenization.PreTrainedTokenizerFast`.

    State (set by the tokenizer's ``__init__``): ``_special_tokens`` (attribute name -> token or ``None``),
    ``_model_specific_tokens`` (names such as ``image_token``), ``_extra_special_tokens``, ``_add_bos_token`` /
    ``_add_eos_token`` and the wrapped ``_tokenizer``.
    """

    SPECIAL_TOKENS_ATTRIBUTES = SPECIAL_TOKENS_ATTRIBUTES

    bos_token = _special_token_property("bos_token")
    eos_token = _special_token_property("eos_token")
    unk_token = _special_token_property("unk_token")
    sep_token = _special_token_property("sep_token")
    pad_token = _special_token_property("pad_token")
    cls_token = _special_token_property("cls_token")
    mask_token = _special_token_property("mask_token")
    bos_token_id = _special_token_id_property("bos_token")
    eos_token_id = _special_token_id_property("eos_token")
    unk_token_id = _special_token_id_property("unk_token")
    sep_token_id = _special_token_id_property("sep_token")
    pad_token_id = _special_token_id_property("pad_token")
    cls_token_id = _special_token_id_property("cls_token")
    mask_token_id = _special_token_id_property("mask_token")

    def _register_special_tokens(self, added_tokens_decoder: Mapping[Any, Any]) -> None:
        """Add configured added tokens and special tokens missing from the backend (HF's ``__init__`` logic)."""
        present = {repr(token) for token in self._tokenizer.get_added_tokens_decoder().values()}
        decoder = {int(index): _as_added_token(token) for index, token in added_tokens_decoder.items()}
        to_add: list[str | AddedToken] = [
            token for _, token in sorted(decoder.items(), key=lambda item: item[0]) if repr(token) not in present
        ]
        encoder = {t.content for t in self._tokenizer.get_added_tokens_decoder().values()}
        encoder.update(str(t) for t in to_add)
        for value in list(self._special_tokens.values()) + list(self._extra_special_tokens):
            if value is None:
                continue
            if str(value) not in encoder and value not in to_add:
                to_add.append(value)
                encoder.add(str(value))
        if not to_add:
            return
        named = {str(v) for v in self._special_tokens.values() if v is not None}
        tokens = []
        for token in to_add:
            if isinstance(token, str):
                token = AddedToken(token, special=True)
            elif isinstance(token, AddedToken) and not token.special and str(token) in named:
                token.special = True
            tokens.append(token)
        self._tokenizer.add_tokens(tokens)

    def update_post_processor(self) -> None:
        """Rebuild the post-processor from ``add_bos_token`` / ``add_eos_token`` (HF's TemplateProcessing)."""
        bos, eos = self.bos_token, self.eos_token
        if bos is None:
            self._add_bos_token = False
        if eos is None:
            self._add_eos_token = False
        add_bos, add_eos = self._add_bos_token, self._add_eos_token
        single = f"{(bos + ':0 ') if add_bos else ''}$A:0{(' ' + eos + ':0') if add_eos else ''}"
        pair = f"{single}{(' ' + bos + ':1') if add_bos else ''} $B:1{(' ' + eos + ':1') if add_eos else ''}"
        special = []
        if add_bos:
            special.append((bos, self.bos_token_id))
        if add_eos:
            special.append((eos, self.eos_token_id))
        self._tokenizer.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)

    @property
    def add_bos_token(self) -> bool:
        """Whether the post-processor prepends ``bos_token`` (setting it rebuilds the post-processor)."""
        return self._add_bos_token

    @add_bos_token.setter
    def add_bos_token(self, value: bool) -> None:
        self._add_bos_token = bool(value)
        self.update_post_processor()

    @property
    def add_eos_token(self) -> bool:
        """Whether the post-processor appends ``eos_token`` (setting it rebuilds the post-processor)."""
        return self._add_eos_token

    @add_eos_token.setter
    def add_eos_token(self, value: bool) -> None:
        self._add_eos_token = bool(value)
        self.update_post_processor()

    def __getattr__(self, name: str):
        # Model-specific special tokens (e.g. ``image_token`` / ``image_token_id``) from the configuration.
        if name.startswith("__"):
            raise AttributeError(name)
        specific = self.__dict__.get("_model_specific_tokens", ())
        base = name[: -len("_id")] if name.endswith("_id") else name
        if base in specific:
            value = self.__dict__["_special_tokens"].get(base)
            if value is None:
                return None
            return self.convert_tokens_to_ids(str(value)) if base != name else str(value)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def additional_special_tokens(self) -> list[str]:
        """Extra special tokens beyond the named ones (HF v5: ``extra_special_tokens``)."""
        return [str(t) for t in self._extra_special_tokens]

    @additional_special_tokens.setter
    def additional_special_tokens(self, value: Sequence[str | AddedToken] | None) -> None:
        if value is not None and not isinstance(value, (list, tuple)):
            raise ValueError(f"additional_special_tokens must be a list or tuple, got {type(value).__name__}")
        self._extra_special_tokens = list(value or [])

    extra_special_tokens = additional_special_tokens

    @property
    def additional_special_tokens_ids(self) -> list[int]:
        """Ids of :attr:`additional_special_tokens`."""
        return self.convert_tokens_to_ids(self.additional_special_tokens)

    extra_special_tokens_ids = additional_special_tokens_ids

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """The set named special tokens (and model-specific ones) as ``{attribute: token}`` (HF v5 semantics)."""
        names = list(SPECIAL_TOKENS_ATTRIBUTES) + self._model_specific_tokens
        return {name: str(self._special_tokens[name]) for name in names if self._special_tokens.get(name) is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        """All special tokens (named first, then extra ones), deduplicated, as strings."""
        seen: dict[str, None] = {}
        for token in list(self.special_tokens_map.values()) + self.additional_special_tokens:
            seen.setdefault(token)
        return list(seen)

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of :attr:`all_special_tokens`."""
        return self.convert_tokens_to_ids(self.all_special_tokens)

    @property
    def pad_token_type_id(self) -> int:
        """Token type id used for padding positions (0)."""
        return self._pad_token_type_id

    def get_special_tokens_mask(
        self, token_ids_0: Sequence[int], token_ids_1: Sequence[int] | None = None, already_has_special_tokens=False
    ) -> list[int]:
        """1 for special tokens and 0 otherwise, for ids that already contain the special tokens."""
        if not already_has_special_tokens:
            raise NotImplementedError(
                "get_special_tokens_mask needs already_has_special_tokens=True for this tokenizer (as in HF); "
                "for raw sequences call the tokenizer with return_special_tokens_mask=True instead."
            )
        if token_ids_1 is not None:
            raise ValueError("Do not pass a second sequence when the ids already contain the special tokens.")
        special = set(self.all_special_ids)
        return [1 if int(i) in special else 0 for i in _to_python(token_ids_0)]

    def add_tokens(
        self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False
    ) -> int:
        """Add tokens to the vocabulary (tokens already present are skipped); returns how many were added.

        Resize the model's embeddings to ``len(tokenizer)`` afterwards.
        """
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        for token in new_tokens:
            if not isinstance(token, (str, AddedToken)):
                raise TypeError(f"Tokens must be str or tokenizers.AddedToken, got {type(token).__name__}")
        if special_tokens:
            return self._tokenizer.add_special_tokens(list(new_tokens))
        return self._tokenizer.add_tokens(list(new_tokens))

    def add_special_tokens(
        self, special_tokens_dict: Mapping[str, Any], replace_additional_special_tokens: bool = True
    ) -> int:
        """Set named special tokens (``{"pad_token": "<pad>", "additional_special_tokens": [...]}``) and add any
        that are missing from the vocabulary; returns the number of tokens added.

        ``additional_special_tokens`` (or ``extra_special_tokens``) replaces the current list unless
        ``replace_additional_special_tokens=False``, in which case new ones are appended.
        """
        if not special_tokens_dict:
            return 0
        special_tokens_dict = dict(special_tokens_dict)
        if "additional_special_tokens" in special_tokens_dict and not special_tokens_dict.get("extra_special_tokens"):
            special_tokens_dict["extra_special_tokens"] = special_tokens_dict.pop("additional_special_tokens")
        special_tokens_dict.pop("additional_special_tokens", None)
        allowed = set(SPECIAL_TOKENS_ATTRIBUTES) | {"extra_special_tokens"}
        to_add: list[AddedToken] = []
        for key, value in special_tokens_dict.items():
            if key not in allowed:
                raise ValueError(f"Key {key!r} is not a special token attribute; valid keys are {sorted(allowed)}.")
            if key == "extra_special_tokens":
                if not isinstance(value, (list, tuple)) or not all(isinstance(t, (str, AddedToken)) for t in value):
                    raise ValueError(f"Tokens {value!r} for {key} should all be str or AddedToken instances")
                current = self.additional_special_tokens
                new = [
                    AddedToken(t, rstrip=False, lstrip=False, normalized=False, special=True)
                    if isinstance(t, str)
                    else t
                    for t in value
                    if replace_additional_special_tokens or str(t) not in current
                ]
                if replace_additional_special_tokens and new:
                    self._extra_special_tokens = list(new)
                else:
                    self._extra_special_tokens.extend(new)
                to_add.extend(new)
            else:
                if not isinstance(value, (str, AddedToken)):
                    raise ValueError(f"Token {value!r} for {key} should be a str or an AddedToken instance")
                if isinstance(value, str):
                    value = AddedToken(value, rstrip=False, lstrip=False, normalized=False, special=True)
                self._special_tokens[key] = value
                to_add.append(value)
        return self.add_tokens(to_add, special_tokens=True)
