"""Reading and writing a tokenizer's files.

Reading: locate the files (a ``tokenizer.json`` file, a folder, or a hub repo downloaded into the HF cache) and merge
``tokenizer_config.json``, ``special_tokens_map.json``, ``added_tokens.json`` and the chat templates
(``chat_template.jinja``, ``additional_chat_templates/*.jinja``, ``chat_template.json``) into the tokenizer's keyword
arguments, as HF's ``_from_pretrained`` resolves them. Which backend the vocabulary files give is
:mod:`~transformers_jax.tokenization.backends`' business.

Writing: ``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json`` (and ``chat_template.jinja``),
staged and moved into place together (:func:`transformers_jax.file_utils.staged_directory`).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from tokenizers import AddedToken

from transformers_jax.file_utils import staged_directory
from transformers_jax.tokenization.special_tokens import SPECIAL_TOKENS_ATTRIBUTES, _as_added_token, _token_to_dict

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
LEGACY_CHAT_TEMPLATE_FILE = "chat_template.json"
CHAT_TEMPLATE_DIR = "additional_chat_templates"
BERT_VOCAB_FILE = "vocab.txt"
BPE_VOCAB_FILE = "vocab.json"
BPE_MERGES_FILE = "merges.txt"
MODEL_CONFIG_FILE = "config.json"
# SentencePiece models of the XLM-R / CamemBERT, ALBERT and DeBERTa-v2 classes (fetched only without tokenizer.json).
SENTENCEPIECE_FILES = ("sentencepiece.bpe.model", "spiece.model", "spm.model")
# Marian's two SentencePiece models and its target vocabulary (with separate_vocabs); vocab.json holds the ids.
MARIAN_FILES = ("source.spm", "target.spm", "target_vocab.json")

TOKENIZER_FILES = (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, ADDED_TOKENS_FILE, BERT_VOCAB_FILE,
                   BPE_VOCAB_FILE, BPE_MERGES_FILE, CHAT_TEMPLATE_FILE, LEGACY_CHAT_TEMPLATE_FILE)


def _base_class_name(name: str | None) -> str | None:
    """``'BertTokenizerFast'`` -> ``'BertTokenizer'`` (HF's fast and slow names share behaviour in v5)."""
    if name is None:
        return None
    return name[:-4] if name.endswith("Fast") else name


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _resolve_location(path_or_hub_id: str | os.PathLike, hub_kwargs: dict) -> tuple[Path, str, Any]:
    """(local path, name for messages, fetch): a ``tokenizer.json`` file, or a folder with the tokenizer files.

    A hub repo's tokenizer files (those of :data:`TOKENIZER_FILES` and ``additional_chat_templates/*.jinja`` that
    it has) are downloaded into the Hugging Face cache; nothing else is until ``fetch(name)`` asks for one more
    optional file (a no-op for a local folder).
    """
    from transformers_jax import hub_download

    path = Path(path_or_hub_id).expanduser()
    if path.is_file():
        return path, str(path), lambda name: None
    files = hub_download.open_source(path_or_hub_id, **hub_kwargs)
    templates = [f"{CHAT_TEMPLATE_DIR}/{name}" for name in files.listdir(CHAT_TEMPLATE_DIR) if name.endswith(".jinja")]
    directory = hub_download.fetch_existing(files, [*TOKENIZER_FILES, *templates])
    return directory, files.describe(), lambda name: hub_download.fetch_existing(files, [name])


def _class_from_model_config(directory: Path) -> str | None:
    """The tokenizer class HF's AutoTokenizer picks from ``config.json``'s ``model_type`` (when the tokenizer
    config names none), for the model types :data:`~transformers_jax.tokenization.backends.MODEL_TYPE_CLASSES` knows."""
    from transformers_jax.tokenization.backends import MODEL_TYPE_CLASSES

    if not (directory / MODEL_CONFIG_FILE).is_file():
        return None
    model_config = _read_json(directory / MODEL_CONFIG_FILE)
    return MODEL_TYPE_CLASSES.get(model_config.get("model_type")) if isinstance(model_config, dict) else None


@dataclasses.dataclass
class TokenizerFiles:
    """What :func:`read_tokenizer_files` found.

    Attributes:
        directory: the folder holding the files.
        tokenizer_json: where ``tokenizer.json`` is (it may not exist: then the vocabulary files are used).
        label: the location, for messages.
        tokenizer_class: HF's ``tokenizer_class`` without the ``Fast`` suffix, or ``None``.
        config: the merged configuration: keyword arguments for the tokenizer.
    """

    directory: Path
    tokenizer_json: Path
    label: str
    tokenizer_class: str | None
    config: dict[str, Any]


def read_tokenizer_files(path_or_hub_id: str | os.PathLike, kwargs: dict[str, Any], hub_kwargs: dict) -> TokenizerFiles:
    """Locate the tokenizer files and merge their configuration, ``kwargs`` (the caller's overrides) winning."""
    location, label, fetch = _resolve_location(path_or_hub_id, hub_kwargs)
    if location.is_file():
        if location.suffix != ".json":
            raise ValueError(
                f"{str(location)!r} is a file; pass a directory with tokenizer files, a tokenizer.json file or "
                "a .gguf file."
            )
        directory, tokenizer_json = location.parent, location
        has_config = False
    else:
        directory, tokenizer_json = location, location / TOKENIZER_FILE
        has_config = True
        if not tokenizer_json.is_file():
            for name in (*SENTENCEPIECE_FILES, *MARIAN_FILES):  # SentencePiece models: only without tokenizer.json
                fetch(name)

    config: dict[str, Any] = {}
    if has_config and (directory / TOKENIZER_CONFIG_FILE).is_file():
        config = dict(_read_json(directory / TOKENIZER_CONFIG_FILE))
    tokenizer_class = _base_class_name(config.pop("tokenizer_class", None))
    if tokenizer_class is None and has_config:
        fetch(MODEL_CONFIG_FILE)
        tokenizer_class = _class_from_model_config(directory)
    for key in ("init_inputs", "auto_map", "name_or_path", "tokenizer_file", "vocab_file", "merges_file",
                "special_tokens_map_file", "backend", "files_loaded", "is_local", "local_files_only"):
        config.pop(key, None)

    # Chat templates: the .jinja files win over the config entry; chat_template.json is a last resort.
    templates: dict[str, str] = {}
    if has_config and (directory / CHAT_TEMPLATE_FILE).is_file():
        templates["default"] = (directory / CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")
    if has_config and (directory / CHAT_TEMPLATE_DIR).is_dir():
        for file in sorted((directory / CHAT_TEMPLATE_DIR).glob("*.jinja")):
            templates[file.name[: -len(".jinja")]] = file.read_text(encoding="utf-8")
    if len(templates) == 1 and "default" in templates:
        config["chat_template"] = templates["default"]
    elif templates:
        config["chat_template"] = templates
    elif config.get("chat_template") is None and has_config and (directory / LEGACY_CHAT_TEMPLATE_FILE).is_file():
        legacy = _read_json(directory / LEGACY_CHAT_TEMPLATE_FILE)
        config["chat_template"] = legacy.get("chat_template") if isinstance(legacy, dict) else legacy

    config.update(kwargs)
    if "max_len" in config and "model_max_length" not in config:
        config["model_max_length"] = config.pop("max_len")
    config.pop("max_len", None)
    if "additional_special_tokens" in config and not config.get("extra_special_tokens"):
        config["extra_special_tokens"] = config.pop("additional_special_tokens")
    config.pop("additional_special_tokens", None)

    # Special tokens and added tokens, as HF's _from_pretrained resolves them.
    added_tokens_decoder: dict[int, AddedToken] = {}
    added_tokens_map: dict[str, AddedToken] = {}
    if "added_tokens_decoder" in config:
        for index, token in config["added_tokens_decoder"].items():
            token = _as_added_token(token)
            if not isinstance(token, AddedToken):
                raise TypeError(f"added_tokens_decoder[{index!r}] in {TOKENIZER_CONFIG_FILE} is not a token dict")
            added_tokens_decoder[int(index)] = token
            added_tokens_map[str(token)] = token
    else:
        special_map_file = directory / SPECIAL_TOKENS_MAP_FILE
        if has_config and special_map_file.is_file():
            for key, value in _read_json(special_map_file).items():
                if kwargs.get(key):
                    continue
                if key in ("additional_special_tokens", "extra_special_tokens") and isinstance(value, list):
                    existing = list(config.get("extra_special_tokens") or [])
                    for token in value:
                        token = _as_added_token(token, special=True)
                        if token not in existing:
                            existing.append(token)
                    config["extra_special_tokens"] = existing
                else:
                    config[key] = _as_added_token(value, special=True)
        added_file = directory / ADDED_TOKENS_FILE
        if has_config and added_file.is_file():
            specials = {str(config[k]) for k in SPECIAL_TOKENS_ATTRIBUTES if config.get(k)}
            specials.update(str(t) for t in (config.get("extra_special_tokens") or []))
            for content, index in _read_json(added_file).items():
                is_special = content in specials
                token = AddedToken(content, normalized=not is_special, special=is_special)
                added_tokens_decoder[int(index)] = token
                added_tokens_map[content] = token
    config["added_tokens_decoder"] = added_tokens_decoder
    for key, value in list(config.items()):
        if key != "added_tokens_decoder":
            config[key] = _as_added_token(value) if isinstance(value, dict) else value
    if isinstance(config.get("extra_special_tokens"), list):
        config["extra_special_tokens"] = [_as_added_token(t) for t in config["extra_special_tokens"]]
    for key in SPECIAL_TOKENS_ATTRIBUTES:
        if config.get(key) is not None and added_tokens_map:
            config[key] = added_tokens_map.get(str(config[key]), config[key])
    return TokenizerFiles(directory, tokenizer_json, label, tokenizer_class, config)


def tokenizer_config_for_saving(tokenizer) -> dict[str, Any]:
    """The ``tokenizer_config.json`` contents of ``tokenizer`` (HF's keys; loads with HF's ``AutoTokenizer``)."""
    config: dict[str, Any] = {}
    for key, value in tokenizer.init_kwargs.items():
        if isinstance(value, AddedToken):
            value = {"__type": "AddedToken", **_token_to_dict(value)}
        try:
            json.dumps(value)
        except TypeError:
            continue  # runtime-only objects
        config[key] = value
    for key in ("max_length", "stride", "truncation_strategy", "pad_to_multiple_of", "pad_token_type_id"):
        config.pop(key, None)  # tokenizer.json padding/truncation defaults HF copies in; not settings
    config.update(tokenizer.special_tokens_map)
    if tokenizer._extra_special_tokens:
        config["additional_special_tokens"] = tokenizer.additional_special_tokens
    config["added_tokens_decoder"] = {
        str(index): _token_to_dict(token) for index, token in sorted(tokenizer.added_tokens_decoder.items())
    }
    config["model_max_length"] = tokenizer.model_max_length
    config["padding_side"] = tokenizer.padding_side
    config["truncation_side"] = tokenizer.truncation_side
    config["model_input_names"] = list(tokenizer.model_input_names)
    config["clean_up_tokenization_spaces"] = tokenizer.clean_up_tokenization_spaces
    if tokenizer.split_special_tokens:
        config["split_special_tokens"] = True
    if isinstance(tokenizer.chat_template, dict):
        config["chat_template"] = [{"name": k, "template": v} for k, v in tokenizer.chat_template.items()]
    elif tokenizer.chat_template is not None:
        config["chat_template"] = tokenizer.chat_template
    # HF's class when the tokenizer was built as that class builds it (mBART's language codes need the class), else
    # the generic one, which takes tokenizer.json as it is.
    config["tokenizer_class"] = tokenizer._hf_class or "PreTrainedTokenizerFast"
    return config


def save_tokenizer_files(tokenizer, save_directory: str | os.PathLike) -> tuple[str, ...]:
    """Write ``tokenizer``'s files into ``save_directory`` (see ``PreTrainedTokenizerFast.save_pretrained``)."""
    directory = Path(save_directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(
            f"Cannot save the tokenizer to {str(directory)!r}: it is an existing file, not a directory."
        )
    config = tokenizer_config_for_saving(tokenizer)
    special_map: dict[str, Any] = dict(tokenizer.special_tokens_map)
    if tokenizer._extra_special_tokens:
        special_map["additional_special_tokens"] = tokenizer.additional_special_tokens
    contents = {
        TOKENIZER_FILE: tokenizer.backend_tokenizer.to_str(pretty=True),
        TOKENIZER_CONFIG_FILE: json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        SPECIAL_TOKENS_MAP_FILE: json.dumps(special_map, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
    }
    if isinstance(tokenizer.chat_template, str):
        # HF prefers this file over the config entry; keep both in sync so a stale file never wins.
        contents[CHAT_TEMPLATE_FILE] = tokenizer.chat_template
    with staged_directory(directory) as stage:  # every file complete (and fsync'ed) before any replaces one
        for name, text in contents.items():
            (stage / name).write_text(text, encoding="utf-8")
    return tuple(str(directory / name) for name in contents)
