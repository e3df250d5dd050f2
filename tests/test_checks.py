"""Data checks: every kind of bad row is found, with its row, reason and severity."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavtune.checks.checker import (
    CheckOptions,
    DataError,
    Problem,
    check_utterances,
    ctc_min_frames,
    filter_utterances,
    require_clean,
)
from wavtune.data.frames import FrameGeometry, conv_geometry
from wavtune.data.manifest import Utterance, read_manifest, write_manifest
from wavtune.data.text import TextNormalizer
from wavtune.data.vocab import Vocabulary

SR = 16_000


def noise(seconds: float, seed: int, sr: int = SR, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (round(seconds * sr), channels) if channels > 1 else (round(seconds * sr),)
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)


def wav(path: Path, samples: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), samples, sr, subtype=subtype)
    return path


def cut(path: Path, keep_bytes: int) -> Path:
    path.write_bytes(path.read_bytes()[:keep_bytes])
    return path


# (id, expected problems) in manifest order; the fixture builds one row per entry.
EXPECTED: list[tuple[str, set[Problem]]] = [
    ("good1", set()),
    ("good2", set()),
    ("good8k", set()),
    ("missing", {Problem.MISSING_FILE}),
    ("cut_data", {Problem.TRUNCATED}),
    ("cut_header", {Problem.UNREADABLE}),
    ("cut_to_header", {Problem.ZERO_LENGTH}),
    ("empty_wav", {Problem.ZERO_LENGTH}),
    ("nan", {Problem.NAN_SAMPLES}),
    ("silent", {Problem.SILENT}),
    ("clipped", {Problem.CLIPPING}),
    ("empty_text", {Problem.EMPTY_TEXT}),
    ("no_text", {Problem.EMPTY_TEXT}),
    ("unknown", {Problem.UNKNOWN_CHARS}),
    ("ctc", {Problem.CTC_INFEASIBLE}),
    ("good1", {Problem.DUPLICATE_ID}),
    ("same_path", {Problem.DUPLICATE_AUDIO}),
    ("same_content", {Problem.DUPLICATE_AUDIO}),
    ("segment_ok", set()),
    ("segment_past_end", {Problem.ZERO_LENGTH}),
    ("segment_too_long", {Problem.TRUNCATED}),
    ("not_audio", {Problem.UNREADABLE}),
    ("stereo", set()),
]
ROW = {uid: i for i, (uid, _) in reversed(list(enumerate(EXPECTED)))}  # first row of each id
FATAL = {Problem.MISSING_FILE, Problem.TRUNCATED, Problem.UNREADABLE, Problem.ZERO_LENGTH,
         Problem.NAN_SAMPLES, Problem.EMPTY_TEXT, Problem.CTC_INFEASIBLE, Problem.DUPLICATE_ID}


@pytest.fixture
def corpus(tmp_path: Path) -> list[Utterance]:
    """A manifest's rows mixing every kind of bad row with good ones (see EXPECTED)."""
    d = tmp_path
    nan = noise(0.5, 5)
    nan[[10, 20, 30]] = np.nan
    clipped = np.clip(noise(0.5, 6) * 20, -1, 1)
    (d / "not_audio.wav").write_text("this is not audio")
    full = wav(d / "full.wav", noise(1.0, 7))
    audio = {
        "good1": wav(d / "good1.wav", noise(1.0, 1)),
        "good2": wav(d / "good2.wav", noise(1.0, 2)),
        "good8k": wav(d / "good8k.wav", noise(1.0, 3, sr=8000), sr=8000),
        "missing": d / "nowhere.wav",
        "cut_data": cut(wav(d / "cut_data.wav", noise(1.0, 4)), 44 + SR),  # half the samples
        "cut_header": cut(wav(d / "cut_header.wav", noise(1.0, 4)), 30),
        "cut_to_header": cut(wav(d / "cut_to_header.wav", noise(1.0, 4)), 44),
        "empty_wav": wav(d / "empty.wav", np.zeros(0, np.float32)),
        "nan": wav(d / "nan.wav", nan, subtype="FLOAT"),
        "silent": wav(d / "silent.wav", np.zeros(SR, np.float32)),
        "clipped": wav(d / "clipped.wav", clipped),
        "empty_text": wav(d / "e1.wav", noise(1.0, 8)),
        "no_text": wav(d / "e2.wav", noise(1.0, 9)),
        "unknown": wav(d / "unknown.wav", noise(1.0, 10)),
        "ctc": wav(d / "ctc.wav", noise(0.05, 11)),
        "same_path": d / "good1.wav",
        "same_content": Path(shutil.copy(d / "good2.wav", d / "copy_of_good2.wav")),
        "segment_ok": full,
        "segment_past_end": full,
        "segment_too_long": full,
        "not_audio": d / "not_audio.wav",
        "stereo": wav(d / "stereo.wav", noise(1.0, 12, channels=2)),
    }
    texts: dict[str, str | None] = {"empty_text": "", "no_text": None, "unknown": "Héllo",
                                    "ctc": "abcdefghij klmnopqrs tuvwxyz ab"}
    segments = {"segment_ok": (0.2, 0.5), "segment_past_end": (5.0, None),
                "segment_too_long": (0.5, 2.0)}
    utts = []
    for i, (uid, _) in enumerate(EXPECTED):
        key = "good_dup" if i == 15 else uid
        path = audio.get(key) or wav(d / f"{key}.wav", noise(1.0, 100 + i))
        offset, duration = segments.get(uid, (0.0, None))
        text = texts[uid] if uid in texts else f"hello {uid.replace('_', ' ')}"
        utts.append(Utterance(uid, path.resolve(), text, offset, duration))
    return utts


