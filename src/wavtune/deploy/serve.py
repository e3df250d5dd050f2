"""The HTTP transcription service: a FastAPI app around one loaded run.

``POST /transcribe`` takes an audio upload (multipart field ``file``) and answers the transcript,
timed words (and characters with ``?chars=true``), each label head's ``?top_k`` best labels for
multi-task and classification runs, and the duration; ``?adapter=NAME`` swaps in the run's MMS
adapter ``adapter.NAME.safetensors`` first. ``GET /health`` describes the model;
``GET /`` is a small page to upload or record a clip; ``/docs`` and ``/openapi.json`` are
FastAPI's. This module imports FastAPI at the top: import it only when serving
(:mod:`wavtune.cli.serve` does so lazily and says how to install the extra).

Concurrency: uploads are received and decoded concurrently; the model runs in one worker thread
that collects concurrent requests into micro-batches (:mod:`wavtune.deploy.batcher`: up to
``max_batch`` clips within ``batch_window_ms``, one padded forward pass), so the event loop keeps
accepting requests while clips are transcribed and torch is never entered from two threads.
The queue is bounded (503 with ``Retry-After`` when full), each request has a timeout (504),
audio has a duration limit (413). ``GET /metrics`` is Prometheus text; every response carries
an ``X-Request-ID``; with an API key every endpoint but ``/health`` needs it
(:mod:`wavtune.deploy.access`).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import numpy as np
import soundfile as sf
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from wavtune import __version__
from wavtune.data.audio import Waveform, resample
from wavtune.decode.runfile import load_decoding
from wavtune.deploy import metrics as prom
from wavtune.deploy.access import Access
from wavtune.deploy.batcher import MicroBatcher, QueueFull
from wavtune.deploy.limits import (
    DEFAULT_BATCH_WINDOW_MS,
    DEFAULT_MAX_AUDIO_S,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_TIMEOUT_S,
    RETRY_AFTER_S,
)
from wavtune.infer.classifier import Classifier
from wavtune.infer.recognizer import Recognizer
from wavtune.infer.types import LabelScores, TranscribeOptions, Transcript
from wavtune.model.families import geometry_of
from wavtune.run.directory import RunError

MB = 1024 * 1024
FORMATS_HINT = "WAV, FLAC, OGG/Opus or MP3"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# --- response schemas (pydantic, so /openapi.json and /docs describe them) -------------------

class WordTiming(BaseModel):
    word: str
    start: float  # s
    end: float  # s
    confidence: float


class CharTiming(BaseModel):
    char: str
    start: float  # s
    end: float  # s
    confidence: float


class LabelProbability(BaseModel):
    label: str
    probability: float


class TranscribeResponse(BaseModel):
    text: str | None  # None for a classification run
    words: list[WordTiming]
    chars: list[CharTiming] | None = None  # with ?chars=true
    labels: dict[str, list[LabelProbability]]  # label head -> best labels (empty for CTC runs)
    duration_s: float
    model: str


class Health(BaseModel):
    status: str
    model: str
    kind: str  # ctc, classify or multitask
    sample_rate: int  # Hz; uploads are resampled to it
    frame_s: float | None  # seconds per CTC frame (timestamp resolution)
    vocab_size: int | None
    label_heads: dict[str, list[str]]
    device: str
    max_upload_mb: float
    version: str
    adapters: list[str] = []  # MMS adapters the run holds (RUN/adapter.<name>.safetensors)


class ErrorResponse(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": why} for code, why in (
        (400, "empty or too short audio"), (401, "missing or wrong API key"),
        (413, "upload over the size or duration limit"), (415, "not decodable audio"),
        (422, "no 'file' field in the form"), (503, "queue full: retry after Retry-After s"),
        (504, "not answered within the server's --timeout-s"), (404, "no such adapter in the run"))
}


# --- the model behind the service -------------------------------------------------------------

class ServiceModel:
    """A run loaded once; :meth:`run_batch` is called from the batcher's worker thread only."""

    def __init__(self, run_dir: Path, device: str, options: TranscribeOptions) -> None:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8")) \
            if (run_dir / "config.json").is_file() else {}
        classify = (config.get("architectures") or [""])[0].endswith("ForSequenceClassification")
        self.recognizer: Recognizer | None = None
        self.classifier: Classifier | None = None
        if classify:
            self.classifier = Classifier(run_dir, device)
            loaded = self.classifier.run
        else:
            # the run's tuned decoder (wavtune lm tune writes RUN/decoding.json), else greedy;
            # beam decoders keep state, which the service's lock also protects
            self.recognizer = Recognizer(run_dir, device, decoding=load_decoding(run_dir))
            loaded = self.recognizer.run
        self.loaded = loaded
        self.options = options
        self.name = run_dir.resolve().name
        # the shortest input the encoder accepts: its receptive field, in samples
        self.min_samples = geometry_of(loaded.model.config).receptive_field

    @property
    def sample_rate(self) -> int:
        return self.loaded.audio.sample_rate

    def health(self, device: str, max_upload_mb: float) -> Health:
        rec = self.recognizer
        return Health(status="ok", model=self.name, kind=self.loaded.kind,
                      sample_rate=self.sample_rate, frame_s=rec.frame_s if rec else None,
                      vocab_size=len(rec.vocab) if rec else None,
                      label_heads={s.column: list(s.labels) for s in self.loaded.label_sets},
                      device=device, max_upload_mb=max_upload_mb, version=__version__,
                      adapters=self.loaded.adapters())

    def run_batch(self, items: Sequence[tuple[Waveform, int, str | None]]) -> list[Transcript]:
        """Transcripts of (waveform, top_k, adapter) requests, one MMS adapter group at a time."""
        out: dict[int, Transcript] = {}
        for adapter in dict.fromkeys(a for _, _, a in items):
            if adapter:  # swapped in once and kept: one process serves many adapters
                self.loaded.use_adapter(adapter)
            group = [i for i, item in enumerate(items) if item[2] == adapter]
            out.update(zip(group, self._run_group([(items[i][0], items[i][1]) for i in group])))
        return [out[i] for i in range(len(items))]

    def _run_group(self, items: Sequence[tuple[Waveform, int]]) -> list[Transcript]:
        """Clips within one window in one padded forward pass, longer clips (and
        classification runs) one at a time."""
        window = int(self.options.chunk_s * self.sample_rate)
        short = [i for i, (w, _) in enumerate(items) if len(w) <= window]
        out: list[Transcript | None] = [None] * len(items)
        if self.recognizer is not None and len(short) > 1:
            batch = self.recognizer.transcripts_of_short_arrays(
                [items[i][0] for i in short], [items[i][1] for i in short], self.options)
            for i, t in zip(short, batch):
                out[i] = t
        return [t if t is not None else self.run(*items[i]) for i, t in enumerate(out)]

    def run(self, wave: Waveform, top_k: int) -> Transcript:
        if self.recognizer is not None:
            return self.recognizer.transcript_of_array(wave, "upload", self.options, top_k)
        assert self.classifier is not None
        labels = self.classifier.classify_array(wave, top_k, self.options)
        return Transcript("upload", "", len(wave) / self.sample_rate, labels)


