"""Tokenize a corpus into packed token shards (the format of :mod:`train.shards`), resumably.

    transformers-jax prepare-data corpus/*.jsonl --tokenizer TOKENIZER_DIR --output-dir shards/ \\
        [--text-field text] [--num-proc 8] [--shard-tokens 100000000] [--dtype uint16|uint32] \\
        [--eos-token TOKEN | --no-eos] [--add-special-tokens] [--chunk-documents 1024] [--no-progress]
    transformers-jax prepare-data --dataset NAME_OR_DIR [--dataset-config C] [--split train] ...

Inputs, in the order given: ``.txt`` (a document per non-empty line), ``.jsonl`` (a JSON object per line, the text
in ``--text-field``), ``.parquet`` (the ``--text-field`` column, read a record batch at a time), a directory written
by ``datasets``' ``save_to_disk`` (``--split`` picks from a DatasetDict), or ``--dataset``: a name or path for
``datasets.load_dataset(..., streaming=True)``. Each document is tokenized (without the tokenizer's special tokens
unless ``--add-special-tokens``) and followed by the EOS id (``--eos-token`` names another token, ``--no-eos``
appends none). The documents go to worker processes (``--num-proc``) in chunks of ``--chunk-documents``; the
tokens are written in chunk order, so the shards do not depend on the number of workers.

Resuming: each shard is written to a temporary name and renamed when complete; then ``journal.json`` records it and
where the next shard starts (a chunk and an offset into its tokens). A run killed at any moment and started again
with the same arguments skips the finished chunks and writes byte-identical shards; other arguments or changed
inputs are refused, naming what differs. ``index.json`` is written at the end (and the journal removed); a run
over a finished directory with the same arguments does nothing.

Test hook: ``TRANSFORMERS_JAX_PREPARE_KILL=STAGE:SHARD`` SIGKILLs the process at ``STAGE`` of writing shard
``SHARD``: "writing" (half the temporary file written), "renamed" (shard in place, journal not yet updated) or
"journaled".
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from train.shards import FORMAT, INDEX_FILE, VERSION, shard_name, token_dtype

__all__ = ["ShardWriter", "describe_sources", "fresh_state", "main", "prepare", "read_documents"]

JOURNAL_FILE = "journal.json"
DEFAULT_SHARD_TOKENS = 100_000_000
FILE_KINDS = {".txt": "txt", ".jsonl": "jsonl", ".parquet": "parquet"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model")
KILL_ENV = "TRANSFORMERS_JAX_PREPARE_KILL"
READ_BATCH = 1024  # rows per parquet / datasets batch


# --------------------------------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------------------------------


def describe_sources(inputs: Sequence[str], dataset: str | None = None, dataset_config: str | None = None,
                     split: str = "train") -> list[dict]:
    """One JSON record per input, which identifies it and tells a changed input apart: a file's resolved path, kind,
    size and modification time; a ``save_to_disk`` directory's path and ``datasets`` fingerprint; a
    ``load_dataset`` source's name, config and split."""
    sources = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources.append({"kind": "saved_dataset", "path": str(path.resolve()), "split": split,
                            "fingerprint": _load_saved(path, split)._fingerprint})
            continue
        kind = FILE_KINDS.get(path.suffix.lower())
        if kind is None:
            raise ValueError(f"{path}: unsupported input type {path.suffix!r}; supported: {', '.join(FILE_KINDS)}, "
                             "a directory written by datasets' save_to_disk, or --dataset NAME")
        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        stat = path.stat()
        sources.append({"kind": kind, "path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    if dataset is not None:
        sources.append({"kind": "load_dataset", "name": dataset, "config": dataset_config, "split": split})
    if not sources:
        raise ValueError("no inputs: give files, a save_to_disk directory, or --dataset")
    return sources


def _load_saved(path: Path, split: str):
    """A ``save_to_disk`` directory as a ``datasets.Dataset`` (the ``split`` of a DatasetDict)."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as err:
        raise ValueError(f"{path}: a directory input must be written by datasets' save_to_disk ({err})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ValueError(f"{path}: has splits {sorted(loaded)}, not --split {split!r}")
        loaded = loaded[split]
    return loaded


def _checked_text(text, where: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{where}: the text must be a string, got {type(text).__name__} {text!r:.40}")
    return text


def _column_batches(batches, columns: Sequence[str], text_field: str, where: str) -> Iterator[str]:
    """The ``text_field`` values of dict-of-lists batches, checked to be strings (errors name ``where:row``)."""
    if text_field not in columns:
        raise ValueError(f"{where}: no column '{text_field}' (columns: {sorted(columns)}); set --text-field")
    row = 0
    for batch in batches:
        for text in batch[text_field]:
            yield _checked_text(text, f"{where}: row {row}")
            row += 1


def read_documents(source: dict, text_field: str) -> Iterator[str]:
    """The documents (strings) of one source record of :func:`describe_sources`, streamed in order."""
    from train.data import iter_jsonl, iter_txt

    kind = source["kind"]
    if kind == "txt":
        yield from iter_txt(Path(source["path"]))
    elif kind == "jsonl":
        for line, row in iter_jsonl(Path(source["path"]), [text_field]):
            yield _checked_text(row[text_field], f"{source['path']}:{line}: '{text_field}'")
    elif kind == "parquet":
        import pyarrow.parquet as pq

        handle = pq.ParquetFile(source["path"])
        columns = handle.schema_arrow.names
        batches = (b.to_pydict() for b in handle.iter_batches(READ_BATCH, columns=[text_field])) \
            if text_field in columns else iter(())
        yield from _column_batches(batches, columns, text_field, source["path"])
    elif kind == "saved_dataset":
        loaded = _load_saved(Path(source["path"]), source["split"])
        if loaded._fingerprint != source["fingerprint"]:
            raise ValueError(f"{source['path']}: the dataset changed while it was read")
        batches = loaded.select_columns([text_field]).iter(READ_BATCH) if text_field in loaded.column_names else ()
        yield from _column_batches(batches, loaded.column_names, text_field, source["path"])
    else:
        import datasets

        stream = datasets.load_dataset(source["name"], source["config"], split=source["split"], streaming=True)
        columns = stream.column_names
        if columns is None:  # unknown until read
            columns = list(next(iter(stream), {}))
            if not columns:
                return
        batches = stream.select_columns([text_field]).iter(READ_BATCH) if text_field in columns else ()
        yield from _column_batches(batches, columns, text_field, f"dataset {source['name']!r}")


# --------------------------------------------------------------------------------------------------------------------
# tokenizing
# --------------------------------------------------------------------------------------------------------------------


def resolve_tokenizer(name: str) -> str:
    """A tokenizer directory or hub id; "minilm" is the shipped all-MiniLM-L6-v2 (as in the recipes)."""
    from train import cli

    return cli.model_directory(name) if name in cli.SHIPPED_TOKENIZERS else name


def tokenizer_fingerprint(path: str) -> str:
    """sha256 over the tokenizer files of a directory (their names and bytes); a hub id stands for itself."""
    directory = Path(path)
    if not directory.is_dir():
        return f"name:{path}"
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        if (directory / name).is_file():
            digest.update(name.encode() + b"\0" + (directory / name).read_bytes())
    return digest.hexdigest()


class ChunkEncoder:
    """Texts -> one flat token array (``dtype`` [n]): each text's ids, then ``eos_id`` unless it is None."""

    def __init__(self, tokenizer, add_special_tokens: bool, eos_id: int | None, dtype: np.dtype):
        self.tokenizer, self.add_special_tokens, self.eos_id, self.dtype = tokenizer, add_special_tokens, eos_id, dtype

    def __call__(self, texts: list[str]) -> np.ndarray:
        ids = self.tokenizer(texts, add_special_tokens=self.add_special_tokens)["input_ids"]
        tail = [] if self.eos_id is None else [self.eos_id]
        flat = np.fromiter(itertools.chain.from_iterable(list(row) + tail for row in ids), np.int64)  # [n]
        if flat.size and (flat.min() < 0 or flat.max() > np.iinfo(self.dtype).max):
            raise ValueError(f"token id {flat.max()} does not fit {self.dtype}; use --dtype uint32")
        return flat.astype(self.dtype)


_worker_encoder: ChunkEncoder | None = None


def _watch_main(alive) -> None:
    """End this worker when the main process is gone (killed, too): ``alive`` is the read end of a pipe whose only
    write end the main process holds, so reading it ends when that process does. Nothing else would wake a worker
    waiting for its next task."""
    try:
        alive.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(1)


def _init_worker(tokenizer_path: str, add_special_tokens: bool, eos_id: int | None, dtype: str, alive) -> None:
    global _worker_encoder
    from transformers_jax import AutoTokenizer

    threading.Thread(target=_watch_main, args=(alive,), daemon=True).start()
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread a worker: --num-proc sets the parallelism
    _worker_encoder = ChunkEncoder(AutoTokenizer.from_pretrained(tokenizer_path), add_special_tokens, eos_id,
                                   np.dtype(dtype))


def _encode_in_worker(texts: list[str]) -> np.ndarray:
    return _worker_encoder(texts)


def encoded_chunks(chunks: Iterator[list[str]], encoder: ChunkEncoder, num_proc: int, initargs: tuple):
    """The encoded chunks, in input order: in this process, or on ``num_proc`` worker processes with at most
    ``2 * num_proc`` chunks in flight (memory stays bounded whatever the corpus)."""
    if num_proc == 1:
        yield from map(encoder, chunks)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # A fork server started afresh (no JAX runtime in it: safe to fork) that has imported this module once;
    # each worker is forked from it and loads the tokenizer.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    alive, keep_alive = context.Pipe(duplex=False)  # the workers get `alive`; only this process holds keep_alive
    with keep_alive, ProcessPoolExecutor(num_proc, context, _init_worker, (*initargs, alive)) as pool:
        pending = deque()
        for chunk in chunks:
            pending.append(pool.submit(_encode_in_worker, chunk))
            if len(pending) >= 2 * num_proc:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# --------------------------------------------------------------------------------------------------------------------
# writing, resumably
# --------------------------------------------------------------------------------------------------------------------


def _kill_point(stage: str, shard: int) -> None:
    if os.environ.get(KILL_ENV) == f"{stage}:{shard}":
        os.kill(os.getpid(), signal.SIGKILL)


def _check_same(settings: dict, saved: dict, where: Path) -> None:
    differ = [f"{key}: {saved.get(key)!r} there, {settings.get(key)!r} now" for key in sorted({*settings, *saved})
              if settings.get(key) != saved.get(key)]
    if differ:
        raise ValueError(f"{where} was written with other arguments or inputs; resume with the same ones or use "
                         "another --output-dir. Differences:\n  " + "\n  ".join(differ))


def fresh_state(settings: dict) -> dict:
    """The journal of a run that has written nothing: ``settings`` (the run's identity), the shards written, and
    ``next``: the chunk and the offset into its tokens where the next shard starts."""
    return {"settings": settings, "shards": [], "next": {"chunk": 0, "offset": 0}}


def _written_here(name: str) -> bool:
    """A shard or a temporary file: what a run killed before its first journal leaves."""
    return (name.startswith("shard-") and name.endswith(".bin")) or name.endswith(".tmp")


def _start_state(output_dir: Path, settings: dict) -> dict | None:
    """The journal to resume from (a fresh one for a new run), or None when the directory is already complete.
    Refuses a directory of another run, or one holding files this tool does not write."""
    index, journal = output_dir / INDEX_FILE, output_dir / JOURNAL_FILE
    if index.is_file():
        saved = json.loads(index.read_text())
        _check_same(settings, {k: saved.get(k) for k in settings}, index)
        journal.unlink(missing_ok=True)
        return None
    if journal.is_file():
        state = json.loads(journal.read_text())
        _check_same(settings, state["settings"], journal)
    else:
        foreign = sorted(p.name for p in output_dir.iterdir() if not _written_here(p.name))
        if foreign:
            raise ValueError(f"--output-dir {output_dir} holds files prepare_data did not write: {foreign[:5]}; "
                             "use an empty or new directory")
        state = fresh_state(settings)
    done = {s["file"] for s in state["shards"]}
    for path in output_dir.iterdir():  # leftovers of a killed run: temporary files, shards the journal lacks
        if path.name.endswith(".tmp") or (path.name.startswith("shard-") and path.name not in done):
            path.unlink()
    return state


class ShardWriter:
    """Collects encoded chunks (:meth:`add`, in chunk order) and writes full shards of ``settings["shard_tokens"]``
    tokens into ``output_dir``; after each shard the journal (``state``, from :func:`fresh_state` or a killed run)
    records it and the (chunk, offset) of the first token not yet written. :meth:`finish` writes the index."""

    def __init__(self, output_dir: Path, state: dict):
        from transformers_jax.file_utils import atomic_write

        self.output_dir, self.state, self.write_json = output_dir, state, atomic_write
        self.shard_tokens = state["settings"]["shard_tokens"]
        self.pending: deque = deque()  # (chunk, offset of tokens[0] in the chunk, tokens)
        self.buffered = 0
        self.end_chunk = state["next"]["chunk"]  # one past the last chunk added

    def add(self, chunk: int, offset: int, tokens: np.ndarray) -> None:
        self.pending.append((chunk, offset, tokens))
        self.buffered += len(tokens)
        self.end_chunk = chunk + 1
        while self.buffered >= self.shard_tokens:
            self._write(self._take(self.shard_tokens))

    def _take(self, count: int) -> np.ndarray:
        parts = []
        while count:
            chunk, offset, tokens = self.pending.popleft()
            parts.append(tokens[:count])
            if len(tokens) > count:
                self.pending.appendleft((chunk, offset + count, tokens[count:]))
            count -= len(parts[-1])
        self.buffered -= sum(len(p) for p in parts)
        return np.concatenate(parts)

    def _write(self, tokens: np.ndarray) -> None:
        from transformers_jax.file_utils import atomic_path

        number = len(self.state["shards"])
        name = shard_name(number)
        payload = tokens.astype(tokens.dtype.newbyteorder("<"), copy=False).view(np.uint8)  # [2n or 4n] bytes
        with atomic_path(self.output_dir / name) as tmp:
            with open(tmp, "wb") as handle:
                if os.environ.get(KILL_ENV) == f"writing:{number}":
                    handle.write(payload[:len(payload) // 2])
                    handle.flush()
                    _kill_point("writing", number)
                handle.write(payload)
        _kill_point("renamed", number)
        self.state["shards"].append({"file": name, "num_tokens": len(tokens),
                                     "sha256": hashlib.sha256(payload).hexdigest()})
        chunk, offset = (self.pending[0][0], self.pending[0][1]) if self.pending else (self.end_chunk, 0)
        self.state["next"] = {"chunk": chunk, "offset": offset}
        self.write_json(self.output_dir / JOURNAL_FILE, json.dumps(self.state, indent=1))
        _kill_point("journaled", number)

    def finish(self, documents: int) -> dict:
        """Write the last (shorter) shard, then ``index.json``; remove the journal. Returns the index."""
        if self.buffered:
            self._write(self._take(self.buffered))
        if not self.state["shards"]:
            raise ValueError("the corpus tokenized to no tokens (empty documents and --no-eos?)")
        shards = self.state["shards"]
        index = {**self.state["settings"], "num_documents": documents,
                 "num_tokens": sum(s["num_tokens"] for s in shards), "shards": shards}
        self.write_json(self.output_dir / INDEX_FILE, json.dumps(index, indent=1))
        (self.output_dir / JOURNAL_FILE).unlink(missing_ok=True)
        return index


def prepare(inputs: Sequence[str], tokenizer: str, output_dir: str | os.PathLike, *, text_field: str = "text",
            dataset: str | None = None, dataset_config: str | None = None, split: str = "train",
            shard_tokens: int = DEFAULT_SHARD_TOKENS, chunk_documents: int = 1024, num_proc: int = 1,
            dtype: str | None = None, eos_token: str | None = None, append_eos: bool = True,
            add_special_tokens: bool = False, progress: bool = True) -> dict:
    """Tokenize ``inputs`` (and ``dataset``) with ``tokenizer`` into shards in ``output_dir`` (see the module doc);
    resumes a killed run of the same arguments. Returns the index (the content of ``index.json``).

    Raises ``ValueError`` naming the file / argument for: an unsupported input, a missing text field or column,
    a non-string text, a tokenizer without EOS token (when appending one), a vocabulary too large for ``dtype``,
    an empty corpus, a directory of another run (the differing settings listed) or holding foreign files.
    """
    from transformers_jax import AutoTokenizer
    from transformers_jax.file_utils import ensure_directory

    for name, value in (("shard_tokens", shard_tokens), ("chunk_documents", chunk_documents), ("num_proc", num_proc)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    tokenizer_path = resolve_tokenizer(tokenizer)
    loaded = AutoTokenizer.from_pretrained(tokenizer_path)
    eos_id = None
    if append_eos:
        eos_token = eos_token if eos_token is not None else loaded.eos_token
        if eos_token is None:
            raise ValueError(f"tokenizer {tokenizer!r} has no eos_token; name the separator with --eos-token "
                             "(e.g. [SEP]) or pass --no-eos")
        eos_id = loaded.convert_tokens_to_ids(eos_token)
        if eos_id is None or eos_id == loaded.unk_token_id and eos_token != loaded.unk_token:
            raise ValueError(f"--eos-token {eos_token!r} is not a token of tokenizer {tokenizer!r}")
    store = token_dtype(len(loaded), dtype)
    settings = {"format": FORMAT, "version": VERSION, "dtype": store.name, "vocab_size": len(loaded),
                "tokenizer": {"name": tokenizer, "fingerprint": tokenizer_fingerprint(tokenizer_path)},
                "eos_token_id": eos_id, "add_special_tokens": add_special_tokens, "text_field": text_field,
                "shard_tokens": shard_tokens, "chunk_documents": chunk_documents,
                "sources": describe_sources(inputs, dataset, dataset_config, split)}
    output_dir = ensure_directory(output_dir)
    state = _start_state(output_dir, settings)
    if state is None:
        return json.loads((output_dir / INDEX_FILE).read_text())
    return _run(output_dir, state, ChunkEncoder(loaded, add_special_tokens, eos_id, store), num_proc,
                (tokenizer_path, add_special_tokens, eos_id, store.name), progress)


def _run(output_dir: Path, state: dict, encoder: ChunkEncoder, num_proc: int, initargs: tuple, progress: bool) -> dict:
    """Read, encode and write from the journal's position to the end."""
    from tqdm.auto import tqdm

    settings, first = state["settings"], state["next"]
    size = settings["chunk_documents"]
    documents = itertools.chain.from_iterable(read_documents(s, settings["text_field"]) for s in settings["sources"])
    done = sum(1 for _ in itertools.islice(documents, first["chunk"] * size))  # read, not tokenized
    counted = {"documents": done}

    def chunks() -> Iterator[list[str]]:
        while texts := list(itertools.islice(documents, size)):
            counted["documents"] += len(texts)
            bar.update(len(texts))
            yield texts

    writer = ShardWriter(output_dir, state)
    with tqdm(desc=f"tokenizing into {output_dir}", unit=" docs", initial=done, disable=not progress,
              file=sys.stderr) as bar:
        for number, tokens in enumerate(encoded_chunks(chunks(), encoder, num_proc, initargs), start=first["chunk"]):
            offset = first["offset"] if number == first["chunk"] else 0
            writer.add(number, offset, tokens[offset:])
            bar.set_postfix(shards=len(state["shards"]), refresh=False)
    if counted["documents"] == 0:
        sources = ", ".join(s.get("path") or s.get("name") for s in settings["sources"])
        raise ValueError(f"no documents in the inputs ({sources})")
    return writer.finish(counted["documents"])


# --------------------------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="transformers-jax prepare-data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help=".txt, .jsonl or .parquet files, or save_to_disk directories")
    p.add_argument("--tokenizer", required=True, help='a tokenizer directory, a hub id, or "minilm"')
    p.add_argument("--output-dir", required=True, help="the shard directory (created; a killed run resumes there)")
    p.add_argument("--text-field", default="text", help="the JSON key / column holding the text (default: text)")
    p.add_argument("--dataset", help="a name or path for datasets.load_dataset(..., streaming=True)")
    p.add_argument("--dataset-config", help="the configuration name of --dataset")
    p.add_argument("--split", default="train", help="the split of --dataset or of a saved DatasetDict")
    p.add_argument("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS, help="tokens per shard")
    p.add_argument("--chunk-documents", type=int, default=1024, help="documents per worker task")
    p.add_argument("--num-proc", type=int, default=1, help="tokenizer worker processes")
    p.add_argument("--dtype", choices=["uint16", "uint32"], help="token storage (default: the smallest that fits)")
    p.add_argument("--eos-token", help="the token appended to each document (default: the tokenizer's EOS)")
    p.add_argument("--no-eos", action="store_true", help="append nothing between documents")
    p.add_argument("--add-special-tokens", action="store_true", help="let the tokenizer add its special tokens")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    """``transformers-jax prepare-data``: prints a summary (documents, tokens, shards, dtype, seconds) as one JSON
    line; errors are printed and give exit status 2."""
    args = parser().parse_args(argv)
    start = time.perf_counter()
    try:
        index = prepare(args.inputs, args.tokenizer, args.output_dir, text_field=args.text_field,
                        dataset=args.dataset, dataset_config=args.dataset_config, split=args.split,
                        shard_tokens=args.shard_tokens, chunk_documents=args.chunk_documents, num_proc=args.num_proc,
                        dtype=args.dtype, eos_token=args.eos_token, append_eos=not args.no_eos,
                        add_special_tokens=args.add_special_tokens, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"prepare-data: error: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start  # of this run (a resumed run did only the rest)
    print(json.dumps({"output_dir": str(args.output_dir), "num_documents": index["num_documents"],
                      "num_tokens": index["num_tokens"], "shards": len(index["shards"]), "dtype": index["dtype"],
                      "seconds": round(seconds, 2)}))
    return 0
