"""ONNX export of a run's CTC model (fp32, and int8 by ONNX Runtime's dynamic quantisation), with a
parity check against PyTorch on generated audio.

The graph takes the model's front-end input under its own name (the family registry's word):
``input_values`` ``[batch, samples]`` float32 for waveform encoders, ``input_features`` ``[batch,
frames, 160]`` fbank for Wav2Vec2-BERT (computed in Python by the saved feature extractor, as
``pipeline()`` does), and ``attention_mask`` ``[batch, samples or frames]`` int64 (batch and time
dynamic); it returns ``logits`` ``[batch, frames, vocab]`` and ``frames`` ``[batch]`` (valid
output frames per row). A family whose padding leaks into real frames runs clips one at a time,
as in PyTorch. A multi-task run exports its CTC branch only: label heads are not in the graph.
The export folder gets the vocabulary, the model config, the feature extractor settings and
``onnx.json`` (settings, parity figures), so it runs without the run.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wavtune.data.audio import Waveform, normalize_waveform
from wavtune.data.frontend import FrontEnd
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


@dataclass(frozen=True)
class Parity:
    """One ONNX file against PyTorch on the probe clips (valid frames only)."""

    file: str
    max_abs_diff: float  # max |logit difference|
    frame_agreement: float  # share of frames with the same best id
    same_transcripts: bool  # greedy transcripts of every probe clip equal
    clips: int


@dataclass(frozen=True)
class OnnxMeta:
    """What running an export needs besides the graph and the vocabulary."""

    sample_rate: int  # Hz
    do_normalize: bool
    use_attention_mask: bool
    samples_per_frame: int
    opset: int
    source: str  # the run directory exported
    ctc_branch_only: bool  # True for a multi-task run: label heads were left out
    parity: tuple[Parity, ...] = ()
    input_name: str = "input_values"  # the graph's main input (input_features: fbank)
    padding_sensitive: bool = False  # True: clips run one at a time (the family registry's word)

    def save(self, folder: Path) -> None:
        (folder / META_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> OnnxMeta:
        raw: dict[str, Any] = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        raw["parity"] = tuple(Parity(**p) for p in raw.get("parity", ()))
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
    """Three clips (1.3, 2.7, 4.1 s) of tone bursts and chirps over noise: deterministic input
    with energy in the speech band, of different lengths so a batch has padding."""
    rng = np.random.default_rng(seed)
    clips = []
    for seconds in (1.3, 2.7, 4.1):
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


def _graph(model: Any, front: FrontEnd) -> Any:
    import torch

    class CTCGraph(torch.nn.Module):
        """logits and valid frame counts from padded front-end inputs and their mask."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.model(**front.model_inputs(inputs, attention_mask)).logits
            frames = self.model._get_feat_extract_output_lengths(attention_mask.sum(-1))
            return logits, frames.to(torch.int64)

    return CTCGraph().eval()


def _export_graph(graph: Any, example: tuple[Any, Any], path: Path, opset: int,
                  input_name: str) -> None:
    import torch

    with warnings.catch_warnings():
        # the TorchScript exporter (needed: no onnxscript dependency) warns it is legacy, and
        # tracing warns about Python branches on shapes; parity below checks the result
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph, example, str(path), input_names=[input_name, "attention_mask"],
            output_names=["logits", "frames"], opset_version=opset, dynamo=False,
            dynamic_axes={input_name: {0: "batch", 1: "time"},
                          "attention_mask": {0: "batch", 1: "time"},
                          "logits": {0: "batch", 1: "frames"}, "frames": {0: "batch"}})


def onnx_logits(session: Any, front: FrontEnd, waves: list[Waveform]
                ) -> list[npt.NDArray[np.float32]]:
    """Frame scores ``[frames, vocab]`` (padding frames removed) of normalised waveforms from an
    ONNX Runtime session of an export: one padded batch, or one clip at a time for a
    padding-sensitive family."""
    if len(waves) > 1 and front.padding_sensitive:
        return [onnx_logits(session, front, [w])[0] for w in waves]
    inputs, mask = front(waves)
    logits, frames = session.run(["logits", "frames"], {front.input_name: inputs.numpy(),
                                                        "attention_mask": mask.numpy()})
    return [np.asarray(logits[i, : int(n)], dtype=np.float32) for i, n in enumerate(frames)]


