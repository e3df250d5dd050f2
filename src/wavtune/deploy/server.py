"""Running the service under uvicorn with the graceful SIGTERM shutdown schedulers expect:
stop accepting, finish the requests in flight, then exit 0 (uvicorn re-raises a captured
SIGTERM after its shutdown, which would end the process with -15)."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

GRACE_S = 30  # longest wait for in-flight requests after SIGTERM


class GracefulServer(uvicorn.Server):
    """A uvicorn server whose SIGTERM ends in a clean exit once its shutdown is done."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in self._captured_signals:
            self._captured_signals.remove(sig)  # handled: do not re-raise it after shutdown


def serve_app(app: FastAPI, host: str, port: int, log_level: str) -> None:
    """Serve until SIGTERM/SIGINT, then close the app's batcher after its queue is done."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=GRACE_S)
    try:
        GracefulServer(config).run()
    finally:
        app.state.batcher.close()
