"""Stopping a run cleanly: SIGINT/SIGTERM become a flag the training loop checks between steps."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any


class StopFlag:
    """Context manager: the first SIGINT/SIGTERM sets ``signal``; a second one stops at once.

    The loop finishes its step, writes a checkpoint and exits, so a step is never cut in half.
    Outside the main thread signals cannot be caught, and are left alone.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
