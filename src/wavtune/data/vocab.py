"""CTC vocabularies: built from training text, saved as standard transformers tokenizer files.

Id 0 is the pad token, which transformers' CTC models use as the blank.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wavtune.constants import PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER
from wavtune.data.text import UNITS, Unit, join_units, split_units
from wavtune.errors import WavtuneError

VOCAB_FILE = "vocab.json"
UNIT_FILE = "wavtune_vocab.json"  # which unit the vocabulary was built for (wavtune's own record)


class VocabularyError(WavtuneError, ValueError):
    """A vocabulary cannot be built or loaded; the message says why and how to fix it."""


@dataclass(frozen=True)
class Vocabulary:
    """An ordered token list; a token's index is its id."""

    tokens: tuple[str, ...]
    unit: Unit = "char"
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.tokens)) != len(self.tokens):
            raise VocabularyError("vocabulary has duplicate tokens")
        if self.tokens[:2] != (PAD_TOKEN, UNK_TOKEN):
            raise VocabularyError(f"vocabulary must start with {PAD_TOKEN}, {UNK_TOKEN}")
        if self.unit not in UNITS:
            raise VocabularyError(f"unknown unit {self.unit!r}; use one of {', '.join(UNITS)}")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    @classmethod
    def build(cls, texts: Iterable[str], unit: Unit = "char") -> Vocabulary:
        """Collect every unit of the (already normalised) training ``texts``, sorted."""
        seen: set[str] = set()
        for text in texts:
            seen.update(split_units(text, unit))
        seen.discard(PAD_TOKEN)
        seen.discard(UNK_TOKEN)
        if not (seen - {WORD_DELIMITER} if unit != "phone" else seen):  # spaces alone are no text
            raise VocabularyError(
                "the training transcripts are empty after normalisation, so there is nothing to "
                "build a vocabulary from; check data.text_column and the text normalisation "
                "settings"
            )
        if unit != "phone":
            seen.add(WORD_DELIMITER)
        ordered = sorted(seen - {WORD_DELIMITER})
        if WORD_DELIMITER in seen:
            ordered.insert(0, WORD_DELIMITER)
        return cls((PAD_TOKEN, UNK_TOKEN, *ordered), unit)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def encode(self, text: str) -> list[int]:
        """Ids of the units of normalised ``text``; units outside the vocabulary map to unk."""
        return [self._index.get(u, self.unk_id) for u in split_units(text, self.unit)]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (already CTC-collapsed); pad ids are skipped."""
        units = [self.tokens[i] for i in ids if i != self.pad_id]
        return join_units(units, self.unit)

    def unknown_units(self, texts: Iterable[str]) -> Counter[str]:
        """Count units of ``texts`` that are not in the vocabulary (they would become unk)."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(u for u in split_units(text, self.unit) if u not in self._index)
        return counts

    # --- files -------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write ``vocab.json`` and transformers tokenizer files into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / VOCAB_FILE).write_text(
            json.dumps({t: i for i, t in enumerate(self.tokens)}, ensure_ascii=False, indent=1),
            encoding="utf-8",
        )
        (directory / UNIT_FILE).write_text(json.dumps({"unit": self.unit}), encoding="utf-8")
        self.hf_tokenizer(directory / VOCAB_FILE).save_pretrained(str(directory))

    def hf_tokenizer(self, vocab_file: str | Path) -> Any:
        """The transformers tokenizer equivalent to this vocabulary (no ``<s>``/``</s>`` tokens)."""
        from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2PhonemeCTCTokenizer

        common: dict[str, Any] = {"unk_token": UNK_TOKEN, "pad_token": PAD_TOKEN,
                                  "bos_token": None, "eos_token": None}
        if self.unit == "phone":
            return Wav2Vec2PhonemeCTCTokenizer(
                str(vocab_file), do_phonemize=False, phone_delimiter_token=" ",
                word_delimiter_token=None, **common,
            )
        return Wav2Vec2CTCTokenizer(str(vocab_file), word_delimiter_token=WORD_DELIMITER, **common)

    @classmethod
    def load(cls, directory: str | Path) -> Vocabulary:
        """Read a vocabulary saved by :meth:`save` (or any ``vocab.json`` with pad/unk first)."""
        directory = Path(directory)
        path = directory / VOCAB_FILE
        if not path.is_file():
            raise VocabularyError(f"{path}: not found; is {directory} a wavtune run directory?")
        mapping = json.loads(path.read_text(encoding="utf-8"))
        tokens = tuple(sorted(mapping, key=mapping.__getitem__))
        unit: Unit = "char"
        if (directory / UNIT_FILE).is_file():
            unit = json.loads((directory / UNIT_FILE).read_text(encoding="utf-8"))["unit"]
        return cls(tokens, unit)
