"""Transcribing with an ONNX export through ONNX Runtime (CPU): the Recognizer interface, no torch
forward pass. Batching, long-audio streaming and decoding are the PyTorch Recognizer's own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wavtune.data.audio import Waveform
from wavtune.data.dataset import AudioSettings
from wavtune.data.frontend import FrontEnd
from wavtune.decode.settings import DecoderSettings
from wavtune.deploy.export import (
    INT8_FILE,
    MODEL_FILE,
    ExportError,
    OnnxMeta,
    export_folder,
    onnx_logits,
    require_onnxruntime,
)
from wavtune.infer.recognizer import Recognizer
from wavtune.model.families import front_end_of
from wavtune.run.directory import load_vocab


def session_options(threads: int = 0) -> Any:
    """ONNX Runtime options: all graph optimisations; ``threads`` intra-op threads (0: ORT's
    default, one per physical core)."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(0, threads)
    options.inter_op_num_threads = 1  # one graph branch at a time: the threads go to the ops
    return options


class OnnxRecognizer(Recognizer):
    """A run's ONNX export (``wavtune export RUN --onnx``) loaded for CTC transcription.
    A multi-task run's export is its CTC branch only: no labels come back."""

    def __init__(self, run_dir: str | Path, int8: bool = False, threads: int = 0,
                 decoding: DecoderSettings | None = None) -> None:
        ort = require_onnxruntime()
        folder = export_folder(run_dir)
        path = folder / (INT8_FILE if int8 else MODEL_FILE)
        if not path.is_file():
            flag = " --int8" if int8 else ""
            raise ExportError(f"{path}: not exported; run 'wavtune export {run_dir} --onnx{flag}'")
        self.meta = OnnxMeta.load(folder)
        self.session = ort.InferenceSession(str(path), session_options(threads),
                                            providers=["CPUExecutionProvider"])
        self.vocab = load_vocab(folder)
        self.audio = AudioSettings(self.meta.sample_rate, self.meta.do_normalize,
                                   export_front_end(folder, self.meta))
        self.use_attention_mask = self.meta.use_attention_mask
        self.decoder = self._decoder(decoding)
        self.samples_per_frame = self.meta.samples_per_frame
        self.device = "cpu"
        self.heads = None

    def _forward(self, wave: Waveform) -> npt.NDArray[np.float32]:
        return self.forward_batch([wave])[0]

    def forward_batch(self, waves: Sequence[Waveform]) -> list[npt.NDArray[np.float32]]:
        """Frame scores (``[frames, vocab]``, padding frames removed) of normalised waveforms
        run as one padded batch (one at a time for a padding-sensitive family)."""
        return onnx_logits(self.session, self.audio.front_end, list(waves))


def export_front_end(folder: Path, meta: OnnxMeta) -> FrontEnd:
    """The front end of an export: the family registry's, from the export's config and feature
    extractor; an export without config.json (older wavtune) is a waveform one."""
    if not (folder / "config.json").is_file():
        return FrontEnd(use_attention_mask=meta.use_attention_mask, sample_rate=meta.sample_rate)
    from transformers import AutoConfig, AutoFeatureExtractor

    extractor = AutoFeatureExtractor.from_pretrained(str(folder))
    return front_end_of(AutoConfig.from_pretrained(str(folder)), extractor)
