"""ONNX export of a run's model, every head of it (CTC, classification, multi-task; fp32, and
int8 by ONNX Runtime's dynamic quantisation), with a parity check against PyTorch on generated
audio.

The graph (:mod:`wavtune.deploy.onnx_graph`) takes the model's front-end input under its own name
(the family registry's word): ``input_values`` ``[batch, samples]`` float32 for waveform encoders,
``input_features`` ``[batch, frames, 160]`` fbank for Wav2Vec2-BERT (computed in Python by the
saved feature extractor, as ``pipeline()`` does), and ``attention_mask``; it returns ``logits``
and ``frames`` for a CTC head and ``class_logits.<column>`` ``[batch, labels]`` for each label
head. A family whose padding leaks into real frames runs clips one at a time, as in PyTorch.
The export folder gets the vocabulary (with a CTC head), the model config, the feature extractor
settings and ``onnx.json`` (settings, label heads, parity figures), so it runs without the run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wavtune.data.audio import Waveform, normalize_waveform
from wavtune.data.frontend import FrontEnd
from wavtune.decode.greedy import GreedyDecoder
from wavtune.infer.forward import ClipScores, Forward, clip_scores
from wavtune.run.directory import RunError

EXPORT_DIR = "onnx"  # default export folder inside the run directory
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
META_FILE = "onnx.json"
DEFAULT_OPSET = 17
FP32_ATOL = 1e-3  # max |logit difference| allowed between ONNX fp32 and PyTorch
INT8_MIN_AGREEMENT = 0.9  # share of frames whose best id int8 must keep
INSTALL_HINT = 'pip install "wavtune[onnx]"'


class ExportError(RunError):
    """An export cannot be written, loaded or trusted; the message says why and what to run."""


@dataclass(frozen=True)
class ExportOptions:
    out: Path | None = None  # default: RUN/onnx
    int8: bool = False
    opset: int = DEFAULT_OPSET
    atol: float = FP32_ATOL
    min_int8_agreement: float = INT8_MIN_AGREEMENT
    int8_scheme: str = ""  # a key of deploy.int8.INT8_SCHEMES ('': DEFAULT_INT8_SCHEME)


@dataclass(frozen=True)
class Parity:
    """One ONNX file against PyTorch on the probe clips (CTC: valid frames only); a field of a
    head the model does not have is None."""

    file: str
    max_abs_diff: float | None  # max |CTC logit difference|
    frame_agreement: float | None  # share of frames with the same best id
    same_transcripts: bool | None  # greedy transcripts of every probe clip equal
    clips: int
    label_max_abs_diff: float | None = None  # max |class logit difference|, every label head
    label_agreement: float | None = None  # share of (clip, head) pairs with the same best label


@dataclass(frozen=True)
class ExportedHead:
    """A label head in the graph: output ``class_logits.<column>``, its labels in id order."""

    column: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class OnnxMeta:
    """What running an export needs besides the graph and the vocabulary."""

    sample_rate: int  # Hz
    do_normalize: bool
    use_attention_mask: bool
    samples_per_frame: int
    opset: int
    source: str  # the run directory exported
    ctc_branch_only: bool  # True in exports before label heads were exported (CTC branch only)
    parity: tuple[Parity, ...] = ()
    input_name: str = "input_values"  # the graph's main input (input_features: fbank)
    padding_sensitive: bool = False  # True: clips run one at a time (the family registry's word)
    kind: str = "ctc"  # ctc | classify | multitask: the run's task (which outputs the graph has)
    heads: tuple[ExportedHead, ...] = ()  # label heads, in output order
    int8_scheme: str = ""  # how model.int8.onnx was quantised ('': no int8 model, or older)

    def save(self, folder: Path) -> None:
        (folder / META_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> OnnxMeta:
        raw: dict[str, Any] = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        raw["parity"] = tuple(Parity(**p) for p in raw.get("parity", ()))
        raw["heads"] = tuple(ExportedHead(h["column"], tuple(h["labels"]))
                             for h in raw.get("heads", ()))
        return cls(**raw)


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    files: tuple[Path, ...]
    meta: OnnxMeta


def export_folder(run_or_export: str | Path) -> Path:
    """The export folder of a run (``RUN/onnx``), or the folder itself when it is an export."""
    path = Path(run_or_export)
    for folder in (path, path / EXPORT_DIR):
        if (folder / META_FILE).is_file():
            return folder
    raise ExportError(f"{path}: no ONNX export found (no {META_FILE} in it or in "
                      f"{path / EXPORT_DIR}); run 'wavtune export {path} --onnx' first")


def require_onnxruntime() -> Any:
    """The onnxruntime module, or ExportError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ExportError(f"ONNX Runtime is not installed; {INSTALL_HINT}") from None
    return onnxruntime


