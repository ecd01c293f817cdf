"""Where a checkpoint's files come from: a local directory, or a Hugging Face hub repo.

Every ``from_pretrained`` opens its ``name_or_path`` with :func:`open_source` and asks the source for the files it
needs, by name, so nothing else is fetched. A hub repo is listed once (``HfApi.model_info`` at the revision) and each
needed file is downloaded on first use by ``huggingface_hub.hf_hub_download`` into the Hugging Face cache, pinned
to the commit the listing named (huggingface_hub shows a progress bar per file, locks, and moves a file into the
cache only once it is complete). Offline (``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1`` or
``local_files_only=True``) the snapshot in the cache is read and the network is never touched.

Hub keywords, accepted by every ``from_pretrained``: ``revision`` (branch, tag or commit hash; default ``"main"``),
``token`` (a string, ``True`` for the stored login, ``False`` for none; default: ``HF_TOKEN`` or the stored login),
``cache_dir``, ``local_files_only``, ``force_download`` and ``subfolder`` (a folder inside the repo or directory).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    HFValidationError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import REGEX_COMMIT_HASH, repo_folder_name
from huggingface_hub.utils import httpx, validate_repo_id  # httpx: httpx2 in huggingface_hub 2.x

from transformers_jax import __version__, hub

logger = logging.getLogger("transformers_jax")

HUB_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "force_download", "subfolder")
_LIBRARY = {"library_name": "transformers_jax", "library_version": __version__}


def pop_hub_kwargs(kwargs: dict) -> dict:
    """Remove the hub keywords (``revision=``, ``token=``, ...) from a ``from_pretrained`` kwargs dict; return them."""
    return {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}


class CheckpointSource:
    """Common to both sources: ``has``/``listdir``/``get`` by file name, and the folder the files end up in."""

    directory: Path
    offline_note = ""  # set for a cache snapshot read without the network: why, and how to download

    def describe(self) -> str:
        """The source and its files, for error messages."""
        return f"{self} (files: {_shorten(self.listdir())})"


class LocalFiles(CheckpointSource):
    """A checkpoint's files in a local folder: a directory the user named, or a hub snapshot in the cache."""

    def __init__(self, directory: Path, label: str | None = None, offline_note: str = ""):
        self.directory = directory
        self.label = label
        self.offline_note = offline_note

    def __str__(self) -> str:
        return self.label or str(self.directory)

    def describe(self) -> str:
        return super().describe() if self.offline_note else str(self)

    def has(self, name: str) -> bool:
        """Whether the checkpoint has file ``name`` (a path relative to its folder)."""
        return (self.directory / name).is_file()

    def listdir(self, folder: str = "") -> list[str]:
        """Names of the files directly inside ``folder`` (relative to the checkpoint's folder)."""
        path = self.directory / folder
        return sorted(p.name for p in path.iterdir() if p.is_file()) if path.is_dir() else []

    def get(self, name: str) -> Path:
        """The local path of file ``name``; FileNotFoundError if there is none."""
        path = self.directory / name
        if not path.is_file():
            if self.offline_note:
                raise FileNotFoundError(f"{self} has no {name} in the local cache{self.offline_note}")
            raise FileNotFoundError(f"no {name} at {path}")
        return path


