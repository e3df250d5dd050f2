"""Choosing the LM weight (alpha) and word insertion bonus (beta) on a dev set.

The model runs over the dev set once (:func:`dev_outputs`); every (alpha, beta) trial only
re-decodes the cached ``[frames, vocab]`` logits, with one decoder whose weights are swapped, so
the LM file is loaded once too.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wavtune.data.vocab import Vocabulary
from wavtune.decode.base import CTCDecoder
from wavtune.decode.greedy import GreedyDecoder
from wavtune.decode.settings import DecoderSettings
from wavtune.scoring import metrics

DEFAULT_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
DEFAULT_BETAS = (-1.0, 0.0, 1.0, 2.0, 3.0)
RANDOM_ALPHA = (0.0, 3.0)  # ranges sampled by a random search
RANDOM_BETA = (-2.0, 5.0)


@dataclass(frozen=True)
class DevSet:
    """Cached model output of a dev manifest: logits and normalised references, same order."""

    manifest: str
    ids: tuple[str, ...]
    logits: tuple[npt.NDArray[np.float32], ...]  # each [frames, vocab]
    references: tuple[str, ...]


@dataclass(frozen=True)
class Scores:
    """Corpus WER/CER of one decoder on a dev set, and its decoding speed."""

    wer: float
    cer: float
    seconds: float  # wall time spent decoding (not the model's forward passes)
    utterances: int

    @property
    def utterances_per_s(self) -> float:
        return self.utterances / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class Trial:
    alpha: float
    beta: float
    scores: Scores


@dataclass(frozen=True)
class TuneResult:
    """Every trial, the best (lowest WER, then CER), greedy and LM-free beam search baselines."""

    trials: tuple[Trial, ...]
    best: Trial
    greedy: Scores
    beam: Scores  # same beam width, no LM
    settings: DecoderSettings  # the best settings


def dev_outputs(run_dir: str | Path, manifest: str | Path, text_column: str | None = None,
                batch_size: int = 8, device: str = "cpu", progress: bool = True) -> DevSet:
    """Run a CTC (or multi-task) run's model over ``manifest`` once; transcripts are normalised
    as the run's training text was."""
    from wavtune.data.dataset import SpeechDataset
    from wavtune.data.manifest import read_manifest, with_durations
    from wavtune.infer.evaluation import iter_outputs
    from wavtune.infer.loaded import LoadedRun
    from wavtune.run.directory import RunError, load_run_config

    run = LoadedRun(run_dir, device)
    if run.vocab is None:
        raise RunError(f"{run_dir}: a classification run has no CTC output to decode")
    config = load_run_config(run_dir)
    utts = with_durations(read_manifest(manifest))
    dataset = SpeechDataset(utts, run.audio, run.vocab, config.text.normalizer(),
                            text_column or config.data.text_column)
    position = {u.id: i for i, u in enumerate(utts)}
    outputs = sorted((o.frames for o in iter_outputs(run.model, dataset, batch_size,
                                                     run.use_attention_mask, progress=progress,
                                                     desc="dev logits") if o.frames is not None),
                     key=lambda o: position[o.id])
    return DevSet(str(manifest), tuple(o.id for o in outputs), tuple(o.logits for o in outputs),
                  tuple(dataset.reference(position[o.id]) for o in outputs))


def score(decoder: CTCDecoder, logits: Sequence[npt.NDArray[np.float32]],
          references: Sequence[str]) -> Scores:
    """Decode every utterance and score the corpus."""
    start = time.perf_counter()
    hypotheses = [decoder.decode(x).text for x in logits]
    seconds = time.perf_counter() - start
    return Scores(
        metrics.wer(references, hypotheses).rate,
        metrics.cer(references, hypotheses).rate,
        seconds,
        len(hypotheses),
    )


def grid(alphas: Sequence[float], betas: Sequence[float]) -> list[tuple[float, float]]:
    return [(a, b) for a in alphas for b in betas]


def random_points(n: int, seed: int = 0) -> list[tuple[float, float]]:
    """``n`` (alpha, beta) pairs drawn uniformly from RANDOM_ALPHA x RANDOM_BETA."""
    rng = random.Random(seed)
    return [(round(rng.uniform(*RANDOM_ALPHA), 3), round(rng.uniform(*RANDOM_BETA), 3))
            for _ in range(n)]


def tune(vocab: Vocabulary, settings: DecoderSettings, dev: DevSet,
         points: Sequence[tuple[float, float]],
         report: Callable[[Trial], None] | None = None) -> TuneResult:
    """Decode ``dev`` with ``settings`` (beam search with an LM) at every (alpha, beta) of
    ``points``; ``report`` sees each trial as it finishes."""
    from wavtune.decode.beam import BeamDecoder

    if not points:
        raise ValueError("no (alpha, beta) points to try")
    greedy = score(GreedyDecoder(vocab), dev.logits, dev.references)
    beam = score(BeamDecoder(vocab, replace(settings, lm="", hotwords=())), dev.logits,
                 dev.references)
    decoder = BeamDecoder(vocab, settings)
    trials = []
    for alpha, beta in points:
        decoder.set_weights(alpha, beta)
        trial = Trial(alpha, beta, score(decoder, dev.logits, dev.references))
        trials.append(trial)
        if report is not None:
            report(trial)
    best = min(trials, key=lambda t: (t.scores.wer, t.scores.cer, abs(t.alpha), abs(t.beta)))
    tuned = replace(settings, kind="beam", alpha=best.alpha, beta=best.beta,
                    lm_unit=decoder.lm_unit)
    return TuneResult(tuple(trials), best, greedy, beam, tuned)