def vocab_for(utts: list[Utterance]) -> Vocabulary:
    norm = TextNormalizer()
    return Vocabulary.build([norm(u.text) for u in utts if u.text and u.id != "unknown"])


def test_every_bad_row_is_found_with_its_row_and_severity(corpus: list[Utterance]) -> None:
    report = check_utterances(corpus, CheckOptions(vocab=vocab_for(corpus), workers=4),
                              progress=False)
    found: dict[int, set[Problem]] = {i: set() for i in range(len(corpus))}
    for f in report.findings:
        found[f.row].add(f.problem)
        assert f.utt_id == corpus[f.row].id
        assert f.fatal == (f.problem in FATAL)
    assert found == {i: problems for i, (_, problems) in enumerate(EXPECTED)}
    assert not report.ok
    assert report.bad_rows() == {i for i, (_, p) in enumerate(EXPECTED) if p & FATAL}
    assert report.n_rows == len(corpus)


def test_details_name_the_reason(corpus: list[Utterance]) -> None:
    report = check_utterances(corpus, CheckOptions(vocab=vocab_for(corpus)), progress=False)
    detail = {(f.row, f.problem): f.detail for f in report.findings}
    assert detail[ROW["missing"], Problem.MISSING_FILE].startswith("audio file not found: /")
    assert "3 of 8000 samples are NaN" in detail[ROW["nan"], Problem.NAN_SAMPLES]
    assert "31 label tokens" in detail[ROW["ctc"], Problem.CTC_INFEASIBLE]
    assert "2 output frames" in detail[ROW["ctc"], Problem.CTC_INFEASIBLE]
    assert "'é'" in detail[ROW["unknown"], Problem.UNKNOWN_CHARS]
    assert "cut off" in detail[ROW["cut_data"], Problem.TRUNCATED]
    assert "all 16000 samples are zero" in detail[ROW["silent"], Problem.SILENT]
    assert "row 1 " in detail[ROW["same_path"], Problem.DUPLICATE_AUDIO]
    assert "identical samples to row 2 " in detail[ROW["same_content"], Problem.DUPLICATE_AUDIO]
    assert "row 1" in detail[15, Problem.DUPLICATE_ID]


def test_totals_and_notes_show_resampling_and_channels(corpus: list[Utterance]) -> None:
    report = check_utterances(corpus, CheckOptions(vocab=vocab_for(corpus)), progress=False)
    assert report.totals.sample_rates[8000] == 1
    assert report.totals.channels == {1: sum(report.totals.channels.values()) - 1, 2: 1}
    assert report.totals.duration_max_s == pytest.approx(1.0)
    assert report.totals.duration_min_s == pytest.approx(0.05)  # zero-length rows left out
    assert report.totals.n_readable == 17  # 23 - missing - 2 unreadable - 3 empty
    assert any("1 row at 8000 Hz resampled to 16000 Hz" in n for n in report.notes)
    assert any("1 row with 2 channels" in n for n in report.notes)
    summary = report.summary()
    assert "8000 Hz: 1" in summary and "FAILED" in summary
    table = report.summary_table()
    assert "missing_file" in table and "4 (missing)" in table


