"""How a run's CTC output is decoded: greedy, or beam search with an n-gram LM and hotwords.

``RUN/decoding.json`` (written by ``wavtune lm tune``) holds the tuned settings; ``transcribe``
and ``evaluate`` use them unless told otherwise. This module reads and writes that file and
makes decoders; it imports no decoder library (the beam decoder loads flashlight-text lazily).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from wavtune.decoding import CTCDecoder, GreedyDecoder
from wavtune.vocab import Vocabulary

DECODING_FILE = "decoding.json"
DEFAULT_BEAM_WIDTH = 32  # hypotheses kept per frame
DEFAULT_ALPHA = 0.5  # LM weight: natural-log LM scores are multiplied by it
DEFAULT_BETA = 1.0  # word insertion bonus (nats per word; per character for CJK/char LMs)
DEFAULT_HOTWORD_WEIGHT = 3.0  # nats per token of a matched hotword
DEFAULT_BEAM_THRESHOLD = 25.0  # hypotheses this far (nats) below the best are pruned
DEFAULT_TOKEN_BEAM = 12  # tokens tried per frame: the most probable ones (0: all)

DecoderKind = Literal["greedy", "beam"]
LMUnitChoice = Literal["auto", "word", "char"]


class DecodingError(ValueError):
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

    kind: DecoderKind = "greedy"
    beam_width: int = DEFAULT_BEAM_WIDTH
    lm: str = ""
    lm_unit: LMUnitChoice = "auto"
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    hotwords: tuple[Hotword, ...] = ()
    beam_threshold: float = DEFAULT_BEAM_THRESHOLD
    token_beam: int = DEFAULT_TOKEN_BEAM

    def __post_init__(self) -> None:
        if self.kind not in ("greedy", "beam"):
            raise DecodingError(f"decoder {self.kind!r}: use greedy or beam")
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


def make_decoder(vocab: Vocabulary, settings: DecoderSettings,
                 lm_words: Sequence[str] | None = None) -> CTCDecoder:
    """The decoder ``settings`` describe (``lm_words``: the word list for a KenLM binary word LM)."""
    if settings.kind == "greedy":
        return GreedyDecoder(vocab)
    from wavtune.beam import BeamDecoder

    return BeamDecoder(vocab, settings, lm_words)


def save_decoding(run_dir: str | Path, settings: DecoderSettings,
                  scores: TunedScores | None = None) -> Path:
    """Write ``RUN/decoding.json``; an LM inside the run is stored relative to it."""
    run_dir = Path(run_dir)
    record: dict[str, Any] = asdict(settings)
    record["hotwords"] = [asdict(h) for h in settings.hotwords]
    if settings.lm:
        lm = Path(settings.lm).resolve()
        try:
            record["lm"] = str(lm.relative_to(run_dir.resolve()))
        except ValueError:
            record["lm"] = str(lm)
    if scores is not None:
        record["dev"] = asdict(scores)
    path = run_dir / DECODING_FILE
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_decoding(run_dir: str | Path) -> dict[str, Any] | None:
    """The raw ``RUN/decoding.json`` record, or None when the run has none."""
    path = Path(run_dir) / DECODING_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DecodingError(f"{path}: not valid JSON ({e}); delete it or rerun 'wavtune lm tune'"
                            ) from None
    if not isinstance(record, dict):
        raise DecodingError(f"{path}: expected a JSON object; rerun 'wavtune lm tune'")
    return record


def load_decoding(run_dir: str | Path) -> DecoderSettings | None:
    """The settings stored with a run (LM path resolved against the run), or None."""
    record = read_decoding(run_dir)
    if record is None:
        return None
    known = {f for f in DecoderSettings.__dataclass_fields__}
    values = {k: v for k, v in record.items() if k in known}
    values["hotwords"] = tuple(Hotword(**h) for h in values.get("hotwords", ()))
    lm = str(values.get("lm") or "")
    if lm and not Path(lm).is_absolute():
        values["lm"] = str(Path(run_dir) / lm)
    try:
        return DecoderSettings(**values)
    except TypeError as e:
        raise DecodingError(f"{Path(run_dir) / DECODING_FILE}: {e}; rerun 'wavtune lm tune'"
                            ) from None


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
