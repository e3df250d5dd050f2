"""The transcription service's throughput, and the accuracy of word timestamps.

**Service.** Starts ``wavtune serve RUN`` in a subprocess on 127.0.0.1 and posts the test clips
of a manifest to ``POST /transcribe``: first one request at a time, then from ``--clients``
concurrent clients. Reports requests/s, audio-seconds/s, latency p50/p95 and the same clips
transcribed in-process (``Recognizer.transcript_of_array``, no HTTP) for the overhead. The model
runs one request at a time (a lock), so concurrency overlaps upload, decoding and JSON with the
forward pass of another request rather than running forward passes in parallel.

**Timestamps.** Trains the tests' tiny tone-speech model (letters are tones at known positions,
``tests/factories.py``; about a minute) and compares each word's start/end with the truth on its
8 training texts (fresh noise): mean/max edge error, and the share of edges within one frame
stride + 20 ms. The same for the path a perfect model would take (the alignment arithmetic).

    python benchmarks/service.py --run ../runs/fsdd --manifest ../data/fsdd/test.jsonl
    python benchmarks/service.py --skip-service --merge      # timestamps only (~2 min)

Results: ``benchmarks/results/service.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

from factories import SR, WORDS, tone_speech  # noqa: E402
from servers import multipart, request  # noqa: E402
from tinyrun import tiny_ctc_run, tone_word_spans  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(run: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "wavtune.cli.main", "serve", str(run),
                                "--port", str(port), "--quiet"], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the server did not answer /health within 120 s")


def timed_requests(url: str, bodies: list[bytes], content_type: str, clients: int
                   ) -> dict[str, float]:
    def one(body: bytes) -> float:
        start = time.perf_counter()
        status, answer = request(url, body, content_type)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {answer}")
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(one, bodies))
    wall = time.perf_counter() - start
    return {"clients": clients, "requests": len(bodies), "wall_s": round(wall, 3),
            "requests_per_s": round(len(bodies) / wall, 2),
            "latency_p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
            "latency_p95_ms": round(1000 * float(np.percentile(latencies, 95)), 1)}


def service(run: Path, manifest: Path, n: int, clients: int) -> dict[str, Any]:
    from wavtune.data.audio import load_audio
    from wavtune.infer.recognizer import Recognizer

    rows = [json.loads(line) for line in manifest.read_text().splitlines()][:n]
    paths = [Path(r["audio"]) if Path(r["audio"]).is_absolute() else manifest.parent / r["audio"]
             for r in rows]
    files = [p.read_bytes() for p in paths]
    audio_s = sum(sf.info(str(p)).duration for p in paths)
    port = free_port()
    process = start_server(run, port)
    try:
        url = f"http://127.0.0.1:{port}/transcribe"
        _, content_type = multipart(b"")
        bodies = [multipart(f)[0] for f in files]
        timed_requests(url, bodies[:4], content_type, 1)  # warm-up
        sequential = timed_requests(url, bodies, content_type, 1)
        concurrent = timed_requests(url, bodies, content_type, clients)
    finally:
        process.terminate()
        process.wait(timeout=30)
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
    for result in (sequential, concurrent):
        result["audio_s_per_s"] = round(audio_s / result["wall_s"], 2)
    return {"run": run.name, "clips": len(rows), "audio_s": round(audio_s, 2),
            "sequential": sequential, "concurrent": concurrent,
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
    parser.add_argument("--run", type=Path, default=ROOT.parent / "runs" / "fsdd")
    parser.add_argument(
        "--manifest", type=Path, default=ROOT.parent / "data" / "fsdd" / "test.jsonl"
    )
    parser.add_argument("--requests", type=int, default=100, help="clips posted per phase")
    parser.add_argument("--clients", type=int, default=8)
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
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_1min_at_start": round(os.getloadavg()[0], 2),
                          "note": "2 shared cores with other jobs running: timings are noisy"}
    if not args.skip_service:
        results["service"] = service(args.run, args.manifest, args.requests, args.clients)
    if not args.skip_timestamps:
        results["timestamps"] = timestamps()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
