"""A synthetic spoken corpus made offline with eSpeak NG, the same bytes for the same seed.

``synthesize_corpus(out, SynthOptions())`` writes 16 kHz mono 16-bit WAVs under ``out/audio/``,
the manifests ``out/{train,dev,test}.jsonl`` and ``out/synth.json`` (options, engine, counts).
Speakers are eSpeak voice variants (``en-us+f2``, ``cmn-latn-pinyin+m3``, ...) with their own rate
and pitch; Mandarin is said from pinyin by ``cmn-latn-pinyin`` and written in Hanzi.

Every random choice comes from a generator seeded by ``(seed, stream, kind, index)``, so a kind's
prompts do not change when other kinds are added, and the speech does not change with the noise.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from wavtune.constants import DEFAULT_SEED, SAMPLE_RATE
from wavtune.data.audio import Waveform, resample
from wavtune.data.manifest import Utterance, write_manifest
from wavtune.data.noise import NOISE_KINDS, NoiseKind, add_noise
from wavtune.errors import WavtuneError
from wavtune.synth.espeak import ENGINE_KINDS, EngineKind, SpeechEngine, SpeechRequest, load_engine
from wavtune.synth.prompts import KINDS, Kind, Prompt, make_prompt

SplitMode = Literal["random", "speaker"]
SPLIT_MODES: tuple[SplitMode, ...] = ("random", "speaker")
SPLITS = ("train", "dev", "test")

ENGLISH_VOICE = "en-us"
MANDARIN_VOICE = "cmn-latn-pinyin"  # reads tone-numbered pinyin; plain "cmn" reads it as English
# eSpeak voice variants present in both eSpeak NG 1.51 (Debian) and 1.52 (espeakng-loader)
VOICE_VARIANTS = (
    "m1",
    "f1",
    "m2",
    "f2",
    "m3",
    "f3",
    "m4",
    "f4",
    "m5",
    "f5",
    "m6",
    "m7",
    "Andy",
    "Annie",
    "Alicia",
    "linda",
)
RATE_RANGE_WPM = (140, 200)  # speaking rates drawn per speaker, words per minute
PITCH_RANGE = (30, 70)  # eSpeak pitch, 0..99
PEAK_RANGE = (0.3, 0.7)  # clip peak after normalisation (linear, full scale = 1)
EDGE_SILENCE_S = (0.05, 0.25)  # silence kept before and after the speech, drawn per clip
PAUSE_S = (0.06, 0.18)  # pause between the language runs of a code-switched clip
BATCH = 64  # utterances synthesised (and held in memory) at a time

# generator streams, mixed into every seed so that the draws of one purpose never shift another's
_SPEAKERS, _PROMPTS, _ASSIGN, _SPLIT, _RENDER, _NOISE = range(6)


class SynthError(WavtuneError, ValueError):
    """Bad synthesis options or output folder; the message says which and how to fix it."""


@dataclass(frozen=True)
class SynthOptions:
    """What to synthesise. The defaults give 300 clips (about 5 s of work on 2 cores)."""

    kinds: tuple[Kind, ...] = KINDS
    per_kind: int = 60  # utterances of each kind
    n_speakers: int = 8  # voice variant x rate x pitch combinations
    seed: int = DEFAULT_SEED
    split: SplitMode = "random"  # "speaker": test speakers use voice variants unseen in train/dev
    dev_fraction: float = 0.1
    test_fraction: float = 0.1  # for split="speaker": the share of voice variants held out
    noise: NoiseKind = "none"
    snr_db: float = 20.0  # speech-to-noise power ratio over the whole clip, when noise is added
    engine: EngineKind = "auto"  # "library" (pip espeakng-loader), "binary" (espeak-ng), or either
    workers: int = 2  # utterances synthesised in parallel (does not change the audio)

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise SynthError(
                f"kinds {list(self.kinds)}: give distinct kinds from {', '.join(KINDS)}"
            )
        for name, value, low in (
            ("per_kind", self.per_kind, 1),
            ("n_speakers", self.n_speakers, 1),
            ("workers", self.workers, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise SynthError(f"{name} is {value!r}; it must be an integer >= {low}")
        if not (0 <= self.dev_fraction < 1 and 0 <= self.test_fraction < 1) or (
            self.dev_fraction + self.test_fraction >= 1
        ):
            raise SynthError(
                f"dev_fraction {self.dev_fraction} and test_fraction {self.test_fraction} must "
                "each "
                f"be in [0, 1) and leave some training data (sum < 1)"
            )
        if self.split not in SPLIT_MODES:
            raise SynthError(f"split {self.split!r}: use one of {', '.join(SPLIT_MODES)}")
        if self.split == "speaker" and (self.n_speakers < 2 or self.test_fraction <= 0):
            raise SynthError(
                "split='speaker' holds out whole voices for test: it needs n_speakers >= 2 and "
                f"test_fraction > 0 (got {self.n_speakers} and {self.test_fraction})"
            )
        if self.noise not in NOISE_KINDS:
            raise SynthError(f"noise {self.noise!r}: use one of {', '.join(NOISE_KINDS)}")
        if not np.isfinite(self.snr_db):
            raise SynthError(f"snr_db is {self.snr_db!r}; give a finite number of decibels")
        if self.engine not in ENGINE_KINDS:
            raise SynthError(f"engine {self.engine!r}: use one of {', '.join(ENGINE_KINDS)}")


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: an eSpeak voice variant said at its own rate and pitch."""

    id: str
    variant: str  # eSpeak variant name, e.g. "f2"
    rate_wpm: int
    pitch: int  # 0..99

    def voice(self, base: str) -> str:
        return f"{base}+{self.variant}"


