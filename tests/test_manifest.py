"""Manifests: JSONL/CSV/TSV reading, validation and writing (wavtune.data.manifest)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wavtune.data.manifest import (
    ManifestError,
    Utterance,
    read_manifest,
    with_durations,
    write_manifest,
)


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def _wav(path: Path, seconds: float, sample_rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * sample_rate), dtype=np.float32), sample_rate)
    return path


# --- reading ----------------------------------------------------------------------------------


def test_jsonl_rows_become_utterances(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [
        {"id": "a", "audio": "a.wav", "text": "hello", "speaker": "s1"},
        {"id": "b", "audio": "b.wav"},
    ])
    a, b = read_manifest(path)
    assert a == Utterance("a", (tmp_path / "a.wav").resolve(), "hello", 0.0, None, "s1", {})
    assert (b.text, b.speaker, b.duration_s, b.offset_s) == (None, None, None, 0.0)


def test_blank_jsonl_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(
        '\n{"id": "a", "audio": "a.wav"}\n   \n{"id": "b", "audio": "b.wav"}\n', "utf-8"
    )
    assert [u.id for u in read_manifest(path)] == ["a", "b"]


@pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t")])
def test_csv_and_tsv(tmp_path: Path, suffix: str, sep: str) -> None:
    path = tmp_path / f"m{suffix}"
    lines = ["id,audio,text,duration,digit", "a,clips/a.wav,hello there,1.5,7", "b,b.wav,,,"]
    path.write_text("\n".join(line.replace(",", sep) for line in lines) + "\n", "utf-8")
    a, b = read_manifest(path)
    assert a.audio == (tmp_path / "clips" / "a.wav").resolve()
    assert (a.text, a.duration_s, a.labels) == ("hello there", 1.5, {"digit": "7"})
    # empty cells are absent values, not empty strings or zero
    assert (b.text, b.duration_s, b.labels) == ("", None, {})


def test_quoted_csv_cell_may_hold_the_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text('id,audio,text\na,a.wav,"hello, world"\n', "utf-8")
    assert read_manifest(path)[0].text == "hello, world"


def test_relative_audio_is_resolved_against_the_manifest_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _jsonl(tmp_path / "lists" / "m.jsonl", [
        {"id": "a", "audio": "../wav/a.wav"},
        {"id": "b", "audio": str(tmp_path / "abs" / "b.wav")},
    ])
    a, b = read_manifest(Path("lists/m.jsonl"))
    assert a.audio == tmp_path / "wav" / "a.wav"
    assert a.audio.is_absolute()
    assert b.audio == tmp_path / "abs" / "b.wav"


def test_offset_and_duration_are_seconds(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [
        {"id": "a", "audio": "long.wav", "offset": 12.5, "duration": "2.25"},
        {"id": "b", "audio": "long.wav", "offset": 0, "duration": 0},
    ])
    a, b = read_manifest(path)
    assert (a.offset_s, a.duration_s) == (12.5, 2.25)
    assert (b.offset_s, b.duration_s) == (0.0, 0.0)


def test_extra_columns_become_string_labels(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [
        {"id": "a", "audio": "a.wav", "digit": 7, "language": "en", "empty": "", "none": None},
    ])
    utt = read_manifest(path)[0]
    assert utt.labels == {"digit": "7", "language": "en"}
    assert utt.label("digit") == "7"
    assert utt.label("missing") is None


def test_label_reaches_speaker_and_text(tmp_path: Path) -> None:
    utt = Utterance("a", tmp_path / "a.wav", text="hi", speaker="s1", labels={"phones": "h# iy"})
    assert (utt.label("speaker"), utt.label("text"), utt.label("phones")) == ("s1", "hi", "h# iy")


def test_numeric_id_and_speaker_become_strings(tmp_path: Path) -> None:
    utt = read_manifest(_jsonl(tmp_path / "m.jsonl", [{"id": 7, "audio": "a.wav", "speaker": 3}]))[
        0
    ]
    assert (utt.id, utt.speaker) == ("7", "3")


# --- errors name the file, the line and the field ---------------------------------------------


def _error(path: Path) -> str:
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    return str(info.value)


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "audio": "a.wav"}\n{"id": "b", "audio": \n', "utf-8")
    assert _error(path).startswith(f"{path}:2: not valid JSON")


def test_json_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav"}, ["b", "b.wav"]])
    assert re.match(rf"{re.escape(str(path))}:2: a JSON list where a JSON object", _error(path))


@pytest.mark.parametrize("field", ["id", "audio"])
@pytest.mark.parametrize("value", ["missing", "", "  ", None])
def test_missing_required_field(tmp_path: Path, field: str, value: Any) -> None:
    row: dict[str, Any] = {"id": "b", "audio": "b.wav", "text": "x"}
    if value == "missing":
        del row[field]
    else:
        row[field] = value
    path = _jsonl(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav"}, row])
    message = _error(path)
    assert message.startswith(f"{path}:2: required field '{field}' is missing or empty")
    assert "columns found:" in message


def test_missing_audio_column_in_csv_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("id,text\na,hello\n", "utf-8")
    assert _error(path).startswith(f"{path}:2: required field 'audio'")


@pytest.mark.parametrize("field", ["duration", "offset"])
def test_non_numeric_duration_or_offset(tmp_path: Path, field: str) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav", field: "1.5s"}])
    message = _error(path)
    assert message.startswith(f"{path}:1: field '{field}' is '1.5s', not a number of seconds")


@pytest.mark.parametrize("value", [-0.5, "nan", "inf", [1.0], {"s": 1}])
def test_negative_or_non_finite_or_non_scalar_duration(tmp_path: Path, value: Any) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav", "duration": value}])
    assert _error(path).startswith(f"{path}:1: field 'duration'")


def test_huge_integer_duration_is_a_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "audio": "a.wav", "duration": 1' + "0" * 400 + "}\n", "utf-8")
    assert _error(path).startswith(f"{path}:1: field 'duration'")


def test_nul_character_in_audio_is_a_manifest_error(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [{"id": "a", "audio": "a\u0000.wav"}])
    assert _error(path).startswith(f"{path}:1: field 'audio' contains a NUL")


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [
        {"id": "a", "audio": "a.wav"}, {"id": "b", "audio": "b.wav"}, {"id": "a", "audio": "c.wav"},
    ])
    assert _error(path).startswith(f"{path}:3: duplicate id 'a' (first at line 1)")


def test_unique_ids_false_lets_duplicates_through(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav"}, {"id": "a", "audio": "b.wav"}]
    )
    assert [u.audio.name for u in read_manifest(path, unique_ids=False)] == ["a.wav", "b.wav"]


@pytest.mark.parametrize("text", [5, ["hello"], {"en": "hi"}, True])
def test_text_must_be_a_string(tmp_path: Path, text: Any) -> None:
    path = _jsonl(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav", "text": text}])
    assert _error(path).startswith(f"{path}:1: field 'text' is {type(text).__name__}")


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("id audio\n", "utf-8")
    message = _error(path)
    assert message.startswith(f"{path}: unknown manifest format '.txt'")
    assert ".jsonl" in message


def test_missing_file(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.jsonl") == f"{tmp_path / 'nope.jsonl'}: manifest not found; " \
        "check the path in your config or command"


@pytest.mark.parametrize(
    ("name", "content"), [("m.jsonl", ""), ("m.jsonl", "\n \n"), ("m.csv", "id,audio\n")]
)
def test_empty_manifest(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, "utf-8")
    assert _error(path) == f"{path}: the manifest has no rows"


def test_csv_with_too_many_cells_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("id,audio,text\na,a.wav,fine\nb,b.wav,hello, world\n", "utf-8")
    message = _error(path)
    assert message.startswith(f"{path}:3: more cells than the header has columns")
    assert "quote" in message


def test_csv_line_numbers_count_multiline_cells(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text('id,audio,text\na,a.wav,"two\nlines"\nb,,x\n', "utf-8")
    assert _error(path).startswith(f"{path}:4: required field 'audio'")


@pytest.mark.parametrize("name", ["m.jsonl", "m.csv"])
def test_byte_order_mark_is_ignored(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    body = '{"id": "a", "audio": "a.wav"}\n' if name.endswith("jsonl") else "id,audio\na,a.wav\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert read_manifest(path)[0].id == "a"


def test_undecodable_bytes_are_a_manifest_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes("id,audio,text\na,a.wav,caf\xe9\n".encode("latin-1"))
    message = _error(path)
    assert message.startswith(f"{path}:")
    assert "UTF-8" in message


# --- writing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_write_read_round_trip(tmp_path: Path, suffix: str) -> None:
    utts = [
        Utterance(
            "a", tmp_path / "clips" / "a.wav", "hello, world", 1.5, 2.25, "s1", {"digit": "7"}
        ),
        Utterance("b", tmp_path / "b.wav", "我想喝 coffee", 0.0, None, None, {}),
    ]
    path = write_manifest(utts, tmp_path / f"out{suffix}")
    back = read_manifest(path)
    if suffix != ".jsonl":  # CSV has no absent value: the empty cell reads back as empty text
        assert back[1].text == "我想喝 coffee"
    assert back == utts


def test_write_stores_paths_below_the_folder_relative_and_others_absolute(tmp_path: Path) -> None:
    inside = Utterance("a", tmp_path / "data" / "wav" / "a.wav")
    outside = Utterance("b", tmp_path / "elsewhere" / "b.wav")
    path = write_manifest([inside, outside], tmp_path / "data" / "m.jsonl")
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert rows[0]["audio"] == "wav/a.wav"
    assert rows[1]["audio"] == (tmp_path / "elsewhere" / "b.wav").as_posix()
    # moving the folder keeps the relative rows valid
    moved = tmp_path / "moved"
    (tmp_path / "data").rename(moved)
    assert read_manifest(moved / "m.jsonl")[0].audio == moved / "wav" / "a.wav"


def test_write_omits_absent_and_default_fields(tmp_path: Path) -> None:
    path = write_manifest([Utterance("a", tmp_path / "a.wav")], tmp_path / "m.jsonl")
    assert json.loads(path.read_text("utf-8")) == {"id": "a", "audio": "a.wav"}


def test_write_unknown_suffix_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="unknown manifest format"):
        write_manifest([Utterance("a", tmp_path / "a.wav")], tmp_path / "m.xml")
    assert list(tmp_path.iterdir()) == []


# --- durations from headers -------------------------------------------------------------------


def test_with_durations_fills_missing_durations_from_headers(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav", 1.5)
    _wav(tmp_path / "b.wav", 2.0)
    utts = [
        Utterance("a", tmp_path / "a.wav"),
        Utterance("b", tmp_path / "b.wav", offset_s=0.5),
        Utterance("c", tmp_path / "missing.wav", duration_s=3.0),  # known: the file is not opened
        Utterance("d", tmp_path / "a.wav", offset_s=9.0),
    ]
    out = with_durations(utts)
    assert [u.duration_s for u in out] == pytest.approx([1.5, 1.5, 3.0, 0.0])
    assert [u.id for u in out] == ["a", "b", "c", "d"]


# --- property: nothing but ManifestError escapes ----------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**308)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["\x00", "~", "..", "/", "-1", "1e999", "\ufeff"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_keys = st.sampled_from(
    ["id", "audio", "text", "offset", "duration", "speaker", "digit"]
) | st.text(max_size=5)
_rows = st.one_of(st.dictionaries(_keys, _json_values, max_size=7), _json_values)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(_rows, min_size=0, max_size=4), unique=st.booleans())
def test_random_json_rows_raise_nothing_but_manifest_error(
    tmp_path: Path, rows: list[Any], unique: bool
) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    try:
        utts = read_manifest(path, unique_ids=unique)
    except ManifestError:
        return
    for utt in utts:
        assert utt.audio.is_absolute()
        assert isinstance(utt.id, str)
        assert utt.duration_s is None or utt.duration_s >= 0