def decode_upload(data: BinaryIO, name: str, sample_rate: int,
                  max_audio_s: float = float("inf")) -> Waveform:
    """Mono float32 at ``sample_rate`` from an uploaded file object; HTTPException 415 when
    libsndfile cannot read it, 400 when it holds no samples, 413 when it is longer than
    ``max_audio_s`` (decided from the header, before the samples are read)."""
    try:
        with sf.SoundFile(data) as f:
            orig_sr = int(f.samplerate)
            if f.frames > max_audio_s * orig_sr:
                raise HTTPException(413, f"{name}: {f.frames / orig_sr:.1f} s of audio is over "
                                         f"the server's limit of {max_audio_s:g} s "
                                         f"(--max-audio-s); send a shorter clip")
            samples = f.read(dtype="float32", always_2d=True)  # [samples, channels]
    except (RuntimeError, TypeError, ValueError) as e:  # LibsndfileError is a RuntimeError
        reason = str(e).rpartition(": ")[2] or type(e).__name__  # drop the temp file's name
        raise HTTPException(415, f"{name}: cannot decode the upload as audio ({reason}); send "
                                 f"{FORMATS_HINT}") from None
    if samples.shape[0] == 0:
        raise HTTPException(400, f"{name}: the audio has no samples")
    wave = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    return resample(np.ascontiguousarray(wave, dtype=np.float32), orig_sr, sample_rate)


