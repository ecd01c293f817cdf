"""Writing files so that no half-written file is ever left behind: one implementation for the library.

Every file the library writes (configs, weights, tokenizer files, batch-runner outputs, hub refs)
goes through :func:`atomic_write` or :func:`atomic_path` (a temporary sibling, fsync'ed, renamed
over the target, then the directory fsync'ed) or, for a set of files written together,
:func:`staged_directory`.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def ensure_directory(path: str | os.PathLike) -> Path:
    """Create ``path`` as a directory; refuse a path that is an existing file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"cannot save into {path}: it is an existing file, not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path


def fsync_directory(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; when the block succeeds, fsync it and rename it over
    ``path``. On an error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        fsync_directory(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: bytes | str, encoding: str = "utf-8") -> None:
    """Write ``data`` (bytes, or text in ``encoding``) to ``path``: at every moment ``path`` is
    either the old file or the complete new one."""
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike):
    """Yield a temporary directory inside ``target``; on success move its files into ``target``.

    Files are written (and fsync'ed) in full before any of them replaces a file in ``target``; on
    an error the staging directory is removed and ``target`` is untouched.
    """
    target = ensure_directory(target)
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
    try:
        yield stage
        items = sorted(stage.iterdir())
        for item in items:
            if item.is_file():
                _fsync_file(item)
        for item in items:
            os.replace(item, target / item.name)
        fsync_directory(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
