"""Forced alignment on real speech: word boundaries and mislabelled-row detection with a run
trained by the FSDD alignment recipe (``examples/fsdd-align.yaml``: the figures in the README;
``benchmarks/results/alignment-fsdd-wav2vec2*.json`` hold those of the waveform recipe, whose
model never heard two words in a row).

(a) Boundaries: FSDD test clips (several speakers, trimmed of silence by the dataset) joined with
random pauses between them; each clip's first and last sample are its word's true edges. A word
counts as within tolerance when both its edges are within ``--tolerance-ms`` of the truth.

(b) Mislabelled rows: the FSDD test split with 10% of the transcripts swapped to another digit,
scored by ``check-data --align``'s rule (threshold chosen on the data); recall of the swapped rows
and the share of correct rows flagged.

(c) Segmentation: all test clips joined into one recording of about 5 minutes, its transcript
given as utterances of 1-4 consecutive clips; an utterance is recovered when ``segment`` finds
both its ends within 100 ms.

    PYTHONPATH=src python benchmarks/alignment.py --run RUN --manifest data/fsdd/test.jsonl

Writes ``benchmarks/results/alignment.json`` and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import wavtune.infer.alignment as alignment
from wavtune.data.audio import load_audio
from wavtune.data.manifest import Utterance, read_manifest
from wavtune.infer.aligner import Aligner, AlignOptions
from wavtune.infer.loudness import Loudness
from wavtune.infer.mislabel import SCORING_OPTIONS, find_misaligned

sys.path.append(str(Path(__file__).resolve().parent))  # benchmarks/machine.py (after packages)
from machine import machine_info  # noqa: E402

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PAUSE_S = (0.1, 1.0)  # pause between two clips (s), uniform
EDGE_S = (0.1, 0.5)  # silence before the first and after the last clip (s)
NOISE = 3e-4  # standard deviation of the noise in the pauses (full scale 1)
LOWERED_BOUND = 20_000_000  # lattice cells: the 5-minute file is over it (checkpointed path)


def concatenation(utts: list[Utterance], rng: random.Random, sample_rate: int
                  ) -> tuple[np.ndarray, str, list[tuple[float, float]]]:
    """Clips joined by random pauses: the waveform, its transcript and each word's true edges."""
    noise = np.random.default_rng(rng.randrange(2**31))
    parts: list[np.ndarray] = []
    edges: list[tuple[float, float]] = []
    position = 0

    def pause(bounds: tuple[float, float]) -> None:
        nonlocal position
        n = int(rng.uniform(*bounds) * sample_rate)
        parts.append((NOISE * noise.standard_normal(n)).astype(np.float32))
        position += n

    pause(EDGE_S)
    for k, utt in enumerate(utts):
        if k:
            pause(PAUSE_S)
        clip = load_audio(utt.audio, sample_rate)
        edges.append((position / sample_rate, (position + len(clip)) / sample_rate))
        parts.append(clip)
        position += len(clip)
    pause(EDGE_S)
    return np.concatenate(parts), " ".join(u.text or "" for u in utts), edges