def quantize_int8(fp32: Path, int8: Path, num_heads: int, hidden_size: int) -> None:
    """Dynamic int8 quantisation (weights int8, activations quantised at run time) of the
    transformer's MatMuls and attention, after ONNX Runtime's transformer fusions (attention,
    skip layer norm, bias GELU) have cut the graph's node count about fourfold. The conv feature
    encoder stays fp32: ConvInteger was slower and lost frames on FSDD."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # both tools log every node they skip
    fused = int8.with_name(".fused-" + int8.name)
    try:
        optimize_model(str(fp32), model_type="bert", num_heads=num_heads,
                       hidden_size=hidden_size, opt_level=1).save_model_to_file(str(fused))
        # 7-bit weights (reduce_range): no u8 x s8 saturation on CPUs without VNNI, and on
        # FSDD the fewest flipped transcripts of the variants tried (per-channel, MatMul only)
        quantize_dynamic(str(fused), str(int8), weight_type=QuantType.QInt8, reduce_range=True,
                         op_types_to_quantize=["MatMul", "Gemm", "Attention"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)
        fused.unlink(missing_ok=True)


def check_parity(path: Path, reference: list[npt.NDArray[np.float32]], clips: list[Waveform],
                 decode: Any, front: FrontEnd) -> Parity:
    """Run ``path`` on ``clips`` (as the runtime batches them) against PyTorch's ``reference``."""
    ort = require_onnxruntime()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = onnx_logits(session, front, clips)
    if [len(o) for o in outputs] != [len(r) for r in reference]:
        raise ExportError(f"{path}: frame counts {[len(o) for o in outputs]} differ from "
                          f"PyTorch's {[len(r) for r in reference]}")
    diff = max(float(np.abs(o - r).max()) for o, r in zip(outputs, reference))
    same = sum(int((o.argmax(-1) == r.argmax(-1)).sum()) for o, r in zip(outputs, reference))
    total = sum(len(r) for r in reference)
    texts = all(decode(o) == decode(r) for o, r in zip(outputs, reference))
    return Parity(path.name, diff, same / max(total, 1), texts, len(clips))


def refuse_unexportable(config: Any, run: Path) -> None:
    """ExportError, before anything is traced, when the run's model family cannot export."""
    from wavtune.model.families import family_of

    found = family_of(config)
    if found.onnx_unsupported:
        raise ExportError(f"{run}: model.arch={found.name!r} cannot be exported to ONNX: "
                          f"{found.onnx_unsupported}")


def export_onnx(run_dir: str | Path, options: ExportOptions = ExportOptions()) -> ExportResult:
    """Export ``run_dir``'s CTC model to ONNX (and int8), check parity, write the folder."""
    from wavtune.infer.recognizer import Recognizer
    from wavtune.model.multitask import ctc_branch

    require_onnxruntime()
    run = Path(run_dir)
    rec = Recognizer(run)  # RunError for a classification run: no CTC head to export
    refuse_unexportable(rec.model.config, run)
    branch_only = rec.run.kind == "multitask"
    model = ctc_branch(rec.model) if branch_only else rec.model
    folder = options.out or run / EXPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    front = rec.audio.front_end
    clips = probe_audio(rec.audio.sample_rate)
    reference = rec.forward_batch(clips)

    def decode(scores: npt.NDArray[np.float32]) -> str:
        return rec.decoder.decode(scores).text

    fp32 = folder / MODEL_FILE
    parity = [_export_fp32(model, front, clips, fp32, options, reference, decode)]
    files = [fp32]
    if options.int8:
        int8 = folder / INT8_FILE
        files.append(int8)
        parity.append(_export_int8(model, front, clips, fp32, int8, options, reference, decode))
    rec.vocab.save(folder)
    shutil.copy(run / "preprocessor_config.json", folder / "preprocessor_config.json")
    model.config.to_json_file(str(folder / "config.json"))  # the front end is read from it
    meta = OnnxMeta(rec.audio.sample_rate, rec.audio.do_normalize, rec.use_attention_mask,
                    rec.samples_per_frame, options.opset, str(run), branch_only, tuple(parity),
                    front.input_name, front.padding_sensitive)
    meta.save(folder)
    return ExportResult(folder, tuple(files), meta)


def _export_fp32(model: Any, front: FrontEnd, clips: list[Waveform], fp32: Path,
                 options: ExportOptions, reference: list[npt.NDArray[np.float32]],
                 decode: Any) -> Parity:
    """Trace ``model`` into ``fp32`` and check it against PyTorch's ``reference``."""
    # eager attention exports as plain MatMul/Softmax, which ONNX Runtime fuses into one
    # Attention op (the SDPA export it cannot); parity below compares with PyTorch's default
    model.set_attn_implementation("eager")
    # trace with a padded row, or transformers' "mask is all ones" shortcut is baked in
    example = front(clips[:2])
    _export_graph(_graph(model, front), example, fp32, options.opset, front.input_name)
    parity = check_parity(fp32, reference, clips, decode, front)
    if parity.max_abs_diff > options.atol or not parity.same_transcripts:
        raise ExportError(f"{fp32}: ONNX fp32 differs from PyTorch (max |logit diff| "
                          f"{parity.max_abs_diff:.2e} > {options.atol:g}, or transcripts "
                          f"differ: {parity.same_transcripts=}); try another --opset")
    return parity


def _export_int8(model: Any, front: FrontEnd, clips: list[Waveform], fp32: Path, int8: Path,
                 options: ExportOptions, reference: list[npt.NDArray[np.float32]],
                 decode: Any) -> Parity:
    """Quantise ``fp32`` into ``int8`` and check how many frames keep their best id."""
    from wavtune.model.families import encoder_config

    encoder = encoder_config(model.config)
    quantize_int8(fp32, int8, int(encoder.num_attention_heads), int(encoder.hidden_size))
    parity = check_parity(int8, reference, clips, decode, front)
    if parity.frame_agreement < options.min_int8_agreement:
        raise ExportError(f"{int8}: int8 keeps the best id of only "
                          f"{parity.frame_agreement:.1%} of frames (< "
                          f"{options.min_int8_agreement:.0%}); use the fp32 model")
    return parity
