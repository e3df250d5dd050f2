"""Greedy vs beam search vs beam search with word and character n-gram LMs, on sentences.

FSDD has one spoken digit per clip, so sentences are made from a trained run's own output: the
per-frame log-probabilities of test clips, joined by a few synthetic pause frames that emit the
word delimiter, give phone-number-like digit strings ("five five five zero one nine two") whose
acoustics are real model output. The LMs are estimated (pure Python, ``wavtune.decode.arpa``) from
10,000 other sentences of the same generator; alpha and beta are tuned on dev sentences built
from half of the test clips, and the other half make the test sentences.

    PYTHONPATH=src python benchmarks/decoding.py --run RUN [--manifest data/fsdd/test.jsonl]

Writes ``benchmarks/results/decoding.json`` and prints the table. Decoding speed is utterances
(sentences) per second of decoding alone, on whatever CPU this runs (noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wavtune.data.vocab import Vocabulary
from wavtune.decode.arpa import build_arpa
from wavtune.decode.base import CTCDecoder
from wavtune.decode.beam import BeamDecoder
from wavtune.decode.greedy import GreedyDecoder
from wavtune.decode.settings import DecoderSettings
from wavtune.infer.tuning import DevSet, dev_outputs, grid, score, tune
from wavtune.run.directory import load_vocab

sys.path.append(str(Path(__file__).resolve().parent))  # benchmarks/machine.py (after packages)
from machine import machine_info  # noqa: E402

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
AREA_CODES = ("555", "212", "415", "020", "311", "646", "800", "919")  # first three digits
PAUSE_FRAMES = 2  # blank frames on each side of the one delimiter frame between words
ALPHAS = (0.5, 1.0, 1.5, 2.0)
BETAS = (0.0, 1.0, 2.0)


def phone_number(rng: random.Random) -> list[str]:
    """3 to 7 digit words: a known area code, then random digits (a structure an LM can learn)."""
    digits = list(rng.choice(AREA_CODES)) + [str(rng.randrange(10)) for _ in range(4)]
    return [DIGITS[int(d)] for d in digits[: rng.randint(3, 7)]]


def log_softmax(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    x = x - x.max(axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = (x - np.log(np.exp(x).sum(axis=1, keepdims=True))).astype(
        np.float32
    )
    return out


def pause(vocab: Vocabulary, peak: float = 0.95) -> npt.NDArray[np.float32]:
    """Frames between two words: blanks, one word delimiter, blanks (log-probabilities)."""
    rows = np.full((2 * PAUSE_FRAMES + 1, len(vocab)), (1 - peak) / (len(vocab) - 1))
    rows[:, vocab.pad_id] = peak
    delimiter = vocab.tokens.index("|")
    rows[PAUSE_FRAMES, [vocab.pad_id, delimiter]] = rows[PAUSE_FRAMES, [delimiter, vocab.pad_id]]
    out: npt.NDArray[np.float32] = np.log(rows).astype(np.float32)
    return out


def sentences(clips: dict[str, list[npt.NDArray[np.float32]]], n: int, vocab: Vocabulary,
              rng: random.Random) -> DevSet:
    """``n`` sentences from clips' log-probabilities (clip lists keyed by digit word)."""
    gap = pause(vocab)
    logits, refs = [], []
    for _ in range(n):
        words = phone_number(rng)
        parts = []
        for i, word in enumerate(words):
            parts += ([gap] if i else []) + [rng.choice(clips[word])]
        logits.append(np.concatenate(parts))
        refs.append(" ".join(words))
    return DevSet("synthetic", tuple(str(i) for i in range(n)), tuple(logits), tuple(refs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="trained FSDD run directory (read only)")
    parser.add_argument("--manifest", default="data/fsdd/test.jsonl", help="FSDD test manifest")
    parser.add_argument("--sentences", type=int, default=200, help="test sentences")
    parser.add_argument("--dev-sentences", type=int, default=60)
    parser.add_argument("--lm-sentences", type=int, default=10_000)
    parser.add_argument("--beam-width", type=int, default=32)
    parser.add_argument("--char-order", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/decoding.json")
    args = parser.parse_args()

    vocab = load_vocab(args.run)
    start = time.perf_counter()
    clips = dev_outputs(args.run, args.manifest, progress=False)
    forward_s = time.perf_counter() - start
    halves: tuple[dict[str, list[npt.NDArray[np.float32]]], ...] = (
        defaultdict(list),
        defaultdict(list),
    )
    for i, (x, ref) in enumerate(zip(clips.logits, clips.references)):
        halves[i % 2][ref].append(log_softmax(x))  # alternate clips: dev half, test half
    rng = random.Random(args.seed)
    dev = sentences(halves[0], args.dev_sentences, vocab, rng)
    test = sentences(halves[1], args.sentences, vocab, rng)
    corpus = [" ".join(phone_number(rng)) for _ in range(args.lm_sentences)]

    beam = DecoderSettings("beam", beam_width=args.beam_width)
    rows = []

    def add(name: str, decoder: CTCDecoder, settings: DecoderSettings | None = None) -> None:
        s = score(decoder, test.logits, test.references)
        rows.append({"decoder": name, "wer": round(s.wer, 4), "cer": round(s.cer, 4),
                     "utterances_per_s": round(s.utterances_per_s, 1),
                     **({"alpha": settings.alpha, "beta": settings.beta} if settings else {})})
        print(f"{name:<28} WER {s.wer:.4f}  CER {s.cer:.4f}  {s.utterances_per_s:8.1f} utt/s",
              flush=True)

    add("greedy", GreedyDecoder(vocab))
    add(f"beam {args.beam_width}, no LM", BeamDecoder(vocab, beam))
    with tempfile.TemporaryDirectory() as tmp:
        for unit, order in (("word", 3), ("char", args.char_order)):
            lm = Path(tmp) / f"{unit}.arpa"
            build_arpa(corpus, lm, order, unit)
            tuned = tune(vocab, replace(beam, lm=str(lm), lm_unit=unit), dev, grid(ALPHAS, BETAS))
            add(f"beam {args.beam_width} + {unit} {order}-gram", BeamDecoder(vocab, tuned.settings),
                tuned.settings)
    clip_greedy = score(GreedyDecoder(vocab), clips.logits, clips.references)
    result = {
        "command": f"python benchmarks/decoding.py --run RUN --manifest {args.manifest}",
        "run": Path(args.run).resolve().name,
        "setup": {
            "clip_greedy_wer": round(clip_greedy.wer, 4),
            "test_sentences": args.sentences,
            "dev_sentences": args.dev_sentences,
            "lm_sentences": args.lm_sentences,
            "clips": len(clips.ids),
            "words": sum(len(r.split()) for r in test.references),
            "settings": asdict(beam),
            "model_forward_s": round(forward_s, 1),
            "machine": machine_info(),
        },
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