class HubFiles(CheckpointSource):
    """A hub repo at one commit, listed once; each file is downloaded into the HF cache on first use."""

    def __init__(self, repo_id: str, revision: str, commit: str, repo_files: list[str], cache: Path,
                 subfolder: str, token, force_download: bool):
        self.repo_id, self.revision, self.commit = repo_id, revision, commit
        self.cache, self.subfolder = cache, subfolder
        self.token, self.force_download = token, force_download
        prefix = f"{subfolder}/" if subfolder else ""
        self.files = sorted(f[len(prefix):] for f in repo_files if f.startswith(prefix))
        self._names = set(self.files)
        self.directory = _storage(cache, repo_id) / "snapshots" / commit / subfolder
        self._fetched: dict[str, Path] = {}

    def __str__(self) -> str:
        return _label(self.repo_id, self.revision, self.subfolder)

    def describe(self) -> str:
        return f"{self} (files: {_shorten(self.files)})"

    def has(self, name: str) -> bool:
        """Whether the repo listing has file ``name`` (relative to the subfolder)."""
        return name in self._names

    def listdir(self, folder: str = "") -> list[str]:
        """Names of the repo's files directly inside ``folder``."""
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        return [f[len(prefix):] for f in self.files if f.startswith(prefix) and "/" not in f[len(prefix):]]

    def get(self, name: str) -> Path:
        """Download file ``name`` (unless cached) and return its path in the snapshot folder."""
        if name in self._fetched:
            return self._fetched[name]
        if not self.has(name):
            raise FileNotFoundError(f"{self.describe()} has no file {name!r}")
        try:
            path = hf_hub_download(
                self.repo_id, name, subfolder=self.subfolder or None, revision=self.commit, cache_dir=self.cache,
                token=self.token, force_download=self.force_download, **_LIBRARY,
            )
        except (OSError, httpx.HTTPError) as err:
            raise OSError(f"downloading {name!r} of {self} from {constants.ENDPOINT} failed: {err}") from err
        self._record_ref()
        self._fetched[name] = Path(path)
        return self._fetched[name]

    def _record_ref(self) -> None:
        # The cache maps a branch or tag to its commit in refs/<revision>, so that an offline load finds the snapshot.
        if self.revision == self.commit:
            return
        ref = _storage(self.cache, self.repo_id) / "refs" / self.revision
        if not ref.is_file() or ref.read_text() != self.commit:
            ref.parent.mkdir(parents=True, exist_ok=True)
            hub.atomic_write_text(ref, self.commit)


def open_source(name_or_path, *, revision: str | None = None, token=None, cache_dir=None,
                local_files_only: bool = False, force_download: bool = False,
                subfolder: str | None = None) -> CheckpointSource:
    """Open a local directory or a hub repo id (a ``str`` such as ``"org/name"``) as a source of checkpoint files.

    A hub repo is listed at ``revision`` here (one request); its files are downloaded when asked for. Offline, or
    with ``local_files_only=True``, the snapshot in the Hugging Face cache is used. An already opened source is
    returned as is.
    """
    if isinstance(name_or_path, CheckpointSource):
        return name_or_path
    subfolder = (subfolder or "").strip("/")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return LocalFiles(path / subfolder if subfolder else path)
    if path.exists():
        raise NotADirectoryError(f"{path} is a file; from_pretrained expects a model directory or a hub repo id")
    repo_id = _repo_id(name_or_path)
    if local_files_only and force_download:
        raise ValueError("force_download=True and local_files_only=True exclude each other")
    revision = revision or constants.DEFAULT_REVISION
    cache = Path(cache_dir or constants.HF_HUB_CACHE).expanduser().resolve()
    if local_files_only:
        return _cached(repo_id, revision, cache, subfolder, "downloads are off (local_files_only=True)",
                       "drop local_files_only=True")
    if constants.is_offline_mode():
        return _cached(repo_id, revision, cache, subfolder, "downloads are off (HF_HUB_OFFLINE=1 or TRANSFORMERS_OFFLINE=1)",
                       "set HF_HUB_OFFLINE=0 (and TRANSFORMERS_OFFLINE=0)")
    api = HfApi(token=token, **_LIBRARY)
    try:
        info = api.model_info(repo_id, revision=revision)
    except (httpx.TransportError, OfflineModeIsEnabled, HfHubHTTPError) as err:
        unreachable = _raise_unless_unreachable(err, repo_id, revision, token)
        if force_download:
            raise OSError(f"force_download=True, but {unreachable}") from err
        files = _cached(repo_id, revision, cache, subfolder, unreachable, "check the connection and HF_ENDPOINT")
        logger.warning("%s; using the snapshot in the local Hugging Face cache", unreachable)
        return files
    if info.sha is None or info.siblings is None:
        raise OSError(f"the hub at {constants.ENDPOINT} listed {repo_id!r} (revision {revision!r}) without a commit "
                      "or files; is HF_ENDPOINT a Hugging Face hub?")
    return HubFiles(repo_id, revision, info.sha, [s.rfilename for s in info.siblings], cache, subfolder, token,
                    force_download)


def gguf_location(name_or_path, gguf_file: str | None, **hub_kwargs) -> Path | None:
    """The local path of the GGUF checkpoint asked for, downloading just that file from a hub repo; else None.

    ``gguf_file`` names a file inside a directory or hub repo; a path ending in ``.gguf`` is a local file.
    """
    if gguf_file is None:
        if isinstance(name_or_path, (str, os.PathLike)) and str(name_or_path).endswith(".gguf"):
            return Path(name_or_path)
        return None
    return open_source(name_or_path, **hub_kwargs).get(gguf_file)


