"""Test data made in code: tone 'speech' whose letters a tiny model can learn in seconds.

Each letter of a transcript is a tone of its own frequency (0.12 s), words are separated by
silence, so the acoustics determine the text exactly and a small CTC model can overfit it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import soundfile as sf

SR = 16_000
LETTER_S = 0.12
GAP_S = 0.04
WORD_GAP_S = 0.12
FREQS = {c: 300.0 + 180.0 * i for i, c in enumerate("abcdefgh")}

# 8 clips over a 4-letter alphabet; every letter pair that CTC must separate appears
WORDS = ("abc", "cab", "bad", "dab", "ab cd", "dc ba", "a bad cab", "bac")
# 12 clips of random words (letters repeat, words vary): a tiny model trained on these spells
# unseen letter sequences too, not only the clips it memorised
VARIED = ("dac", "ac bcaa cdac", "cbd caa", "dcbc abbb da", "cd", "adc", "aab aa",
          "dcdd caca cbb", "ca bcbc", "baaa ba aca", "ab ad aa", "daca ac")


def tone_speech(text: str, sample_rate: int = SR, seed: int = 0) -> np.ndarray:
    """A waveform for ``text`` (letters a-h and spaces), float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(0.05 * sample_rate))]
    for ch in text:
        if ch == " ":
            parts.append(np.zeros(int(WORD_GAP_S * sample_rate)))
            continue
        t = np.arange(int(LETTER_S * sample_rate)) / sample_rate
        envelope = np.hanning(len(t))
        parts.append(0.5 * envelope * np.sin(2 * np.pi * FREQS[ch] * t))
        parts.append(np.zeros(int(GAP_S * sample_rate)))
    wave = np.concatenate(parts) + 0.003 * rng.standard_normal(sum(len(p) for p in parts))
    return wave.astype(np.float32)


def write_corpus(folder: Path, texts: Sequence[str] = WORDS, name: str = "train.jsonl",
                 sample_rate: int = SR, extra: dict[str, Sequence[str]] | None = None) -> Path:
    """Write one WAV per text and a JSONL manifest; ``extra`` adds label columns."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(texts):
        path = folder / f"utt{i:03d}.wav"
        sf.write(path, tone_speech(text, sample_rate, seed=i), sample_rate)
        row = {"id": f"utt{i:03d}", "audio": path.name, "text": text}
        for column, values in (extra or {}).items():
            row[column] = values[i]
        rows.append(row)
    manifest = folder / name
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifest


def tiny_overrides(folder: Path, manifest: Path, steps: int = 150) -> list[str]:
    """Config overrides for a tiny random-init model that overfits ``manifest`` in ``steps``."""
    return [
        f"data.train={manifest}",
        f"data.eval={manifest}",
        "model.preset=tiny",
        "model.freeze_feature_encoder=false",
        "model.mask_time_prob=0.0",
        "model.hidden_dropout=0.0",
        "model.final_dropout=0.0",
        "model.layerdrop=0.0",
        f"train.output_dir={folder / 'run'}",
        "train.learning_rate=3e-3",
        "train.warmup_steps=10",
        f"train.max_steps={steps}",
        "train.eval_strategy=steps",
        f"train.eval_steps={max(1, steps // 3)}",
        "train.train_batch_size=8",
        "train.logging_steps=10",
        "train.lr_scheduler_type=constant",
        "train.seed=0",
    ]


def torchrun(*argv: str, settings: Sequence[str] = (), timeout: float = 300) -> None:
    """``wavtune ARGV --set S ...`` in two CPU processes under torchrun; fails with its stderr."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "wavtune.cli.main", *argv, "--quiet"]
    for item in settings:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, done.stderr[-4000:]


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (the folder is no package), its siblings
    (machine.py, onnx_variants.py) importable."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module