def boundaries(aligner: Aligner, utts: list[Utterance], sequences: int, tolerance_s: float,
               seed: int) -> dict[str, Any]:
    """Word-edge errors of ``sequences`` concatenations of 3-6 random clips, with and without
    moving word edges out to the ends of their sound."""
    rng = random.Random(seed)
    options = aligner.options
    variants = {"snapped": replace(options), "snapped_pad_0.25s": replace(options, pad_s=0.25),
                "spikes": replace(options, snap_s=0.0)}
    errors: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    silent = 0  # missed words (snapped) whose missed stretches are all silence
    for _ in range(sequences):
        wave, text, truth = concatenation(rng.sample(utts, rng.randint(3, 6)), rng,
                                          aligner.sample_rate)
        levels = Loudness.of_wave(wave, aligner.sample_rate)
        for name, variant in variants.items():
            aligner.options = variant
            timed = aligner.align_wave(wave, text, "concatenation")
            assert [w.text for w in timed.words] == text.split(), timed.words
            errors[name] += [(w.start_s - a, w.end_s - b)
                             for w, (a, b) in zip(timed.words, truth)]
            if name == "snapped":
                silent += sum(miss(w, edge, levels, tolerance_s)["silent_stretch"]
                              for w, edge in zip(timed.words, truth)
                              if missed(w, edge, tolerance_s))
    out: dict[str, Any] = {"sequences": sequences, "words": len(errors["spikes"]),
                           "tolerance_ms": tolerance_s * 1000}
    for name in variants:
        signed = np.asarray(errors[name])  # [words, 2]: found - true start, end (s)
        e = np.abs(signed)
        out[name] = {
            "words_within": round(float(np.mean((e <= tolerance_s).all(axis=1))), 4),
            "edges_within": round(float(np.mean(e <= tolerance_s)), 4),
            "median_start_error_ms": round(float(np.median(e[:, 0])) * 1000, 1),
            "median_end_error_ms": round(float(np.median(e[:, 1])) * 1000, 1),
            "start_within": round(float(np.mean(e[:, 0] <= tolerance_s)), 4),
            "end_within": round(float(np.mean(e[:, 1] <= tolerance_s)), 4),
            **{f"{edge}_signed_ms": _spread(signed[:, k]) for k, edge in enumerate(("start",
                                                                                     "end"))},
        }
    out["snapped"]["misses_in_silence"] = silent
    aligner.options = options
    return out


def _spread(errors: np.ndarray) -> dict[str, float]:
    """Percentiles of signed errors in ms (negative: found earlier than the truth)."""
    points = np.percentile(errors * 1000, [10, 25, 50, 75, 90])
    return {f"p{q}": round(float(v), 1) for q, v in zip((10, 25, 50, 75, 90), points)}


def mislabelled(aligner: Aligner, utts: list[Utterance], share: float, seed: int
                ) -> dict[str, Any]:
    """Recall and false-flag rate of ``find_misaligned`` on ``utts`` with ``share`` of the
    transcripts swapped to another digit."""
    rng = random.Random(seed)
    swapped = set(rng.sample(range(len(utts)), round(share * len(utts))))
    rows = [replace(u, text=rng.choice([d for d in DIGITS if d != u.text])) if i in swapped
            else u for i, u in enumerate(utts)]
    options, aligner.options = aligner.options, SCORING_OPTIONS  # as check-data --align
    try:
        report = find_misaligned(list(aligner.align_rows(rows)))
    finally:
        aligner.options = options
    flagged = {m.id for m in report.flagged}
    bad = {rows[i].id for i in swapped}
    good = len(rows) - len(bad)
    return {"rows": len(rows), "swapped": len(bad), "threshold": round(report.threshold, 4),
            "median_score": round(report.median_score, 4),
            "recall": round(len(flagged & bad) / max(len(bad), 1), 4),
            "false_flag_rate": round(len(flagged - bad) / max(good, 1), 4),
            "false_flags": sorted(flagged - bad), "missed": sorted(bad - flagged)}


def missed(found: Any, truth: tuple[float, float], tolerance_s: float) -> bool:
    """Whether a found span (``start_s``, ``end_s``) misses ``truth`` by more than
    ``tolerance_s`` at either end."""
    return max(abs(found.start_s - truth[0]), abs(found.end_s - truth[1])) > tolerance_s


