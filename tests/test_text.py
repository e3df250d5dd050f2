"""Transcript normalisation and token units (wavtune.data.text)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wavtune.data.text import TextNormalizer, is_cjk, join_units, mixed_tokens, split_units

# --- TextNormalizer, one step at a time -------------------------------------------------------


def test_nfkc_folds_fullwidth_ligatures_and_circled_digits() -> None:
    assert TextNormalizer()("ＡＢＣ ﬁ ①") == "abc fi 1"


def test_nfkc_off_keeps_compatibility_characters() -> None:
    assert TextNormalizer(nfkc=False)("ﬁ ①") == "ﬁ ①"


def test_lowercase_on_and_off() -> None:
    assert TextNormalizer()("Hello WORLD") == "hello world"
    assert TextNormalizer(lowercase=False)("Hello WORLD") == "Hello WORLD"


def test_remove_deletes_each_listed_character() -> None:
    assert TextNormalizer(remove=',.?!')("Hi, there. Ok?!") == "hi there ok"


def test_remove_applies_after_lowercasing() -> None:
    # 'X' in `remove` does not match the lowered 'x'
    assert TextNormalizer(remove="X")("aXb") == "axb"
    assert TextNormalizer(remove="x")("aXb") == "ab"


def test_remove_regex_deletes_matches() -> None:
    norm = TextNormalizer(remove_regex=r"\[[^\]]*\]")
    assert norm("hello [noise] world [laughter]") == "hello world"


def test_allowed_keeps_only_listed_characters_and_spaces() -> None:
    norm = TextNormalizer(allowed="abc")
    assert norm("a1b2 c-d\te") == "ab c"


def test_allowed_empty_keeps_everything() -> None:
    assert TextNormalizer(allowed="")("a1-b") == "a1-b"


def test_whitespace_is_collapsed_and_stripped() -> None:
    assert TextNormalizer()("  a \t\n b\u00a0\u2003c  ") == "a b c"


def test_only_whitespace_becomes_empty() -> None:
    assert TextNormalizer()(" \t\n ") == ""


def test_literal_word_delimiter_becomes_a_space_for_char_units() -> None:
    # '|' is the word-delimiter token: a literal one would decode as a space, so it is one
    assert TextNormalizer()("a|b") == "a b"
    assert TextNormalizer()("a | | b|") == "a b"
    assert TextNormalizer(unit="cjk")("我|想") == "我想"


def test_literal_bar_is_kept_for_phone_units() -> None:
    assert TextNormalizer(unit="phone")("h# |  sh") == "h# | sh"


def test_cjk_unit_drops_spaces_only_between_cjk_characters() -> None:
    norm = TextNormalizer(unit="cjk")
    assert norm("我 想  喝 coffee 和 tea") == "我想喝 coffee 和 tea"
    assert norm("ラーメン を たべる") == "ラーメンをたべる"
    assert norm("한국 어") == "한국어"
    assert norm("a b") == "a b"


def test_char_unit_keeps_spaces_between_cjk_characters() -> None:
    assert TextNormalizer(unit="char")("我 想") == "我 想"


def test_is_cjk() -> None:
    assert all(is_cjk(c) for c in "我㐀あアか한豈")
    assert not any(is_cjk(c) for c in "aé1 |Ωж")


# --- split_units / join_units -----------------------------------------------------------------


def test_split_char_maps_spaces_to_word_delimiter() -> None:
    assert split_units("ab c", "char") == ["a", "b", "|", "c"]


def test_split_cjk_one_token_per_character() -> None:
    assert split_units("我想 ok", "cjk") == ["我", "想", "|", "o", "k"]


def test_split_phone_on_whitespace() -> None:
    assert split_units("h# sh iy hh ae d", "phone") == ["h#", "sh", "iy", "hh", "ae", "d"]


@pytest.mark.parametrize(
    ("text", "unit"),
    [("hello world", "char"), ("我想喝 coffee", "cjk"), ("h# sh iy hh ae d", "phone"), ("", "char"),
     ("", "phone")],
)
def test_join_inverts_split(text: str, unit: str) -> None:
    assert join_units(split_units(text, unit), unit) == text  # type: ignore[arg-type]


def test_join_strips_edge_delimiters() -> None:
    assert join_units(["|", "a", "|"], "char") == "a"


# --- mixed_tokens -----------------------------------------------------------------------------


def test_mixed_tokens_cjk_characters_are_words() -> None:
    assert mixed_tokens("我想喝coffee and 茶") == ["我", "想", "喝", "coffee", "and", "茶"]


def test_mixed_tokens_latin_only_is_whitespace_split() -> None:
    assert mixed_tokens("  a  bc d ") == ["a", "bc", "d"]


def test_mixed_tokens_latin_between_cjk() -> None:
    assert mixed_tokens("我的iphone坏了") == ["我", "的", "iphone", "坏", "了"]


def test_mixed_tokens_empty() -> None:
    assert mixed_tokens("") == []


# --- properties -------------------------------------------------------------------------------

_normalizers = st.builds(
    TextNormalizer,
    nfkc=st.booleans(),
    lowercase=st.booleans(),
    remove=st.sampled_from(["", ",.?!", "aeiou", "|"]),
    allowed=st.sampled_from(["", "abc ", "我想喝abc|"]),
    unit=st.sampled_from(["char", "phone", "cjk"]),
)
_texts = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("我想喝 abcABC|,.  \t\nﬁ①ＡİΣς")),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(norm=_normalizers, text=_texts)
def test_normaliser_is_idempotent(norm: TextNormalizer, text: str) -> None:
    once = norm(text)
    assert norm(once) == once


@settings(max_examples=100, deadline=None)
@given(norm=_normalizers, text=st.text(max_size=60))
def test_normaliser_never_raises_and_leaves_no_edge_or_double_spaces(
    norm: TextNormalizer, text: str
) -> None:
    out = norm(text)
    assert isinstance(out, str)
    assert out == out.strip()
    assert "  " not in out
    if norm.unit != "phone":
        assert "|" not in out
