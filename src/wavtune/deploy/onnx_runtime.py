"""Running an ONNX export through ONNX Runtime (CPU), no torch forward pass: transcription
(:class:`OnnxRecognizer`, with a multi-task run's labels), classification
(:class:`OnnxClassifier`) and evaluation (:func:`load_onnx_run` for ``evaluate_run``). Batching,
long-audio streaming, decoding, label probabilities and scoring are the PyTorch path's own:
only the forward pass differs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import PretrainedConfig

from wavtune.data.dataset import AudioSettings
from wavtune.data.frontend import FrontEnd
from wavtune.data.labels import LabelSet
from wavtune.decode.settings import DecoderSettings
from wavtune.deploy.export import (
    INT8_FILE,
    MODEL_FILE,
    ExportError,
    OnnxMeta,
    export_folder,
    require_onnxruntime,
)
from wavtune.deploy.onnx_graph import OnnxForward
from wavtune.infer.classifier import Classifier
from wavtune.infer.loaded import LoadedRun
from wavtune.infer.recognizer import Recognizer
from wavtune.model.build import ModelKind
from wavtune.model.families import front_end_of
from wavtune.run.directory import load_vocab

KINDS: dict[str, ModelKind] = {"ctc": "ctc", "classify": "classify", "multitask": "multitask"}


# ONNX Runtime's graph optimisation levels, by the names its docs use
GRAPH_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def session_options(threads: int = 0, graph_level: str = "all") -> Any:
    """ONNX Runtime options: graph optimisations at ``graph_level`` (a key of GRAPH_LEVELS;
    default all); ``threads`` intra-op threads (0: ORT's default, one per physical core)."""
    ort = require_onnxruntime()
    if graph_level not in GRAPH_LEVELS:
        raise ExportError(f"unknown ONNX Runtime graph optimisation level {graph_level!r}; "
                          f"choose one of {', '.join(GRAPH_LEVELS)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                               GRAPH_LEVELS[graph_level])
    options.intra_op_num_threads = max(0, threads)
    options.inter_op_num_threads = 1  # one graph branch at a time: the threads go to the ops
    return options


class OnnxRun(LoadedRun):
    """A run's ONNX export (``wavtune export RUN --onnx``) loaded as a :class:`LoadedRun` whose
    forward pass is ONNX Runtime's (there is no torch ``model``): its vocabulary (with a CTC
    head), label heads and input settings come from the export folder; ``graph_level``: ONNX
    Runtime's graph optimisations (a key of GRAPH_LEVELS)."""

    def __init__(self, run_dir: str | Path, int8: bool = False, threads: int = 0,
                 graph_level: str = "all") -> None:
        ort = require_onnxruntime()
        folder = export_folder(run_dir)
        path = folder / (INT8_FILE if int8 else MODEL_FILE)
        if not path.is_file():
            flag = " --int8" if int8 else ""
            raise ExportError(f"{path}: not exported; run 'wavtune export {run_dir} --onnx{flag}'")
        self.meta = meta = OnnxMeta.load(folder)
        session = ort.InferenceSession(str(path), session_options(threads, graph_level),
                                       providers=["CPUExecutionProvider"])
        self.root = Path(run_dir)
        self.kind: ModelKind = KINDS.get(meta.kind, "ctc")
        self.forward = onnx = OnnxForward(session, self.kind, export_config(folder))
        self.vocab = load_vocab(folder) if onnx.has_ctc else None
        self.label_sets = tuple(LabelSet(h.column, h.labels, (0,) * len(h.labels))
                                for h in meta.heads)
        self.audio = AudioSettings(meta.sample_rate, meta.do_normalize,
                                   export_front_end(folder, meta))
        self.use_attention_mask = meta.use_attention_mask
        self.samples_per_frame = meta.samples_per_frame
        self.device = "cpu"


class OnnxRecognizer(Recognizer):
    """A CTC or multi-task run's ONNX export loaded for transcription (and a multi-task run's
    labels, from the same graph)."""

    def __init__(self, run_dir: str | Path, int8: bool = False, threads: int = 0,
                 decoding: DecoderSettings | None = None, graph_level: str = "all") -> None:
        run = require_ctc(OnnxRun(run_dir, int8, threads, graph_level), run_dir)
        self.meta = run.meta
        self._attach(run, run_dir, decoding)


def require_ctc(run: OnnxRun, run_dir: str | Path) -> OnnxRun:
    """``run``, or ExportError when it has no CTC output (an export made before multi-task
    runs exported their label heads had its CTC branch only)."""
    if run.vocab is None:
        raise ExportError(f"{run_dir}: the ONNX export has no CTC output to transcribe with "
                          f"(task {run.meta.kind}); use 'wavtune classify {run_dir} --backend "
                          f"onnx'")
    return run


class OnnxClassifier(Classifier):
    """A classification or multi-task run's ONNX export loaded to label audio."""

    def __init__(self, run_dir: str | Path, int8: bool = False, threads: int = 0) -> None:
        self._attach(OnnxRun(run_dir, int8, threads), run_dir)


def export_config(folder: Path) -> PretrainedConfig:
    """The exported model's config (CTC blank, loss weights, encoder); an export without
    config.json (older wavtune, CTC only) gets one with the vocabulary's blank."""
    if not (folder / "config.json").is_file():
        bare = PretrainedConfig()
        bare.pad_token_id = load_vocab(folder).pad_id
        return bare
    from transformers import AutoConfig

    from wavtune.model.multitask import register

    register()  # a multi-task config is wavtune's own model type
    config: PretrainedConfig = AutoConfig.from_pretrained(str(folder))
    return config


def export_front_end(folder: Path, meta: OnnxMeta) -> FrontEnd:
    """The front end of an export: the family registry's, from the export's config and feature
    extractor; an export without config.json (older wavtune) is a waveform one."""
    if not (folder / "config.json").is_file():
        return FrontEnd(use_attention_mask=meta.use_attention_mask, sample_rate=meta.sample_rate)
    from transformers import AutoFeatureExtractor

    extractor = AutoFeatureExtractor.from_pretrained(str(folder))
    return front_end_of(export_config(folder), extractor)
