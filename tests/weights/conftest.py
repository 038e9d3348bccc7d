"""A local HTTP server (127.0.0.1, threaded, Range requests) that stands in for the weights hosts, and a
small official-format checkpoint to serve. Nothing here reaches the internet: other hosts are refused."""

from __future__ import annotations

import re
import socket
import threading
import warnings
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

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