def _labels(labels: tuple[LabelScores, ...]) -> dict[str, list[LabelProbability]]:
    return {h.column: [LabelProbability(label=label, probability=round(p, 4)) for label, p in h.top]
            for h in labels}


def response_of(t: Transcript, classify: bool, chars: bool, model: str) -> TranscribeResponse:
    return TranscribeResponse(
        text=None if classify else t.text,
        words=[WordTiming(word=w.text, start=w.start_s, end=w.end_s, confidence=w.confidence)
               for w in t.words],
        chars=[CharTiming(char=c.text, start=c.start_s, end=c.end_s, confidence=c.confidence)
               for c in t.chars] if chars else None,
        labels=_labels(t.labels), duration_s=round(t.duration_s, 3), model=model)


# --- request size limit -----------------------------------------------------------------------

class UploadLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413, decided while it is received
    (a declared Content-Length first), so an oversize upload is never buffered. The rest of the
    body is read and dropped (up to ``DRAIN_FACTOR`` times the limit) before the answer, because
    a server that closes on a client still sending resets the connection and the client sees
    a broken pipe instead of the 413."""

    DRAIN_FACTOR = 4

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def message(self) -> str:
        return (f"the upload is larger than the server's limit of {self.max_bytes / MB:g} MB; "
                f"send a shorter clip or start the server with a larger --max-upload-mb")

    async def drain(self, receive: Receive, received: int) -> None:
        """Read and drop the rest of the body (bounded: never more than the drain limit)."""
        more = True
        while more and received <= self.DRAIN_FACTOR * self.max_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            received += len(message.get("body", b""))
            more = bool(message.get("more_body", False))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self.drain(receive, 0)
            await JSONResponse({"detail": self.message()}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if message.get("more_body", False):
                        await self.drain(receive, received)
                    # raised inside the route's body parsing: FastAPI answers it as a 413
                    raise HTTPException(413, self.message())
            return message

        await self.app(scope, limited, send)


# --- the app ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ServeOptions:
    device: str = "cpu"
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    transcribe: TranscribeOptions = field(default_factory=TranscribeOptions)
    max_audio_s: float = DEFAULT_MAX_AUDIO_S
    max_batch: int = DEFAULT_MAX_BATCH
    batch_window_ms: float = DEFAULT_BATCH_WINDOW_MS
    max_queue: int = DEFAULT_MAX_QUEUE
    timeout_s: float = DEFAULT_TIMEOUT_S
    api_key: str | None = None  # every endpoint but /health needs 'Authorization: Bearer KEY'
    cors_origins: tuple[str, ...] = ()  # CORS off unless given


def page_html() -> str:
    """The upload/record page shipped as package data (``wavtune/deploy/static/index.html``)."""
    return (resources.files("wavtune.deploy") / "static" / "index.html").read_text(encoding="utf-8")


def create_app(run_dir: str | Path, options: ServeOptions = ServeOptions()) -> FastAPI:
    """The service for the finished run in ``run_dir`` (loaded now, once). ``app.state.batcher``
    runs the model; close it (``app.state.batcher.close()``) after the server has stopped."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise RunError(f"{run_dir}: no config.json; is this a finished wavtune run directory?")
    model = ServiceModel(run_dir, options.device, options.transcribe)
    metrics = prom.ServiceMetrics()
    batcher: MicroBatcher[tuple[Waveform, int, str | None], Transcript] = MicroBatcher(
        model.run_batch, options.max_batch, options.batch_window_ms / 1000, options.max_queue,
        on_batch=metrics.batch)
    metrics.queue_depth = lambda: batcher.depth
    app = FastAPI(title="wavtune", version=__version__,
                  description=f"Speech recognition and audio classification with the wavtune run "
                              f"'{model.name}' ({model.loaded.kind}).")
    app.state.batcher = batcher
    _add_pages(app, model, options, metrics)
    _add_transcribe(app, model, options, batcher, metrics)
    app.add_middleware(UploadLimit, max_bytes=int(options.max_upload_mb * MB))
    if options.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors_origins),
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"])
    app.add_middleware(Access, metrics=metrics, api_key=options.api_key)
    return app


