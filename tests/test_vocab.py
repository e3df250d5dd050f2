"""CTC vocabularies and their transformers tokenizer files (wavtune.data.vocab)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wavtune.constants import PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER
from wavtune.data.text import TextNormalizer
from wavtune.data.vocab import UNIT_FILE, VOCAB_FILE, Vocabulary, VocabularyError

TIMIT = ["h# sh iy hh ae d h#", "h# d ae sh h#"]
CODE_SWITCH = ["我想喝 coffee", "我 要 tea"]


# --- building ---------------------------------------------------------------------------------


def test_build_from_chars_pad_unk_delimiter_then_sorted() -> None:
    vocab = Vocabulary.build(["cab", "ba d"])
    assert vocab.tokens == (PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER, "a", "b", "c", "d")
    assert (vocab.pad_id, vocab.unk_id) == (0, 1)
    assert len(vocab) == 7


def test_char_vocab_has_word_delimiter_even_without_spaces() -> None:
    assert WORD_DELIMITER in Vocabulary.build(["abc"]).tokens


def test_build_from_phones_has_no_word_delimiter() -> None:
    vocab = Vocabulary.build(TIMIT, unit="phone")
    assert vocab.tokens == (PAD_TOKEN, UNK_TOKEN, "ae", "d", "h#", "hh", "iy", "sh")
    assert vocab.encode("h# sh iy") == [4, 7, 6]


def test_build_from_code_switching_cjk_and_latin() -> None:
    norm = TextNormalizer(unit="cjk")
    vocab = Vocabulary.build([norm(t) for t in CODE_SWITCH], unit="cjk")
    assert set(vocab.tokens) == {PAD_TOKEN, UNK_TOKEN, "|", *"我想喝要coffeta"}
    assert vocab.tokens[:3] == (PAD_TOKEN, UNK_TOKEN, "|")
    ids = vocab.encode(norm("我想喝 coffee"))
    assert vocab.tokens[ids[3]] == "|"
    assert vocab.decode(ids) == "我想喝 coffee"


def test_build_never_duplicates_special_tokens() -> None:
    vocab = Vocabulary.build(["[PAD] a [UNK]"], unit="phone")
    assert vocab.tokens == (PAD_TOKEN, UNK_TOKEN, "a")


@pytest.mark.parametrize("texts", [[], [""], ["", "   "]])
def test_build_on_empty_training_text_raises(texts: list[str]) -> None:
    with pytest.raises(VocabularyError, match="empty after normalisation"):
        Vocabulary.build(texts)


def test_build_is_independent_of_text_order() -> None:
    assert Vocabulary.build(["ab", "cd"]) == Vocabulary.build(["cd", "ab"])


@pytest.mark.parametrize(
    ("tokens", "unit", "match"),
    [
        ((PAD_TOKEN, UNK_TOKEN, "a", "a"), "char", "duplicate"),
        ((UNK_TOKEN, PAD_TOKEN, "a"), "char", "must start with"),
        (("a", "b"), "char", "must start with"),
        ((PAD_TOKEN, UNK_TOKEN, "a"), "word", "unknown unit"),
    ],
)
def test_invalid_token_lists_are_rejected(tokens: tuple[str, ...], unit: str, match: str) -> None:
    with pytest.raises(VocabularyError, match=match):
        Vocabulary(tokens, unit)  # type: ignore[arg-type]


# --- only the training text decides -----------------------------------------------------------


def test_units_outside_the_training_text_map_to_unk() -> None:
    vocab = Vocabulary.build(["abc"])
    assert vocab.encode("abz") == [vocab.tokens.index("a"), vocab.tokens.index("b"), vocab.unk_id]
    assert vocab.decode(vocab.encode("abz")) == f"ab{UNK_TOKEN}"


def test_unknown_units_counts_units_missing_from_the_vocabulary() -> None:
    vocab = Vocabulary.build(["abc"])
    assert vocab.unknown_units(["abd", "zz z", "cab"]) == Counter({"z": 3, "d": 1})
    assert vocab.unknown_units(["abc c"]) == Counter()


def test_unknown_units_for_phones() -> None:
    vocab = Vocabulary.build(TIMIT, unit="phone")
    assert vocab.unknown_units(["h# q sh q dx"]) == Counter({"q": 2, "dx": 1})


def test_decode_skips_pad_ids() -> None:
    vocab = Vocabulary.build(["ab"])
    a, b = vocab.encode("ab")
    assert vocab.decode([0, a, 0, 0, b, 0]) == "ab"


# --- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "unit"), [(["ab c", "bad"], "char"), (TIMIT, "phone"), (["我想喝 coffee"], "cjk")]
)
def test_save_load_round_trip(tmp_path: Path, texts: list[str], unit: str) -> None:
    vocab = Vocabulary.build(texts, unit)  # type: ignore[arg-type]
    vocab.save(tmp_path / "tok")
    loaded = Vocabulary.load(tmp_path / "tok")
    assert loaded == vocab
    assert loaded.unit == unit
    assert json.loads((tmp_path / "tok" / VOCAB_FILE).read_text("utf-8")) == {
        t: i for i, t in enumerate(vocab.tokens)
    }


def test_load_without_unit_file_defaults_to_char(tmp_path: Path) -> None:
    Vocabulary.build(["ab"]).save(tmp_path)
    (tmp_path / UNIT_FILE).unlink()
    assert Vocabulary.load(tmp_path).unit == "char"


def test_load_missing_folder_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match="vocab.json: not found"):
        Vocabulary.load(tmp_path / "nowhere")


CASES = [
    (
        ["hello world", "a bad cab"],
        "char",
        "Wav2Vec2CTCTokenizer",
        ["hello bad", "cab", "dcba xyz"],
    ),
    (TIMIT, "phone", "Wav2Vec2PhonemeCTCTokenizer", ["h# sh iy d h#", "ae q d"]),
    (CODE_SWITCH, "cjk", "Wav2Vec2CTCTokenizer", ["我想喝 coffee", "我要 tea", "你 要 tea"]),
]


@pytest.fixture(scope="module")
def saved_tokenizers(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Vocabulary, object]]:
    from transformers import AutoTokenizer

    out = {}
    for texts, unit, _, _ in CASES:
        folder = tmp_path_factory.mktemp(unit)
        norm = TextNormalizer(unit=unit)  # type: ignore[arg-type]
        vocab = Vocabulary.build([norm(t) for t in texts], unit)  # type: ignore[arg-type]
        vocab.save(folder)
        out[unit] = (vocab, AutoTokenizer.from_pretrained(str(folder)), folder)
    return out


@pytest.mark.parametrize(("texts", "unit", "cls", "probes"), CASES)
def test_saved_folder_loads_as_transformers_ctc_tokenizer(
    saved_tokenizers: dict, texts: list[str], unit: str, cls: str, probes: list[str]
) -> None:
    vocab, tok, folder = saved_tokenizers[unit]
    assert type(tok).__name__ == cls
    assert tok.get_vocab() == {t: i for i, t in enumerate(vocab.tokens)}
    assert (tok.pad_token, tok.unk_token) == (PAD_TOKEN, UNK_TOKEN)
    assert (tok.pad_token_id, tok.unk_token_id) == (0, 1)
    # no sentence boundary tokens anywhere: CTC models would learn to emit them
    added = {t.content for t in tok.added_tokens_decoder.values()}
    assert tok.bos_token is None and tok.eos_token is None
    assert not {"<s>", "</s>"} & (set(tok.get_vocab()) | added | set(tok.all_special_tokens))
    for path in folder.iterdir():
        assert "<s>" not in path.read_text("utf-8"), path.name
    assert len(tok) == len(vocab)


@pytest.mark.parametrize(("texts", "unit", "cls", "probes"), CASES)
def test_transformers_tokenizer_agrees_with_vocabulary(
    saved_tokenizers: dict, texts: list[str], unit: str, cls: str, probes: list[str]
) -> None:
    vocab, tok, _ = saved_tokenizers[unit]
    norm = TextNormalizer(unit=unit)  # type: ignore[arg-type]
    for text in [*texts, *probes]:
        text = norm(text)
        ids = vocab.encode(text)
        assert tok(text).input_ids == ids, text
        assert tok.decode(ids, group_tokens=False) == vocab.decode(ids), text


# --- property: encode/decode round trip -------------------------------------------------------

_VOCABS = {
    "char": Vocabulary.build(["the quick brown fox", "jumps over"], "char"),
    "cjk": Vocabulary.build([TextNormalizer(unit="cjk")(t) for t in CODE_SWITCH], "cjk"),
    "phone": Vocabulary.build(TIMIT, "phone"),
}


@st.composite
def _in_vocab_text(draw: st.DrawFn) -> tuple[Vocabulary, str]:
    vocab = _VOCABS[draw(st.sampled_from(sorted(_VOCABS)))]
    units = [t for t in vocab.tokens[2:] if t != WORD_DELIMITER]
    pieces = draw(st.lists(st.sampled_from([*units, " ", "  ", "\t"]), max_size=30))
    joiner = " " if vocab.unit == "phone" else ""
    return vocab, joiner.join(pieces)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_in_vocab_text())
def test_decode_encode_round_trips_normalised_in_vocabulary_text(
    case: tuple[Vocabulary, str],
) -> None:
    vocab, text = case
    normalised = TextNormalizer(unit=vocab.unit)(text)
    ids = vocab.encode(normalised)
    assert vocab.unk_id not in ids and vocab.pad_id not in ids
    assert vocab.decode(ids) == normalised


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_transformers_tokenizer_agrees_on_random_in_vocabulary_text(
    saved_tokenizers: dict, data: st.DataObject
) -> None:
    vocab, tok, _ = saved_tokenizers[data.draw(st.sampled_from(["char", "cjk", "phone"]))]
    units = [t for t in vocab.tokens[2:] if t != WORD_DELIMITER]
    pieces = data.draw(st.lists(st.sampled_from([*units, " "]), min_size=1, max_size=20))
    text = TextNormalizer(unit=vocab.unit)((" " if vocab.unit == "phone" else "").join(pieces))
    ids = vocab.encode(text)
    assert tok(text).input_ids == ids
    assert tok.decode(ids, group_tokens=False) == vocab.decode(ids) == text
