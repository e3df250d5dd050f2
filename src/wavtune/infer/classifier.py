"""Labelling audio with a finished classification or multi-task run: each head's most probable
labels for files, folders or arrays; long recordings are averaged over windows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wavtune.data.audio import Waveform, load_audio, normalize_waveform
from wavtune.data.dataset import SpeechDataset
from wavtune.data.labels import LabelSet
from wavtune.data.manifest import Utterance, with_durations
from wavtune.infer.evaluation import iter_forward
from wavtune.infer.forward import clip_scores
from wavtune.infer.loaded import LoadedRun
from wavtune.infer.types import Classification, LabelScores, TranscribeOptions
from wavtune.run.directory import RunError
from wavtune.scoring.classification import log_softmax


def top_labels(label_set: LabelSet, probabilities: npt.NDArray[np.float64], k: int) -> LabelScores:
    """The ``k`` most probable labels of one head (``probabilities``: ``[labels]``)."""
    order = np.argsort(-probabilities, kind="stable")[: max(1, k)]
    return LabelScores(label_set.column,
                       tuple((label_set.labels[i], float(probabilities[i])) for i in order))


class LabelHeads:
    """Label heads of a loaded run: probabilities of an utterance, whole or in chunks."""

    def __init__(self, run: LoadedRun) -> None:
        self.run = run

    def probabilities(
        self, scores: Sequence[npt.NDArray[np.float32]]
    ) -> list[npt.NDArray[np.float64]]:
        return [np.exp(log_softmax(s)) for s in scores]

    def of_wave(self, wave: Waveform, chunk_s: float) -> list[npt.NDArray[np.float64]]:
        """Each head's probabilities for a normalised waveform: the duration-weighted mean over
        ``chunk_s`` windows, so long recordings never go through the model in one piece."""
        pieces = max(1, round(len(wave) / (chunk_s * self.run.audio.sample_rate)))
        total = [np.zeros(len(s)) for s in self.run.label_sets]  # [heads][labels]
        for piece in np.array_split(wave, pieces):  # about chunk_s each, none of them a sliver
            # waveform or fbank input, as the family reads (the mask: fbank frames can be
            # padded in one clip)
            (scores,) = clip_scores(self.run.forward, self.run.audio.front_end, [piece])
            probs = self.probabilities(scores.heads)
            total = [t + p * len(piece) for t, p in zip(total, probs)]
        return [t / max(len(wave), 1) for t in total]


class Classifier:
    """A classification or multi-task run loaded to label audio (every label head)."""

    def __init__(self, run_dir: str | Path, device: str = "cpu") -> None:
        self._attach(LoadedRun(run_dir, device), run_dir)

    def _attach(self, run: LoadedRun, run_dir: str | Path) -> None:
        """Use ``run``'s forward pass (PyTorch here, ONNX Runtime in an OnnxClassifier)."""
        self.run = run
        if not self.run.label_sets:
            raise RunError(f"{run_dir}: a CTC-only run has no label heads; use 'wavtune "
                           f"transcribe' for it")
        self.heads = LabelHeads(self.run)

    def classify_array(self, wave: Waveform, top_k: int = 1,
                       options: TranscribeOptions = TranscribeOptions()) -> tuple[LabelScores, ...]:
        """Best labels of a mono waveform already at the model's sample rate."""
        if self.run.audio.do_normalize:
            wave = normalize_waveform(wave)
        probs = self.heads.of_wave(wave, options.chunk_s)
        return tuple(top_labels(s, p, top_k) for s, p in zip(self.run.label_sets, probs))

    def classify_files(self, paths: Sequence[Path], top_k: int = 1,
                       options: TranscribeOptions = TranscribeOptions(),
                       progress: bool = False) -> Iterator[Classification]:
        """Labels of ``paths`` in input order; short files go in length-sorted batches."""
        utts = with_durations(
            [Utterance(id=str(i), audio=p.resolve()) for i, p in enumerate(paths)]
        )
        short = [u for u in utts if (u.duration_s or 0.0) <= options.chunk_s]
        found: dict[str, tuple[LabelScores, ...]] = {}
        if short:
            dataset = SpeechDataset(short, self.run.audio)
            for out in iter_forward(self.run.forward, dataset, options.batch_size,
                                    progress=progress, desc="classify"):
                probs = self.heads.probabilities(out.head_scores)
                found[out.id] = tuple(top_labels(s, p, top_k)
                                      for s, p in zip(self.run.label_sets, probs))
        for u in utts:
            if u.id not in found:
                wave = load_audio(u.audio, self.run.audio.sample_rate)
                found[u.id] = self.classify_array(wave, top_k, options)
            yield Classification(str(paths[int(u.id)]), u.duration_s or 0.0, found[u.id])
