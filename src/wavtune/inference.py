"""Transcribing and classifying audio with a finished run: files, folders or arrays; long audio
in chunks. A multi-task run transcribes and labels each input in the same forward pass."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from tqdm.auto import tqdm

from wavtune.audio import AudioError, Waveform, load_audio, normalize_waveform
from wavtune.classification import log_softmax
from wavtune.constants import DEFAULT_CHUNK_OVERLAP_S, DEFAULT_CHUNK_S
from wavtune.data import AudioSettings, SpeechDataset
from wavtune.decoding import GreedyDecoder
from wavtune.evaluation import Evaluation, iter_task_outputs
from wavtune.labels import LabelSet
from wavtune.manifest import Utterance, with_durations
from wavtune.modeling import model_kind, samples_per_frame
from wavtune.rundir import CONFIG_FILE, RunError, load_run_config, load_vocab
from wavtune.vocab import Vocabulary
from wavtune.windows import (
    iter_file_blocks,
    iter_windows,
    normalized,
    pad_batch,
    plan_batches,
    stream_stats,
    trim,
)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".sph", ".nist", ".aiff", ".aif")


@dataclass(frozen=True)
class TranscribeOptions:
    """Long audio is cut into ``chunk_s`` windows that overlap by ``overlap_s`` on each side;
    only each window's centre is kept, so words at window edges get full context. Files up to
    ``chunk_s`` go through the model in length-sorted batches of at most ``batch_size`` clips and
    ``max_batch_s`` padded seconds (0: no seconds budget)."""

    chunk_s: float = DEFAULT_CHUNK_S
    overlap_s: float = DEFAULT_CHUNK_OVERLAP_S
    batch_size: int = 8
    max_batch_s: float = 0.0

    def __post_init__(self) -> None:
        if self.chunk_s <= 2 * self.overlap_s:
            raise ValueError(f"chunk_s ({self.chunk_s}) must be more than twice overlap_s "
                             f"({self.overlap_s})")


@dataclass(frozen=True)
class LabelScores:
    """One head's most probable labels for one input, best first."""

    column: str  # the head: the manifest column it was trained on
    top: tuple[tuple[str, float], ...]  # (label, probability)

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def probability(self) -> float:
        return self.top[0][1]


@dataclass(frozen=True)
class Transcript:
    """One transcribed input (with each label head's best labels, for a multi-task run)."""

    source: str  # file path, or the id given for an array
    text: str
    duration_s: float
    labels: tuple[LabelScores, ...] = ()


@dataclass(frozen=True)
class Classification:
    """One classified input."""

    source: str
    duration_s: float
    heads: tuple[LabelScores, ...]


