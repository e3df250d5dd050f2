"""Transcribing audio with a finished run: files, folders or arrays; long audio in chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from wavtune.audio import AudioError, Waveform, load_audio, normalize_waveform
from wavtune.constants import DEFAULT_CHUNK_OVERLAP_S, DEFAULT_CHUNK_S
from wavtune.data import AudioSettings, SpeechDataset
from wavtune.decoding import GreedyDecoder
from wavtune.evaluation import iter_outputs
from wavtune.manifest import Utterance, with_durations
from wavtune.modeling import samples_per_frame
from wavtune.rundir import RunError, load_vocab

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".sph", ".nist", ".aiff", ".aif")


@dataclass(frozen=True)
class TranscribeOptions:
    """Long audio is cut into ``chunk_s`` windows that overlap by ``overlap_s`` on each side;
    only each window's centre is kept, so words at window edges get full context."""

    chunk_s: float = DEFAULT_CHUNK_S
    overlap_s: float = DEFAULT_CHUNK_OVERLAP_S
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.chunk_s <= 2 * self.overlap_s:
            raise ValueError(f"chunk_s ({self.chunk_s}) must be more than twice overlap_s "
                             f"({self.overlap_s})")


@dataclass(frozen=True)
class Transcript:
    """One transcribed input."""

    source: str  # file path, or the id given for an array
    text: str
    duration_s: float


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


class Recognizer:
    """A CTC run loaded for inference (greedy decoding)."""

    def __init__(self, run_dir: str | Path, device: str = "cpu") -> None:
        from transformers import AutoFeatureExtractor, AutoModelForCTC

        run_dir = Path(run_dir)
        if not (run_dir / "config.json").is_file():
            raise RunError(f"{run_dir}: no config.json; is this a finished wavtune run directory?")
        self.vocab = load_vocab(run_dir)
        self.model = AutoModelForCTC.from_pretrained(str(run_dir), use_safetensors=True).to(device)
        self.model.eval()
        fe = AutoFeatureExtractor.from_pretrained(str(run_dir))
        self.audio = AudioSettings(int(fe.sampling_rate), bool(fe.do_normalize))
        self.use_attention_mask = bool(fe.return_attention_mask)
        self.decoder = GreedyDecoder(self.vocab)
        self.samples_per_frame = samples_per_frame(self.model.config)
        self.device = device

    @torch.no_grad()
    def logits(self, wave: Waveform, options: TranscribeOptions = TranscribeOptions()
               ) -> npt.NDArray[np.float32]:
        """Frame scores ``[frames, vocab]`` of a (possibly long) normalised waveform."""
        sr = self.audio.sample_rate
        chunk, context = int(options.chunk_s * sr), int(options.overlap_s * sr)
        if len(wave) <= chunk:
            return self._forward(wave)
        step = chunk - 2 * context
        pieces = []
        start = 0
        while True:
            end = min(start + chunk, len(wave))
            out = self._forward(wave[start:end])
            left = 0 if start == 0 else round(context / self.samples_per_frame)
            right = 0 if end == len(wave) else round(context / self.samples_per_frame)
            pieces.append(out[left : len(out) - right])
            if end == len(wave):
                break
            start += step
        return np.concatenate(pieces, axis=0)

    def _forward(self, wave: Waveform) -> npt.NDArray[np.float32]:
        x = torch.from_numpy(np.ascontiguousarray(wave))[None].to(self.device)
        out = self.model(input_values=x).logits[0]  # [frames, vocab]
        scores: npt.NDArray[np.float32] = out.float().cpu().numpy()
        return scores

    def transcribe_array(self, wave: Waveform, options: TranscribeOptions = TranscribeOptions()
                         ) -> str:
        """Text of a mono waveform already at the model's sample rate."""
        if self.audio.do_normalize:
            wave = normalize_waveform(wave)
        return self.decoder.decode(self.logits(wave, options)).text

    def transcribe_files(self, paths: Sequence[Path], options: TranscribeOptions = TranscribeOptions(),
                         progress: bool = False) -> Iterator[Transcript]:
        """Transcripts of ``paths`` in input order; short files go in length-sorted batches."""
        utts = with_durations([Utterance(id=str(i), audio=p.resolve()) for i, p in enumerate(paths)])
        short = [u for u in utts if (u.duration_s or 0.0) <= options.chunk_s]
        texts: dict[str, str] = {}
        if short:
            dataset = SpeechDataset(short, self.audio)
            for out in iter_outputs(self.model, dataset, options.batch_size,
                                    self.use_attention_mask, progress=progress, desc="transcribe"):
                texts[out.id] = self.decoder.decode(out.logits).text
        for u in utts:
            if u.id not in texts:
                wave = load_audio(u.audio, self.audio.sample_rate)
                texts[u.id] = self.transcribe_array(wave, options)
            yield Transcript(str(paths[int(u.id)]), texts[u.id], u.duration_s or 0.0)
