"""The decoder registry: every name a user can pick (``--decoder``, ``decoding.json``'s ``kind``)
and the factory that builds it, like ``corpora/registry.py``. An n-gram LM and hotwords are
options of the beam decoder (:class:`~wavtune.decode.settings.DecoderSettings`), not decoders.

Adding a decoder: implement :class:`~wavtune.decode.base.CTCDecoder` in a module of this package
and add an entry to :data:`DECODERS`; the CLI's ``--decoder`` choices follow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wavtune.data.vocab import Vocabulary
from wavtune.decode.base import CTCDecoder
from wavtune.decode.beam import BeamDecoder
from wavtune.decode.greedy import GreedyDecoder
from wavtune.decode.settings import DecoderSettings, DecodingError

# vocabulary, settings, the word list of a KenLM binary word LM (or None) -> a decoder
DecoderFactory = Callable[[Vocabulary, DecoderSettings, "Sequence[str] | None"], CTCDecoder]


@dataclass(frozen=True)
class DecoderEntry:
    """One decoder a user can choose by name."""

    name: str
    summary: str  # one line for --help
    build: DecoderFactory


def _greedy(vocab: Vocabulary, settings: DecoderSettings,
            lm_words: Sequence[str] | None) -> CTCDecoder:
    return GreedyDecoder(vocab)


def _beam(vocab: Vocabulary, settings: DecoderSettings,
          lm_words: Sequence[str] | None) -> CTCDecoder:
    return BeamDecoder(vocab, settings, lm_words)  # loads flashlight-text (and the LM) here


DECODERS: dict[str, DecoderEntry] = {
    "greedy": DecoderEntry("greedy", "best path: the top token per frame (no LM)", _greedy),
    "beam": DecoderEntry("beam", "CTC beam search, optionally with an n-gram LM and hotwords",
                         _beam),
}


def decoder_names() -> tuple[str, ...]:
    return tuple(DECODERS)


def decoder_entry(kind: str, where: str = "decoder") -> DecoderEntry:
    """The registry entry named ``kind``; ``where`` names the setting in the error."""
    entry = DECODERS.get(kind)
    if entry is None:
        raise DecodingError(f"{where} {kind!r}: unknown; use {' or '.join(DECODERS)}")
    return entry


def make_decoder(vocab: Vocabulary, settings: DecoderSettings,
                 lm_words: Sequence[str] | None = None) -> CTCDecoder:
    """The decoder ``settings`` describe (``lm_words``: the word list for a KenLM binary word
    LM)."""
    return decoder_entry(settings.kind).build(vocab, settings, lm_words)
