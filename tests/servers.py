"""A real uvicorn server on 127.0.0.1 in a background thread, and a small multipart client
(urllib only), for the service and page tests."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf


@contextmanager
def running_server(run_dir: Path, **options: Any) -> Iterator[str]:
    """Serve ``run_dir`` (``options``: ServeOptions fields) on a free port; yields the base URL."""
    from wavtune.deploy.serve import ServeOptions, create_app

    app = create_app(run_dir, ServeOptions(**options))
    try:
        with serving(app) as base:
            yield base
    finally:
        app.state.batcher.close()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve an ASGI app on a free port of 127.0.0.1; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; no race with other tests
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def wav_bytes(wave: np.ndarray, sample_rate: int, fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, sample_rate, format=fmt)
    return buffer.getvalue()


def multipart(data: bytes, filename: str = "clip.wav", field: str = "file",
              content_type: str = "audio/wav") -> tuple[bytes, str]:
    """A multipart/form-data body with one file field, and its Content-Type header."""
    boundary = "wavtune-test-boundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n').encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def exchange(url: str, body: bytes | None = None, content_type: str | None = None,
             timeout: float = 120, headers: dict[str, str] | None = None, method: str | None = None
             ) -> tuple[int, Any, Any]:
    """(status, parsed JSON or text, response headers) of a GET (no body) or POST."""
    sent = {**({"Content-Type": content_type} if content_type else {}), **(headers or {})}
    req = urllib.request.Request(url, data=body, headers=sent, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, raw, got = response.status, response.read(), response.headers
    except urllib.error.HTTPError as e:
        status, raw, got = e.code, e.read(), e.headers
    parsed = json.loads(raw) if got.get_content_type() == "application/json" else raw.decode()
    return status, parsed, got


def request(url: str, body: bytes | None = None, content_type: str | None = None,
            timeout: float = 120, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, parsed JSON or text) of a GET (no body) or POST."""
    return exchange(url, body, content_type, timeout, headers)[:2]


def upload(base: str, data: bytes, query: str = "", headers: dict[str, str] | None = None,
           **kwargs: str) -> tuple[int, Any]:
    body, content_type = multipart(data, **kwargs)
    return request(f"{base}/transcribe{query}", body, content_type, headers=headers)