def probe_audio(sample_rate: int, seed: int = 0) -> list[Waveform]:
    """Three clips (1.3, 2.71, 4.1 s) of tone bursts and chirps over noise: deterministic input
    with energy in the speech band, of different lengths so a batch has padding."""
    rng = np.random.default_rng(seed)
    clips = []
    # 2.71 s: an odd frame count at 20 ms frames (135; the others' are even), so the trace (the
    # first two clips, padded) runs SEW's branch that pads an odd count back after upsampling
    for seconds in (1.3, 2.71, 4.1):
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        wave = 0.01 * rng.standard_normal(len(t))
        for _ in range(int(seconds * 4)):
            start, length = rng.uniform(0, seconds - 0.2), rng.uniform(0.08, 0.25)
            f0, f1 = rng.uniform(150, min(3500, sample_rate / 2.5), size=2)
            part = (t >= start) & (t < start + length)
            phase = (
                2 * np.pi * (f0 + (f1 - f0) * (t[part] - start) / length / 2) * (t[part] - start)
            )
            wave[part] += 0.4 * np.hanning(int(part.sum())) * np.sin(phase)
        clips.append(normalize_waveform(wave.astype(np.float32)))
    return clips


def check_parity(path: Path, reference: list[ClipScores], clips: list[Waveform],
                 decode: Callable[[npt.NDArray[np.float32]], str] | None, front: FrontEnd,
                 forward: Forward) -> Parity:
    """Run ``path`` on ``clips`` (as the runtime batches them) against PyTorch's ``reference``
    (``forward``: the PyTorch one, whose kind and config the ONNX one shares)."""
    from wavtune.deploy.onnx_graph import OnnxForward

    ort = require_onnxruntime()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = clip_scores(OnnxForward(session, forward.kind, forward.config), front, clips)
    parity = Parity(path.name, None, None, None, len(clips))
    if decode is not None:
        parity = _ctc_parity(path, parity, [o.frames for o in outputs],
                             [r.frames for r in reference], decode)
    if reference[0].heads:
        pairs = [(o, r) for out, ref in zip(outputs, reference)
                 for o, r in zip(out.heads, ref.heads, strict=True)]
        diff = max(float(np.abs(o - r).max()) for o, r in pairs)
        same = sum(int(o.argmax() == r.argmax()) for o, r in pairs) / len(pairs)
        parity = replace(parity, label_max_abs_diff=diff, label_agreement=same)
    return parity


def _ctc_parity(path: Path, parity: Parity, outputs: list[Any], reference: list[Any],
                decode: Callable[[npt.NDArray[np.float32]], str]) -> Parity:
    """``parity`` with the CTC head's figures: logit difference, frame agreement, transcripts."""
    if [len(o) for o in outputs] != [len(r) for r in reference]:
        raise ExportError(f"{path}: frame counts {[len(o) for o in outputs]} differ from "
                          f"PyTorch's {[len(r) for r in reference]}")
    diff = max(float(np.abs(o - r).max()) for o, r in zip(outputs, reference))
    same = sum(int((o.argmax(-1) == r.argmax(-1)).sum()) for o, r in zip(outputs, reference))
    total = sum(len(r) for r in reference)
    texts = all(decode(o) == decode(r) for o, r in zip(outputs, reference))
    return replace(parity, max_abs_diff=diff, frame_agreement=same / max(total, 1),
                   same_transcripts=texts)


def refuse_unexportable(config: Any, run: Path) -> None:
    """ExportError, before anything is traced, when the run's model family cannot export."""
    from wavtune.model.families import family_of

    found = family_of(config)
    if found.onnx_unsupported:
        raise ExportError(f"{run}: model.arch={found.name!r} cannot be exported to ONNX: "
                          f"{found.onnx_unsupported}")


@dataclass(frozen=True)
class _Probe:
    """The generated clips, PyTorch's scores of them, and how to compare an export's."""

    clips: list[Waveform]
    reference: list[ClipScores]
    decode: Callable[[npt.NDArray[np.float32]], str] | None  # greedy text; None: no CTC head
    front: FrontEnd
    forward: Forward

    def parity(self, path: Path) -> Parity:
        return check_parity(path, self.reference, self.clips, self.decode, self.front,
                            self.forward)


