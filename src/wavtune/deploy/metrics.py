"""The service's counters in the Prometheus text exposition format (``GET /metrics``):
requests by status, a latency histogram, queue depth, batch sizes and audio seconds."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """Cumulative-bucket histogram (Prometheus semantics: ``le`` buckets, ``_sum``, ``_count``)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'{name}_bucket{{le="{le}"}} {running}')
        return [*out, f"{name}_sum {self.total:.6f}", f"{name}_count {running}"]


class ServiceMetrics:
    """Thread-safe counters of one service process; :meth:`render` is the /metrics body."""

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0) -> None:
        self.queue_depth = queue_depth
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}  # (path, status) -> count
        self.latency = Histogram(LATENCY_BUCKETS_S)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.audio_s = 0.0

    def request(self, path: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(path, status)] = self.requests.get((path, status), 0) + 1
            if path == "/transcribe":
                self.latency.observe(seconds)

    def batch(self, size: int) -> None:
        with self._lock:
            self.batch_size.observe(size)

    def audio(self, seconds: float) -> None:
        with self._lock:
            self.audio_s += seconds

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP wavtune_requests_total HTTP requests answered, by path and status.",
                     "# TYPE wavtune_requests_total counter"]
            lines += [f'wavtune_requests_total{{path="{p}",status="{s}"}} {n}'
                      for (p, s), n in sorted(self.requests.items())]
            lines += ["# HELP wavtune_request_seconds Latency of POST /transcribe.",
                      "# TYPE wavtune_request_seconds histogram",
                      *self.latency.lines("wavtune_request_seconds"),
                      "# HELP wavtune_queue_depth Requests waiting for a batch.",
                      "# TYPE wavtune_queue_depth gauge",
                      f"wavtune_queue_depth {self.queue_depth()}",
                      "# HELP wavtune_batch_size Requests per forward pass.",
                      "# TYPE wavtune_batch_size histogram",
                      *self.batch_size.lines("wavtune_batch_size"),
                      "# HELP wavtune_audio_seconds_total Seconds of audio transcribed.",
                      "# TYPE wavtune_audio_seconds_total counter",
                      f"wavtune_audio_seconds_total {self.audio_s:.3f}"]
        return "\n".join(lines) + "\n"
