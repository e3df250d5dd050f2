"""Fuzzing (hypothesis): junk manifests raise only ManifestError; text normalisation and the
vocabulary never raise unexpected types, and decode(encode(x)) == normalise(x) in vocabulary."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wavtune.data.manifest import ManifestError, read_manifest, read_manifest_skipping
from wavtune.data.text import TextNormalizer
from wavtune.data.vocab import Vocabulary

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=6)
_rows = st.dictionaries(
    st.sampled_from(["id", "audio", "text", "offset", "duration", "speaker", "digit", ""])
    | st.text(max_size=6), _json_values, max_size=6)


def _read_both(path: Path) -> None:
    for read in (read_manifest, lambda p: read_manifest(p, unique_ids=False, allow_outside=False),
                 read_manifest_skipping):
        try:
            read(path)
        except ManifestError:
            pass


@FUZZ
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".csv", ".tsv", ".txt"]))
def test_junk_bytes_raise_only_manifest_errors(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"m{suffix}"
        path.write_bytes(content)
        _read_both(path)


@FUZZ
@given(rows=st.lists(_rows | _json_values, max_size=5),
       junk=st.lists(st.text(max_size=30), max_size=2))
def test_json_rows_of_any_shape_raise_only_manifest_errors(
    rows: list[Any], junk: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.jsonl"
        lines = [json.dumps(r) for r in rows] + [j.replace("\n", " ") for j in junk]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _read_both(path)


@FUZZ
@given(rows=st.lists(st.lists(st.text(max_size=8), min_size=1, max_size=5), max_size=5),
       suffix=st.sampled_from([".csv", ".tsv"]))
def test_delimited_rows_of_any_shape_raise_only_manifest_errors(rows: list[list[str]],
                                                                 suffix: str) -> None:
    sep = "\t" if suffix == ".tsv" else ","
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"m{suffix}"
        path.write_text("\n".join(sep.join(r) for r in [["id", "audio", "text"], *rows]) + "\n",
                        encoding="utf-8")
        _read_both(path)


_normalizers = st.builds(
    TextNormalizer, nfkc=st.booleans(), lowercase=st.booleans(), remove=st.text(max_size=4),
    remove_regex=st.sampled_from(["", r"[,.?!]", r"\(.*?\)"]), allowed=st.text(max_size=6),
    unit=st.sampled_from(["char", "cjk", "phone"]))


@FUZZ
@given(normalizer=_normalizers, text=st.text())
def test_normalisation_returns_clean_text_for_any_input(normalizer: TextNormalizer,
                                                        text: str) -> None:
    out = normalizer(text)
    assert isinstance(out, str)
    assert out == out.strip() and "  " not in out


_LETTERS = "abcdefghijklmnopqrstuvwxyzäöüßéçñ'-àèì你好世界"


@FUZZ
@given(unit=st.sampled_from(["char", "cjk"]), train=st.lists(st.text(_LETTERS + " "), min_size=1),
       data=st.data())
def test_decode_of_encode_is_the_normalised_text_in_vocabulary(unit: str, train: list[str],
                                                               data: st.DataObject) -> None:
    normalizer = TextNormalizer(unit=unit)
    texts = [normalizer(t) for t in train]
    if not "".join(texts).replace(" ", ""):
        return  # nothing to build a vocabulary from (VocabularyError, tested elsewhere)
    vocab = Vocabulary.build(texts, normalizer.unit)
    seen = sorted(set("".join(texts)) | {" "})
    x = data.draw(st.text(st.sampled_from(seen)))
    normal = normalizer(x)
    assert vocab.unknown_units([normal]) == {}
    assert vocab.decode(vocab.encode(normal)) == normal


@FUZZ
@given(train=st.lists(st.lists(st.sampled_from(["aa", "b", "ch", "sh", "iy", "h#"]), min_size=1),
                      min_size=1), data=st.data())
def test_phone_units_round_trip(train: list[list[str]], data: st.DataObject) -> None:
    normalizer = TextNormalizer(unit="phone")
    vocab = Vocabulary.build([normalizer(" ".join(t)) for t in train], "phone")
    phones = sorted({p for t in train for p in t})
    x = " ".join(data.draw(st.lists(st.sampled_from(phones))))
    assert vocab.decode(vocab.encode(normalizer(x))) == normalizer(x)


@FUZZ
@given(texts=st.lists(st.text(), max_size=4), query=st.text(),
       unit=st.sampled_from(["char", "cjk", "phone"]))
def test_vocabulary_never_raises_unexpected_types(texts: list[str], query: str, unit: str) -> None:
    from wavtune.data.vocab import VocabularyError

    try:
        vocab = Vocabulary.build(texts, unit)
    except VocabularyError:
        return
    ids = vocab.encode(query)
    assert all(0 <= i < len(vocab) for i in ids)
    assert isinstance(vocab.decode(ids), str)
