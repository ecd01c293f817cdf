"""The crash-safe, resumable JSONL output shared by the batch runners (``serving.batch`` for generation,
``serving.pipeline_batch`` for every pipeline task).

An output is ``<output>`` plus *part files* in ``<output>.parts/``: each finished batch is written by
:meth:`ResultStore.commit` to a temporary file, fsync'ed and renamed to ``part-NNNNNNNN.jsonl`` (a rename is
atomic, so a part file is either absent or complete). :meth:`ResultStore.merge` folds ``<output>`` and the part
files into a new ``<output>`` (each record once, by its key, first occurrence winning, sorted in input order),
renames it into place, and only then deletes the part files; a merge cut short after its rename is repeated
harmlessly, since it deduplicates. A runner merges on start (folding in what a killed run committed), computes
only the records whose keys are not committed yet, and merges on finish. :func:`exclusive_lock` (``flock`` on
``<output>.lock``) refuses a second runner on the same output. See ``serving/batch.py`` for why results are
never appended to ``<output>`` directly.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from transformers_jax.file_utils import atomic_write

__all__ = ["ResultStore", "error_record", "exclusive_lock", "id_key", "read_result_lines", "write_jsonl"]


def id_key(value: Any) -> str:
    """A hashable key of a JSON value that keeps ``"1"`` and ``1`` apart (its JSON text)."""
    return json.dumps(value, ensure_ascii=False)


def record_id_key(record: dict) -> str:
    """The key of a result record: its ``id``."""
    return id_key(record["id"])


def error_record(source: str, position: int, ident: Any, message: str) -> dict:
    """An errors-file record: ``{source: position, "id": ident, "error": "<source> <position>: message"}``, with
    ``source`` ``"line"`` (a 1-based line of a JSONL file) or ``"row"`` (a dataset index)."""
    return {source: position, "id": ident, "error": f"{source} {position}: {message}"}


def jsonl_bytes(records: Sequence[dict], default: Callable | None = None) -> bytes:
    """``records`` as JSON lines (UTF-8, non-ASCII kept)."""
    return "".join(json.dumps(r, ensure_ascii=False, default=default) + "\n" for r in records).encode("utf-8")


def write_jsonl(path: Path, records: Sequence[dict]) -> None:
    """Write ``records`` to ``path`` atomically (the errors file)."""
    atomic_write(path, jsonl_bytes(records))


def read_result_lines(path: Path, key: Callable[[dict], str] = record_id_key) -> list[tuple[str, str]]:
    """(key, line) for each line of a committed output or part file; a clear error for a line that is not a
    complete result record (the file was not written by a runner)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if not line.endswith("\n"):
                raise RuntimeError(f"{path}:{number}: incomplete last line; this file was not written by the batch runner")
            try:
                record_key = key(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise RuntimeError(f"{path}:{number}: not a result line ({exc}); refusing to resume over it") from None
            out.append((record_key, line))
    return out


class ResultStore:
    """The committed output of a run: ``<output>`` plus ``<output>.parts/part-*.jsonl`` (see the module docstring).

    ``key(record)`` names a record (default: its ``id``); ``default`` converts values ``json`` cannot write.
    """

    def __init__(self, output: Path, key: Callable[[dict], str] = record_id_key, default: Callable | None = None):
        self.output = Path(output)
        self.parts = self.output.with_name(self.output.name + ".parts")
        self.key = key
        self.default = default
        self.next_part = 0

    def _part_files(self) -> list[Path]:
        if not self.parts.is_dir():
            return []
        return sorted(p for p in self.parts.iterdir() if p.name.startswith("part-") and p.name.endswith(".jsonl"))

    def clean_temporaries(self) -> None:
        """Delete the partial files a killed run left (``atomic_write``'s temporaries and ``*.tmp`` parts)."""
        for tmp in self.output.parent.glob(f".{self.output.name}.*.tmp"):
            tmp.unlink(missing_ok=True)
        if self.parts.is_dir():
            for p in self.parts.iterdir():
                if p.name.endswith(".tmp"):
                    p.unlink()

    def committed(self) -> dict[str, str]:
        """Every committed record, key -> its line (``<output>`` first, then the parts; first occurrence wins)."""
        lines: dict[str, str] = {}
        sources = ([self.output] if self.output.exists() else []) + self._part_files()
        for source in sources:
            for key, line in read_result_lines(source, self.key):
                lines.setdefault(key, line)
        return lines

    def merge(self, order: dict[str, int]) -> set[str]:
        """Fold the part files into ``<output>`` (dedup by key, in the input ``order``: key -> position; keys
        not in it go last, as they came); returns the committed keys."""
        lines = self.committed()
        parts = self._part_files()
        if parts or self.output.exists():
            big = len(order)
            ranked = sorted(enumerate(lines.items()), key=lambda item: (order.get(item[1][0], big), item[0]))
            data = "".join(line for _, (_, line) in ranked).encode("utf-8")
            if not self.output.exists() or parts or self.output.read_bytes() != data:
                atomic_write(self.output, data)
            for p in parts:
                p.unlink()
            if self.parts.is_dir() and not any(self.parts.iterdir()):
                self.parts.rmdir()
        return set(lines)

    def commit(self, records: Sequence[dict]) -> None:
        """Commit one batch of result records as a new part file (atomic)."""
        self.parts.mkdir(exist_ok=True)
        atomic_write(self.parts / f"part-{self.next_part:08d}.jsonl", jsonl_bytes(records, self.default))
        self.next_part += 1


@contextlib.contextmanager
def exclusive_lock(path: Path):
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the block; a RuntimeError when another
    process holds it."""
    import fcntl

    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another batch run holds {path}; refusing to write the same output twice") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
