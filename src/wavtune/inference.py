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
from wavtune.decoder_settings import DecoderSettings, make_decoder
from wavtune.decoding import CTCDecoder, GreedyDecoder
from wavtune.evaluation import Evaluation, iter_task_outputs
from wavtune.labels import LabelSet
from wavtune.manifest import Utterance, with_durations
from wavtune.modeling import model_kind, samples_per_frame
from wavtune.rundir import CONFIG_FILE, RunError, load_run_config, load_vocab
from wavtune.timestamps import Alignment, CharSpan, WordSpan, align, snap_to_speech
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
    words: tuple[WordSpan, ...] = ()  # timed words of the greedy path
    chars: tuple[CharSpan, ...] = ()  # timed characters (tokens) of the greedy path


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
    """A CTC or multi-task run loaded for inference (greedy decoding unless ``decoding`` says
    otherwise); a multi-task run also labels what it transcribes."""

    def __init__(self, run_dir: str | Path, device: str = "cpu",
                 decoding: DecoderSettings | None = None) -> None:
        run = LoadedRun(run_dir, device)
        if run.vocab is None:
            raise RunError(f"{run_dir}: a classification run has no CTC head to transcribe with; "
                           f"use 'wavtune classify'")
        self.run = run
        self.vocab = run.vocab
        self.model = run.model
        self.audio = run.audio
        self.use_attention_mask = run.use_attention_mask
        self.decoder = self._decoder(decoding)
        self.samples_per_frame = samples_per_frame(self.model.config)
        self.device = device
        self.heads = _Heads(run) if run.label_sets else None

    def _decoder(self, decoding: DecoderSettings | None) -> CTCDecoder:
        # decoding=None: greedy; the CLI passes RUN/decoding.json's settings (wavtune lm tune)
        return make_decoder(self.vocab, decoding) if decoding else GreedyDecoder(self.vocab)

    @property
    def frame_s(self) -> float:
        """Seconds per CTC output frame (the conv strides' product over the sample rate)."""
        return self.samples_per_frame / self.audio.sample_rate

    def logits(self, wave: Waveform, options: TranscribeOptions = TranscribeOptions()
               ) -> npt.NDArray[np.float32]:
        """Frame scores ``[frames, vocab]`` of a (possibly long) normalised waveform."""
        return self.timed_logits(wave, options)[0]

    def timed_logits(self, wave: Waveform, options: TranscribeOptions = TranscribeOptions()
                     ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
        """Frame scores ``[frames, vocab]`` of a (possibly long) normalised waveform and the
        start time of each frame in seconds ``[frames]`` (each window's frames from its offset)."""
        pieces = list(self.iter_logits([wave], options))
        return (np.concatenate([p for p, _ in pieces], axis=0),
                np.concatenate([t for _, t in pieces]))

    def iter_logits(self, blocks: Iterable[Waveform], options: TranscribeOptions = TranscribeOptions()
                    ) -> Iterator[tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]]:
        """Stitched frame scores of a normalised stream of blocks, one ``([frames, vocab],
        [frames] start times in s)`` piece per ``chunk_s`` window (its centre), in order."""
        sr = self.audio.sample_rate
        chunk, context = int(options.chunk_s * sr), int(options.overlap_s * sr)
        context_frames = round(context / self.samples_per_frame)
        for window in iter_windows(blocks, chunk, context):
            piece = trim(self._forward(window.samples), window, context_frames)
            left = 0 if window.first else context_frames
            starts = window.start / sr + (left + np.arange(len(piece), dtype=np.float64)) * self.frame_s
            yield piece, starts.astype(np.float64)

    def _forward(self, wave: Waveform) -> npt.NDArray[np.float32]:
        return self.forward_batch([wave])[0]

    @torch.no_grad()
    def forward_batch(self, waves: Sequence[Waveform]) -> list[npt.NDArray[np.float32]]:
        """Frame scores (``[frames, vocab]``, padding frames removed) of normalised waveforms
        run as one zero-padded batch."""
        if len(waves) == 1:  # no padding: the model sees exactly the clip
            x = torch.from_numpy(np.ascontiguousarray(waves[0]))[None].to(self.device)
            return [self.model(input_values=x).logits[0].float().cpu().numpy()]
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

    def transcript_of_array(self, wave: Waveform, source: str = "array",
                            options: TranscribeOptions = TranscribeOptions(), top_k: int = 1
                            ) -> Transcript:
        """Text, timed words and characters (and labels, for a multi-task run) of a mono
        waveform already at the model's sample rate."""
        norm = normalize_waveform(wave) if self.audio.do_normalize else wave
        logits, starts = self.timed_logits(norm, options)
        timed = self.align(logits, starts, wave)
        labels = (self._labels(self.heads.of_wave(norm, options.chunk_s), top_k)
                  if self.heads is not None else ())
        return Transcript(source, self.decoder.decode(logits).text,
                          len(wave) / self.audio.sample_rate, labels, timed.words, timed.chars)

    def align(self, logits: npt.NDArray[np.float32],
              frame_starts_s: npt.NDArray[np.float64] | None = None,
              wave: Waveform | None = None) -> Alignment:
        """Timed words and characters of the best (greedy) path through ``logits``; with the
        ``wave`` they came from, word edges are moved out to the ends of their sound."""
        timed = align(np.asarray(logits).argmax(axis=-1).tolist(), self.vocab, self.frame_s,
                      frame_starts_s, logits)
        if wave is None:
            return timed
        return Alignment(timed.chars, snap_to_speech(timed.words, wave, self.audio.sample_rate))

    def transcribe_file(self, path: Path, options: TranscribeOptions = TranscribeOptions()
                        ) -> tuple[str, Alignment]:
        """Text and timed words of an audio file of any length, decoded, resampled and run
        window by window (a first pass over the file finds the normalisation statistics).
        Greedy decoding keeps each frame's best id only, so memory stays flat in file length;
        a beam decoder needs every frame's scores (``[frames, vocab]``, about a tenth of the
        audio's size at 16 kHz)."""
        sr = self.audio.sample_rate
        blocks = iter_file_blocks(path, sr)
        if self.audio.do_normalize:
            blocks = normalized(iter_file_blocks(path, sr), *stream_stats(iter_file_blocks(path, sr)))
        decoder = self.decoder
        greedy = isinstance(decoder, GreedyDecoder)
        kept, times = [], []
        for piece, starts in self.iter_logits(blocks, options):
            kept.append(piece.argmax(axis=-1) if greedy else piece)
            times.append(starts)
        starts_s = np.concatenate(times)
        if isinstance(decoder, GreedyDecoder):
            ids = np.concatenate(kept).tolist()
            return decoder.decode_ids(ids).text, align(ids, self.vocab, self.frame_s, starts_s)
        logits = np.concatenate(kept, axis=0)
        return self.decoder.decode(logits).text, self.align(logits, starts_s)

    def _short_outputs(self, utts: Sequence[Utterance], options: TranscribeOptions,
                       progress: bool) -> Iterator[tuple[str, str, Alignment]]:
        """(id, text, timed words) of short files, run in length-sorted batches within the
        options' budget."""
        batches = plan_batches([u.duration_s or 0.0 for u in utts], options.batch_size,
                               options.max_batch_s)
        for batch in tqdm(batches, desc="transcribe", unit="batch", disable=not progress,
                          leave=False):
            waves = [load_audio(utts[i].audio, self.audio.sample_rate) for i in batch]
            inputs = [normalize_waveform(w) for w in waves] if self.audio.do_normalize else waves
            for i, wave, scores in zip(batch, waves, self.forward_batch(inputs)):
                yield utts[i].id, self.decoder.decode(scores).text, self.align(scores, wave=wave)

    def transcribe_files(self, paths: Sequence[Path], options: TranscribeOptions = TranscribeOptions(),
                         progress: bool = False, top_k: int = 1) -> Iterator[Transcript]:
        """Transcripts of ``paths`` in input order; short files go in length-sorted batches,
        long ones are streamed. A multi-task run adds each label head's ``top_k`` labels."""
        utts = with_durations([Utterance(id=str(i), audio=p.resolve()) for i, p in enumerate(paths)])
        short = [u for u in utts if (u.duration_s or 0.0) <= options.chunk_s]
        texts: dict[str, str] = {}
        timed: dict[str, Alignment] = {}
        labels: dict[str, tuple[LabelScores, ...]] = {}
        if short and self.heads is not None:
            dataset = SpeechDataset(short, self.audio)
            for out in iter_task_outputs(self.model, dataset, options.batch_size,
                                         self.use_attention_mask, progress=progress,
                                         desc="transcribe"):
                if out.frames is not None:
                    texts[out.id] = self.decoder.decode(out.frames.logits).text
                    timed[out.id] = self.align(out.frames.logits, wave=self._wave(out.id, utts))
                labels[out.id] = self._labels(self.heads.probabilities(out.head_scores), top_k)
        elif short:
            for utt_id, text, alignment in self._short_outputs(short, options, progress):
                texts[utt_id], timed[utt_id] = text, alignment
        for u in utts:
            if u.id not in texts:
                texts[u.id], timed[u.id] = self.transcribe_file(u.audio, options)
                if self.heads is not None:  # label heads still read the whole file
                    wave = load_audio(u.audio, self.audio.sample_rate)
                    norm = normalize_waveform(wave) if self.audio.do_normalize else wave
                    labels[u.id] = self._labels(self.heads.of_wave(norm, options.chunk_s), top_k)
            found = timed.get(u.id, Alignment((), ()))
            yield Transcript(str(paths[int(u.id)]), texts[u.id], u.duration_s or 0.0,
                             labels.get(u.id, ()), found.words, found.chars)

    def _wave(self, utt_id: str, utts: Sequence[Utterance]) -> Waveform:
        """The audio of a short file again (batches do not keep it), for the word edges."""
        return load_audio(utts[int(utt_id)].audio, self.audio.sample_rate)

    def _labels(self, probs: Sequence[npt.NDArray[np.float64]], k: int) -> tuple[LabelScores, ...]:
        return tuple(top_labels(s, p, k) for s, p in zip(self.run.label_sets, probs))


def evaluate_manifest(run: LoadedRun, manifest: str | Path, text_column: str | None = None,
                      batch_size: int = 8, progress: bool = True,
                      decoder: CTCDecoder | None = None) -> Evaluation:
    """Score every head of a loaded run on a manifest (transcripts normalised as in training;
    labels must be among the run's, else LabelError names the row); ``decoder``: greedy when
    None."""
    from wavtune.evaluation import evaluate
    from wavtune.manifest import read_manifest

    config = load_run_config(run.root)
    utts = with_durations(read_manifest(manifest))
    dataset = SpeechDataset(utts, run.audio, run.vocab, config.text.normalizer(),
                            text_column or config.data.text_column, label_sets=run.label_sets)
    return evaluate(run.model, dataset, batch_size, run.use_attention_mask, progress=progress,
                    decoder=decoder)