@dataclass(frozen=True)
class PlannedUtterance:
    """One clip to make: what it says, who says it, which split it goes to, its own seed."""

    id: str
    prompt: Prompt
    speaker: Speaker
    split: str
    seed: int  # mixes into this clip's render and noise generators


@dataclass(frozen=True)
class SynthResult:
    out_dir: Path
    manifests: Mapping[str, Path]  # split -> manifest (splits with no clip are not written)
    counts: Mapping[str, int]  # split -> clips
    duration_s: float  # all clips together
    speakers: tuple[Speaker, ...]
    engine: str  # e.g. "espeak-ng 1.52.0 (library ...)"
    elapsed_s: float = field(default=0.0, compare=False)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def make_speakers(n: int, seed: int) -> tuple[Speaker, ...]:
    """``n`` speakers; variants are all distinct while ``n`` <= len(VOICE_VARIANTS)."""
    rng = _rng(seed, _SPEAKERS)
    order = [VOICE_VARIANTS[int(i)] for i in rng.permutation(len(VOICE_VARIANTS))]
    return tuple(
        Speaker(
            id=f"spk{i:02d}",
            variant=order[i % len(order)],
            rate_wpm=int(rng.integers(RATE_RANGE_WPM[0], RATE_RANGE_WPM[1] + 1)),
            pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
        )
        for i in range(n)
    )


def held_out_speakers(speakers: Sequence[Speaker], test_fraction: float) -> set[str]:
    """Ids of the speakers whose voice variants are kept for test only (split='speaker')."""
    variants = list(dict.fromkeys(s.variant for s in speakers))  # first-use order
    n = min(len(variants) - 1, max(1, round(len(variants) * test_fraction)))
    held = set(variants[len(variants) - n :])
    return {s.id for s in speakers if s.variant in held}


def _split_sizes(count: int, fractions: Sequence[float]) -> list[int]:
    sizes = [round(count * f) for f in fractions]
    return [
        max(1, s) if f > 0 and count >= len(fractions) + 1 else s for s, f in zip(sizes, fractions)
    ]


