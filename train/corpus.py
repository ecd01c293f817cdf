"""Text corpora tokenized on demand, so that each host of a multi-host run tokenizes what its rows need.

Every host of a run computes the same row order and, with a row-wise collator, reads only its own rows of each
global batch (:class:`~train.data.DataLoader`). For a pre-tokenized token file that means reading only those rows'
bytes. A text file has no such index: every host reads the file (its documents and their boundaries, which the row
count and order depend on), but tokenizing, the costly part, can be left until a row is read:

* :class:`TextCorpus` holds the documents' texts and tokenizes a document when a row needs it (then keeps it).
* :class:`DocumentDataset`: row i is document i (truncated and padded by the collator; masked and causal LM).
* :class:`PackedDataset`: the rows of :func:`~train.collators.pack_sequences` (causal LM with packing).
* :class:`GroupedDataset`: the rows of :func:`~train.collators.group_texts` (documents concatenated and cut into
  rows; T5 span corruption).

Packed and grouped rows have a layout that depends on the token count of every document before them, which only
tokenizing gives. :meth:`TextCorpus.lengths` splits that work: host p of P tokenizes documents
``[p*N/P, (p+1)*N/P)`` and the counts are all-gathered (``jax.experimental.multihost_utils``), so every host knows
the whole layout after tokenizing 1/P of the corpus. The tokens of that share are kept; the documents that the
host's rows hold are tokenized when read. ``documents_tokenized`` counts what this host has tokenized.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from train.collators import packing_layout

__all__ = ["DocumentDataset", "GroupedDataset", "PackedDataset", "TextCorpus", "share"]

Gather = Callable[[np.ndarray, Sequence[int]], np.ndarray]


def share(num_documents: int, process_index: int, process_count: int) -> range:
    """The documents whose token counts host ``process_index`` of ``process_count`` computes: a contiguous
    ``[p*N/P, (p+1)*N/P)``."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in [0, process_count={process_count})")
    return range(process_index * num_documents // process_count, (process_index + 1) * num_documents // process_count)


def allgather_shares(local: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Every host's ``local`` counts (host q holds ``sizes[q]`` of them), concatenated in host order, on every
    host: one ``process_allgather`` of the counts padded to the largest share."""
    import jax

    if jax.process_count() == 1:
        return np.asarray(local)
    from jax.experimental import multihost_utils

    padded = np.zeros(max(sizes), np.int32)  # [W]
    padded[:len(local)] = local
    gathered = np.asarray(multihost_utils.process_allgather(padded))  # [P, W]
    return np.concatenate([gathered[q, :size] for q, size in enumerate(sizes)]).astype(np.int64)


class TextCorpus:
    """Documents (strings) tokenized on demand by ``tokenize`` (a list of strings -> a list of id lists, e.g.
    ``lambda texts: tokenizer(texts, truncation=True, max_length=128)["input_ids"]``); each document is tokenized
    at most once (its ids are kept). ``documents_tokenized`` counts the documents tokenized so far."""

    def __init__(self, texts: Sequence[str], tokenize: Callable[[list[str]], Sequence[Sequence[int]]]):
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"document {index} must be a string, got {type(text).__name__} {text!r:.40}")
        self.texts, self.tokenize = list(texts), tokenize
        self.documents_tokenized = 0
        self._ids: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.texts)

    def tokens(self, documents: Sequence[int]) -> list[np.ndarray]:
        """The ids of ``documents`` (int32 [n_d] each); the ones not seen before are tokenized in one call."""
        documents = [int(d) for d in documents]
        for d in documents:
            if not 0 <= d < len(self.texts):
                raise IndexError(f"document {d} out of range for a corpus of {len(self.texts)} documents")
        missing = sorted({d for d in documents if d not in self._ids})
        if missing:
            encoded = self.tokenize([self.texts[d] for d in missing])
            if len(encoded) != len(missing):
                raise ValueError(f"tokenize returned {len(encoded)} id lists for {len(missing)} documents")
            for d, ids in zip(missing, encoded):
                self._ids[d] = np.asarray(ids, np.int32).reshape(-1)
            self.documents_tokenized += len(missing)
        return [self._ids[d] for d in documents]

    def local_lengths(self, process_index: int, process_count: int) -> np.ndarray:
        """Token counts of this host's :func:`share` of the documents (tokenizing them); int64 [share]."""
        documents = share(len(self), process_index, process_count)
        return np.asarray([len(ids) for ids in self.tokens(documents)], np.int64)

    def lengths(self, process_index: int | None = None, process_count: int | None = None,
                allgather: Gather | None = None) -> np.ndarray:
        """Token counts of every document, int64 [N], the same on every host: this host tokenizes its
        :func:`share` and ``allgather(local_counts, share_sizes)`` (default :func:`allgather_shares`, over JAX's
        processes) brings the others'. Process index and count default to JAX's."""
        if process_index is None or process_count is None:
            import jax

            process_index = jax.process_index() if process_index is None else process_index
            process_count = jax.process_count() if process_count is None else process_count
        local = self.local_lengths(process_index, process_count)
        if process_count == 1:
            return local
        sizes = [len(share(len(self), q, process_count)) for q in range(process_count)]
        lengths = np.asarray((allgather or allgather_shares)(local, sizes), np.int64).reshape(-1)
        if len(lengths) != len(self) or not np.array_equal(lengths[share(len(self), process_index, process_count)],
                                                           local):
            raise ValueError(f"the gathered token counts ({len(lengths)}) do not hold this host's own counts in "
                             f"place; expected {len(self)} counts in host order")
        return lengths


def _check_rows(rows: Sequence[int], n: int, what: str) -> list[int]:
    rows = [int(r) for r in rows]
    for r in rows:
        if not -n <= r < n:
            raise IndexError(f"{what} index {r} out of range for {n} rows")
    return [r % n for r in rows]


class _RowsOnDemand:
    """Item access of the datasets below: ``dataset[i]`` is one row, ``dataset[a:b]`` a list of rows (as a list of
    rows would give), ``__getitems__`` many rows in one go."""

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        raise NotImplementedError

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.__getitems__(range(len(self))[index])
        return self.__getitems__([index])[0]


class DocumentDataset(_RowsOnDemand):
    """Row i is document i of ``corpus``: ``{"input_ids": int32 [n_i]}``, tokenized when first read."""

    column_names = ["input_ids"]

    def __init__(self, corpus: TextCorpus):
        self.corpus = corpus

    def __len__(self) -> int:
        return len(self.corpus)

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        indices = _check_rows(indices, len(self), "DocumentDataset")
        return [{"input_ids": ids} for ids in self.corpus.tokens(indices)]


class PackedDataset(_RowsOnDemand):
    """The rows of :func:`~train.collators.pack_sequences` over ``corpus``, made when read: the layout comes from
    ``lengths`` (every document's token count, :meth:`TextCorpus.lengths`) and a row tokenizes only the documents
    it holds. Items are ``{"input_ids", "attention_mask", "position_ids", "labels"}``, int32 [seq_len] each."""

    column_names = ["input_ids", "attention_mask", "position_ids", "labels"]

    def __init__(self, corpus: TextCorpus, lengths: Sequence[int], seq_len: int, pad_token_id: int,
                 eos_token_id: int | None = None):
        self.lengths = np.asarray(lengths, np.int64).reshape(-1)  # [N]
        if len(self.lengths) != len(corpus):
            raise ValueError(f"lengths has {len(self.lengths)} counts for a corpus of {len(corpus)} documents")
        if not isinstance(pad_token_id, (int, np.integer)):
            raise ValueError(f"pad_token_id must be an integer token id, got {pad_token_id!r}")
        self.corpus, self.pad_token_id, self.eos_token_id = corpus, int(pad_token_id), eos_token_id
        self.layout = packing_layout(self.lengths, seq_len, eos=eos_token_id is not None)

    def __len__(self) -> int:
        return self.layout.num_rows

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        rows = _check_rows(indices, len(self), "PackedDataset")
        documents = self.layout.documents(rows)
        tokens = dict(zip(documents.tolist(), self.corpus.tokens(documents)))
        for d, ids in tokens.items():
            if len(ids) != self.lengths[d]:
                raise ValueError(f"document {d} tokenized to {len(ids)} tokens, but the packing layout was made "
                                 f"for {self.lengths[d]}")
        arrays = self.layout.fill(rows, tokens, self.pad_token_id, self.eos_token_id)
        return [{key: value[i] for key, value in arrays.items()} for i in range(len(rows))]


class GroupedDataset(_RowsOnDemand):
    """The rows of :func:`~train.collators.group_texts` over ``corpus`` (all documents concatenated, cut into rows
    of ``length`` tokens, the remainder dropped), made when read from just the documents a row spans;
    ``{"input_ids": int32 [length]}``. ``lengths``: every document's token count (:meth:`TextCorpus.lengths`)."""

    column_names = ["input_ids"]

    def __init__(self, corpus: TextCorpus, lengths: Sequence[int], length: int):
        if not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        lengths = np.asarray(lengths, np.int64).reshape(-1)  # [N]
        if len(lengths) != len(corpus):
            raise ValueError(f"lengths has {len(lengths)} counts for a corpus of {len(corpus)} documents")
        self.corpus, self.length = corpus, int(length)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # [N + 1]
        self.num_rows = int(self.offsets[-1]) // self.length
        if self.num_rows == 0:
            raise ValueError(f"the documents hold {int(self.offsets[-1])} tokens in all, fewer than one row of "
                             f"{self.length}")

    def __len__(self) -> int:
        return self.num_rows

    def _span(self, row: int) -> tuple[int, int]:
        """The documents ``[first, last]`` that row ``row`` takes tokens from."""
        lo, hi = row * self.length, (row + 1) * self.length
        first = int(np.searchsorted(self.offsets, lo, side="right")) - 1
        last = int(np.searchsorted(self.offsets, hi, side="left")) - 1
        return first, last

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        rows = _check_rows(indices, len(self), "GroupedDataset")
        spans = [self._span(r) for r in rows]
        documents = sorted({d for first, last in spans for d in range(first, last + 1)})
        tokens = dict(zip(documents, self.corpus.tokens(documents)))
        out = []
        for r, (first, last) in zip(rows, spans):
            stream = np.concatenate([tokens[d] for d in range(first, last + 1)])
            at = r * self.length - int(self.offsets[first])
            piece = stream[at:at + self.length]
            if len(piece) != self.length:
                raise ValueError(f"row {r}: documents {first}..{last} tokenized to other lengths than the counts the "
                                 "rows were cut by")
            out.append({"input_ids": piece.astype(np.int32)})
        return out