def _add_pages(app: FastAPI, model: ServiceModel, options: ServeOptions,
               metrics: prom.ServiceMetrics) -> None:
    page = page_html()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()]
        return JSONResponse(status_code=422, content={
            "detail": f"invalid request ({', '.join(fields)}): send the audio as the multipart "
                      f"form field 'file', e.g. curl -F file=@clip.wav .../transcribe",
            "errors": json.loads(json.dumps(exc.errors(), default=str))})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        return model.health(options.device, options.max_upload_mb)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics_text() -> PlainTextResponse:
        """Prometheus text format: requests, latency, queue depth, batch sizes, audio seconds."""
        return PlainTextResponse(metrics.render(), media_type=prom.CONTENT_TYPE)


def _add_transcribe(app: FastAPI, model: ServiceModel, options: ServeOptions,
                    batcher: MicroBatcher[tuple[Waveform, int, str | None], Transcript],
                    metrics: prom.ServiceMetrics) -> None:
    @app.post("/transcribe", response_model=TranscribeResponse, response_model_exclude_none=False,
              responses=ERRORS)
    async def transcribe(
        file: Annotated[UploadFile, File(description=f"audio: {FORMATS_HINT}")],
        chars: Annotated[bool, Query(description="also time each character")] = False,
        top_k: Annotated[int, Query(ge=1, le=50, description="labels per head")] = 1,
        adapter: Annotated[str | None, Query(description="MMS adapter (see /health)")] = None,
    ) -> TranscribeResponse:
        name = file.filename or "upload"
        file.file.seek(0, io.SEEK_END)
        if file.file.tell() == 0:
            raise HTTPException(400, f"{name}: the upload is empty")
        file.file.seek(0)
        wave = await run_in_threadpool(decode_upload, file.file, name, model.sample_rate,
                                       options.max_audio_s)
        if len(wave) < model.min_samples:
            raise HTTPException(400, f"{name}: {len(wave) / model.sample_rate * 1000:.0f} ms of "
                                     f"audio is too short for the model (it needs at least "
                                     f"{model.min_samples / model.sample_rate * 1000:.0f} ms)")
        if adapter and adapter not in model.loaded.adapters():
            raise HTTPException(404, f"adapter {adapter!r}: not in this run (it holds "
                                     f"{', '.join(model.loaded.adapters()) or 'none'})")
        try:
            result = await batcher.submit((wave, top_k, adapter), options.timeout_s)
        except QueueFull as e:
            raise HTTPException(503, f"the server is busy ({e}); retry after {RETRY_AFTER_S} s",
                                headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        except asyncio.TimeoutError:
            raise HTTPException(504, f"{name}: not transcribed within the server's "
                                     f"{options.timeout_s:g} s (--timeout-s)") from None
        metrics.audio(result.duration_s)
        return response_of(result, model.recognizer is None, chars, model.name)
