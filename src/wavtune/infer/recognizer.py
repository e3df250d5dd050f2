"""Transcribing audio with a finished CTC or multi-task run: files, folders or arrays; short
files in length-sorted batches, long audio streamed in overlapping windows, with word timings.
A multi-task run also labels what it transcribes, in the same forward pass."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from wavtune.data.audio import Waveform, load_audio, normalize_waveform
from wavtune.data.dataset import SpeechDataset
from wavtune.data.manifest import Utterance, with_durations
from wavtune.decode.base import CTCDecoder
from wavtune.decode.greedy import GreedyDecoder
from wavtune.decode.registry import make_decoder
from wavtune.decode.settings import DecoderSettings
from wavtune.infer.classifier import LabelHeads, top_labels
from wavtune.infer.evaluation import iter_forward
from wavtune.infer.forward import clip_scores
from wavtune.infer.loaded import LoadedRun
from wavtune.infer.timestamps import Alignment, align, snap_to_speech
from wavtune.infer.types import LabelScores, TranscribeOptions, Transcript
from wavtune.infer.windows import (
    iter_file_blocks,
    iter_windows,
    normalized,
    plan_batches,
    stream_stats,
    trim,
)
from wavtune.run.directory import RunError


class Recognizer:
    """A CTC or multi-task run loaded for inference (greedy decoding unless ``decoding`` says
    otherwise); a multi-task run also labels what it transcribes."""

    def __init__(self, run_dir: str | Path, device: str = "cpu",
                 decoding: DecoderSettings | None = None, adapter: str | None = None) -> None:
        run = LoadedRun(run_dir, device)
        if adapter:  # an MMS adapter by name (RUN/adapter.<name>.safetensors)
            run.use_adapter(adapter)
        self._attach(run, run_dir, decoding)
        self.model = run.model

    def _attach(self, run: LoadedRun, run_dir: str | Path,
                decoding: DecoderSettings | None) -> None:
        """Use ``run``'s forward pass (PyTorch here, ONNX Runtime in an OnnxRecognizer)."""
        if run.vocab is None:
            raise RunError(f"{run_dir}: a classification run has no CTC head to transcribe with; "
                           f"use 'wavtune classify'")
        self.run = run
        self.vocab = run.vocab
        self.audio = run.audio
        self.use_attention_mask = run.use_attention_mask
        self.decoder = self._decoder(decoding)
        self.samples_per_frame = run.samples_per_frame
        self.device = run.device
        self.heads = LabelHeads(run) if run.label_sets else None

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

    def iter_logits(
        self, blocks: Iterable[Waveform], options: TranscribeOptions = TranscribeOptions()
    ) -> Iterator[tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]]:
        """Stitched frame scores of a normalised stream of blocks, one ``([frames, vocab],
        [frames] start times in s)`` piece per ``chunk_s`` window (its centre), in order."""
        sr = self.audio.sample_rate
        chunk, context = int(options.chunk_s * sr), int(options.overlap_s * sr)
        context_frames = round(context / self.samples_per_frame)
        for window in iter_windows(blocks, chunk, context):
            piece = trim(self._forward(window.samples), window, context_frames)
            left = 0 if window.first else context_frames
            starts = (
                window.start / sr + (left + np.arange(len(piece), dtype=np.float64)) * self.frame_s
            )
            yield piece, starts.astype(np.float64)

    def _forward(self, wave: Waveform) -> npt.NDArray[np.float32]:
        return self.forward_batch([wave])[0]

    def forward_batch(self, waves: Sequence[Waveform]) -> list[npt.NDArray[np.float32]]:
        """Frame scores (``[frames, vocab]``, padding frames removed) of normalised waveforms
        run as one zero-padded batch (one at a time for a padding-sensitive family)."""
        return [s.frames for s in clip_scores(self.run.forward, self.audio.front_end, waves)
                if s.frames is not None]

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

    def transcripts_of_short_arrays(self, waves: Sequence[Waveform], top_ks: Sequence[int],
                                    options: TranscribeOptions = TranscribeOptions()
                                    ) -> list[Transcript]:
        """:meth:`transcript_of_array` of clips no longer than one window (``chunk_s``), run as
        one length-sorted, padded batch (the service's micro-batches); results in input order."""
        norms = [normalize_waveform(w) if self.audio.do_normalize else w for w in waves]
        order = sorted(range(len(norms)), key=lambda i: len(norms[i]))
        sorted_logits = self.forward_batch([norms[i] for i in order])
        logits: list[npt.NDArray[np.float32]] = [sorted_logits[0]] * len(norms)
        for rank, i in enumerate(order):
            logits[i] = sorted_logits[rank]
        out = []
        for wave, norm, scores, k in zip(waves, norms, logits, top_ks):
            timed = self.align(
                scores, np.arange(len(scores), dtype=np.float64) * self.frame_s, wave
            )
            labels = (self._labels(self.heads.of_wave(norm, options.chunk_s), k)
                      if self.heads is not None else ())
            out.append(Transcript("upload", self.decoder.decode(scores).text,
                                  len(wave) / self.audio.sample_rate, labels, timed.words,
                                  timed.chars))
        return out

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
            blocks = normalized(
                iter_file_blocks(path, sr), *stream_stats(iter_file_blocks(path, sr))
            )
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

    def transcribe_files(
        self,
        paths: Sequence[Path],
        options: TranscribeOptions = TranscribeOptions(),
        progress: bool = False,
        top_k: int = 1,
    ) -> Iterator[Transcript]:
        """Transcripts of ``paths`` in input order; short files go in length-sorted batches,
        long ones are streamed. A multi-task run adds each label head's ``top_k`` labels."""
        utts = with_durations(
            [Utterance(id=str(i), audio=p.resolve()) for i, p in enumerate(paths)]
        )
        short = [u for u in utts if (u.duration_s or 0.0) <= options.chunk_s]
        texts: dict[str, str] = {}
        timed: dict[str, Alignment] = {}
        labels: dict[str, tuple[LabelScores, ...]] = {}
        if short and self.heads is not None:
            dataset = SpeechDataset(short, self.audio)
            for out in iter_forward(self.run.forward, dataset, options.batch_size,
                                    progress=progress, desc="transcribe"):
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
