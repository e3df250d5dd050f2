"""``wavtune serve RUN``: the HTTP transcription service (FastAPI app run by uvicorn)."""

from __future__ import annotations

import argparse

from wavtune.constants import DEFAULT_CHUNK_OVERLAP_S, DEFAULT_CHUNK_S
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


def cmd_serve(args: argparse.Namespace) -> int:
    _require_serve_extra()
    import uvicorn

    from wavtune.deploy.serve import ServeOptions, create_app
    from wavtune.infer.types import TranscribeOptions

    if args.max_upload_mb <= 0:
        raise ServeError(f"--max-upload-mb must be positive, not {args.max_upload_mb}")
    options = ServeOptions(args.device, args.max_upload_mb,
                           TranscribeOptions(args.chunk_s, args.overlap_s))
    app = create_app(args.run, options)
    print(f"serving {args.run} at http://{args.host}:{args.port}/ (API docs at /docs)",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info")
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
    p.add_argument("--max-upload-mb", type=float, default=25.0,
                   help="largest accepted upload (MB); larger ones get 413")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--chunk-s", type=float, default=DEFAULT_CHUNK_S,
                   help="window length for long audio (s)")
    p.add_argument("--overlap-s", type=float, default=DEFAULT_CHUNK_OVERLAP_S,
                   help="context kept on each side of a window (s)")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    p.set_defaults(func=cmd_serve)