def fetch_weights(source: CheckpointSource, use_safetensors: bool | None = None, from_flax: bool | None = None) -> Path:
    """Make the checkpoint's weights local, as :func:`hub.load_state_dict` will read them; return their folder.

    For a sharded checkpoint that is the index and every shard it names; nothing else is downloaded.
    """
    name = hub.select_weights(source.has, source.describe(), use_safetensors, from_flax, note=source.offline_note)
    path = source.get(name)
    if name.endswith(".index.json"):
        for shard in sorted(set(hub.read_weight_map(path).values())):
            if not source.has(shard):
                raise FileNotFoundError(f"{name} of {source} names shard {shard}, which is missing{source.offline_note}")
            source.get(shard)
    return source.directory


def fetch_existing(source: CheckpointSource, names) -> Path:
    """Make those of ``names`` that the checkpoint has local (optional files such as tokenizer files); return the folder."""
    for name in names:
        if source.has(name):
            source.get(name)
    return source.directory


# ----------------------------------------------------------------------------- helpers
def _repo_id(name_or_path) -> str:
    if isinstance(name_or_path, str):
        try:
            validate_repo_id(name_or_path)
            return name_or_path
        except HFValidationError:
            pass
    raise FileNotFoundError(f"model path {str(name_or_path)!r} does not exist (and it is not a hub repo id)")


def _storage(cache: Path, repo_id: str) -> Path:
    return cache / repo_folder_name(repo_id=repo_id, repo_type="model")


def _cached(repo_id: str, revision: str, cache: Path, subfolder: str, reason: str, to_download: str) -> LocalFiles:
    """The repo's snapshot in the cache, for reading without the network."""
    storage = _storage(cache, repo_id)
    commit = revision if REGEX_COMMIT_HASH.fullmatch(revision) else None
    if commit is None and (storage / "refs" / revision).is_file():
        commit = (storage / "refs" / revision).read_text().strip()
    how = f"To download it, {to_download}; or fetch it first with `hf download {repo_id}`."
    if commit is None or not (storage / "snapshots" / commit).is_dir():
        raise FileNotFoundError(
            f"{repo_id!r} is neither a local directory nor a hub id found in the local Hugging Face cache ({cache}) "
            f"at revision {revision!r}, and {reason}. {how}"
        )
    return LocalFiles(storage / "snapshots" / commit / subfolder, _label(repo_id, revision, subfolder),
                      offline_note=f" (only the local Hugging Face cache was searched: {reason}). {how}")


def _raise_unless_unreachable(err: Exception, repo_id: str, revision: str, token) -> str:
    """Raise a clear error for a repo that cannot be read; return a message when the hub could not be reached."""
    endpoint = constants.ENDPOINT
    token_hint = "pass token=... (a read token from huggingface.co/settings/tokens) or log in with `hf auth login`"
    if isinstance(err, GatedRepoError):
        raise OSError(f"{repo_id!r} is a gated repo on {endpoint}: request access on its page, then {token_hint}") from err
    if isinstance(err, RepositoryNotFoundError):
        private = "check that the token given can read it" if token else token_hint
        raise OSError(f"{repo_id!r} is not a local directory and not a model repo on {endpoint} "
                      f"(if it is private or gated, {private})") from err
    if isinstance(err, RevisionNotFoundError):
        raise OSError(f"{repo_id!r} has no revision {revision!r} on {endpoint} (a branch, tag or commit hash)") from err
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code
        if status in (401, 403):
            raise OSError(f"{endpoint} refused access to {repo_id!r} (HTTP {status}): {token_hint}") from err
        if status < 500:
            raise OSError(f"{endpoint} could not list {repo_id!r} (revision {revision!r}): {err}") from err
    return f"the hub at {endpoint} could not be reached for {repo_id!r} ({type(err).__name__}: {err})"


def _label(repo_id: str, revision: str, subfolder: str) -> str:
    return f"{repo_id!r} (revision {revision!r}{f', subfolder {subfolder!r}' if subfolder else ''})"


def _shorten(names: list[str], limit: int = 20) -> str:
    if not names:
        return "none"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