def export_onnx(run_dir: str | Path, options: ExportOptions = ExportOptions()) -> ExportResult:
    """Export ``run_dir``'s model (every head) to ONNX (and int8), check parity, write the
    folder."""
    from wavtune.deploy.int8 import DEFAULT_INT8_SCHEME
    from wavtune.deploy.onnx_graph import output_names
    from wavtune.infer.loaded import LoadedRun

    require_onnxruntime()
    run = Path(run_dir)
    loaded = LoadedRun(run)
    refuse_unexportable(loaded.model.config, run)
    folder = options.out or run / EXPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    front = loaded.audio.front_end
    clips = probe_audio(loaded.audio.sample_rate)
    decode = None
    if loaded.vocab is not None:
        greedy = GreedyDecoder(loaded.vocab)

        def decode(scores: npt.NDArray[np.float32]) -> str:
            return greedy.decode(scores).text
    probe = _Probe(clips, clip_scores(loaded.forward, front, clips), decode, front,
                   loaded.forward)
    heads = tuple(ExportedHead(s.column, s.labels) for s in loaded.label_sets)
    outputs = output_names(loaded.vocab is not None, [h.column for h in heads])
    fp32 = folder / MODEL_FILE
    parity = [_export_fp32(loaded.model, probe, fp32, options, outputs)]
    files = [fp32]
    scheme = ""
    if options.int8:
        int8 = folder / INT8_FILE
        files.append(int8)
        scheme = options.int8_scheme or DEFAULT_INT8_SCHEME
        parity.append(_export_int8(loaded.model, probe, fp32, int8, options, scheme))
    if loaded.vocab is not None:
        loaded.vocab.save(folder)
    shutil.copy(run / "preprocessor_config.json", folder / "preprocessor_config.json")
    loaded.model.config.to_json_file(str(folder / "config.json"))  # the front end is read from it
    meta = OnnxMeta(loaded.audio.sample_rate, loaded.audio.do_normalize,
                    loaded.use_attention_mask, loaded.samples_per_frame, options.opset, str(run),
                    False, tuple(parity), front.input_name, front.padding_sensitive,
                    loaded.kind, heads, scheme)
    meta.save(folder)
    return ExportResult(folder, tuple(files), meta)


def _export_fp32(model: Any, probe: _Probe, fp32: Path, options: ExportOptions,
                 outputs: list[str]) -> Parity:
    """Trace ``model`` into ``fp32`` and check it against PyTorch's ``reference``."""
    from wavtune.deploy.onnx_graph import ExportGraph, export_graph

    # eager attention exports as plain MatMul/Softmax, which ONNX Runtime fuses into one
    # Attention op (the SDPA export it cannot); parity below compares with PyTorch's default
    model.set_attn_implementation("eager")
    # trace with a padded row, or transformers' "mask is all ones" shortcut is baked in
    example = probe.front(probe.clips[:2])
    export_graph(ExportGraph(model, probe.front).eval(), example, fp32, options.opset, outputs)
    parity = probe.parity(fp32)
    ctc_ok = parity.max_abs_diff is None or (parity.max_abs_diff <= options.atol
                                             and bool(parity.same_transcripts))
    labels_ok = parity.label_max_abs_diff is None or (
        parity.label_max_abs_diff <= options.atol and parity.label_agreement == 1.0)
    if not (ctc_ok and labels_ok):
        raise ExportError(f"{fp32}: ONNX fp32 differs from PyTorch (max |logit diff| "
                          f"{parity.max_abs_diff} CTC, {parity.label_max_abs_diff} labels, "
                          f"> {options.atol:g}, or transcripts/labels differ: "
                          f"{parity.same_transcripts=}, {parity.label_agreement=}); try another "
                          f"--opset")
    return parity


def _export_int8(model: Any, probe: _Probe, fp32: Path, int8: Path, options: ExportOptions,
                 scheme: str) -> Parity:
    """Quantise ``fp32`` into ``int8`` as ``scheme`` (a key of ``INT8_SCHEMES``) says and
    check how many frames (labels) keep their best id."""
    from wavtune.deploy.int8 import int8_scheme, quantize_int8
    from wavtune.model.families import encoder_config

    try:
        chosen = int8_scheme(scheme)
    except ValueError as err:
        raise ExportError(f"{int8}: {err}") from None
    encoder = encoder_config(model.config)
    quantize_int8(fp32, int8, int(encoder.num_attention_heads), int(encoder.hidden_size),
                  chosen)
    parity = probe.parity(int8)
    for name, kept in (("frames", parity.frame_agreement), ("label predictions",
                                                            parity.label_agreement)):
        if kept is not None and kept < options.min_int8_agreement:
            raise ExportError(f"{int8}: int8 keeps the best id of only {kept:.1%} of {name} "
                              f"(< {options.min_int8_agreement:.0%}); use the fp32 model")
    return parity