def plan_corpus(options: SynthOptions) -> list[PlannedUtterance]:
    """Every clip of the corpus, without any audio (a pure function of ``options``)."""
    speakers = make_speakers(options.n_speakers, options.seed)
    held = (
        held_out_speakers(speakers, options.test_fraction) if options.split == "speaker" else set()
    )
    plans: list[PlannedUtterance] = []
    for kind in options.kinds:
        k = KINDS.index(kind)  # global index: a kind's clips do not depend on the other kinds
        prompt_rng, assign_rng = _rng(options.seed, _PROMPTS, k), _rng(options.seed, _ASSIGN, k)
        items = []
        for i in range(options.per_kind):
            prompt = make_prompt(kind, prompt_rng)
            speaker = speakers[int(assign_rng.integers(len(speakers)))]
            items.append((f"{kind}-{i:04d}", prompt, speaker, int(assign_rng.integers(2**31))))
        split_of: dict[str, str] = {}
        if options.split == "speaker":
            for uid, _, speaker, _ in items:
                if speaker.id in held:
                    split_of[uid] = "test"
            rest = [uid for uid, *_ in items if uid not in split_of]
            fractions = [options.dev_fraction / (1 - options.test_fraction)]
            names = ["dev"]
        else:
            rest = [uid for uid, *_ in items]
            fractions, names = [options.dev_fraction, options.test_fraction], ["dev", "test"]
        order = _rng(options.seed, _SPLIT, k).permutation(len(rest))
        start = 0
        for name, size in zip(names, _split_sizes(len(rest), fractions)):
            split_of.update((rest[int(j)], name) for j in order[start : start + size])
            start += size
        plans.extend(
            PlannedUtterance(uid, prompt, speaker, split_of.get(uid, "train"), seed)
            for uid, prompt, speaker, seed in items
        )
    return plans


def _requests(plan: PlannedUtterance) -> list[SpeechRequest]:
    return [
        SpeechRequest(
            text=seg.say,
            voice=plan.speaker.voice(ENGLISH_VOICE if seg.language == "en" else MANDARIN_VOICE),
            rate_wpm=plan.speaker.rate_wpm,
            pitch=plan.speaker.pitch,
            seed=(plan.seed + i) % 2**31,
        )
        for i, seg in enumerate(plan.prompt.segments)
    ]


def voice_label(plan: PlannedUtterance) -> str:
    """The voices a clip was said in, e.g. ``cmn-latn-pinyin+f2,en-us+f2`` for code-switching."""
    return ",".join(dict.fromkeys(r.voice for r in _requests(plan)))


def _trim(wave: Waveform, threshold: float = 0.01) -> Waveform:
    """Cut leading and trailing near-silence (below ``threshold`` x peak)."""
    loud = np.flatnonzero(np.abs(wave) > threshold * float(np.abs(wave).max(initial=0.0)))
    return wave[loud[0] : loud[-1] + 1] if loud.size else wave[:0]


def render(
    plan: PlannedUtterance, parts: Sequence[np.ndarray], engine_rate: int, options: SynthOptions
) -> Waveform:
    """The clip at SAMPLE_RATE from the engine's int16 ``parts``: trimmed, joined with short
    pauses, peak-normalised, padded with silence, with noise when asked."""
    rng = _rng(options.seed, _RENDER, KINDS.index(plan.prompt.kind), plan.seed)
    pieces: list[Waveform] = []
    for i, part in enumerate(parts):
        if i:
            pause = int(rng.uniform(*PAUSE_S) * engine_rate)
            pieces.append(np.zeros(pause, dtype=np.float32))
        pieces.append(_trim(np.asarray(part, dtype=np.float32) / 32768.0))
    speech = resample(np.concatenate(pieces), engine_rate, SAMPLE_RATE)
    peak = float(np.abs(speech).max(initial=0.0))
    if peak == 0.0:
        raise SynthError(
            f"eSpeak NG produced silence for {plan.id} ({plan.prompt.text!r} in voice "
            f"{voice_label(plan)}); check that the voice exists: espeak-ng --voices"
        )
    speech = speech * np.float32(rng.uniform(*PEAK_RANGE) / peak)
    lead, tail = (int(rng.uniform(*EDGE_SILENCE_S) * SAMPLE_RATE) for _ in range(2))
    clip = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
    noise_rng = _rng(options.seed, _NOISE, KINDS.index(plan.prompt.kind), plan.seed)
    return add_noise(clip.astype(np.float32), options.noise, options.snr_db, noise_rng)


