"""A local HTTP server (127.0.0.1, threaded, Range requests) that stands in for the weights hosts, a small
official-format checkpoint to serve, and a fake Hugging Face hub (`hub`). Nothing here reaches the internet:
other hosts are refused."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import warnings
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml

from sam2sod.models import RandomInitWarning, build_sam2_model

torch.set_num_threads(1)
_LOCAL = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """Any connection to a host other than this machine fails the test."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        if address[0] not in _LOCAL:
            raise AssertionError(f"test tried to reach {address[0]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@dataclass
class Server:
    """What the handler serves and saw: `files` by URL path, `cut` (path -> bytes sent on the first GET
    before the connection drops), `ignore_range`, and the Range header of every request in `requests`."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            rng = self.headers.get("Range")
            server.requests.append((self.path, rng))
            body = server.files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            start, status = 0, 200
            found = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if found and not server.ignore_range:
                start, status = int(found.group(1)), 206
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            part = body[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(part)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            cut = server.cut.pop(self.path, None)
            self.wfile.write(part if cut is None else part[:cut])
            if cut is not None:  # drop the connection in the middle of the body
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


@pytest.fixture
def http_server():
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dead_url() -> str:
    """A URL on a local port that nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/sam2.1_hiera_tiny.pt"


@pytest.fixture(scope="session")
def tiny_state() -> dict[str, torch.Tensor]:
    """A random-init SAM2.1 hiera tiny state dict in float16 (the official key set and shapes, half the bytes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)
        sam = build_sam2_model("sam2.1", "tiny", 64, seed=7)
    return {k: v.half() if v.is_floating_point() else v for k, v in sam.state_dict().items()}


@pytest.fixture(scope="session")
def tiny_file(tmp_path_factory, tiny_state) -> tuple[Path, bytes]:
    """(path, bytes) of {"model": tiny_state} saved like the official files."""
    path = tmp_path_factory.mktemp("official") / "random_sam2.1_tiny_fp16.pt"
    torch.save({"model": tiny_state}, path)
    return path, path.read_bytes()


@pytest.fixture
def one_line():
    """The stderr of a failed command must be exactly one `error: ...` line; returns it."""

    def check(err: str) -> str:
        assert "Traceback" not in err, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        return lines[0]

    return check


# ---- a fake Hugging Face hub (tests/weights/test_hub.py, test_hub_cli.py)

@dataclass
class Hub:
    """Repos as {repo: {"refs": {name: sha}, "commits": {sha: {path: bytes}}}}; `cut`: path -> bytes sent before
    the connection drops (-1: every time, none sent); `requests`: (method, path, Range header)."""

    port: int = 0
    repos: dict = field(default_factory=dict)
    cut: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)
    validated: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def commit(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        r = self.repos.setdefault(repo, {"refs": {}, "commits": {}})
        parent = r["commits"].get(r["refs"].get(branch) or r["refs"].get("main"), {})  # a new branch starts at main
        sha = hashlib.sha1(repr((repo, len(r["commits"]), sorted(files))).encode()).hexdigest()
        r["commits"][sha] = {**parent, **files}
        r["refs"][branch] = sha
        return sha


def _hub_handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, obj) -> None:
            self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json"})

        def _error(self, code: str, head: bool = False) -> None:
            self._send(404, json.dumps({"error": code}).encode(), {"X-Error-Code": code}, head)

        def _resolve(self, head: bool) -> None:
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path)
            repo = hub.repos.get(m.group(1)) if m else None
            if repo is None:
                return self._error("RepoNotFound", head)
            rev = m.group(2)
            sha = repo["refs"].get(rev, rev if rev in repo["commits"] else None)
            if sha is None:
                return self._error("RevisionNotFound", head)
            body = repo["commits"][sha].get(m.group(3))
            if body is None:
                return self._error("EntryNotFound", head)
            headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha1(body).hexdigest()}"'}
            rng = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            start = int(rng.group(1)) if rng else 0
            if head:
                return self._send(200, body, headers, head=True)
            cut = hub.cut.get(m.group(3))
            if cut is not None:
                if cut >= 0:
                    del hub.cut[m.group(3)]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:start + max(cut, 0)])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            self._send(206 if start else 200, body[start:], headers)

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's names
            hub.requests.append(("HEAD", self.path, self.headers.get("Range")))
            self._resolve(head=True)

        def do_GET(self) -> None:  # noqa: N802
            hub.requests.append(("GET", self.path, self.headers.get("Range")))
            self._resolve(head=False)

        def do_POST(self) -> None:  # noqa: N802
            hub.requests.append(("POST", self.path, None))
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/api/repos/create":
                req = json.loads(data)
                name = f"{req.get('organization') or 'me'}/{req['name']}"
                hub.repos.setdefault(name, {"refs": {}, "commits": {}, "request": req})
                return self._json({"url": f"{hub.url}/{name}", "name": name})
            if self.path == "/api/validate-yaml":  # the hub checks a model card's metadata before a commit
                content = json.loads(data)["content"]
                meta = yaml.safe_load(content.split("---\n")[1]) if content.startswith("---\n") else None
                hub.validated.append(meta)
                ok = isinstance(meta, dict)
                return self._send(200 if ok else 400, json.dumps({"errors": [] if ok else ["bad YAML"]}).encode())
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit)/([^/?]+)", self.path)
            if not m or m.group(1) not in hub.repos:
                return self._error("RepoNotFound")
            if m.group(2) == "preupload":
                files = json.loads(data)["files"]
                return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                             for f in files]})
            files = {}
            for line in data.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            sha = hub.commit(m.group(1), files, m.group(3))
            return self._json({"commitUrl": f"{hub.url}/{m.group(1)}/commit/{sha}", "commitOid": sha})

    return Handler


@pytest.fixture
def hub():
    """A fake Hugging Face hub on 127.0.0.1 (the endpoints huggingface_hub calls to upload and download)."""
    state = Hub()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _hub_handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state
    httpd.shutdown()
    httpd.server_close()
