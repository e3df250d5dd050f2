"""Transcript normalisation and splitting into token units (pure functions, no model code)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from wavtune.constants import WORD_DELIMITER

Unit = Literal["char", "phone", "cjk"]
UNITS: tuple[Unit, ...] = ("char", "phone", "cjk")

_SPACES = re.compile(r"\s+")


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph (or kana/hangul syllable): one token and one 'word' each."""
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF  # CJK Unified Ideographs
        or 0x3400 <= code <= 0x4DBF  # Extension A
        or 0x20000 <= code <= 0x2EBEF  # Extensions B-F
        or 0xF900 <= code <= 0xFAFF  # Compatibility Ideographs
        or 0x3040 <= code <= 0x30FF  # Hiragana, Katakana
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
    )


_CJK_GAP = re.compile(r"(?<=[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]) +"
                      r"(?=[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af])")


@dataclass(frozen=True)
class TextNormalizer:
    """How transcripts are cleaned before tokenisation and scoring.

    Applied in order: Unicode NFKC, lower-casing, deleting ``remove`` characters (and
    ``remove_regex``
    matches), dropping characters outside ``allowed`` (when given; spaces always kept), collapsing
    whitespace. For ``unit='cjk'`` spaces between two CJK characters are dropped, because Chinese
    and
    Japanese transcripts segment words inconsistently.
    """

    nfkc: bool = True
    lowercase: bool = True
    remove: str = ""  # characters to delete, e.g. ',.?!;:"'
    remove_regex: str = ""  # a regular expression whose matches are deleted
    allowed: str = ""  # when non-empty, the only characters kept (besides spaces)
    unit: Unit = "char"

    def __call__(self, text: str) -> str:
        if self.nfkc:
            text = unicodedata.normalize("NFKC", text)
        if self.lowercase:
            text = text.lower()
        if self.remove:
            text = text.translate({ord(c): None for c in self.remove})
        if self.remove_regex:
            text = re.sub(self.remove_regex, "", text)
        if self.allowed:
            keep = set(self.allowed)
            text = "".join(c for c in text if c in keep or c.isspace())
        if self.nfkc:  # a removal can leave a letter beside a combining mark that NFKC would
            text = unicodedata.normalize("NFKC", text)  # compose: normalise again (idempotent)
        # The word delimiter is a token of its own; a literal '|' in a transcript would be
        # decoded as a space, so it becomes one here.
        if self.unit != "phone":
            text = text.replace(WORD_DELIMITER, " ")
        text = _SPACES.sub(" ", text).strip()
        if self.unit == "cjk":
            text = _CJK_GAP.sub("", text)
        return text


def split_units(text: str, unit: Unit) -> list[str]:
    """Split normalised ``text`` into token units.

    ``char`` and ``cjk``: one token per character, spaces become the word delimiter ``|``.
    ``phone``: whitespace-separated units (e.g. TIMIT phones), no word delimiter.
    """
    if unit == "phone":
        return text.split()
    return [WORD_DELIMITER if c == " " else c for c in text]


def join_units(units: list[str], unit: Unit) -> str:
    """Inverse of :func:`split_units` for normalised text."""
    if unit == "phone":
        return " ".join(units)
    return "".join(" " if u == WORD_DELIMITER else u for u in units).strip()


def mixed_tokens(text: str) -> list[str]:
    """Words for the mixed error rate: each CJK character is a word, other words split on spaces."""
    out: list[str] = []
    for word in text.split():
        current = ""
        for char in word:
            if is_cjk(char):
                if current:
                    out.append(current)
                    current = ""
                out.append(char)
            else:
                current += char
        if current:
            out.append(current)
    return out
