"""What ``benchmarks/inference.py --preset base`` measures besides the FSDD comparison: a
random-init run of a preset's size, generated clips, and the ONNX Runtime variants the field
uses (int8 schemes, ONNX Runtime graph optimisation levels), each loaded as a recognizer.

A random-init model has no accuracy to keep, so its int8 exports skip the frame-agreement gate;
the accuracy of each int8 scheme is measured on the trained FSDD model instead
(``inference.py RUN MANIFEST --int8-schemes ...``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wavtune.data.audio import Waveform, normalize_waveform
from wavtune.infer.recognizer import Recognizer

# a layer-norm conv feature encoder (as wav2vec2-large-lv60 and XLS-R have) takes an attention
# mask and batches exactly; the base preset's group-norm one (wav2vec2-base's) is padding
# sensitive, so wavtune runs its clips one at a time and "batched" would measure nothing
BATCHABLE = "model.overrides={feat_extract_norm: layer, do_stable_layer_norm: true}"
LETTERS = "abcdefghijklmnopqrstuvwxyz '"


@dataclass(frozen=True)
class Variant:
    """One ONNX backend: which file (fp32, or int8 by ``scheme``) at which ORT graph level."""

    name: str
    scheme: str = ""  # a key of INT8_SCHEMES; '' = the fp32 model
    graph_level: str = "all"


def random_run(folder: Path, preset: str, sample_rate: int = 16000, seed: int = 0) -> Path:
    """A run folder holding a random-init CTC model of ``preset`` (letters vocabulary), as
    ``wavtune train`` would publish it, without training."""
    import torch

    from wavtune.config import load_config
    from wavtune.data.vocab import Vocabulary
    from wavtune.model.build import build_model
    from wavtune.run.directory import prepare_run_dir
    from wavtune.train.checkpoint import save_model

    config = load_config(None, [f"model.preset={preset}", f"model.sample_rate={sample_rate}",
                                BATCHABLE, f"train.output_dir={folder}"])
    vocab = Vocabulary.build([LETTERS])
    torch.manual_seed(seed)
    built = build_model(config, vocab)
    prepare_run_dir(folder, config, False)
    vocab.save(folder)
    built.feature_extractor.save_pretrained(str(folder))
    save_model(built.model, folder)
    return folder


def generated_clips(count: int, shortest_s: float, longest_s: float, sample_rate: int,
                    seed: int = 0) -> list[Waveform]:
    """``count`` normalised clips, durations evenly spread over [shortest_s, longest_s] in a
    seeded random order: tone bursts over noise (a random model's speed does not depend on what
    it hears)."""
    rng = np.random.default_rng(seed)
    durations = rng.permutation(np.linspace(shortest_s, longest_s, count))
    clips = []
    for seconds in durations:
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        wave = 0.01 * rng.standard_normal(len(t))
        for start in np.arange(0.0, seconds - 0.3, 0.25):
            part = (t >= start) & (t < start + 0.2)
            wave[part] += 0.3 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t[part])
        clips.append(normalize_waveform(wave.astype(np.float32)))
    return clips


def int8_export(export: Path, scheme: str, num_heads: int, hidden_size: int) -> Path:
    """A copy of the export folder ``export`` (its meta files, not its graphs) whose
    ``model.int8.onnx`` is quantised by ``scheme``."""
    from wavtune.deploy.export import INT8_FILE, MODEL_FILE
    from wavtune.deploy.int8 import int8_scheme, quantize_int8

    folder = export.with_name(f"{export.name}-int8-{scheme}")
    folder.mkdir(exist_ok=True)
    for path in export.iterdir():
        if path.is_file() and path.suffix != ".onnx":
            shutil.copy(path, folder / path.name)
    quantize_int8(export / MODEL_FILE, folder / INT8_FILE, num_heads, hidden_size,
                  int8_scheme(scheme))
    return folder


def onnx_recognizers(export: Path, variants: Sequence[Variant], threads: int, num_heads: int,
                     hidden_size: int) -> dict[str, Callable[[], Recognizer]]:
    """Each variant of the fp32 export folder ``export`` as a function loading its recognizer
    (an int8 file is quantised on the first load of its scheme): one session at a time, since
    each holds its weights and a memory arena sized by the largest batch it ran (eight base-size
    sessions at once ran a 24 GB machine out of memory)."""
    from wavtune.deploy.onnx_runtime import OnnxRecognizer

    folders: dict[str, Path] = {"": export}

    def loader(v: Variant) -> Callable[[], Recognizer]:
        def load() -> Recognizer:
            if v.scheme not in folders:
                folders[v.scheme] = int8_export(export, v.scheme, num_heads, hidden_size)
            return OnnxRecognizer(folders[v.scheme], int8=bool(v.scheme), threads=threads,
                                  graph_level=v.graph_level)
        return load

    return {v.name: loader(v) for v in variants}


def parse_variants(text: str) -> list[Variant]:
    """``fp32,fused,matmul@basic,...``: fp32 or an int8 scheme, optionally ``@`` an ORT graph
    level; named ``onnx-fp32``, ``onnx-int8-fused``, ``onnx-int8-matmul@basic``, ..."""
    variants = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        scheme, _, level = item.partition("@")
        scheme = "" if scheme == "fp32" else scheme
        name = ("onnx-fp32" if not scheme else f"onnx-int8-{scheme}") + (f"@{level}" if level
                                                                         else "")
        variants.append(Variant(name, scheme, level or "all"))
    return variants
