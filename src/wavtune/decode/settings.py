"""How a run's CTC output is decoded: which decoder (a name in :mod:`.registry`) and its
parameters (beam width, LM, weights, hotwords). Plain records; no decoder is built here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from wavtune.errors import WavtuneError

DEFAULT_BEAM_WIDTH = 32  # hypotheses kept per frame
DEFAULT_ALPHA = 0.5  # LM weight: natural-log LM scores are multiplied by it
DEFAULT_BETA = 1.0  # word insertion bonus (nats per word; per character for CJK/char LMs)
DEFAULT_HOTWORD_WEIGHT = 3.0  # nats per token of a matched hotword
DEFAULT_BEAM_THRESHOLD = 25.0  # hypotheses this far (nats) below the best are pruned
DEFAULT_TOKEN_BEAM = 12  # tokens tried per frame: the most probable ones (0: all)

LMUnitChoice = Literal["auto", "word", "char"]


class DecodingError(WavtuneError, ValueError):
    """Decoder settings or a language model are unusable; the message says how to fix it."""


@dataclass(frozen=True)
class Hotword:
    """A word or phrase (normalised as transcripts are) whose every matched token earns
    ``weight`` nats; the bonus is taken back if the hypothesis leaves the phrase half-way."""

    text: str
    weight: float = DEFAULT_HOTWORD_WEIGHT

    @classmethod
    def parse(cls, spec: str) -> Hotword:
        """``WORD`` or ``WORD:WEIGHT`` (a phrase may contain spaces)."""
        text, sep, weight = spec.rpartition(":")
        if not sep:
            return cls(spec.strip())
        try:
            return cls(text.strip(), float(weight))
        except ValueError:
            return cls(spec.strip())


@dataclass(frozen=True)
class DecoderSettings:
    """Which decoder and its parameters. ``lm`` is a path to an ARPA or KenLM binary file
    ("" for none); ``lm_unit`` says whether its words are words or the vocabulary's tokens."""

    kind: str = "greedy"  # a name of wavtune.decode.registry.DECODERS
    beam_width: int = DEFAULT_BEAM_WIDTH
    lm: str = ""
    lm_unit: LMUnitChoice = "auto"
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    hotwords: tuple[Hotword, ...] = ()
    beam_threshold: float = DEFAULT_BEAM_THRESHOLD
    token_beam: int = DEFAULT_TOKEN_BEAM

    def __post_init__(self) -> None:
        if self.beam_width < 1:
            raise DecodingError(f"beam width {self.beam_width}: must be 1 or more")
        if self.lm_unit not in ("auto", "word", "char"):
            raise DecodingError(f"LM unit {self.lm_unit!r}: use auto, word or char")

    @property
    def name(self) -> str:
        """A short description for tables: ``greedy``, ``beam 32``, ``beam 32 + word LM``."""
        if self.kind == "greedy":
            return "greedy"
        lm = f" + {self.lm_unit if self.lm_unit != 'auto' else 'n-gram'} LM" if self.lm else ""
        return f"beam {self.beam_width}{lm}"


@dataclass(frozen=True)
class TunedScores:
    """Dev-set scores recorded with tuned settings: greedy against the tuned decoder."""

    manifest: str
    utterances: int
    greedy_wer: float
    greedy_cer: float
    wer: float
    cer: float
    beam_wer: float | None = None  # beam search without the LM, same width
    trials: int = 0


def with_overrides(base: DecoderSettings, decoder: str | None = None, lm: str | None = None,
                   alpha: float | None = None, beta: float | None = None,
                   beam_width: int | None = None, lm_unit: str | None = None,
                   hotwords: Sequence[Hotword] = ()) -> DecoderSettings:
    """``base`` with the given values replaced. ``decoder='greedy'`` forces greedy decoding;
    asking for an LM or hotwords implies beam search."""
    if decoder == "greedy":
        return replace(base, kind="greedy")
    changes: dict[str, Any] = {}
    if lm is not None:
        changes.update(lm=lm, lm_unit="auto")
    for key, value in (("alpha", alpha), ("beta", beta), ("beam_width", beam_width),
                       ("lm_unit", lm_unit)):
        if value is not None:
            changes[key] = value
    if hotwords:
        changes["hotwords"] = tuple(hotwords)
    if decoder == "beam" or lm or hotwords:
        changes["kind"] = "beam"
    return replace(base, **changes)