def test_filter_keeps_good_rows_and_counts_each_dropped_row_once(corpus: list[Utterance]) -> None:
    report = check_utterances(corpus, CheckOptions(vocab=vocab_for(corpus)), progress=False)
    kept, dropped = filter_utterances(corpus, report)
    good = [corpus[i] for i, (_, p) in enumerate(EXPECTED) if not p & FATAL]
    assert kept == good
    assert dropped == Counter({Problem.ZERO_LENGTH: 3, Problem.TRUNCATED: 2,
                               Problem.UNREADABLE: 2, Problem.EMPTY_TEXT: 2,
                               Problem.MISSING_FILE: 1, Problem.NAN_SAMPLES: 1,
                               Problem.CTC_INFEASIBLE: 1, Problem.DUPLICATE_ID: 1})
    assert sum(dropped.values()) == len(corpus) - len(kept)
    assert check_utterances(kept, CheckOptions(vocab=vocab_for(corpus)), progress=False).ok


def test_require_clean_fails_naming_rows_or_skips(corpus: list[Utterance],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    report = check_utterances(corpus, CheckOptions(vocab=vocab_for(corpus)), progress=False)
    with pytest.raises(DataError) as err:
        require_clean(corpus, report, "train.jsonl", on_error="fail")
    message = str(err.value)
    assert err.value.report is report
    assert "row 4 (id 'missing'): audio file not found:" in message
    assert "row 9 (id 'nan'): 3 of 8000 samples are NaN" in message
    assert "data.on_error=skip" in message and "train.jsonl" in message
    assert "silent" not in message  # warnings do not stop training
    with caplog.at_level(logging.WARNING):
        kept = require_clean(corpus, report, "train.jsonl", on_error="skip")
    assert [u.id for u in kept] == [uid for uid, p in EXPECTED if not p & FATAL]
    assert "dropped 13 of 23 rows" in caplog.text
    with pytest.raises(ValueError, match="'fail' or 'skip'"):
        require_clean(corpus, report, "train.jsonl", on_error="ignore")  # type: ignore[arg-type]


def test_clean_data_passes_and_warnings_do_not_fail(tmp_path: Path) -> None:
    utts = [Utterance(f"u{i}", wav(tmp_path / f"u{i}.wav", noise(1.0, i)), "hi there")
            for i in range(3)]
    utts.append(Utterance("quiet", wav(tmp_path / "q.wav", np.zeros(SR, np.float32)), "hi"))
    report = check_utterances(utts, CheckOptions(), progress=False)
    assert report.ok
    assert [f.problem for f in report.findings] == [Problem.SILENT]
    assert require_clean(utts, report, "m.jsonl") == utts


def test_read_manifest_rows_and_json_report(tmp_path: Path) -> None:
    a = wav(tmp_path / "a.wav", noise(1.0, 1))
    path = write_manifest([Utterance("a", a, "yes"), Utterance("b", tmp_path / "b.wav", "no")],
                          tmp_path / "m.jsonl")
    report = check_utterances(read_manifest(path), CheckOptions(), progress=False)
    data = json.loads(json.dumps(report.to_json()))
    assert data["ok"] is False and data["n_rows"] == 2 and data["n_bad_rows"] == 1
    assert data["counts"] == {"missing_file": {"rows": 1, "fatal": True}}
    assert data["findings"][0] | {"detail": ""} == {
        "row": 2, "index": 1, "id": "b", "problem": "missing_file", "fatal": True, "detail": ""}
    assert data["totals"]["sample_rates"] == {"16000": 1}


def test_duration_limits_are_fatal(tmp_path: Path) -> None:
    utts = [Utterance(f"u{s}", wav(tmp_path / f"u{s}.wav", noise(s, 1)), "ok")
            for s in (0.2, 1.0, 3.0)]
    opts = CheckOptions(min_duration_s=0.5, max_duration_s=2.0, workers=1)
    report = check_utterances(utts, opts, progress=False)
    assert [(f.row, f.problem, f.fatal) for f in report.findings] == [
        (0, Problem.TOO_SHORT, True), (2, Problem.TOO_LONG, True)]
    assert "3.00 s, longer than the maximum 2 s" in report.findings[1].detail


def test_header_only_mode_skips_sample_checks(corpus: list[Utterance]) -> None:
    report = check_utterances(corpus, CheckOptions(vocab=vocab_for(corpus), decode=False),
                              progress=False)
    problems = {(f.row, f.problem) for f in report.findings}
    assert (ROW["missing"], Problem.MISSING_FILE) in problems
    assert (ROW["cut_data"], Problem.TRUNCATED) in problems
    assert (ROW["ctc"], Problem.CTC_INFEASIBLE) in problems
    assert not {p for _, p in problems} & {Problem.NAN_SAMPLES, Problem.SILENT, Problem.CLIPPING}
    assert (ROW["same_content"], Problem.DUPLICATE_AUDIO) not in problems  # needs decoding
    assert any("header-only" in n for n in report.notes)


def test_classification_needs_no_text(corpus: list[Utterance]) -> None:
    report = check_utterances(corpus, CheckOptions(need_text=False), progress=False)
    text_problems = {Problem.EMPTY_TEXT, Problem.UNKNOWN_CHARS, Problem.CTC_INFEASIBLE}
    assert not {f.problem for f in report.findings} & text_problems


def test_ctc_boundary_is_exact(tmp_path: Path) -> None:
    # "abb" needs 3 tokens + 1 blank between the repeated b's = 4 frames = 400 + 3 * 320 samples
    utts = [Utterance(str(n), wav(tmp_path / f"{n}.wav", noise(n / SR, n)), "abb")
            for n in (1360, 1359)]
    report = check_utterances(utts, CheckOptions(workers=1), progress=False)
    assert [(f.row, f.problem) for f in report.findings] == [(1, Problem.CTC_INFEASIBLE)]
    assert "3 label tokens (+1 repeats) but 3 output frames" in report.findings[0].detail
    assert ctc_min_frames(list("hello")) == 6
    geometry = conv_geometry((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2))
    assert geometry == FrameGeometry(samples_per_frame=320, receptive_field=400)
    assert geometry.frames(16000) == 49 and geometry.frames(399) == 0


def test_outliers_in_duration_and_speaking_rate(tmp_path: Path) -> None:
    utts = [Utterance(f"u{i}", wav(tmp_path / f"u{i}.wav", noise(0.5 + 0.01 * i, i)),
                      "hello")  # ~10 tokens per second
            for i in range(20)]
    utts.append(Utterance("long", wav(tmp_path / "long.wav", noise(8.0, 99)), "hello " * 16))
    utts.append(
        Utterance("fast", wav(tmp_path / "fast.wav", noise(0.5, 98)), "abcdefghijklmnopqrst")
    )
    report = check_utterances(utts, CheckOptions(outlier_min_rows=10), progress=False)
    assert report.ok  # outliers are warnings
    assert {(f.utt_id, f.problem) for f in report.findings} == {
        ("long", Problem.DURATION_OUTLIER), ("fast", Problem.RATE_OUTLIER)}


def test_parallel_and_serial_reports_agree(corpus: list[Utterance]) -> None:
    vocab = vocab_for(corpus)
    serial = check_utterances(corpus, CheckOptions(vocab=vocab, workers=1), progress=False)
    parallel = check_utterances(corpus, CheckOptions(vocab=vocab, workers=3), progress=False)
    assert serial == parallel


def test_options_and_mismatched_rows_are_rejected(corpus: list[Utterance]) -> None:
    with pytest.raises(ValueError, match="min_duration_s 5 > max_duration_s 1"):
        CheckOptions(min_duration_s=5, max_duration_s=1)
    with pytest.raises(ValueError, match="workers is 0"):
        CheckOptions(workers=0)
    report = check_utterances(corpus[:3], CheckOptions(), progress=False)
    with pytest.raises(ValueError, match="filter the same list"):
        filter_utterances(corpus, report)
