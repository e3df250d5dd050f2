"""Connected-speech rows (``wavtune join``): joined audio holds its clips exactly, columns that
all clips share survive, same seed gives the same bytes, bad input is refused and nothing lost."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavtune.cli.main import main
from wavtune.data.audio import load_audio
from wavtune.data.joining import JoinError, JoinOptions, join_manifest
from wavtune.data.manifest import read_manifest

RATE = 8000


def _corpus(folder: Path, texts: dict[str, str], speakers: dict[str, str]) -> Path:
    """One tone clip per id (distinct pitch and length), a manifest with speaker and digit."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (utt_id, text) in enumerate(texts.items()):
        t = np.arange(int(RATE * (0.2 + 0.05 * k))) / RATE
        wave = 0.3 * np.sin(2 * np.pi * (200 + 50 * k) * t)
        sf.write(folder / f"{utt_id}.wav", wave, RATE, subtype="PCM_16")
        rows.append({"id": utt_id, "audio": f"{utt_id}.wav", "text": text,
                     "speaker": speakers[utt_id], "digit": text, "lang": "en"})
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


TEXTS = {"a": "one", "b": "two", "c": "three", "d": "four", "e": "five"}
SPEAKERS = {"a": "jo", "b": "jo", "c": "jo", "d": "ana", "e": "ana"}


def _find(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Sample offset of ``needle`` inside ``haystack`` (-1: absent)."""
    for start in range(len(haystack) - len(needle) + 1):
        if np.array_equal(haystack[start:start + len(needle)], needle):
            return start
    return -1


def test_joined_rows_hold_their_clips_in_order_with_pauses(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path / "src", TEXTS, SPEAKERS)
    options = JoinOptions(rows=6, clips=(2, 3), pause_s=(0.1, 0.2), edge_s=(0.05, 0.1), seed=3)
    result = join_manifest(manifest, tmp_path / "out", options, progress=False)
    rows = read_manifest(result.manifest)
    assert (result.source_rows, result.joined_rows, len(rows)) == (5, 6, 11)
    assert [u.id for u in rows[:5]] == list(TEXTS)  # the source rows first, still readable
    assert all(u.audio.is_file() for u in rows)
    by_text = {text: load_audio(tmp_path / "src" / f"{i}.wav", RATE) for i, text in TEXTS.items()}
    for utt in rows[5:]:
        words = (utt.text or "").split(" ")
        assert 2 <= len(words) <= 3 and len(set(words)) == len(words)
        joined = load_audio(utt.audio, RATE)
        assert utt.duration_s == pytest.approx(len(joined) / RATE)
        starts = [_find(joined, by_text[w]) for w in words]
        assert all(s >= 0 for s in starts) and starts == sorted(starts)
        gaps = [b - (a + len(by_text[w])) for a, b, w in zip(starts, starts[1:], words)]
        assert all(0.1 * RATE - 1 <= g <= 0.2 * RATE + 1 for g in gaps)
        assert 0.05 * RATE - 1 <= starts[0] <= 0.1 * RATE + 1
        pause = joined[:starts[0]]  # -70 dBFS white noise, not digital silence
        assert 1e-4 < float(np.sqrt(np.mean(pause ** 2))) < 1e-3
        assert utt.labels == {"lang": "en"}  # digit differs between the clips: dropped


def test_same_speaker_keeps_the_speaker_and_the_seed_fixes_the_bytes(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path / "src", TEXTS, SPEAKERS)
    options = JoinOptions(rows=4, clips=(2, 2), same_speaker=True, seed=1)
    digests = []
    for name in ("one", "two"):
        result = join_manifest(manifest, tmp_path / name, options, only_joined=True,
                               progress=False)
        rows = read_manifest(result.manifest)
        assert result.source_rows == 0 and len(rows) == 4
        for utt in rows:
            speakers = {SPEAKERS[i] for i, t in TEXTS.items() if t in (utt.text or "").split()}
            assert speakers == {utt.speaker}
        digests.append([hashlib.sha256(u.audio.read_bytes()).hexdigest() for u in rows])
    assert digests[0] == digests[1]


def test_bad_input_is_refused_and_nothing_is_overwritten(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path / "src", TEXTS, SPEAKERS)
    out = tmp_path / "out"
    join_manifest(manifest, out, JoinOptions(rows=2), progress=False)
    before = (out / "train.jsonl").read_bytes()
    with pytest.raises(JoinError, match="--overwrite"):
        join_manifest(manifest, out, JoinOptions(rows=5), progress=False)
    assert (out / "train.jsonl").read_bytes() == before
    with pytest.raises(JoinError, match="source manifest"):
        join_manifest(manifest, tmp_path / "src", JoinOptions(rows=1), overwrite=True)
    with pytest.raises(JoinError, match="--clips"):
        join_manifest(manifest, tmp_path / "x", JoinOptions(rows=1, clips=(3, 2)))
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[2]["text"] = ""
    blank = tmp_path / "src" / "blank.jsonl"
    blank.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(JoinError, match="'c'.*no transcript"):
        join_manifest(blank, tmp_path / "y", JoinOptions(rows=1))
    join_manifest(manifest, out, JoinOptions(rows=1), overwrite=True, progress=False)
    assert len(list((out / "joined").glob("*.wav"))) == 1  # the old second clip is gone


def test_cli_join_writes_a_manifest_that_check_data_accepts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _corpus(tmp_path / "src", TEXTS, SPEAKERS)
    out = tmp_path / "out"
    assert main(["join", str(manifest), str(out), "--rows", "3", "--clips", "2-3",
                 "--pause-s", "0.05-0.2", "--quiet"]) == 0
    assert "5 source rows + 3 joined rows" in capsys.readouterr().out
    assert main(["check-data", str(out / "train.jsonl")]) == 0
    assert main(["join", str(manifest), str(out), "--rows", "1", "--quiet"]) != 0
    assert "--overwrite" in capsys.readouterr().err
