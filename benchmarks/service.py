"""The transcription service's throughput, and the accuracy of word timestamps.

**Service.** Starts ``wavtune serve RUN`` in a subprocess on 127.0.0.1 and posts the test clips
of a manifest to ``POST /transcribe`` from 1, 8 and 32 concurrent clients (the server
micro-batches concurrent requests), then 32 clients against a server started with
``--max-queue 8`` for a soak of ``--soak`` requests (bounded: at most ``--soak-max-s``).
Reports requests/s, audio-seconds/s, latency p50/p95/p99, status counts, the server's RSS after
the first 100 and after all soak requests, and the same clips transcribed in-process
(``Recognizer.transcript_of_array``, no HTTP) for the overhead.

**Timestamps.** Trains the tests' tiny tone-speech model (letters are tones at known positions,
``tests/factories.py``; about a minute) and compares each word's start/end with the truth on its
8 training texts (fresh noise): mean/max edge error, and the share of edges within one frame
stride + 20 ms. The same for the path a perfect model would take (the alignment arithmetic).

    python benchmarks/service.py --run runs/fsdd-wav2vec2 --manifest data/fsdd/test.jsonl
    --skip-timestamps
    python benchmarks/service.py --skip-service --merge      # timestamps only (~2 min)

Results: ``benchmarks/results/service.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tone-speech factories and HTTP helpers
sys.path.append(str(ROOT / "benchmarks"))  # machine.py (after installed packages)

from factories import SR, WORDS, tone_speech  # noqa: E402
from machine import machine_info  # noqa: E402
from servers import multipart, request  # noqa: E402
from tinyrun import tiny_ctc_run, tone_word_spans  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(run: Path, port: int, *flags: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "wavtune.cli", "serve", str(run),
                                "--port", str(port), "--quiet", *flags], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the server did not answer /health within 120 s")


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def timed_requests(url: str, bodies: list[bytes], content_type: str, clients: int,
                   deadline_s: float = 600.0) -> dict[str, Any]:
    """Post every body (``clients`` at a time); 200 and 503 are counted, anything else too."""
    stop = time.monotonic() + deadline_s

    def one(body: bytes) -> tuple[int, float]:
        if time.monotonic() > stop:
            return -1, 0.0
        start = time.perf_counter()
        status, _ = request(url, body, content_type)
        return status, time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = [a for a in pool.map(one, bodies) if a[0] != -1]
    wall = time.perf_counter() - start
    ok = [t for status, t in answers if status == 200] or [float("nan")]
    statuses: dict[str, int] = {}
    for status, _ in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {"clients": clients, "requests": len(answers), "wall_s": round(wall, 3),
            "requests_per_s": round(len(answers) / wall, 2), "statuses": statuses,
            "ok_per_s": round(statuses.get("200", 0) / wall, 2),
            **{f"latency_p{q}_ms": round(1000 * float(np.percentile(ok, q)), 1)
               for q in (50, 95, 99)}}


def merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of consecutive ``timed_requests`` results (latency: the slowest part's)."""
    wall = sum(p["wall_s"] for p in parts) or float("nan")
    statuses: dict[str, int] = {}
    for p in parts:
        for status, count in p["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    requests = sum(p["requests"] for p in parts)
    return {"clients": parts[0]["clients"] if parts else 0, "requests": requests,
            "wall_s": round(wall, 3), "requests_per_s": round(requests / wall, 2),
            "statuses": statuses, "ok_per_s": round(statuses.get("200", 0) / wall, 2),
            **{f"latency_p{q}_ms": max((p[f"latency_p{q}_ms"] for p in parts
                                        if p[f"latency_p{q}_ms"] == p[f"latency_p{q}_ms"]),
                                       default=float("nan")) for q in (50, 95, 99)}}


def soak(run: Path, bodies: list[bytes], content_type: str, total: int, max_s: float
         ) -> dict[str, Any]:
    """32 clients against ``--max-queue 8``: statuses, accepted latency, RSS after the first 100
    requests and after all of them."""
    port = free_port()
    process = start_server(run, port, "--max-queue", "8")
    try:
        url = f"http://127.0.0.1:{port}/transcribe"
        cycle = [bodies[i % len(bodies)] for i in range(total)]
        first = timed_requests(url, cycle[:100], content_type, 32, max_s)
        rss_100 = rss_mb(process.pid)
        stop = time.monotonic() + max_s
        parts, trend = [], {100: rss_100}  # RSS every 1,000 requests: a plateau, or a leak
        for begin in range(100, total, 1000):
            chunk = cycle[begin:begin + 1000]
            parts.append(timed_requests(url, chunk, content_type, 32, stop - time.monotonic()))
            trend[begin + len(chunk)] = rss_mb(process.pid)
        rest = merged(parts)
        rss_end = rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {"max_queue": 8, "first_100": first, "rest": rest,
            "requests": first["requests"] + rest["requests"], "rss_mb_after_100": rss_100,
            "rss_mb_at_end": rss_end, "rss_growth": round(rss_end / rss_100 - 1, 4),
            "rss_mb_by_requests": trend,
            "exit_code_after_sigterm": process.returncode}


def service(run: Path, manifest: Path, n: int, soak_n: int, soak_max_s: float
            ) -> dict[str, Any]:
    from wavtune.data.audio import load_audio
    from wavtune.infer.recognizer import Recognizer

    rows = [json.loads(line) for line in manifest.read_text().splitlines()][:n]
    paths = [Path(r["audio"]) if Path(r["audio"]).is_absolute() else manifest.parent / r["audio"]
             for r in rows]
    files = [p.read_bytes() for p in paths]
    audio_s = sum(sf.info(str(p)).duration for p in paths)
    port = free_port()
    process = start_server(run, port)
    _, content_type = multipart(b"")
    bodies = [multipart(f)[0] for f in files]
    try:
        url = f"http://127.0.0.1:{port}/transcribe"
        timed_requests(url, bodies[:4], content_type, 1)  # warm-up
        by_clients = {str(c): timed_requests(url, bodies, content_type, c) for c in (1, 8, 32)}
    finally:
        process.terminate()
        process.wait(timeout=60)
    rec = Recognizer(run)
    waves = [load_audio(p, rec.audio.sample_rate) for p in paths]

    def transcribe_all() -> float:
        start = time.perf_counter()
        for wave in waves:
            rec.transcript_of_array(wave)
        return time.perf_counter() - start

    # on a worker thread, as the server runs the model (torch on the main thread of a busy
    # 2-core machine was up to 100x slower here: its intra-op threads fight for the cores)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(transcribe_all).result()  # warm-up
        in_process = pool.submit(transcribe_all).result()
    for result in by_clients.values():
        result["audio_s_per_s"] = round(audio_s / result["wall_s"], 2)
    speedup = by_clients["8"]["requests_per_s"] / by_clients["1"]["requests_per_s"]
    return {"run": run.name, "clips": len(rows), "audio_s": round(audio_s, 2),
            "clients": by_clients, "speedup_8_over_1": round(speedup, 2),
            "soak": soak(run, bodies, content_type, soak_n, soak_max_s),
            "in_process": {"wall_s": round(in_process, 3),
                           "utterances_per_s": round(len(rows) / in_process, 2)}}


def edge_errors(words: list[tuple[float, float]], truth: list[tuple[str, float, float]]
                ) -> list[float]:
    return [abs(e) for (start, end), (_, t0, t1) in zip(words, truth)
            for e in (start - t0, end - t1)]


def timestamps() -> dict[str, Any]:
    from test_timestamps import FRAME_S, TOLERANCE_S, VOCAB, acoustic_path

    from wavtune.data.audio import normalize_waveform
    from wavtune.infer.recognizer import Recognizer
    from wavtune.infer.timestamps import align

    rec = Recognizer(tiny_ctc_run())
    model_errors: list[float] = []
    spike_errors: list[float] = []  # the same words before snapping to the sound
    path_errors: list[float] = []
    wrong = 0
    for i, text in enumerate(WORDS):
        truth = tone_word_spans(text)
        t = rec.transcript_of_array(tone_speech(text, seed=100 + i))
        if [w.text for w in t.words] != text.split():
            wrong += 1
            continue
        model_errors += edge_errors([(w.start_s, w.end_s) for w in t.words], truth)
        spikes = rec.align(rec.logits(normalize_waveform(tone_speech(text, seed=100 + i)))).words
        spike_errors += edge_errors([(w.start_s, w.end_s) for w in spikes], truth)
        perfect = align(acoustic_path(text), VOCAB, FRAME_S).words
        path_errors += edge_errors([(w.start_s, w.end_s) for w in perfect], truth)

    def summary(errors: list[float]) -> dict[str, float]:
        return {"edges": len(errors), "mean_ms": round(1000 * float(np.mean(errors)), 1),
                "max_ms": round(1000 * float(np.max(errors)), 1),
                "within_tolerance": round(float(np.mean(np.array(errors) <= TOLERANCE_S + 1e-9)),
                                          3)}

    return {"clips": len(WORDS), "misrecognised_clips": wrong, "frame_s": rec.frame_s,
            "tolerance_ms": round(1000 * TOLERANCE_S), "tiny_model": summary(model_errors),
            "tiny_model_unsnapped": summary(spike_errors),
            "perfect_path": summary(path_errors), "sample_rate": SR}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "fsdd")
    parser.add_argument(
        "--manifest", type=Path, default=ROOT / "data" / "fsdd" / "test.jsonl"
    )
    parser.add_argument("--requests", type=int, default=100, help="clips posted per phase")
    parser.add_argument("--soak", type=int, default=5000, help="requests in the soak")
    parser.add_argument("--soak-max-s", type=float, default=240.0,
                        help="stop each soak phase after this long (s)")
    parser.add_argument("--skip-timestamps", action="store_true")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other part's results already in --out")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "service.json"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.merge else {}
    results["machine"] = machine_info()
    if not args.skip_service:
        results["service"] = service(args.run, args.manifest, args.requests, args.soak,
                                     args.soak_max_s)
    if not args.skip_timestamps:
        results["timestamps"] = timestamps()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
