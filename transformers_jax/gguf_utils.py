"""Loading Llama-architecture GGUF files (llama.cpp's format): config, weights and tokenizer.

A GGUF file holds a model's hyper-parameters and tokenizer as metadata under llama.cpp's key names,
and its weights as (often quantized) tensors under llama.cpp's tensor names. This module turns them
into what a Hugging Face checkpoint would hold:

    ckpt = read_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")
    ckpt.config        # a config.json-style dict for LlamaForCausalLM
    ckpt.state_dict    # float32 numpy arrays under Hugging Face PyTorch names and layouts
    tokenizer = load_gguf_tokenizer("SmolLM2-135M-Instruct.Q4_1.gguf")

Weights are dequantized with the ``gguf`` package. Reading and dequantizing are cached per
(path, modification time) within a process, so a second load of the same file is immediate; the
cached arrays are shared and therefore read-only.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

GGUF_MAGIC = b"GGUF"
SUPPORTED_ARCHITECTURES = ("llama",)

# llama.cpp tensor name (without the ".weight"/".bias" suffix) -> Hugging Face Llama name.
_GLOBAL_TENSORS = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
_LAYER_TENSORS = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
# Tensors with no Hugging Face parameter: llama.cpp's precomputed RoPE frequency factors.
_IGNORED_TENSORS = ("rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight")

# llama.cpp token types (tokenizer.ggml.token_type).
_CONTROL, _USER_DEFINED = 3, 4

# Pre-tokenizer split regexes for `tokenizer.ggml.pre` values of Llama-architecture files; any other
# value uses GPT-2's byte-level regex, as Hugging Face does.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_PRE_TOKENIZER_SPLITS = {name: _LLAMA3_SPLIT for name in ("llama3", "llama-v3", "llama-bpe", "smaug-bpe", "falcon3")}


class GGUFMetadataError(KeyError):
    """A metadata key the loader needs is missing from a GGUF file."""

    def __str__(self):
        return str(self.args[0])


@dataclasses.dataclass
class GGUFCheckpoint:
    """What a GGUF file holds, in Hugging Face terms.

    Attributes:
        path: the file read.
        config: a ``config.json``-style dict for ``LlamaForCausalLM``.
        state_dict: float32 arrays under Hugging Face PyTorch names and layouts (``[out, in]``
            for linear weights); read-only, as they are shared with the in-process cache.
        tokenizer_metadata: the file's ``tokenizer.*`` metadata, keys without the ``tokenizer.`` prefix.
    """

    path: Path
    config: dict
    state_dict: dict[str, np.ndarray]
    tokenizer_metadata: dict


# ----------------------------------------------------------------------------------------------
# Reading the file
# ----------------------------------------------------------------------------------------------
def _file_key(path) -> tuple[str, int, int]:
    """(resolved path, mtime, size): the cache key, after checking the file is there and is GGUF."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ValueError(f"{path} is not a GGUF file: it starts with {magic!r}, not {GGUF_MAGIC!r}")
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


@dataclasses.dataclass(frozen=True)
class _RawFile:
    metadata: dict  # every key-value pair, as plain Python values
    tensors: tuple  # (name, GGMLQuantizationType, raw data memory-mapped from the file)


@functools.lru_cache(maxsize=2)
def _read_raw(path: str, mtime_ns: int, size: int) -> _RawFile:
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except Exception as err:  # truncated or corrupt files fail deep inside the reader
        raise ValueError(f"cannot read GGUF file {path}: {err}") from err
    metadata = {name: field.contents() for name, field in reader.fields.items()}
    tensors = tuple((t.name, t.tensor_type, t.data) for t in reader.tensors)
    return _RawFile(metadata, tensors)


def _require(metadata: dict, key: str, path) -> object:
    if key not in metadata:
        raise GGUFMetadataError(f"GGUF file {path} has no metadata key {key!r}, which a Llama model needs")
    return metadata[key]


