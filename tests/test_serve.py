"""``wavtune serve``: real HTTP requests against a uvicorn server on 127.0.0.1 serving a tiny
trained run: transcripts with word timings, 4xx errors as JSON, the upload limit, concurrent
requests, /health and the OpenAPI schema."""

from __future__ import annotations

import http.client
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import numpy as np
import pytest
from factories import SR, tone_speech
from servers import multipart, request, running_server, upload, wav_bytes
from tinyrun import CLIP_TEXT, tiny_ctc_run, tiny_label_run

from wavtune.cli.main import main
from wavtune.deploy.serve import response_of
from wavtune.infer.timestamps import CharSpan, WordSpan
from wavtune.infer.types import LabelScores, Transcript

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

LIMIT_MB = 0.25


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server(tiny_ctc_run(), max_upload_mb=LIMIT_MB) as base:
        yield base


@pytest.fixture(scope="module")
def clip() -> bytes:
    return wav_bytes(tone_speech(CLIP_TEXT, seed=11), SR)


def test_upload_gets_transcript_and_word_timings(server: str, clip: bytes) -> None:
    status, body = upload(server, clip)
    assert status == 200, body
    assert body["text"] == CLIP_TEXT and body["model"] == "run" and body["labels"] == {}
    assert [w["word"] for w in body["words"]] == CLIP_TEXT.split()
    starts = [w["start"] for w in body["words"]]
    assert starts == sorted(starts) and all(w["start"] < w["end"] for w in body["words"])
    assert body["chars"] is None
    assert body["duration_s"] == pytest.approx(len(tone_speech(CLIP_TEXT)) / SR, abs=1e-3)

    status, body = upload(server, clip, "?chars=true")
    assert "".join(c["char"] for c in body["chars"]) == CLIP_TEXT.replace(" ", "")


def test_other_formats_and_rates_are_decoded_and_resampled(server: str) -> None:
    flac_8k = wav_bytes(tone_speech(CLIP_TEXT, sample_rate=8000, seed=11), 8000, "FLAC")
    status, body = upload(server, flac_8k, filename="clip.flac", content_type="audio/flac")
    assert status == 200 and body["text"] == CLIP_TEXT
    stereo = np.stack([tone_speech(CLIP_TEXT, seed=11)] * 2, axis=1)
    assert upload(server, wav_bytes(stereo, SR))[1]["text"] == CLIP_TEXT


def test_bad_uploads_get_clear_json_errors(server: str) -> None:
    status, body = upload(server, b"this is not audio", filename="notes.txt",
                          content_type="text/plain")
    assert status == 415 and "notes.txt: cannot decode the upload as audio" in body["detail"]
    assert "WAV" in body["detail"] and "SpooledTemporaryFile" not in body["detail"]
    status, body = upload(server, b"")
    assert status == 400 and "empty" in body["detail"]
    status, body = upload(server, wav_bytes(np.zeros(0, dtype=np.float32), SR))
    assert status == 400 and "no samples" in body["detail"]
    status, body = upload(server, wav_bytes(np.zeros(100, dtype=np.float32), SR))
    assert status == 400 and "too short" in body["detail"]
    body_bytes, content_type = multipart(b"RIFF", field="audio")  # the wrong field name
    status, body = request(f"{server}/transcribe", body_bytes, content_type)
    assert status == 422 and "'file'" in body["detail"] and body["errors"]
    status, body = upload(server, wav_bytes(tone_speech("ab"), SR), "?top_k=0")
    assert status == 422 and "top_k" in body["detail"]


def test_oversize_uploads_get_413_while_being_read(server: str) -> None:
    big = wav_bytes(np.zeros(int(LIMIT_MB * 1024 * 1024), dtype=np.float32), SR)  # 2 bytes/sample
    status, body = upload(server, big)
    assert status == 413 and "--max-upload-mb" in body["detail"] and "0.25 MB" in body["detail"]

    # no Content-Length (chunked transfer): the limit is enforced on the bytes received so far
    payload, content_type = multipart(big)
    parts = urlsplit(server)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    pieces = (payload[i : i + 65536] for i in range(0, len(payload), 65536))
    try:
        connection.request("POST", "/transcribe", body=pieces, encode_chunked=True,
                           headers={"Content-Type": content_type})
        response = connection.getresponse()
        assert response.status == 413 and b"max-upload-mb" in response.read()
    finally:
        connection.close()
    assert upload(server, wav_bytes(tone_speech("ab"), SR))[0] == 200  # the server is still up


def test_eight_concurrent_requests_all_succeed(server: str, clip: bytes) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: upload(server, clip), range(8)))
    assert [status for status, _ in results] == [200] * 8
    assert {body["text"] for _, body in results} == {CLIP_TEXT}
    assert len({str(body["words"]) for _, body in results}) == 1


def test_health_and_openapi(server: str) -> None:
    status, health = request(f"{server}/health")
    assert status == 200 and health["status"] == "ok" and health["kind"] == "ctc"
    assert health["sample_rate"] == SR and health["frame_s"] == pytest.approx(0.02)
    assert health["max_upload_mb"] == LIMIT_MB and health["label_heads"] == {}
    status, schema = request(f"{server}/openapi.json")
    post = schema["paths"]["/transcribe"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert {"200", "413", "415", "422"} <= set(post["responses"])
    assert {"TranscribeResponse", "WordTiming", "Health"} <= set(schema["components"]["schemas"])
    status, docs = request(f"{server}/docs")
    assert status == 200 and "swagger" in docs.lower()
    status, page = request(f"{server}/")
    assert status == 200 and 'id="transcript"' in page


@pytest.mark.parametrize("task", ["multitask", "classify"])
def test_label_runs_answer_their_labels(task: str, clip: bytes) -> None:
    with running_server(tiny_label_run(task)) as base:
        health = request(f"{base}/health")[1]
        assert health["kind"] == task and set(health["label_heads"]["first"]) == set("abcd")
        status, body = upload(base, clip, "?top_k=3")
    assert status == 200
    if task == "multitask":
        assert isinstance(body["text"], str)
    else:
        assert body["text"] is None and body["words"] == [] and health["frame_s"] is None
    top = body["labels"]["first"]
    assert len(top) == 3 and {t["label"] for t in top} <= set("abcd")
    probabilities = [t["probability"] for t in top]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0001


def test_labels_of_multitask_and_classification_runs_are_reported() -> None:
    t = Transcript("upload", "ab", 1.0, (LabelScores("speaker", (("s1", 0.81234), ("s2", 0.1))),),
                   (WordSpan("ab", 0.1, 0.3, 0.9),), (CharSpan("a", 0.1, 0.2, 0.9),))
    multitask = response_of(t, classify=False, chars=False, model="m")
    assert multitask.text == "ab" and multitask.chars is None
    assert [(p.label, p.probability) for p in multitask.labels["speaker"]] == [("s1", 0.8123),
                                                                              ("s2", 0.1)]
    assert response_of(t, classify=True, chars=True, model="m").text is None


def test_serve_command_checks_its_options(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["serve", str(tiny_ctc_run()), "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb must be positive" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the serve extra were missing
    assert main(["serve", str(tiny_ctc_run())]) == 2
    assert 'needs uvicorn: pip install "wavtune[serve]"' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "POST /transcribe" in capsys.readouterr().out
