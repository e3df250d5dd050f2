"""Word and character timestamps from the CTC path, subtitles (SRT/WebVTT) and
``transcribe --format json|srt|vtt``: checked against tone speech whose word positions are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from factories import SR, tone_speech
from tinyrun import CLIP_TEXT, tiny_ctc_run, tone_word_spans

from wavtune.cli.main import main
from wavtune.constants import PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER
from wavtune.data.audio import normalize_waveform
from wavtune.data.vocab import Vocabulary
from wavtune.infer.recognizer import Recognizer
from wavtune.infer.subtitles import Cue, CueOptions, clock, group_cues, to_srt, to_vtt
from wavtune.infer.timestamps import (
    TokenRun,
    WordSpan,
    align,
    frame_seconds,
    snap_to_speech,
    token_runs,
)
from wavtune.infer.types import TranscribeOptions
from wavtune.model.families import WAV2VEC2_PRESETS

VOCAB = Vocabulary((PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER, "a", "b", "c", "d"))
FRAME_S = 0.02
TOLERANCE_S = FRAME_S + 0.020  # the bound: one frame stride + 20 ms


def acoustic_path(text: str, frame_s: float = FRAME_S) -> list[int]:
    """The frame path a perfect CTC model would take through tone speech of ``text``: a letter on
    every frame whose centre lies in its tone, the delimiter in the middle of word gaps, blank
    elsewhere."""
    duration = len(tone_speech(text)) / SR
    centres = (np.arange(int(duration / frame_s)) + 0.5) * frame_s
    path = [VOCAB.pad_id] * len(centres)
    spans = tone_word_spans(text)
    for (word, start, end), nxt in zip(spans, [*spans[1:], None]):
        letter_s = (end - start - 0.04 * (len(word) - 1)) / len(word)
        for k, letter in enumerate(word):
            a = start + k * (letter_s + 0.04)
            for i in np.flatnonzero((centres >= a) & (centres < a + letter_s)):
                path[i] = VOCAB.tokens.index(letter)
        if nxt is not None:
            path[int((end + nxt[1]) / 2 / frame_s)] = VOCAB.tokens.index(WORD_DELIMITER)
    return path


def assert_words_near(words: tuple[WordSpan, ...], text: str, tolerance: float) -> None:
    truth = tone_word_spans(text)
    assert [w.text for w in words] == [t[0] for t in truth]
    for w, (_, start, end) in zip(words, truth):
        assert abs(w.start_s - start) <= tolerance and abs(w.end_s - end) <= tolerance, (
            w,
            start,
            end,
        )


def test_token_runs_keep_the_frames_each_token_was_emitted_on() -> None:
    assert token_runs([0, 3, 3, 0, 3, 5, 5, 0]) == [TokenRun(3, 1, 2), TokenRun(3, 4, 4),
                                                    TokenRun(5, 5, 6)]
    assert token_runs([]) == [] and token_runs([0, 0]) == []


def test_frame_stride_comes_from_the_conv_strides() -> None:
    assert frame_seconds(WAV2VEC2_PRESETS["tiny"]["conv_stride"], 16_000) == pytest.approx(0.02)
    assert frame_seconds(WAV2VEC2_PRESETS["small"]["conv_stride"], 8_000) == pytest.approx(0.04)
    assert frame_seconds((5, 2, 2, 2, 2, 2, 2), 16_000) == pytest.approx(0.02)  # wav2vec2-base


@pytest.mark.parametrize("text", ["a bad cab", "dc ba", "abba d cadd"])
def test_words_of_an_acoustic_path_are_within_a_stride_and_20_ms(text: str) -> None:
    timed = align(acoustic_path(text), VOCAB, FRAME_S)
    assert_words_near(timed.words, text, TOLERANCE_S)
    assert "".join(c.text for c in timed.chars) == text.replace(" ", "")
    assert all(c.start_s < c.end_s for c in timed.chars)


def test_chunk_offsets_shift_the_spans() -> None:
    path = acoustic_path("ab cd")
    starts = 10.0 + np.arange(len(path)) * FRAME_S  # a chunk that starts 10 s into the audio
    moved = align(path, VOCAB, FRAME_S, starts).words
    plain = align(path, VOCAB, FRAME_S).words
    assert [w.start_s - p.start_s for w, p in zip(moved, plain)] == pytest.approx([10.0, 10.0])
    with pytest.raises(ValueError, match="frame start times"):
        align(path, VOCAB, FRAME_S, starts[:-1])


def test_confidence_is_the_mean_probability_of_the_token() -> None:
    logits = np.full((4, len(VOCAB)), -10.0, dtype=np.float32)
    logits[0, 3] = logits[1, 3] = 10.0  # 'a' on frames 0-1, sure
    logits[2, 0] = 10.0
    logits[3, 4], logits[3, 5] = 1.0, 1.0 - np.log(3.0)  # 'b' at about 3/4
    timed = align(logits.argmax(-1).tolist(), VOCAB, FRAME_S, logits=logits)
    assert [c.text for c in timed.chars] == ["a", "b"]
    assert timed.chars[0].confidence == pytest.approx(1.0, abs=1e-4)
    assert timed.chars[1].confidence == pytest.approx(0.75, abs=1e-3)
    assert timed.words[0].text == "ab" and timed.words[0].confidence == timed.chars[1].confidence


def test_cjk_characters_and_phones_are_words_of_their_own() -> None:
    cjk = Vocabulary((PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER, "ok", "你", "好"), "cjk")
    words = align([4, 0, 5, 0, 2, 3], cjk, FRAME_S).words
    assert [w.text for w in words] == ["你", "好", "ok"]
    phones = Vocabulary((PAD_TOKEN, UNK_TOKEN, "h#", "ae"), "phone")
    assert [w.text for w in align([2, 2, 0, 3], phones, FRAME_S).words] == ["h#", "ae"]


# --- subtitles ---------------------------------------------------------------------------------

def test_clock_formats_hours_minutes_seconds_and_milliseconds() -> None:
    assert clock(3661.5, ",") == "01:01:01,500"
    assert clock(0.0004, ".") == "00:00:00.000" and clock(59.9996, ".") == "00:01:00.000"


def test_cues_break_on_length_duration_and_pauses() -> None:
    words = [WordSpan("one", 0.0, 0.4, 1.0), WordSpan("two", 0.5, 0.9, 1.0),
             WordSpan("three", 3.0, 3.5, 1.0), WordSpan("four", 3.6, 4.0, 1.0)]
    assert group_cues(words) == [Cue(0.0, 0.9, "one two"), Cue(3.0, 4.0, "three four")]
    assert [c.text for c in group_cues(words, CueOptions(max_chars=8))] == [
        "one two", "three", "four"]
    assert [c.text for c in group_cues(words, CueOptions(max_duration_s=0.5, max_gap_s=9))] == [
        "one", "two", "three", "four"]
    assert group_cues([WordSpan("你", 0, 1, 1), WordSpan("好", 1, 2, 1)])[0].text == "你好"


def test_srt_and_vtt_layout() -> None:
    cues = [Cue(0.08, 1.32, "a bad cab"), Cue(61.0, 62.25, "dab")]
    assert to_srt(cues) == ("1\n00:00:00,080 --> 00:00:01,320\na bad cab\n\n"
                            "2\n00:01:01,000 --> 00:01:02,250\ndab\n\n")
    assert to_vtt(cues) == ("WEBVTT\n\n00:00:00.080 --> 00:00:01.320\na bad cab\n\n"
                            "00:01:01.000 --> 00:01:02.250\ndab\n\n")


# --- a trained model --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer(tiny_ctc_run())


def test_trained_model_words_are_within_a_stride_and_20_ms(recognizer: Recognizer) -> None:
    """The model's spikes sit inside each letter's tone; snapped to the ends of the sound, every
    word edge is within one frame stride + 20 ms of the truth."""
    clip = tone_speech(CLIP_TEXT, seed=11)
    t = recognizer.transcript_of_array(clip, "clip")
    assert t.text == CLIP_TEXT and recognizer.frame_s == pytest.approx(0.02)
    assert_words_near(t.words, CLIP_TEXT, TOLERANCE_S)
    assert all(0.5 < w.confidence <= 1.0 for w in t.words)
    spikes = recognizer.align(recognizer.logits(normalize_waveform(clip))).words  # not snapped
    for w, (_, start, end) in zip(spikes, tone_word_spans(CLIP_TEXT)):
        assert start - TOLERANCE_S <= w.start_s < w.end_s <= end + TOLERANCE_S, (w, start, end)


def test_snapping_reaches_the_ends_of_the_sound_but_not_a_neighbour() -> None:
    sr = 1000
    wave = np.zeros(2 * sr, dtype=np.float32)
    wave[200:480] = wave[510:600] = 0.5  # one word with a 30 ms closure inside
    wave[700:1000] = 0.5
    wave[1000:1900] = 0.5  # two words with no pause between them
    words = [WordSpan("a", 0.30, 0.32, 1.0), WordSpan("b", 0.80, 0.82, 1.0),
             WordSpan("c", 1.20, 1.22, 1.0), WordSpan("d", 1.70, 1.72, 1.0)]
    a, b, c, d = snap_to_speech(words, wave, sr, max_shift_s=0.3)
    assert (a.start_s, a.end_s) == pytest.approx((0.2, 0.6))
    assert (b.start_s, b.end_s) == pytest.approx((0.7, 1.12))  # stops 0.3 s out
    assert b.end_s <= c.start_s and c.end_s <= d.start_s  # never past a neighbour
    assert d.end_s == pytest.approx(1.9) and c.start_s == pytest.approx(1.12)
    quiet = snap_to_speech(words, np.zeros(2 * sr, dtype=np.float32) + 1e-3, sr, silence_db=3)
    assert quiet == tuple(words)  # nothing louder than the threshold: unchanged


def test_chunked_long_audio_keeps_absolute_times(recognizer: Recognizer) -> None:
    """Windows of 1 s (each 1 frame short of 50: the conv edges) keep their own offsets, so the
    characters of a 3.3 s clip land where one pass over the whole clip puts them."""
    long = np.concatenate([tone_speech(text, seed=i) for i, text in
                           enumerate([CLIP_TEXT, "dc ba", "abc", "bad"])])
    one_pass = recognizer.transcript_of_array(long, "long").chars
    chunked = recognizer.transcript_of_array(long, "long", TranscribeOptions(1.0, 0.3)).chars
    assert [c.text for c in chunked] == [c.text for c in one_pass] and len(one_pass) > 10
    assert chunked[-1].end_s > 3.0
    for c, ref in zip(chunked, one_pass):
        assert abs(c.start_s - ref.start_s) <= FRAME_S and abs(c.end_s - ref.end_s) <= FRAME_S


def test_transcribe_json_srt_vtt(recognizer: Recognizer, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    run = str(tiny_ctc_run())
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone_speech(CLIP_TEXT, seed=11), SR)
    assert main(["transcribe", run, str(clip), "--format", "json", "--char-timestamps",
                 "--quiet"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["text"] == CLIP_TEXT and [w["word"] for w in row["words"]] == CLIP_TEXT.split()
    assert set(row["words"][0]) == {"word", "start", "end", "confidence"}
    assert "".join(c["char"] for c in row["chars"]) == CLIP_TEXT.replace(" ", "")
    assert "labels" not in row  # a CTC-only run

    assert main(["transcribe", run, str(clip), "--format", "srt", "--quiet"]) == 0
    srt = capsys.readouterr().out
    first, times, text = srt.split("\n")[:3]
    assert first == "1" and text == CLIP_TEXT
    start, arrow, end = times.split(" ")
    assert arrow == "-->" and start == clock(row["words"][0]["start"], ",")
    assert end == clock(row["words"][-1]["end"], ",")

    other = tmp_path / "sub" / "clip.wav"  # the same name: written as clip-2.vtt
    other.parent.mkdir()
    sf.write(other, tone_speech("dab", seed=2), SR)
    out = tmp_path / "subs"
    assert main(["transcribe", run, str(clip), str(other), "--format", "vtt", "--output-dir",
                 str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip-2.vtt", "clip.vtt"]
    vtt = (out / "clip.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n") and f"{clock(row['words'][0]['start'], '.')} --> " in vtt
    assert (out / "clip-2.vtt").read_text().split("\n")[3] == "dab"
    capsys.readouterr()
    assert main(["transcribe", run, str(clip), str(other), "--format", "srt", "--quiet"]) == 2
    assert "--output-dir" in capsys.readouterr().err