def miss(segment: Any, truth: tuple[float, float], levels: Loudness, tolerance_s: float
         ) -> dict[str, Any]:
    """A missed word or utterance: its signed edge errors (+ late, - early) and, for each edge
    that misses, the median level (dB, loudest sample per hop) of the stretch between the found
    and the true edge, and whether it is silence: under the recording's floor (the pauses'
    noise), so no edge within it can be heard."""
    step, db = levels.step_s, levels.levels_db
    out: dict[str, Any] = {"text": segment.text}
    silent = []
    for name, found, true in (("start", segment.start_s, truth[0]),
                              ("end", segment.end_s, truth[1])):
        out[f"{name}_error_ms"] = round((found - true) * 1000, 1)
        if abs(found - true) > tolerance_s:
            a, b = sorted((found, true))
            median = float(np.median(db[int(a / step): max(int(b / step), int(a / step) + 1)]))
            out[f"{name}_stretch_median_db"] = round(median, 1)
            silent.append(median < levels.floor_db)
    out["silent_stretch"] = all(silent)
    out["floor_db"] = round(levels.floor_db, 1)
    return out


def segmentation(aligner: Aligner, utts: list[Utterance], tolerance_s: float, seed: int
                 ) -> dict[str, Any]:
    """``wavtune segment`` on every clip of ``utts`` joined into one recording (random pauses),
    read as utterances of 1-4 consecutive clips: the share found within ``tolerance_s`` at
    both ends."""
    import soundfile as sf

    from wavtune.infer.segment import segment_recording

    rng = random.Random(seed)
    order = rng.sample(utts, len(utts))
    wave, _, edges = concatenation(order, rng, aligner.sample_rate)
    groups: list[tuple[int, int]] = []
    while sum(n for _, n in groups) < len(order):
        start = sum(n for _, n in groups)
        groups.append((start, min(rng.randint(1, 4), len(order) - start)))
    lines = [" ".join(u.text or "" for u in order[a : a + n]) for a, n in groups]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "long.wav"
        sf.write(path, wave, aligner.sample_rate)
        started = time.perf_counter()
        found = segment_recording(aligner, path, lines)  # fits one Viterbi pass
        seconds = time.perf_counter() - started
        bound = alignment.MAX_LATTICE_CELLS
        alignment.MAX_LATTICE_CELLS = LOWERED_BOUND  # over it: 60 s of back-pointers at a time
        try:
            windowed = segment_recording(aligner, path, lines, window_s=60.0)
        finally:
            alignment.MAX_LATTICE_CELLS = bound

    truths = [(edges[a][0], edges[a + n - 1][1]) for a, n in groups]

    def recovered(segments: list[Any]) -> float:
        return round(float(np.mean([not missed(s, t, tolerance_s)
                                    for s, t in zip(segments, truths)])), 4)

    levels = Loudness.of_wave(wave, aligner.sample_rate)
    misses = [miss(s, t, levels, tolerance_s) for s, t in zip(found, truths)
              if missed(s, t, tolerance_s)]
    return {"recording_s": round(len(wave) / aligner.sample_rate, 1), "utterances": len(lines),
            "tolerance_ms": tolerance_s * 1000, "recovered": recovered(found), "misses": misses,
            "misses_in_silence": sum(m["silent_stretch"] for m in misses),
            "seconds": round(seconds, 1), "checkpointed_60s_recovered": recovered(windowed),
            "checkpointed_equals_whole": [(s.start_s, s.end_s) for s in windowed]
            == [(s.start_s, s.end_s) for s in found]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a run trained by the FSDD recipe")
    parser.add_argument("--manifest", required=True, help="the FSDD test manifest")
    parser.add_argument("--sequences", type=int, default=60)
    parser.add_argument("--tolerance-ms", type=float, default=50.0)
    parser.add_argument("--swap-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/alignment.json")
    args = parser.parse_args()
    started = time.perf_counter()
    aligner = Aligner(args.run, options=AlignOptions())
    utts = read_manifest(args.manifest)
    edges = boundaries(aligner, utts, args.sequences, args.tolerance_ms / 1000, args.seed)
    swaps = mislabelled(aligner, utts, args.swap_share, args.seed)
    segments = segmentation(aligner, utts, 0.1, args.seed)
    result = {"run": str(args.run), "manifest": str(args.manifest), "boundaries": edges,
              "mislabelled": swaps, "segment": segments,
              "seconds": round(time.perf_counter() - started, 1),
              "machine": machine_info()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
