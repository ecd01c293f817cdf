"""A local Hugging Face hub for tests: tiny repos served on 127.0.0.1 in the hub's URL layout.

It answers the routes huggingface_hub uses to download (``HfApi.model_info`` and ``hf_hub_download``):

- ``GET /api/models/{repo_id}`` and ``GET /api/models/{repo_id}/revision/{revision}``: the repo listing,
  ``{"id", "sha", "siblings": [{"rfilename"}], "private", "gated"}``;
- ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}``: a file, with the headers huggingface_hub needs
  (``ETag``, ``X-Repo-Commit``, ``Content-Length``); no redirects, no Xet.

Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``) and
``X-Error-Message`` as the hub's do, so huggingface_hub raises its own exception types. Private and gated repos
need ``Authorization: Bearer <server.token>``. Every request is logged, so tests can count downloads.

Usage (pytest)::

    with HubServer() as server:
        server.add_repo("org/tiny", model_dir)           # or {"config.json": b"...", ...}
        point_huggingface_hub_at(server, monkeypatch, cache_dir)
        ...
        assert server.downloads() == {"config.json": 1, "model.safetensors": 1}
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclasses.dataclass(frozen=True)
class Request:
    """One request the server received (``filename`` and ``revision`` are set for file requests)."""

    method: str
    repo_id: str | None
    revision: str | None
    filename: str | None
    authorization: str | None


@dataclasses.dataclass
class _Repo:
    private: bool = False
    gated: bool = False
    refs: dict[str, str] = dataclasses.field(default_factory=dict)  # branch or tag -> commit
    commits: dict[str, dict[str, bytes]] = dataclasses.field(default_factory=dict)  # commit -> {path: bytes}

    def commit_of(self, revision: str) -> str | None:
        return revision if revision in self.commits else self.refs.get(revision)


class HubServer:
    """An in-memory hub on a free port of 127.0.0.1; ``url`` is its endpoint (``HF_ENDPOINT``)."""

    token = "hf_local_test_token"

    def __init__(self):
        self.repos: dict[str, _Repo] = {}
        self.requests: list[Request] = []
        self._interrupt: collections.Counter = collections.Counter()
        self.outage: int | None = None  # an HTTP status (e.g. 503) to answer every request with, as a hub that is down
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------------ content
    def add_repo(self, repo_id: str, files: dict[str, bytes] | Path, *, branch: str = "main", private: bool = False,
                 gated: bool = False) -> str:
        """Commit ``files`` (a dict or a directory, read recursively) to ``branch`` of ``repo_id``; return the commit.

        The commit replaces the branch's files; other branches are kept. ``private``/``gated`` apply to the repo.
        """
        if isinstance(files, Path):
            files = {p.relative_to(files).as_posix(): p.read_bytes() for p in sorted(files.rglob("*")) if p.is_file()}
        repo = self.repos.setdefault(repo_id, _Repo())
        repo.private, repo.gated = private, gated
        digest = hashlib.sha1(f"{repo_id}\0{branch}\0{len(repo.commits)}".encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
        commit = digest.hexdigest()
        repo.commits[commit] = dict(files)
        repo.refs[branch] = commit
        return commit

    def interrupt(self, repo_id: str, filename: str, times: int = 1) -> None:
        """The next ``times`` downloads of this file send half its bytes, then close the connection."""
        self._interrupt[(repo_id, filename)] += times

    # ------------------------------------------------------------------ the log
    def reset(self) -> None:
        """Forget the requests logged so far; end an outage and any pending interruption."""
        with self._lock:
            self.requests.clear()
            self._interrupt.clear()
            self.outage = None

    def downloads(self, repo_id: str | None = None) -> dict[str, int]:
        """How many times each file was downloaded (GET of its content), optionally for one repo."""
        return dict(collections.Counter(
            r.filename for r in self.requests
            if r.method == "GET" and r.filename is not None and repo_id in (None, r.repo_id)
        ))

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_interrupt(self, repo_id: str, filename: str) -> bool:
        with self._lock:
            if self._interrupt[(repo_id, filename)] > 0:
                self._interrupt[(repo_id, filename)] -= 1
                return True
            return False


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the listing or the file endpoint; HTTP/1.0, one request a connection."""

    server_version = "LocalHub/1.0"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def do_GET(self):
        self._route(send_body=True)

    def do_HEAD(self):
        self._route(send_body=False)

    def _route(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        if self.hub.outage is not None:
            self.hub._log(Request(self.command, None, None, None, self.headers.get("Authorization")))
            self._error(self.hub.outage, None, "the hub is down")
        elif path.startswith("/api/models/"):
            repo_id, _, revision = path[len("/api/models/"):].partition("/revision/")
            self._listing(unquote(repo_id), unquote(revision) or "main")
        elif "/resolve/" in path:
            repo_id, _, rest = path.lstrip("/").partition("/resolve/")
            revision, _, filename = rest.partition("/")
            self._file(unquote(repo_id), unquote(revision), unquote(filename), send_body)
        else:
            self._error(404, None, f"no route for {path}")

    # ------------------------------------------------------------------ endpoints
    def _listing(self, repo_id: str, revision: str) -> None:
        self.hub._log(Request("GET", repo_id, revision, None, self.headers.get("Authorization")))
        repo, commit = self._check(repo_id, revision)
        if commit is None:
            return
        body = json.dumps({
            "id": repo_id, "modelId": repo_id, "sha": commit, "private": repo.private, "gated": repo.gated and "auto",
            "disabled": False, "siblings": [{"rfilename": name} for name in sorted(repo.commits[commit])],
        }).encode()
        self._send(200, {"Content-Type": "application/json", "Content-Length": str(len(body))}, body)

    def _file(self, repo_id: str, revision: str, filename: str, send_body: bool) -> None:
        self.hub._log(Request(self.command, repo_id, revision, filename, self.headers.get("Authorization")))
        repo, commit = self._check(repo_id, revision)
        if commit is None:
            return
        content = repo.commits[commit].get(filename)
        if content is None:
            self._error(404, "EntryNotFound", f"{filename} does not exist in {repo_id}", {"X-Repo-Commit": commit})
            return
        headers = {"ETag": f'"{hashlib.sha256(content).hexdigest()}"', "X-Repo-Commit": commit,
                   "Content-Type": "application/octet-stream", "Content-Length": str(len(content))}
        if send_body and self.hub._take_interrupt(repo_id, filename):
            # Half the bytes, no length (so the body ends where the connection does), then the connection closes.
            del headers["Content-Length"]
            self._send(200, headers, content[: len(content) // 2])
            return
        self._send(200, headers, content if send_body else b"")

    # ------------------------------------------------------------------ helpers
    def _check(self, repo_id: str, revision: str) -> tuple[_Repo | None, str | None]:
        """The repo and the commit of ``revision``, or (None, None) after sending the hub's error."""
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(401, "RepoNotFound", "Repository not found")
            return None, None
        if repo.private or repo.gated:
            auth = self.headers.get("Authorization")
            if auth is None:
                code = "GatedRepo" if repo.gated else "RepoNotFound"
                self._error(401, code, "Access to this repo is restricted" if repo.gated else "Invalid username or password.")
                return None, None
            if auth != f"Bearer {self.hub.token}":
                self._error(401, None, "Invalid credentials in Authorization header")
                return None, None
        commit = repo.commit_of(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo, commit

    def _error(self, status: int, code: str | None, message: str, extra: dict | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "X-Error-Message": message,
                   **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, headers, body if self.command != "HEAD" else b"")

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(body)


def point_huggingface_hub_at(server: HubServer, monkeypatch, cache_dir: Path) -> None:
    """Make huggingface_hub talk to ``server`` (online, no stored token) and cache into ``cache_dir``.

    huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and the cache path into ``huggingface_hub.constants`` at
    import, so those constants are patched (``monkeypatch`` undoes it); tests/conftest.py's offline default stays
    for every other test.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(cache_dir / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(cache_dir / "no-stored-tokens"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