def _architecture(metadata: dict, path) -> str:
    arch = _require(metadata, "general.architecture", path)
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"GGUF file {path} has architecture {arch!r}; only {', '.join(SUPPORTED_ARCHITECTURES)} is supported"
        )
    return arch


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------
def _llama_config(metadata: dict, tensor_names: set, path) -> dict:
    """A Hugging Face LlamaConfig dict from llama.cpp's ``llama.*`` keys."""
    arch = _architecture(metadata, path)

    def need(key):
        return _require(metadata, f"{arch}.{key}", path)

    def get(key, default=None):
        return metadata.get(f"{arch}.{key}", default)

    heads = int(need("attention.head_count"))
    vocab_size = get("vocab_size")
    if vocab_size is None:
        vocab_size = len(_require(metadata, "tokenizer.ggml.tokens", path))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(vocab_size),
        "hidden_size": int(need("embedding_length")),
        "intermediate_size": int(need("feed_forward_length")),
        "num_hidden_layers": int(need("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "max_position_embeddings": int(need("context_length")),
        "rms_norm_eps": float(need("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(get("rope.freq_base", 10000.0)),  # llama.cpp's default
        "tie_word_embeddings": "output.weight" not in tensor_names,
    }
    head_dim = get("attention.key_length", get("rope.dimension_count"))
    if head_dim is not None:
        config["head_dim"] = int(head_dim)
    if any(n.endswith(("attn_q.bias", "attn_output.bias")) for n in tensor_names):
        config["attention_bias"] = True
    if any(n.endswith("ffn_up.bias") for n in tensor_names):
        config["mlp_bias"] = True
    rope_scaling = _rope_scaling(metadata, arch)
    if rope_scaling is not None:
        config["rope_scaling"] = rope_scaling
    for name in ("bos", "eos", "pad"):
        key = "padding" if name == "pad" else name
        token_id = metadata.get(f"tokenizer.ggml.{key}_token_id")
        if token_id is not None:
            config[f"{name}_token_id"] = int(token_id)
    return config


def _rope_scaling(metadata: dict, arch: str) -> dict | None:
    """Hugging Face's ``rope_scaling`` from llama.cpp's ``{arch}.rope.scaling.*`` keys, if any."""
    kind = metadata.get(f"{arch}.rope.scaling.type")
    factor = metadata.get(f"{arch}.rope.scaling.factor")
    if kind is None and metadata.get(f"{arch}.rope.scale_linear") is not None:  # older files
        kind, factor = "linear", metadata[f"{arch}.rope.scale_linear"]
    if kind in (None, "none"):
        return None
    scaling = {"rope_type": str(kind)}
    if factor is not None:
        scaling["factor"] = float(factor)
    original = metadata.get(f"{arch}.rope.scaling.original_context_length")
    if original is not None:
        scaling["original_max_position_embeddings"] = int(original)
    attn_factor = metadata.get(f"{arch}.rope.scaling.attn_factor")
    if attn_factor is not None:
        scaling["attention_factor"] = float(attn_factor)
    return scaling


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------
def _hf_tensor_name(name: str, path) -> str:
    """Hugging Face name of a llama.cpp tensor name such as ``blk.3.attn_q.weight``."""
    stem, _, suffix = name.rpartition(".")
    if stem in _GLOBAL_TENSORS:
        return f"{_GLOBAL_TENSORS[stem]}.{suffix}"
    match = re.fullmatch(r"blk\.(\d+)\.(\w+)", stem)
    if match and match.group(2) in _LAYER_TENSORS:
        return f"model.layers.{match.group(1)}.{_LAYER_TENSORS[match.group(2)]}.{suffix}"
    raise ValueError(f"GGUF file {path} has tensor {name!r}, which a Llama model has no place for")


def _unpermute_rows(weights: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row order: within each head it interleaves the two rotary halves."""
    rows = weights.shape[0]
    w = weights.reshape(n_heads, rows // n_heads // 2, 2, *weights.shape[1:])
    return np.ascontiguousarray(w.swapaxes(1, 2)).reshape(weights.shape)


def _dequantize(data: np.ndarray, qtype) -> np.ndarray:
    import gguf

    weights = gguf.quants.dequantize(data, qtype)
    # Unquantized tensors come back as views of the memory-mapped file: copy those.
    copy_needed = qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
    return np.array(weights, dtype=np.float32, copy=copy_needed or None)


@functools.lru_cache(maxsize=2)
def _checkpoint(path: str, mtime_ns: int, size: int) -> GGUFCheckpoint:
    raw = _read_raw(path, mtime_ns, size)
    names = {name for name, _, _ in raw.tensors}
    config = _llama_config(raw.metadata, names, path)
    heads = {".attn_q.": config["num_attention_heads"], ".attn_k.": config["num_key_value_heads"]}

    def convert(tensor):
        name, qtype, data = tensor
        weights = _dequantize(data, qtype)
        for part, n_heads in heads.items():
            if part in name:
                weights = _unpermute_rows(weights, n_heads)
        weights.setflags(write=False)
        return _hf_tensor_name(name, path), weights

    tensors = [t for t in raw.tensors if t[0] not in _IGNORED_TENSORS]
    for name, _, _ in tensors:  # fail on an unknown tensor before the slow part
        _hf_tensor_name(name, path)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        state_dict = dict(pool.map(convert, tensors))
    tokenizer_metadata = {k[len("tokenizer."):]: v for k, v in raw.metadata.items() if k.startswith("tokenizer.")}
    return GGUFCheckpoint(Path(path), config, state_dict, tokenizer_metadata)


def read_gguf(path: str | os.PathLike) -> GGUFCheckpoint:
    """Read a Llama-architecture GGUF file into a Hugging Face-style config and state dict.

    Every tensor is dequantized to float32; llama.cpp's q/k row permutation is undone, so the
    arrays match what ``transformers`` loads from the same file. ``lm_head.weight`` is present only
    when the file has its own output matrix (else ``config["tie_word_embeddings"]`` is true).

    Results are cached per (path, modification time), so a repeated call is cheap; the arrays are
    shared with the cache and read-only (copy one before changing it in place).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not GGUF, or its architecture is not ``llama``, or it holds a
            tensor a Llama model has no place for.
        KeyError: a metadata key the config needs is missing (the message names key and file).
    """
    cached = _checkpoint(*_file_key(path))
    return GGUFCheckpoint(
        cached.path, copy.deepcopy(cached.config), dict(cached.state_dict), dict(cached.tokenizer_metadata)
    )


# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character map used by byte-level BPE vocabularies."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


def _byte_level_model(meta: dict):
    """GPT-2 style byte-level BPE (``tokenizer.ggml.model == "gpt2"``)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    spelling = _byte_alphabet()
    alphabet = set(spelling.values())

    def spell(token):  # a token written in raw text is re-spelled in the byte alphabet
        return token if set(token) <= alphabet else "".join(spelling[b] for b in token.encode("utf-8"))

    vocab = {spell(token): index for index, token in enumerate(meta["ggml.tokens"])}
    merges = [tuple(merge.split(" ", 1)) for merge in meta.get("ggml.merges", [])]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    split = _PRE_TOKENIZER_SPLITS.get(meta.get("ggml.pre"))
    if split is None:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer, alphabet


def _merges_from_scores(tokens: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """SentencePiece BPE merges implied by a vocabulary: every split of a token into two tokens,
    ranked by the merged token's score (best first), then longer left and right pieces first, then
    vocabulary order, as ``transformers`` ranks them."""
    ids = {token: index for index, token in enumerate(tokens)}
    found = []
    for index, (token, score) in enumerate(zip(tokens, scores)):
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ids and right in ids:
                found.append(((-score, -len(left), -len(right), index, ids[left], ids[right]), left, right))
    found.sort(key=lambda m: m[0])
    return [(left, right) for _, left, right in found]


def _sentencepiece_model(meta: dict):
    """SentencePiece-style BPE with byte fallback (``tokenizer.ggml.model == "llama"``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokens = meta["ggml.tokens"]
    if "ggml.merges" in meta:
        merges = [tuple(merge.split(" ", 1)) for merge in meta["ggml.merges"]]
    else:
        merges = _merges_from_scores(tokens, meta.get("ggml.scores") or [0.0] * len(tokens))
    unk_id = meta.get("ggml.unknown_token_id")
    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            unk_token=tokens[unk_id] if unk_id is not None else None,
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    add_prefix = bool(meta.get("ggml.add_space_prefix", True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="first" if add_prefix else "never", split=False
    )
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    tokenizer.decoder = decoders.Sequence(steps)
    return tokenizer, None


_TOKENIZER_BUILDERS = {"gpt2": _byte_level_model, "llama": _sentencepiece_model}


def build_gguf_tokenizer(tokenizer_metadata: dict, model_max_length: int | None = None, name_or_path: str = ""):
    """Build the tokenizer from ``tokenizer.*`` metadata (keys without the ``tokenizer.`` prefix).

    Returns a ``transformers_jax.tokenization_utils.PreTrainedTokenizerFast``.
    """
    from tokenizers import AddedToken

    from transformers_jax.tokenization_utils import PreTrainedTokenizerFast

    meta = tokenizer_metadata
    kind = meta.get("ggml.model")
    if kind not in _TOKENIZER_BUILDERS:
        raise ValueError(
            f"GGUF tokenizer model {kind!r} is not supported (supported: {', '.join(sorted(_TOKENIZER_BUILDERS))})"
            + (f" in {name_or_path}" if name_or_path else "")
        )
    tokenizer, alphabet = _TOKENIZER_BUILDERS[kind](meta)
    tokens = meta["ggml.tokens"]
    types = meta.get("ggml.token_type") or []
    # Control tokens (like <|im_start|>) are matched whole and are special. In a byte-level vocabulary
    # a "control" token spelled outside the byte alphabet is a llama.cpp mislabel: left out.
    special = [
        AddedToken(token, normalized=False, special=True)
        for token, kind_ in zip(tokens, types)
        if kind_ == _CONTROL and (alphabet is None or set(token) <= alphabet)
    ]
    vocab = tokenizer.get_vocab()
    user_defined = [
        AddedToken(token, normalized=False, special=False)
        for token, kind_ in zip(tokens, types)
        if kind_ == _USER_DEFINED and token in vocab
    ]
    tokenizer.add_special_tokens(special)
    tokenizer.add_tokens(user_defined)

    vocab = tokenizer.get_vocab()
    named = {}  # a named token must already be in the vocabulary, or the wrapper would add a new id
    for name, key in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding")):
        token_id = meta.get(f"ggml.{key}_token_id")
        if token_id is not None and 0 <= token_id < len(tokens) and tokens[token_id] in vocab:
            named[f"{name}_token"] = tokens[token_id]
    # Older SentencePiece files have no flag, and llama.cpp adds BOS to those by default. The wrapper
    # builds the BOS/EOS post-processor from these flags.
    add_bos = bool(meta.get("ggml.add_bos_token", kind == "llama"))
    add_eos = bool(meta.get("ggml.add_eos_token", False))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        **named,
        model_max_length=model_max_length,
        chat_template=meta.get("chat_template"),
        add_bos_token=add_bos,
        add_eos_token=add_eos,
        name_or_path=name_or_path,
    )


def load_gguf_tokenizer(path: str | os.PathLike):
    """The tokenizer a Llama-architecture GGUF file describes, as a ``PreTrainedTokenizerFast``.

    Built from the ``tokenizer.ggml.*`` metadata: byte-level BPE (``gpt2``, as SmolLM2 and Llama 3)
    or SentencePiece-style BPE (``llama``); bos/eos/unk/pad tokens from their ids, control tokens as
    special tokens, ``add_bos_token``/``add_eos_token`` and the chat template from the file, and
    ``model_max_length`` from the context length. Reads only metadata (no dequantization).
    """
    key = _file_key(path)
    metadata = _read_raw(*key).metadata
    arch = _architecture(metadata, path)
    _require(metadata, "tokenizer.ggml.tokens", path)
    meta = {k[len("tokenizer."):]: v for k, v in metadata.items() if k.startswith("tokenizer.")}
    context = metadata.get(f"{arch}.context_length")
    return build_gguf_tokenizer(meta, int(context) if context is not None else None, str(path))
