"""``wavtune serve RUN``: the HTTP transcription service (FastAPI app run by uvicorn)."""

from __future__ import annotations

import argparse
import os

from wavtune.constants import DEFAULT_CHUNK_OVERLAP_S, DEFAULT_CHUNK_S
from wavtune.deploy.limits import (
    DEFAULT_BATCH_WINDOW_MS,
    DEFAULT_MAX_AUDIO_S,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_TIMEOUT_S,
)
from wavtune.errors import WavtuneError

INSTALL_HINT = 'pip install "wavtune[serve]"'


class ServeError(WavtuneError, RuntimeError):
    """The service cannot start (a missing optional dependency); the message says how to fix it."""


def _require_serve_extra() -> None:
    missing = []
    for module in ("fastapi", "uvicorn", "multipart"):
        try:
            __import__(module)
        except ImportError:
            missing.append("python-multipart" if module == "multipart" else module)
    if missing:
        raise ServeError(f"'wavtune serve' needs {', '.join(missing)}: {INSTALL_HINT}")


def _check(args: argparse.Namespace, api_key: str | None) -> None:
    """Refuse settings that cannot work or are unsafe, before the model is loaded or a port
    bound."""
    from wavtune.deploy.access import is_loopback

    for flag, value in (
        ("--max-upload-mb", args.max_upload_mb),
        ("--max-audio-s", args.max_audio_s),
        ("--timeout-s", args.timeout_s),
        ("--max-batch", args.max_batch),
        ("--max-queue", args.max_queue),
    ):
        if value <= 0:
            raise ServeError(f"{flag} must be positive, not {value}")
    if not is_loopback(args.host) and not api_key:
        raise ServeError(f"--host {args.host} would expose the service beyond this machine "
                         f"without authentication; set --api-key KEY (or WAVTUNE_API_KEY) or "
                         f"listen on 127.0.0.1")


def cmd_serve(args: argparse.Namespace) -> int:
    _require_serve_extra()
    from wavtune.deploy.serve import ServeOptions, create_app
    from wavtune.deploy.server import serve_app
    from wavtune.infer.types import TranscribeOptions

    api_key = args.api_key or os.environ.get("WAVTUNE_API_KEY") or None
    _check(args, api_key)
    options = ServeOptions(args.device, args.max_upload_mb,
                           TranscribeOptions(args.chunk_s, args.overlap_s), args.max_audio_s,
                           args.max_batch, args.batch_window_ms, args.max_queue, args.timeout_s,
                           api_key, tuple(args.cors or ()))
    app = create_app(args.run, options)
    print(f"serving {args.run} at http://{args.host}:{args.port}/ (API docs at /docs)",
          flush=True)
    # SIGTERM/SIGINT: no new connections, in-flight requests finish, exit 0
    serve_app(app, args.host, args.port, "warning" if args.quiet else "info")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve", help="serve a run over HTTP (POST /transcribe, GET /health, a page at /)",
        description="Start an HTTP server for RUN: POST /transcribe takes an audio upload and "
                    "answers JSON with the transcript, timed words and labels; GET /health; an "
                    "upload/record page at /; the OpenAPI schema at /openapi.json and /docs. "
                    f"Needs the serve extra ({INSTALL_HINT}).")
    p.add_argument("run", help="run directory")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help="largest accepted upload (MB); larger ones get 413")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--chunk-s", type=float, default=DEFAULT_CHUNK_S,
                   help="window length for long audio (s)")
    p.add_argument("--overlap-s", type=float, default=DEFAULT_CHUNK_OVERLAP_S,
                   help="context kept on each side of a window (s)")
    p.add_argument("--max-audio-s", type=float, default=DEFAULT_MAX_AUDIO_S,
                   help="longest accepted clip (s); longer ones get 413")
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                   help="most concurrent requests run in one forward pass")
    p.add_argument("--batch-window-ms", type=float, default=DEFAULT_BATCH_WINDOW_MS,
                   help="how long a request waits for others to share its batch (ms)")
    p.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE,
                   help="requests waiting for a batch before new ones get 503 + Retry-After")
    p.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S,
                   help="per request, queueing included; later answers are 504")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on every endpoint but /health "
                        "(default: $WAVTUNE_API_KEY); needed for a --host beyond loopback")
    p.add_argument("--cors", action="append", metavar="ORIGIN",
                   help="allow browser requests from ORIGIN (repeatable; CORS is off otherwise)")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    p.set_defaults(func=cmd_serve)
