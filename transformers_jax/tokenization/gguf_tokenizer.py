"""The tokenizer a GGUF file describes (``tokenizer.ggml.*`` metadata), as a :class:`PreTrainedTokenizerFast`.

llama.cpp stores the vocabulary, merges (or SentencePiece scores), token types, special token ids, the
``add_bos``/``add_eos`` flags and the chat template as metadata. They become a ``tokenizers.Tokenizer``:
byte-level BPE (``tokenizer.ggml.model == "gpt2"``, as SmolLM2 and Llama 3) or SentencePiece-style BPE with byte
fallback (``"llama"``), wrapped the way Hugging Face's GGUF loader does. The file is read through
:mod:`transformers_jax.gguf` (metadata only, no dequantization); that package never imports this one.
"""
from __future__ import annotations

import functools
import os

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

from transformers_jax.gguf import architecture_for, read_gguf_metadata
from transformers_jax.gguf import tokenizer_metadata as tokenizer_entries
from transformers_jax.gguf.architectures import require
from transformers_jax.tokenization.tokenizer import PreTrainedTokenizerFast

# llama.cpp token types (tokenizer.ggml.token_type).
_CONTROL, _USER_DEFINED = 3, 4

# Pre-tokenizer split regexes for `tokenizer.ggml.pre` values (the regex the vocabulary's merges were
# learned with); any other value uses GPT-2's byte-level regex, as Hugging Face does.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2's: Llama 3's with single digits.
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_PRE_TOKENIZER_SPLITS = {
    **{name: _LLAMA3_SPLIT for name in ("llama3", "llama-v3", "llama-bpe", "smaug-bpe", "falcon3", "dbrx")},
    **{name: _QWEN2_SPLIT for name in ("qwen2", "deepseek-r1-qwen", "megrez")},
}


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


def _byte_level_model(meta: dict, arch: str = "gpt2"):
    """GPT-2 style byte-level BPE (``tokenizer.ggml.model == "gpt2"``)."""
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


def _sentencepiece_model(meta: dict, arch: str = "llama"):
    """SentencePiece-style BPE with byte fallback (``tokenizer.ggml.model == "llama"``).

    Files without merges get them from the vocabulary: ranked by the tokens' scores, except for Gemma,
    whose scores do not follow its merge order; the order of the tokens in the file does (as
    ``transformers`` ranks them). How spaces become ``▁`` depends on the architecture, as in
    ``transformers``:

    * Gemma: every space is replaced, nothing is prepended, and tokens of two or more spaces, which Gemma
      files spell with real spaces, are re-spelled with ``▁``;
    * Phi-3: a ``▁`` is prepended to the text and every space replaced (so ``"  hi"`` keeps three);
    * others: ``Metaspace``, with the prefix space that ``tokenizer.ggml.add_space_prefix`` asks for
      (``transformers`` always prepends one; llama.cpp, and we, follow the flag).
    """
    gemma = arch in ("gemma", "gemma2", "gemma3")
    tokens = list(meta["ggml.tokens"])
    if gemma:
        tokens = ["▁" * len(t) if " " in t and not t.strip() else t for t in tokens]
    if "ggml.merges" in meta:
        merges = [tuple(merge.split(" ", 1)) for merge in meta["ggml.merges"]]
    elif gemma:
        merges = _merges_from_scores(tokens, [-float(i) for i in range(len(tokens))])
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
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if gemma:
        tokenizer.normalizer = normalizers.Replace(" ", "▁")
        tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
        tokenizer.decoder = decoders.Sequence(steps)
        return tokenizer, None
    if arch == "phi3":
        tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        add_prefix = True
    else:
        add_prefix = bool(meta.get("ggml.add_space_prefix", True))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="▁", prepend_scheme="first" if add_prefix else "never", split=False
        )
    if add_prefix:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    tokenizer.decoder = decoders.Sequence(steps)
    return tokenizer, None


_TOKENIZER_BUILDERS = {"gpt2": _byte_level_model, "llama": _sentencepiece_model}


def build_gguf_tokenizer(tokenizer_metadata: dict, model_max_length: int | None = None, name_or_path: str = "",
                         architecture: str = "llama"):
    """Build the tokenizer from ``tokenizer.*`` metadata (keys without the ``tokenizer.`` prefix) of a file
    whose ``general.architecture`` is ``architecture`` (it decides the SentencePiece details).

    Returns a :class:`~transformers_jax.tokenization.PreTrainedTokenizerFast`.
    """
    meta = tokenizer_metadata
    kind = meta.get("ggml.model")
    if kind not in _TOKENIZER_BUILDERS:
        raise ValueError(
            f"GGUF tokenizer model {kind!r} is not supported (supported: {', '.join(sorted(_TOKENIZER_BUILDERS))})"
            + (f" in {name_or_path}" if name_or_path else "")
        )
    tokenizer, alphabet = _TOKENIZER_BUILDERS[kind](meta, architecture)
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




def load_gguf_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerFast:
    """The tokenizer a GGUF file of a supported architecture describes.

    Built from the ``tokenizer.ggml.*`` metadata: byte-level BPE (``gpt2``, as SmolLM2 and Llama 3)
    or SentencePiece-style BPE (``llama``); bos/eos/unk/pad tokens from their ids, control tokens as
    special tokens, ``add_bos_token``/``add_eos_token`` and the chat template from the file, and
    ``model_max_length`` from the context length. Reads only metadata (no dequantization).
    """
    metadata = read_gguf_metadata(path)
    arch = architecture_for(metadata, path).name
    require(metadata, "tokenizer.ggml.tokens", path, "the tokenizer")
    context = metadata.get(f"{arch}.context_length")
    return build_gguf_tokenizer(tokenizer_entries(metadata), int(context) if context is not None else None, str(path),
                                architecture=arch)
