"""The service under load and exposed: micro-batching (unit and over HTTP), the bounded queue
(503 + Retry-After), timeouts (504, dropped work), the duration limit (413), the API key (401,
/health open), CORS, /metrics, request ids, the loopback guard and SIGTERM shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from factories import SR, WORDS, tone_speech
from servers import exchange, request, running_server, serving, upload, wav_bytes
from tinyrun import CLIP_TEXT, tiny_ctc_run

from wavtune.cli.main import main
from wavtune.deploy.access import is_loopback, key_matches
from wavtune.deploy.batcher import MicroBatcher, QueueFull

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def test_concurrent_items_share_one_batch_and_get_their_own_results() -> None:
    batches: list[list[int]] = []
    batcher: MicroBatcher[int, int] = MicroBatcher(
        lambda xs: (batches.append(list(xs)), [x * 10 for x in xs])[1], max_batch=4,
        window_s=60.0, max_queue=8)  # a full batch goes at once: the long window never elapses

    async def four() -> list[int]:
        return list(await asyncio.gather(*(batcher.submit(x, 60) for x in range(4))))

    assert asyncio.run(four()) == [0, 10, 20, 30]
    batcher.close()
    assert batches == [[0, 1, 2, 3]]


def blocked_batcher(max_queue: int) -> tuple[MicroBatcher[int, int], threading.Event,
                                             threading.Event, list[int]]:
    started, release, ran = threading.Event(), threading.Event(), []

    def run(xs: Sequence[int]) -> list[int]:
        started.set()
        release.wait(60)
        ran.extend(xs)
        return list(xs)

    return MicroBatcher(run, 1, 0.0, max_queue), started, release, ran


def test_a_full_queue_is_refused_and_timed_out_work_is_dropped() -> None:
    batcher, started, release, ran = blocked_batcher(max_queue=1)

    async def scenario() -> None:
        first = asyncio.ensure_future(batcher.submit(1, 60))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 60)  # 1 is running
        with pytest.raises(asyncio.TimeoutError):
            await batcher.submit(2, 0.05)  # queued behind 1, then dropped by its timeout
        second = asyncio.ensure_future(batcher.submit(3, 60))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await batcher.submit(4, 60)  # 3 waits: the queue (1) is full
        release.set()
        assert await first == 1 and await second == 3

    asyncio.run(scenario())
    batcher.close()
    assert ran == [1, 3]  # 2 timed out in the queue and never ran; 4 was refused


def test_a_failing_batch_fails_its_requests_not_the_worker() -> None:
    def run(xs: Sequence[int]) -> list[int]:
        if 0 in xs:
            raise ValueError("bad clip")
        return list(xs)

    batcher: MicroBatcher[int, int] = MicroBatcher(run, 1, 0.0, 4)
    with pytest.raises(ValueError):
        asyncio.run(batcher.submit(0, 60))
    assert asyncio.run(batcher.submit(5, 60)) == 5
    batcher.close()


def test_the_heap_is_trimmed_when_the_queue_runs_dry_at_most_once_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import wavtune.deploy.batcher as batching

    assert batching.TRIM_HEAP is not None  # glibc here: the service can hand memory back
    trims: list[float] = []
    monkeypatch.setattr(batching, "TRIM_HEAP", lambda: trims.append(1.0))

    def five_one_by_one() -> None:
        batcher: MicroBatcher[int, int] = MicroBatcher(lambda xs: list(xs), 1, 0.0, 4)

        async def run() -> None:
            for x in range(5):
                assert await batcher.submit(x, 60) == x

        asyncio.run(run())
        batcher.close()  # joins the worker: its last trim has happened

    five_one_by_one()  # five idle moments well within a second: one trim
    assert len(trims) == 1
    monkeypatch.setattr(batching, "TRIM_EVERY_S", 0.0)
    five_one_by_one()  # no throttle: the queue ran dry after the last one at least
    assert len(trims) >= 2


@pytest.fixture(scope="module")
def keyed() -> Iterator[str]:
    with running_server(tiny_ctc_run(), api_key=KEY, max_audio_s=2.0, max_batch=8,
                        batch_window_ms=50.0, cors_origins=("https://app.example",)) as base:
        yield base


def test_batched_requests_answer_the_same_as_lone_ones(keyed: str) -> None:
    clips = [wav_bytes(tone_speech(text, seed=i), SR) for i, text in enumerate(WORDS)]
    alone = [upload(keyed, c, headers=AUTH)[1] for c in clips]
    with ThreadPoolExecutor(len(clips)) as pool:
        together = list(pool.map(lambda c: upload(keyed, c, headers=AUTH), clips))
    assert [s for s, _ in together] == [200] * len(clips)
    assert [b["text"] for _, b in together] == [b["text"] for b in alone]
    assert [[w["word"] for w in b["words"]] for _, b in together] == \
        [[w["word"] for w in b["words"]] for b in alone]
    metrics = request(f"{keyed}/metrics", headers=AUTH)[1]
    count = next(
        line for line in metrics.splitlines() if line.startswith("wavtune_batch_size_count")
    )
    assert 0 < int(count.split()[1]) <= 2 * len(clips)


def test_the_key_guards_everything_but_health(keyed: str) -> None:
    clip = wav_bytes(tone_speech(CLIP_TEXT, seed=11), SR)
    status, body = upload(keyed, clip)
    assert status == 401 and "Authorization: Bearer" in body["detail"]
    assert upload(keyed, clip, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert request(f"{keyed}/metrics")[0] == 401
    assert request(f"{keyed}/health")[0] == 200
    status, body = upload(keyed, clip, headers=AUTH)
    assert status == 200 and body["text"] == CLIP_TEXT
    assert key_matches(f"Bearer {KEY}".encode(), KEY) and not key_matches(None, KEY)


def test_request_ids_metrics_cors_and_the_duration_limit(keyed: str) -> None:
    status, _, headers = exchange(f"{keyed}/health", headers={"X-Request-ID": "abc-123"})
    assert status == 200 and headers["X-Request-ID"] == "abc-123"
    status, _, headers = exchange(f"{keyed}/health", headers={"X-Request-ID": "bad id\u00e9"})
    assert len(headers["X-Request-ID"]) == 32  # an unusable id is replaced by a fresh one
    long_clip = wav_bytes(np.zeros(3 * SR, dtype=np.float32), SR)
    status, body = upload(keyed, long_clip, headers=AUTH)
    assert status == 413 and "limit of 2 s" in body["detail"] and "--max-audio-s" in body["detail"]
    status, _, headers = exchange(f"{keyed}/transcribe", method="OPTIONS", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert status == 200 and headers["access-control-allow-origin"] == "https://app.example"
    status, text, headers = exchange(f"{keyed}/metrics", headers=AUTH)
    assert status == 200 and headers.get_content_type() == "text/plain"
    assert 'wavtune_requests_total{path="/transcribe",status="413"}' in text
    assert "wavtune_request_seconds_bucket{le=\"+Inf\"}" in text and "wavtune_queue_depth 0" in text
    audio = next(
        line for line in text.splitlines() if line.startswith("wavtune_audio_seconds_total")
    )
    assert float(audio.split()[1]) > 0  # the earlier tests' clips


def test_busy_and_slow_answers_are_503_and_504() -> None:
    from wavtune.deploy.serve import ServeOptions, create_app

    clip = wav_bytes(tone_speech(CLIP_TEXT, seed=11), SR)
    with running_server(tiny_ctc_run(), timeout_s=0.0) as base:  # nothing is ever in time
        status, body = upload(base, clip)
    assert status == 504 and "--timeout-s" in body["detail"]
    app = create_app(tiny_ctc_run(), ServeOptions())
    app.state.batcher.close()  # a closed batcher refuses work like a full one
    with serving(app) as base:
        status, body, headers = exchange(f"{base}/transcribe", *multipart_of(clip))
        assert status == 503 and headers["Retry-After"] == "1" and "busy" in body["detail"]
        assert request(f"{base}/health")[0] == 200  # still up


def multipart_of(clip: bytes) -> tuple[bytes, str]:
    from servers import multipart

    return multipart(clip)


def test_beyond_loopback_without_a_key_is_refused_before_binding(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAVTUNE_API_KEY", raising=False)
    assert main(["serve", "/nonexistent-run", "--host", "0.0.0.0"]) == 2
    assert "--api-key" in capsys.readouterr().err
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_sigterm_finishes_and_exits_zero(tmp_path: Path) -> None:
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "wavtune.cli", "serve", str(tiny_ctc_run()),
                                "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if request(f"http://127.0.0.1:{port}/health", timeout=5)[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        assert upload(f"http://127.0.0.1:{port}", wav_bytes(tone_speech("ab"), SR))[0] == 200
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "request_id=" in err and "POST /transcribe 200" in err
