"""Connected-speech rows from isolated clips (``wavtune join``).

A CTC model trained on one word per clip (FSDD, Speech Commands, keyword sets) never hears a word
boundary: it may emit a word's characters anywhere in its clip, so forced alignment of connected
speech puts words on their neighbours' sound. Extra rows made of 2-3 random training clips joined
by short pauses teach it where words start and end (on FSDD, words aligned within 50 ms went from
69% to 90%: README, "Forced alignment"). lhotse can append cuts, but only inside its own cut
model; for a manifest this is a few dozen lines of numpy and soundfile, so it is written here.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from wavtune.data.audio import audio_info, load_audio
from wavtune.data.manifest import ManifestError, Utterance, read_manifest, write_manifest

JOINED_FOLDER = "joined"  # OUT/joined/<id>.wav


@dataclass(frozen=True)
class JoinOptions:
    """How joined rows are drawn. Ranges are inclusive ``(low, high)``; seconds; dBFS."""

    rows: int  # joined rows to write
    clips: tuple[int, int] = (2, 3)  # source clips per joined row, drawn uniformly
    pause_s: tuple[float, float] = (0.05, 0.6)  # pause between two clips
    edge_s: tuple[float, float] = (0.05, 0.3)  # silence before the first and after the last
    # RMS level of the white noise filling pauses and edges: digital silence never occurs in
    # recordings, and a model trained on it would take any noise for speech
    pause_db: float = -70.0
    same_speaker: bool = False  # join only clips of one speaker (natural prosody, fewer rows)
    separator: str = " "  # between the transcripts ("|"-grouped phones: " | ")
    seed: int = 0


@dataclass(frozen=True)
class JoinResult:
    """What ``join_manifest`` wrote."""

    manifest: Path
    source_rows: int  # rows of the source manifest copied first (0 with only_joined)
    joined_rows: int
    joined_audio_s: float


class JoinError(ManifestError):
    """A manifest whose rows cannot be joined, or an output that would overwrite work."""


def _groups(source: Sequence[Utterance], options: JoinOptions) -> list[list[Utterance]]:
    """The pools clips are drawn from: one for all, or one per speaker with enough clips."""
    missing = [u.id for u in source if not (u.text or "").strip()]
    if missing:
        raise JoinError(f"row {missing[0]!r} (and {len(missing) - 1} more) has no transcript: "
                        "joined rows need every clip's text; drop those rows first")
    if not options.same_speaker:
        pools = [list(source)]
    else:
        by_speaker: dict[str | None, list[Utterance]] = defaultdict(list)
        for utt in source:
            by_speaker[utt.speaker].append(utt)
        pools = [rows for speaker, rows in sorted(by_speaker.items(), key=lambda kv: str(kv[0]))
                 if speaker is not None]
    pools = [p for p in pools if len(p) >= options.clips[0]]
    if not pools:
        where = "of one speaker (--same-speaker; rows need a speaker column)" \
            if options.same_speaker else "in the manifest"
        raise JoinError(f"fewer than {options.clips[0]} clips {where}: nothing to join")
    return pools


def _shared_columns(parts: Sequence[Utterance]) -> tuple[str | None, dict[str, str]]:
    """Speaker and label columns on which every joined clip agrees (a digit label of one clip
    says nothing of the joined row, its speaker or language may)."""
    speakers = {u.speaker for u in parts}
    keys = set.intersection(*(set(u.labels) for u in parts))
    labels = {k: parts[0].labels[k] for k in sorted(keys)
              if len({u.labels[k] for u in parts}) == 1}
    return (parts[0].speaker if len(speakers) == 1 else None), labels


def _filler(rng: random.Random, noise: np.random.Generator, bounds: tuple[float, float],
            sample_rate: int, level: float) -> np.ndarray:
    n = int(round(rng.uniform(*bounds) * sample_rate))
    return (level * noise.standard_normal(n)).astype(np.float32)


def join_clips(parts: Sequence[Utterance], rng: random.Random, options: JoinOptions,
               sample_rate: int) -> np.ndarray:
    """``parts`` decoded at ``sample_rate`` and joined by noise-filled pauses: [samples]."""
    noise = np.random.default_rng(rng.randrange(2**32))
    level = float(10 ** (options.pause_db / 20))
    pieces = [_filler(rng, noise, options.edge_s, sample_rate, level)]
    for k, utt in enumerate(parts):
        if k:
            pieces.append(_filler(rng, noise, options.pause_s, sample_rate, level))
        pieces.append(load_audio(utt.audio, sample_rate, utt.offset_s, utt.duration_s))
    pieces.append(_filler(rng, noise, options.edge_s, sample_rate, level))
    return np.concatenate(pieces)


def join_rows(source: Sequence[Utterance], folder: Path, options: JoinOptions,
              progress: bool = True) -> list[Utterance]:
    """Write ``options.rows`` joined clips under ``folder`` (WAV at the first source clip's
    rate) and return their rows; deterministic by ``options.seed``."""
    pools = _groups(source, options)
    rng = random.Random(options.seed)
    sample_rate = audio_info(source[0].audio).sample_rate
    folder.mkdir(parents=True, exist_ok=True)
    width = len(str(max(options.rows - 1, 1)))
    rows = []
    for i in tqdm(range(options.rows), desc="join", unit="row", disable=not progress):
        pool = pools[rng.randrange(len(pools))]
        count = min(rng.randint(*options.clips), len(pool))
        parts = rng.sample(pool, count)
        wave = join_clips(parts, rng, options, sample_rate)
        utt_id = f"joined-{i:0{width}d}"
        path = folder / f"{utt_id}.wav"
        sf.write(str(path), wave, sample_rate, subtype="PCM_16")
        speaker, labels = _shared_columns(parts)
        text = options.separator.join((u.text or "").strip() for u in parts)
        rows.append(Utterance(utt_id, path.resolve(), text, 0.0, len(wave) / sample_rate,
                              speaker, labels))
    return rows


def check_options(options: JoinOptions) -> None:
    """Refuse ranges that cannot be drawn from, naming the option."""
    checks = [
        (options.rows >= 1, "--rows: must be >= 1"),
        (1 <= options.clips[0] <= options.clips[1], "--clips: expected LOW-HIGH with 1 <= LOW "
                                                    "<= HIGH, e.g. 2-3"),
        (0 <= options.pause_s[0] <= options.pause_s[1], "--pause-s: expected LOW-HIGH seconds, "
                                                        "0 <= LOW <= HIGH"),
        (0 <= options.edge_s[0] <= options.edge_s[1], "--edge-s: expected LOW-HIGH seconds, "
                                                      "0 <= LOW <= HIGH"),
    ]
    for ok, message in checks:
        if not ok:
            raise JoinError(message)


def join_manifest(manifest: str | Path, out: str | Path, options: JoinOptions,
                  only_joined: bool = False, overwrite: bool = False,
                  progress: bool = True) -> JoinResult:
    """``OUT/<manifest name>``: the source rows (unless ``only_joined``) followed by
    ``options.rows`` joined ones, whose audio lies in ``OUT/joined/``."""
    check_options(options)
    manifest, out = Path(manifest), Path(out)
    target = out / manifest.name
    if target.resolve() == manifest.resolve():
        raise JoinError(f"{target}: is the source manifest; pick another OUT folder")
    if target.exists() and not overwrite:
        raise JoinError(f"{target}: exists; pass --overwrite to replace it (and "
                        f"{out / JOINED_FOLDER}/)")
    source = read_manifest(manifest)
    if not source:
        raise JoinError(f"{manifest}: no rows to join")
    if overwrite:  # a smaller --rows must not leave the last run's extra clips behind
        for old in (out / JOINED_FOLDER).glob("joined-*.wav"):
            old.unlink()
    joined = join_rows(source, out / JOINED_FOLDER, options, progress)
    kept = [] if only_joined else [replace(u, audio=u.audio.resolve()) for u in source]
    write_manifest([*kept, *joined], target)
    return JoinResult(target, len(kept), len(joined),
                      round(sum(u.duration_s or 0.0 for u in joined), 2))