def find_audio(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, and audio files found recursively in folders, sorted."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES))
        elif item.is_file():
            found.append(item)
        else:
            raise AudioError(f"{item}: no such file or folder")
    return found


def label_sets_of(model: Any, run_dir: Path) -> tuple[LabelSet, ...]:
    """The label heads of a loaded model, in output order (classes in id order)."""
    kind = model_kind(model)
    if kind == "multitask":
        config = model.config
        return tuple(LabelSet(name, config.head_labels(i), (0,) * len(config.head_labels(i)))
                     for i, name in enumerate(config.head_names))
    if kind == "classify":
        id2label = model.config.id2label
        labels = tuple(str(id2label[i]) for i in range(len(id2label)))
        column = "label"
        if (run_dir / CONFIG_FILE).is_file() and load_run_config(run_dir).data.label_columns:
            column = load_run_config(run_dir).data.label_columns[0]
        return (LabelSet(column, labels, (0,) * len(labels)),)
    return ()


class LoadedRun:
    """A finished run's published model, its input settings, vocabulary and label heads."""

    def __init__(self, run_dir: str | Path, device: str = "cpu") -> None:
        import json

        from transformers import (
            AutoFeatureExtractor,
            AutoModel,
            AutoModelForAudioClassification,
            AutoModelForCTC,
        )

        from wavtune.multitask import MODEL_TYPE, register

        self.root = run_dir = Path(run_dir)
        if not (run_dir / "config.json").is_file():
            raise RunError(f"{run_dir}: no config.json; is this a finished wavtune run directory?")
        hf_config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        architectures = hf_config.get("architectures") or [""]
        if hf_config.get("model_type") == MODEL_TYPE:
            register()
            auto: Any = AutoModel
        elif architectures[0].endswith("ForSequenceClassification"):
            auto = AutoModelForAudioClassification
        else:
            auto = AutoModelForCTC
        self.model = auto.from_pretrained(str(run_dir), use_safetensors=True).to(device)
        self.model.eval()
        self.kind = model_kind(self.model)
        has_ctc = self.kind == "ctc" or bool(getattr(self.model.config, "vocab_size", 0)
                                             and self.kind == "multitask")
        self.vocab: Vocabulary | None = load_vocab(run_dir) if has_ctc else None
        self.label_sets = label_sets_of(self.model, run_dir)
        fe = AutoFeatureExtractor.from_pretrained(str(run_dir))
        self.audio = AudioSettings(int(fe.sampling_rate), bool(fe.do_normalize))
        self.use_attention_mask = bool(fe.return_attention_mask)
        self.device = device


def top_labels(label_set: LabelSet, probabilities: npt.NDArray[np.float64], k: int) -> LabelScores:
    """The ``k`` most probable labels of one head (``probabilities``: ``[labels]``)."""
    order = np.argsort(-probabilities, kind="stable")[: max(1, k)]
    return LabelScores(label_set.column,
                       tuple((label_set.labels[i], float(probabilities[i])) for i in order))


class _Heads:
    """Label heads of a loaded run: probabilities of an utterance, whole or in chunks."""

    def __init__(self, run: LoadedRun) -> None:
        self.run = run

    def probabilities(self, scores: Sequence[npt.NDArray[np.float32]]) -> list[npt.NDArray[np.float64]]:
        return [np.exp(log_softmax(s)) for s in scores]

    @torch.no_grad()
    def of_wave(self, wave: Waveform, chunk_s: float) -> list[npt.NDArray[np.float64]]:
        """Each head's probabilities for a normalised waveform: the duration-weighted mean over
        ``chunk_s`` windows, so long recordings never go through the model in one piece."""
        pieces = max(1, round(len(wave) / (chunk_s * self.run.audio.sample_rate)))
        total = [np.zeros(len(s)) for s in self.run.label_sets]  # [heads][labels]
        for piece in np.array_split(wave, pieces):  # about chunk_s each, none of them a sliver
            x = torch.from_numpy(np.ascontiguousarray(piece))[None].to(self.run.device)
            out = self.run.model(input_values=x)
            logits = (out.logits,) if self.run.kind == "classify" else out.head_logits
            probs = self.probabilities([h[0].float().cpu().numpy() for h in logits])
            total = [t + p * len(piece) for t, p in zip(total, probs)]
        return [t / max(len(wave), 1) for t in total]


class Classifier:
    """A classification or multi-task run loaded to label audio (every label head)."""

    def __init__(self, run_dir: str | Path, device: str = "cpu") -> None:
        self.run = LoadedRun(run_dir, device)
        if not self.run.label_sets:
            raise RunError(f"{run_dir}: a CTC-only run has no label heads; use 'wavtune "
                           f"transcribe' for it")
        self.heads = _Heads(self.run)

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
        utts = with_durations([Utterance(id=str(i), audio=p.resolve()) for i, p in enumerate(paths)])
        short = [u for u in utts if (u.duration_s or 0.0) <= options.chunk_s]
        found: dict[str, tuple[LabelScores, ...]] = {}
        if short:
            dataset = SpeechDataset(short, self.run.audio)
            for out in iter_task_outputs(self.run.model, dataset, options.batch_size,
                                         self.run.use_attention_mask, progress=progress,
                                         desc="classify"):
                probs = self.heads.probabilities(out.head_scores)
                found[out.id] = tuple(top_labels(s, p, top_k)
                                      for s, p in zip(self.run.label_sets, probs))
        for u in utts:
            if u.id not in found:
                wave = load_audio(u.audio, self.run.audio.sample_rate)
                found[u.id] = self.classify_array(wave, top_k, options)
            yield Classification(str(paths[int(u.id)]), u.duration_s or 0.0, found[u.id])


class Recognizer:
    """A CTC or multi-task run loaded for inference (greedy decoding); a multi-task run also
    labels what it transcribes."""

    def __init__(self, run_dir: str | Path, device: str = "cpu") -> None:
        run = LoadedRun(run_dir, device)
        if run.vocab is None:
            raise RunError(f"{run_dir}: a classification run has no CTC head to transcribe with; "
                           f"use 'wavtune classify'")
        self.run = run
        self.vocab = run.vocab
        self.model = run.model
        self.audio = run.audio
        self.use_attention_mask = run.use_attention_mask
        self.decoder = GreedyDecoder(self.vocab)
        self.samples_per_frame = samples_per_frame(self.model.config)
        self.device = device
        self.heads = _Heads(run) if run.label_sets else None

    def logits(self, wave: Waveform, options: TranscribeOptions = TranscribeOptions()
               ) -> npt.NDArray[np.float32]:
        """Frame scores ``[frames, vocab]`` of a (possibly long) normalised waveform."""
        return np.concatenate(list(self.iter_logits([wave], options)), axis=0)

    def iter_logits(self, blocks: Iterable[Waveform], options: TranscribeOptions = TranscribeOptions()
                    ) -> Iterator[npt.NDArray[np.float32]]:
        """Stitched frame scores of a normalised stream of blocks, one ``[frames, vocab]`` piece
        per ``chunk_s`` window (its centre), in order."""
        sr = self.audio.sample_rate
        chunk, context = int(options.chunk_s * sr), int(options.overlap_s * sr)
        context_frames = round(context / self.samples_per_frame)
        for window in iter_windows(blocks, chunk, context):
            yield trim(self._forward(window.samples), window, context_frames)

    @torch.no_grad()
    def _forward(self, wave: Waveform) -> npt.NDArray[np.float32]:
        x = torch.from_numpy(np.ascontiguousarray(wave))[None].to(self.device)
        out = self.model(input_values=x).logits[0]  # [frames, vocab]
        scores: npt.NDArray[np.float32] = out.float().cpu().numpy()
        return scores

    @torch.no_grad()
    def forward_batch(self, waves: Sequence[Waveform]) -> list[npt.NDArray[np.float32]]:
        """Frame scores (``[frames, vocab]``, padding frames removed) of normalised waveforms
        run as one zero-padded batch."""
        audio, mask = pad_batch(waves)
        inputs = {"input_values": torch.from_numpy(audio).to(self.device)}
        if self.use_attention_mask:
            inputs["attention_mask"] = torch.from_numpy(mask).to(self.device)
        logits = self.model(**inputs).logits.float().cpu().numpy()  # [batch, frames, vocab]
        frames = self.model._get_feat_extract_output_lengths(torch.from_numpy(mask.sum(-1)))
        return [logits[i, : int(n)] for i, n in enumerate(frames)]

    def transcribe_array(self, wave: Waveform, options: TranscribeOptions = TranscribeOptions()
                         ) -> str:
        """Text of a mono waveform already at the model's sample rate."""
        if self.audio.do_normalize:
            wave = normalize_waveform(wave)
        return self.decoder.decode(self.logits(wave, options)).text

    def transcribe_file(self, path: Path, options: TranscribeOptions = TranscribeOptions()) -> str:
        """Text of an audio file of any length, decoded, resampled and run window by window so
        memory stays flat in file length (a first pass over the file finds the normalisation
        statistics)."""
        sr = self.audio.sample_rate
        blocks = iter_file_blocks(path, sr)
        if self.audio.do_normalize:
            blocks = normalized(iter_file_blocks(path, sr), *stream_stats(iter_file_blocks(path, sr)))
        # greedy decoding needs only each frame's best id: keep those, not the scores
        ids = [piece.argmax(axis=-1) for piece in self.iter_logits(blocks, options)]
        return self.decoder.decode_ids(np.concatenate(ids).tolist()).text

    def _short_texts(self, utts: Sequence[Utterance], options: TranscribeOptions, progress: bool
                     ) -> Iterator[tuple[str, str]]:
        """(id, text) of short files, run in length-sorted batches within the options' budget."""
        batches = plan_batches([u.duration_s or 0.0 for u in utts], options.batch_size,
                               options.max_batch_s)
        for batch in tqdm(batches, desc="transcribe", unit="batch", disable=not progress,
                          leave=False):
            waves = [load_audio(utts[i].audio, self.audio.sample_rate) for i in batch]
            if self.audio.do_normalize:
                waves = [normalize_waveform(w) for w in waves]
            for i, scores in zip(batch, self.forward_batch(waves)):
                yield utts[i].id, self.decoder.decode(scores).text

    def transcribe_files(self, paths: Sequence[Path], options: TranscribeOptions = TranscribeOptions(),
                         progress: bool = False, top_k: int = 1) -> Iterator[Transcript]:
        """Transcripts of ``paths`` in input order; short files go in length-sorted batches.
        A multi-task run adds each label head's ``top_k`` labels."""
        utts = with_durations([Utterance(id=str(i), audio=p.resolve()) for i, p in enumerate(paths)])
        short = [u for u in utts if (u.duration_s or 0.0) <= options.chunk_s]
        texts: dict[str, str] = {}
        labels: dict[str, tuple[LabelScores, ...]] = {}
        if short and self.heads is not None:
            dataset = SpeechDataset(short, self.audio)
            for out in iter_task_outputs(self.model, dataset, options.batch_size,
                                         self.use_attention_mask, progress=progress,
                                         desc="transcribe"):
                if out.frames is not None:
                    texts[out.id] = self.decoder.decode(out.frames.logits).text
                labels[out.id] = self._labels(self.heads.probabilities(out.head_scores), top_k)
        elif short:
            texts.update(self._short_texts(short, options, progress))
        for u in utts:
            if u.id not in texts:
                texts[u.id] = self.transcribe_file(u.audio, options)
                if self.heads is not None:  # label heads still read the whole file
                    wave = load_audio(u.audio, self.audio.sample_rate)
                    norm = normalize_waveform(wave) if self.audio.do_normalize else wave
                    labels[u.id] = self._labels(self.heads.of_wave(norm, options.chunk_s), top_k)
            yield Transcript(str(paths[int(u.id)]), texts[u.id], u.duration_s or 0.0,
                             labels.get(u.id, ()))

    def _labels(self, probs: Sequence[npt.NDArray[np.float64]], k: int) -> tuple[LabelScores, ...]:
        return tuple(top_labels(s, p, k) for s, p in zip(self.run.label_sets, probs))


def evaluate_manifest(run: LoadedRun, manifest: str | Path, text_column: str | None = None,
                      batch_size: int = 8, progress: bool = True) -> Evaluation:
    """Score every head of a loaded run on a manifest (transcripts normalised as in training;
    labels must be among the run's, else LabelError names the row)."""
    from wavtune.evaluation import evaluate
    from wavtune.manifest import read_manifest

    config = load_run_config(run.root)
    utts = with_durations(read_manifest(manifest))
    dataset = SpeechDataset(utts, run.audio, run.vocab, config.text.normalizer(),
                            text_column or config.data.text_column, label_sets=run.label_sets)
    return evaluate(run.model, dataset, batch_size, run.use_attention_mask, progress=progress)