def _prepare_out(out: Path, overwrite: bool) -> None:
    made = [
        p
        for p in (out / "audio", out / "synth.json", *(out / f"{s}.jsonl" for s in SPLITS))
        if p.exists()
    ]
    if made and not overwrite:
        raise SynthError(
            f"{out} already holds a corpus ({', '.join(p.name for p in made)}); choose an empty "
            f"folder or pass overwrite=True (wavtune synth --overwrite) to replace it"
        )
    for path in made:
        if path.is_dir():
            for wav in path.glob("*.wav"):
                wav.unlink()
        else:
            path.unlink()
    (out / "audio").mkdir(parents=True, exist_ok=True)


def _write_clip(out: Path, plan: PlannedUtterance, clip: Waveform) -> Utterance:
    """Write one rendered clip as 16-bit WAV under ``out/audio`` and return its manifest row."""
    path = out / "audio" / f"{plan.id}.wav"
    sf.write(str(path), clip, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    labels = {"language": plan.prompt.language, "kind": plan.prompt.kind,
              "voice": voice_label(plan), **plan.prompt.labels}
    return Utterance(id=plan.id, audio=path.resolve(), text=plan.prompt.text,
                     duration_s=clip.size / SAMPLE_RATE, speaker=plan.speaker.id, labels=labels)


def synthesize_corpus(
    out: str | Path,
    options: SynthOptions = SynthOptions(),
    *,
    engine: SpeechEngine | None = None,
    overwrite: bool = False,
) -> SynthResult:
    """Synthesise the corpus ``options`` describes into ``out`` (see the module docstring).

    ``engine`` defaults to ``load_engine(options.engine)``, which raises EspeakNotFoundError with
    the install command when eSpeak NG is missing.
    """
    started = time.perf_counter()
    out = Path(out)
    plans = plan_corpus(options)
    engine = engine or load_engine(options.engine)
    _prepare_out(out, overwrite)
    rows: dict[str, list[Utterance]] = {name: [] for name in SPLITS}
    for start in range(0, len(plans), BATCH):
        batch = plans[start : start + BATCH]
        requests = [_requests(p) for p in batch]
        waves = engine.speak_many([r for rs in requests for r in rs], workers=options.workers)
        at = 0
        for plan, reqs in zip(batch, requests):
            clip = render(plan, waves[at : at + len(reqs)], engine.sample_rate, options)
            at += len(reqs)
            rows[plan.split].append(_write_clip(out, plan, clip))
    manifests = {s: write_manifest(u, out / f"{s}.jsonl") for s, u in rows.items() if u}
    counts = {s: len(u) for s, u in rows.items()}
    speakers = make_speakers(options.n_speakers, options.seed)
    summary = {
        "options": {k: v for k, v in asdict(options).items() if k != "workers"},  # not in the bytes
        "engine": engine.description.split(" (")[0],
        "counts": counts,
        "speakers": [asdict(s) for s in speakers],
    }
    (out / "synth.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return SynthResult(
        out_dir=out,
        manifests=manifests,
        counts=counts,
        duration_s=sum(u.duration_s or 0.0 for us in rows.values() for u in us),
        speakers=speakers,
        engine=engine.description,
        elapsed_s=time.perf_counter() - started,
    )
