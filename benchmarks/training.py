"""Training throughput: wavtune against the stock transformers recipe, measured in one run.

Both sides train the same model (same config, same initial weights), the same AdamW, learning rate,
linear warm-up schedule, gradient clipping and epochs on the same data, on the same machine:

- **stock**: ``transformers.Trainer`` + a padding collator (like ``DataCollatorCTCWithPadding``) +
  its default random sampler + audio decoded with soundfile and resampled in ``__getitem__``;
- **wavtune**: ``wavtune.train.trainer.Trainer`` with the audio cache (built during the timed run),
  duration-bucketed batches, loading in the training process (its default, ``data.num_workers:
  0``: with the cache, a loader process only competes with the compute threads on a small CPU).

Corpora: FSDD (real speech, 0.2-2 s) and a synthetic tone corpus with a wide duration spread
(0.3-10 s, log-uniform, written at 16 kHz so both sides resample); with ``--only base``, the
``base`` preset (95M parameters) on a long-tailed 1-15 s tone corpus for the same fixed number
of steps on both sides (``--device cuda --precision bf16`` on a GPU: ``benchmarks/gpu.sh``).
Reported per corpus and side: audio-seconds trained per wall second, its ratio, test WER (same
greedy decoding code for both), padding ratio, data-loading share of step time, peak RSS. Then
the peak RSS of the data path over N and 10N clips, each in its own process. Results:
``benchmarks/results/training.json``.

    python benchmarks/training.py --manifests data/fsdd        # full, ~15 min on 2 idle cores
    python benchmarks/training.py --quick                      # smoke (~2 min; noisy)
    python benchmarks/training.py --only base --out FILE        # base preset, 20 steps a side
    python benchmarks/training.py --only time_to_target --out FILE   # to dev WER 0.30 (FSDD)

FSDD manifests come from ``--manifests DIR`` (train.jsonl, test.jsonl), else ``data/fsdd`` or
``../data/fsdd``, else are prepared from ``--fsdd DIR`` (default ``../shared/data/fsdd``) into the
work folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # measure this checkout's wavtune, not an installed one
sys.path.append(str(ROOT / "benchmarks"))  # machine.py (after installed packages)
from machine import machine_info  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "training.json"
SMALL_8K = ["model.preset=small", "model.sample_rate=8000",
            "model.overrides={conv_kernel: [10, 4, 4, 2], conv_stride: [5, 4, 4, 2]}"]
TINY_8K = ["model.preset=tiny", "model.sample_rate=8000"]
# wavtune's side of the time-to-accuracy part: dropout, LayerDrop and SpecAugment start after
# the all-blank plateau (it ends near step 350 without them); the stock Trainer has no such switch
WAVTUNE_RECIPE = ("train.regularize_after_steps=400",)


@dataclass(frozen=True)
class SideSpec:
    """One training run of one side; serialised to JSON for the child process."""

    side: str  # "stock" or "wavtune"
    train: str  # manifest
    test: str
    out: str  # work folder of this run
    model: list[str]  # --set overrides of the model section, identical for both sides
    epochs: int
    batch_size: int  # stock: clips per batch; wavtune: the seconds budget is this many mean clips
    learning_rate: float
    workers: int = 0  # wavtune DataLoader workers (stock: transformers' default, 0)
    seed: int = 0
    max_steps: int = 0  # > 0: both sides stop after this many optimizer steps
    precision: str = "no"  # mixed precision on both sides: no, bf16 or fp16
    device: str = "cpu"  # cpu or cuda, both sides
    dev: str = ""  # with target_wer: the dev manifest scored every eval_every steps
    target_wer: float = 0.0  # > 0: stop once the dev WER reaches it (time to accuracy)
    eval_every: int = 50
    grouped: bool = False  # stock only: the Trainer's group_by_length sampling strategy
    extra: list[str] = field(default_factory=list)


def config_overrides(spec: SideSpec) -> list[str]:
    """The shared config; the run's batches and data path are set per side."""
    from wavtune.data.manifest import read_manifest

    steps = spec.max_steps or -(-len(read_manifest(spec.train)) // spec.batch_size) * spec.epochs
    return [f"data.train={spec.train}", *spec.model, "model.freeze_feature_encoder=false",
            "model.mask_time_prob=0.05", "model.mask_time_length=2",
            f"train.learning_rate={spec.learning_rate}", "train.lr_scheduler_type=linear",
            f"train.warmup_steps={max(1, steps // 10)}", f"train.num_epochs={spec.epochs}",
            f"train.train_batch_size={spec.batch_size}", f"train.seed={spec.seed}",
            "train.logging_steps=5", "train.max_grad_norm=1.0", "train.weight_decay=0.0",
            f"train.output_dir={Path(spec.out) / 'run'}", "train.overwrite_output_dir=true",
            f"train.device={spec.device}", f"train.max_steps={spec.max_steps}",
            f"train.mixed_precision={spec.precision}", *spec.extra]


def corpus_seconds(manifest: str) -> float:
    from wavtune.data.manifest import read_manifest, with_durations

    return float(sum(u.duration_s or 0.0 for u in with_durations(read_manifest(manifest))))


def test_wer(model: Any, config: Any, vocab: Any, sample_rate: int, manifest: str) -> float:
    """Greedy WER on ``manifest``: the same code scores both sides."""
    from wavtune.data.dataset import AudioSettings, SpeechDataset
    from wavtune.data.manifest import read_manifest, with_durations
    from wavtune.infer.evaluation import evaluate

    utts = list(with_durations(read_manifest(manifest)))
    dataset = SpeechDataset(utts, AudioSettings(sample_rate), vocab, config.text.normalizer())
    ctc = evaluate(model, dataset, 16, True, 0, progress=False).ctc
    assert ctc is not None  # a CTC model
    return float(ctc.wer)


class DevClock:
    """Time to accuracy: every ``eval_every`` steps the dev WER (the same greedy scoring for
    every side), with the seconds since ``start``; ``reached`` once it is <= the target. The
    scoring time counts, as it does for a user watching the run; it is also reported apart."""

    def __init__(self, spec: SideSpec, config: Any, vocab: Any, sample_rate: int,
                 start: float) -> None:
        self.spec, self.config, self.vocab, self.rate = spec, config, vocab, sample_rate
        self.start, self.eval_s = start, 0.0
        self.points: list[dict[str, float]] = []
        self.reached: dict[str, float] | None = None

    def due(self, step: int) -> bool:
        return bool(self.spec.target_wer) and self.reached is None and \
            step > 0 and step % self.spec.eval_every == 0

    def score(self, model: Any, step: int) -> bool:
        """Score the dev set now; True once the target is reached."""
        begin = time.perf_counter()
        wer = test_wer(model, self.config, self.vocab, self.rate, self.spec.dev)
        self.eval_s += time.perf_counter() - begin
        point = {"step": step, "dev_wer": round(wer, 4),
                 "wall_s": round(time.perf_counter() - self.start, 2),
                 "wall_s_without_scoring": round(time.perf_counter() - self.start
                                                 - self.eval_s, 2)}
        self.points.append(point)
        if wer <= self.spec.target_wer:
            self.reached = point
        return self.reached is not None

    def summary(self) -> dict[str, Any]:
        return {"target_wer": self.spec.target_wer, "reached": self.reached,
                "curve": self.points}


def cpu_s() -> float:
    """CPU seconds of this process and its finished children (DataLoader workers): less
    sensitive than wall time to other jobs on a shared machine."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def gpu_memory(device: str) -> dict[str, float]:
    """Peak GPU memory allocated by torch in this process (empty on CPU), MB."""
    if device != "cuda":
        return {}
    import torch

    return {"peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}


def torch_threads() -> int:
    """torch's compute threads in this process (wavtune sizes them to the free cores)."""
    import torch

    return int(torch.get_num_threads())


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, workers) / 1024, 1)  # KiB on Linux


def run_wavtune(spec: SideSpec) -> dict[str, Any]:
    from wavtune.config import load_config
    from wavtune.data.manifest import read_manifest, with_durations
    from wavtune.train.trainer import Trainer

    mean = float(np.mean([u.duration_s or 0.0 for u in with_durations(read_manifest(spec.train))]))
    budget = round(
        spec.batch_size * mean / 0.95, 2
    )  # ~ the stock batch's real audio at ~5% padding
    overrides = config_overrides(spec) + [
        f"train.max_batch_seconds={budget}", f"train.max_batch_size={4 * spec.batch_size}",
        f"data.num_workers={spec.workers}", "data.audio_cache=true",
        f"data.cache_dir={Path(spec.out) / 'cache'}"]  # a fresh cache: its build is timed
    config = load_config(None, overrides)

    class Timed(Trainer):
        """Notes the CPU time when the loop ends: publishing (saving, scoring) is not training."""

        loop_end_cpu_s = 0.0
        audio_s = 0.0  # real audio trained, summed over the logged windows

        def _publish(self, wall_s: float) -> Any:
            self.loop_end_cpu_s = cpu_s()
            return super()._publish(wall_s)

        def log_window(self, loop: Any, bar: Any = None) -> dict[str, Any] | None:
            record = super().log_window(loop, bar)
            self.audio_s = loop.audio_s
            if clock is not None and clock.due(self.state.step) and \
                    clock.score(self.unwrapped, self.state.step):
                self.total_steps = self.state.step  # the loop ends here, then publishes
            return record

    start, cpu_start = time.perf_counter(), cpu_s()
    clock: DevClock | None = None
    trainer = Timed(config, progress=False)
    if spec.target_wer:
        clock = DevClock(spec, config, trainer.data.vocab, trainer.built.sample_rate, start)
    setup_s = time.perf_counter() - start
    result = trainer.fit()  # its wall_s: the loop, not the publishing after it
    train_s = setup_s + result.wall_s
    train_cpu_s = trainer.loop_end_cpu_s - cpu_start
    records = trainer.run.read_log()
    shares = [r["data_share"] for r in records if "data_share" in r]
    padding = json.loads(trainer.run.metrics.read_text())["padding_ratio_by_epoch"]
    wer = test_wer(
        trainer.unwrapped, config, trainer.data.vocab, trainer.built.sample_rate, spec.test
    ) if spec.test else float("nan")
    return {"train_s": round(train_s, 2), "setup_s": round(setup_s, 2), "steps": result.steps,
            "cpu_s": round(train_cpu_s, 2), "audio_trained_s": round(trainer.audio_s, 1),
            **gpu_memory(spec.device), **({"time_to_target": clock.summary()} if clock else {}),
            "padding_ratio": round(float(np.mean(list(padding.values()))), 4),
            "data_share": round(float(np.mean(shares)), 4) if shares else None,
            "test_wer": round(wer, 4), "peak_rss_mb": peak_rss_mb(), "max_batch_seconds": budget,
            "threads": torch_threads()}


class StockDataset:
    """The stock recipe's dataset: decode + resample + feature-extract in ``__getitem__``."""

    def __init__(self, rows: list[tuple[str, list[int]]], feature_extractor: Any) -> None:
        self.rows, self.fe = rows, feature_extractor

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import soxr

        path, labels = self.rows[index]
        wave, sr = sf.read(path, dtype="float32")
        if wave.ndim > 1:
            wave = wave.mean(axis=1)
        if sr != self.fe.sampling_rate:
            wave = soxr.resample(wave, sr, self.fe.sampling_rate, quality="HQ")
        values = self.fe(wave, sampling_rate=self.fe.sampling_rate).input_values[0]
        return {"input_values": values, "labels": labels}


class PaddingCollator:
    """``DataCollatorCTCWithPadding``: pad audio (and mask) with the feature extractor, labels
    with -100; counts real and padded samples for the padding ratio."""

    def __init__(self, feature_extractor: Any) -> None:
        self.fe, self.real, self.total = feature_extractor, 0, 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        lengths = [len(f["input_values"]) for f in features]
        self.real, self.total = self.real + sum(lengths), self.total + max(lengths) * len(lengths)
        batch = self.fe.pad([{"input_values": f["input_values"]} for f in features],
                            padding=True, return_tensors="pt")
        width = max(len(f["labels"]) for f in features)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        for i, f in enumerate(features):
            labels[i, : len(f["labels"])] = torch.tensor(f["labels"], dtype=torch.long)
        batch["labels"] = labels
        return dict(batch)


def run_stock(spec: SideSpec) -> dict[str, Any]:
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

    from wavtune.config import load_config
    from wavtune.model.build import build_model
    from wavtune.train.prepare import prepare_data

    config = load_config(None, config_overrides(spec))
    # timed from here, as wavtune's side is timed from its Trainer's construction: reading the
    # manifest and building the model count on both sides
    start, cpu_start = time.perf_counter(), cpu_s()
    set_seed(spec.seed)  # as wavtune's Trainer does before building: the same initial weights
    data = prepare_data(config, progress=False)
    assert data.vocab is not None
    built = build_model(config, data.vocab)
    normalizer = config.text.normalizer()
    rows = [(str(u.audio), data.vocab.encode(normalizer(u.text or ""))) for u in data.train]

    class StepTimer(TrainerCallback):
        """Data wait = time between one step's end and the next step's start."""

        def __init__(self) -> None:
            self.wait = self.busy = 0.0
            self.mark: float | None = None

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            now = time.perf_counter()
            if self.mark is not None:
                self.wait += now - self.mark
            self.mark = now

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            now = time.perf_counter()
            if self.mark is not None:
                self.busy += now - self.mark
            self.mark = now

    steps = spec.max_steps or -(-len(rows) // spec.batch_size) * spec.epochs
    args = TrainingArguments(
        output_dir=str(Path(spec.out) / "stock"), per_device_train_batch_size=spec.batch_size,
        num_train_epochs=spec.epochs, learning_rate=spec.learning_rate,
        warmup_steps=max(1, steps // 10), lr_scheduler_type="linear", weight_decay=0.0,
        max_grad_norm=1.0, logging_steps=5, save_strategy="no", eval_strategy="no",
        report_to="none", use_cpu=spec.device == "cpu", seed=spec.seed, disable_tqdm=True,
        max_steps=spec.max_steps or -1, bf16=spec.precision == "bf16",
        fp16=spec.precision == "fp16",  # transformers 5 spells group_by_length this way:
        train_sampling_strategy="group_by_length" if spec.grouped else "random")
    clock = DevClock(spec, config, data.vocab, built.sample_rate, start) \
        if spec.target_wer else None

    class ToTarget(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if clock is not None and clock.due(state.global_step) and \
                    clock.score(built.model, state.global_step):
                control.should_training_stop = True

    collator, timer = PaddingCollator(built.feature_extractor), StepTimer()
    trainer = Trainer(model=built.model, args=args, data_collator=collator,
                      train_dataset=StockDataset(rows, built.feature_extractor),
                      callbacks=[timer, ToTarget()],
                      processing_class=built.feature_extractor if spec.grouped else None)
    out = trainer.train()
    train_s, train_cpu_s = time.perf_counter() - start, cpu_s() - cpu_start
    wer = test_wer(built.model, config, data.vocab, built.sample_rate,
                   spec.test) if spec.test else float("nan")
    return {
        "train_s": round(train_s, 2),
        "steps": int(out.global_step),
        "cpu_s": round(train_cpu_s, 2),
        "audio_trained_s": round(collator.real / built.sample_rate, 1),
        **gpu_memory(spec.device), **({"time_to_target": clock.summary()} if clock else {}),
        "padding_ratio": round(1 - collator.real / collator.total, 4) if collator.total else 0.0,
        "data_share": round(timer.wait / (timer.wait + timer.busy), 4),
        "test_wer": round(wer, 4),
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch_threads(),
    }


def run_rss(manifest: str, cache_dir: str) -> dict[str, Any]:
    """Iterate one epoch of wavtune's training data path over ``manifest`` (cache built already)."""
    from torch.utils.data import DataLoader

    from wavtune.data.collate import Collator
    from wavtune.data.dataset import AudioSettings, SpeechDataset
    from wavtune.data.manifest import read_manifest, with_durations
    from wavtune.data.sampling import DurationBatchSampler
    from wavtune.train.loader import attach_caches

    dataset = SpeechDataset(list(with_durations(read_manifest(manifest))), AudioSettings(8000))
    attach_caches([dataset], Path(cache_dir), is_main=False, barrier=lambda: None)
    assert dataset.cache is not None, "build the cache before measuring"
    sampler = DurationBatchSampler(dataset.durations(), max_batch_seconds=60.0, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=Collator(with_labels=False))
    before = _rss_now_mb()
    samples = sum(batch.num_samples for batch in loader)
    return {"clips": len(dataset), "samples": samples, "rss_before_mb": before,
            "peak_rss_mb": peak_rss_mb()}


def _rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


# --- corpora ----------------------------------------------------------------------------------

LETTERS = "abcdefgh"


def tone_clip(text: str, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """Tone 'speech' (one tone per letter, as tests/factories.py) at ``sample_rate``."""
    parts = [np.zeros(int(0.05 * sample_rate))]
    for ch in text:
        if ch == " ":
            parts.append(np.zeros(int(0.12 * sample_rate)))
            continue
        t = np.arange(int(0.12 * sample_rate)) / sample_rate
        parts.append(
            0.5 * np.hanning(len(t)) * np.sin(2 * np.pi * (300 + 180 * LETTERS.index(ch)) * t)
        )
        parts.append(np.zeros(int(0.04 * sample_rate)))
    wave = np.concatenate(parts)
    return (wave + 0.003 * rng.standard_normal(len(wave))).astype(np.float32)


def synthetic_corpus(folder: Path, n_train: int, n_test: int, seed: int = 0,
                     spread: str = "uniform") -> tuple[str, str]:
    """Tone clips and their train and test manifests. Durations: log-uniform over 0.3-10 s
    (``spread="uniform"``), or long-tailed over 1-15 s (``"long-tail"``: log-normal around
    3 s, most clips short and a few long, as read speech corpora are)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    manifests = []
    for split, count in (("train", n_train), ("test", n_test)):
        rows = []
        for i in range(count):
            target = (float(np.exp(rng.uniform(np.log(0.3), np.log(10.0))))
                      if spread == "uniform" else
                      float(np.clip(np.exp(rng.normal(np.log(3.0), 0.6)), 1.0, 15.0)))
            words: list[str] = []
            while 0.05 + sum(0.16 * len(w) + 0.12 for w in words) < target or not words:
                words.append("".join(rng.choice(list(LETTERS), size=int(rng.integers(1, 6)))))
            text = " ".join(words)
            path = folder / f"{split}{i:05d}.wav"
            sf.write(path, tone_clip(text, rng), 16000)
            rows.append({"id": f"{split}{i:05d}", "audio": str(path), "text": text})
        manifest = folder / f"{split}.jsonl"
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        manifests.append(str(manifest))
    return manifests[0], manifests[1]


def subset(manifest: str, count: int, out: Path, seed: int = 0) -> str:
    """A seeded random ``count`` rows of ``manifest`` (all when count <= 0)."""
    lines = Path(manifest).read_text(encoding="utf-8").splitlines()
    if 0 < count < len(lines):
        keep = sorted(np.random.default_rng(seed).choice(len(lines), count, replace=False))
        lines = [lines[i] for i in keep]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(out)


def fsdd_manifests(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    for folder in (args.manifests, ROOT / "data" / "fsdd", ROOT.parent / "data" / "fsdd"):
        if folder and (Path(folder) / "train.jsonl").is_file():
            return str(Path(folder) / "train.jsonl"), str(Path(folder) / "test.jsonl")
    out = work / "fsdd-manifests"
    subprocess.run([sys.executable, "-m", "wavtune.cli.main", "prepare", "fsdd", str(args.fsdd),
                    str(out)], check=True)
    return str(out / "train.jsonl"), str(out / "test.jsonl")


# --- the run ----------------------------------------------------------------------------------

def child(kind: str, payload: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run one measurement in a fresh process (its own peak RSS, no state from the others)."""
    spec_file = work / f"spec-{time.monotonic_ns()}.json"
    spec_file.write_text(json.dumps(payload), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__, "--child", kind, str(spec_file)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(name: str, train: str, test: str, args: argparse.Namespace, work: Path,
            model: list[str], epochs: int, batch_size: int, max_steps: int = 0
            ) -> dict[str, Any]:
    """Both sides on one corpus: ``epochs`` of it, or ``max_steps`` optimizer steps (then the
    audio each side actually trained on sets its rate; test WER is skipped without ``test``)."""
    seconds = corpus_seconds(train)
    for path in filter(None, (train, test)):  # both sides start with the audio in page cache
        from wavtune.data.manifest import read_manifest

        for u in read_manifest(path):
            u.audio.read_bytes()
    sides: dict[str, Any] = {}
    for side in ("stock", "wavtune"):
        spec = SideSpec(side, train, test, str(work / f"{name}-{side}"), model, epochs,
                        batch_size, args.learning_rate, args.workers, max_steps=max_steps,
                        precision=args.precision, device=args.device)
        length = f"{max_steps} steps" if max_steps else f"{epochs} epochs"
        print(f"[{name}] training {side} ({length}, {args.device}, precision {args.precision})"
              " ...", flush=True)
        got = sides[side] = child("side", asdict(spec), work)
        trained = got["audio_trained_s"] if max_steps else seconds * epochs
        got["audio_s_per_s"] = round(trained / got["train_s"], 2)
        got["audio_s_per_cpu_s"] = round(trained / got["cpu_s"], 2)
    ratio = sides["wavtune"]["audio_s_per_s"] / sides["stock"]["audio_s_per_s"]
    cpu_ratio = sides["wavtune"]["audio_s_per_cpu_s"] / sides["stock"]["audio_s_per_cpu_s"]
    return {"clips": sum(1 for _ in open(train)), "train_audio_s": round(seconds, 1),
            "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size,
            "device": args.device, "precision": args.precision, **sides,
            "speedup": round(ratio, 3), "speedup_cpu": round(cpu_ratio, 3),
            "peak_rss_ratio": round(sides["wavtune"]["peak_rss_mb"]
                                    / sides["stock"]["peak_rss_mb"], 3)}


def split_dev(manifest: str, count: int, work: Path, seed: int = 0) -> tuple[str, str]:
    """(the rest, a seeded ``count`` rows) of ``manifest``: a dev set held out of training."""
    lines = Path(manifest).read_text(encoding="utf-8").splitlines()
    dev_rows = set(np.random.default_rng(seed).choice(len(lines), count, replace=False).tolist())
    rest, dev = work / "ttt-train.jsonl", work / "ttt-dev.jsonl"
    rest.write_text("".join(f"{x}\n" for i, x in enumerate(lines) if i not in dev_rows))
    dev.write_text("".join(f"{x}\n" for i, x in enumerate(lines) if i in dev_rows))
    return str(rest), str(dev)


def time_to_target(train: str, args: argparse.Namespace, work: Path, dev_rows: int,
                   epochs: int) -> dict[str, Any]:
    """Wall time from each side's start until its dev WER first reaches ``--target-wer``:
    stock (random sampler), stock with ``group_by_length`` and wavtune, on the same model."""
    rest, dev = split_dev(train, dev_rows, work)
    sides: dict[str, Any] = {}
    for name, side, grouped in (("stock", "stock", False), ("stock_grouped", "stock", True),
                                ("wavtune", "wavtune", False)):
        spec = SideSpec(side, rest, "", str(work / f"ttt-{name}"), SMALL_8K, epochs, 16,
                        args.learning_rate, args.workers, dev=dev, target_wer=args.target_wer,
                        eval_every=args.eval_every, grouped=grouped,
                        extra=list(args.wavtune_set) if side == "wavtune" else [])
        print(f"[time to dev WER {args.target_wer}] {name} (at most {epochs} epochs) ...",
              flush=True)
        got = child("side", asdict(spec), work)
        sides[name] = {**got["time_to_target"], "threads": got["threads"]}
    seconds = {k: (v["reached"] or {}).get("wall_s") for k, v in sides.items()}
    stock_best = min((t for k, t in seconds.items() if k != "wavtune" and t), default=None)
    ratio = round(stock_best / seconds["wavtune"], 3) if stock_best and seconds["wavtune"] \
        else None
    return {"target_wer": args.target_wer, "dev_clips": dev_rows, "max_epochs": epochs,
            "eval_every_steps": args.eval_every, "wavtune_settings": list(args.wavtune_set),
            "stock_s": seconds["stock"],
            "stock_grouped_s": seconds["stock_grouped"], "wavtune_s": seconds["wavtune"],
            "ratio": ratio, "sides": sides}


def rss_growth(n: int, work: Path) -> dict[str, Any]:
    """Peak RSS of the data path over N and 10N clips (rows reuse 40 files; each row is cached)."""
    from wavtune.data.cache import CacheSettings, open_or_build
    from wavtune.data.manifest import read_manifest, with_durations

    train, _ = synthetic_corpus(work / "rss-audio", 40, 0, seed=1)
    rows = [json.loads(line) for line in Path(train).read_text().splitlines()]
    out: dict[str, Any] = {}
    for count in (n, 10 * n):
        manifest = work / f"rss-{count}.jsonl"
        manifest.write_text("".join(json.dumps({**rows[i % len(rows)], "id": f"r{i}"}) + "\n"
                                    for i in range(count)), encoding="utf-8")
        open_or_build(list(with_durations(read_manifest(manifest))), CacheSettings(8000),
                      work / "rss-cache", progress=False)
        out[str(count)] = child("rss", {"manifest": str(manifest),
                                        "cache": str(work / "rss-cache")}, work)
    small, large = out[str(n)], out[str(10 * n)]
    out["peak_ratio"] = round(large["peak_rss_mb"] / small["peak_rss_mb"], 3)
    out["audio_ratio"] = round(large["samples"] / max(small["samples"], 1), 2)
    return out


def table(results: dict[str, Any]) -> str:
    lines = [("| corpus | side | audio-s/s | speedup | audio-s/CPU-s | speedup (CPU) | test WER "
              "| padding | data share | steps | peak RSS MB |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["corpora"].items():
        ttt = r.get("time_to_target")
        if ttt:
            lines.insert(0, f"time to dev WER {ttt['target_wer']} ({name}): stock "
                            f"{ttt['stock_s']} s, stock grouped {ttt['stock_grouped_s']} s, "
                            f"wavtune {ttt['wavtune_s']} s; ratio {ttt['ratio']} (a time "
                            f"of None: not reached within {ttt['max_epochs']} epochs)\n")
        if "stock" not in r:
            continue
        for side in ("stock", "wavtune"):
            s = r[side]
            ours = side == "wavtune"
            lines.append(
                f"| {name} | {side} | {s['audio_s_per_s']:.1f} | "
                f"{r['speedup'] if ours else 1.0:.2f}x | {s.get('audio_s_per_cpu_s', 0):.1f} | "
                f"{r.get('speedup_cpu', 0) if ours else 1.0:.2f}x | {s['test_wer']:.3f} | "
                f"{s['padding_ratio']:.1%} | {s['data_share'] or 0:.1%} | {s['steps']} | "
                f"{s['peak_rss_mb']:.0f} |"
            )
    rss = results.get("rss")
    if rss:
        n = results["rss_n"]
        lines.append(
            f"\ndata path peak RSS: {rss[str(n)]['peak_rss_mb']:.0f} MB over {n} clips, "
            f"{rss[str(10 * n)]['peak_rss_mb']:.0f} MB over {10 * n} "
            f"({rss['audio_ratio']:.1f}x the audio): ratio {rss['peak_ratio']:.2f}; "
            "growth while iterating "
            f"{rss[str(n)]['peak_rss_mb'] - rss[str(n)]['rss_before_mb']:.0f}"
            f" vs {rss[str(10 * n)]['peak_rss_mb'] - rss[str(10 * n)]['rss_before_mb']:.0f} MB"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small subsets, 1 epoch (smoke)")
    parser.add_argument("--manifests", help="folder with FSDD train.jsonl and test.jsonl")
    parser.add_argument("--fsdd", default=str(ROOT.parent / "shared" / "data" / "fsdd"),
                        help="raw FSDD folder, prepared when no manifests are found")
    parser.add_argument("--out", default=str(RESULTS), help="JSON results file")
    parser.add_argument("--workers", type=int, default=0,
                        help="wavtune DataLoader workers (default 0, its own default)")
    parser.add_argument("--learning-rate", type=float, default=1.5e-3)
    parser.add_argument("--work", help="work folder (default: a temporary one)")
    parser.add_argument("--only", default="fsdd,synthetic,rss",
                        help="parts to run (fsdd, synthetic, rss, base, time_to_target: fsdd "
                             "includes it), merged into an existing --out file (default: "
                             "fsdd,synthetic,rss)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="both sides")
    parser.add_argument("--precision", default="no", choices=("no", "bf16", "fp16"),
                        help="mixed precision, both sides")
    parser.add_argument("--base-steps", type=int, default=20,
                        help="optimizer steps of each side in the base part (a multiple of 5)")
    parser.add_argument("--base-clips", type=int, default=160,
                        help="clips of the base part's long-tailed 1-15 s corpus")
    parser.add_argument("--target-wer", type=float, default=0.30,
                        help="dev WER of the time-to-accuracy part (fsdd)")
    parser.add_argument("--eval-every", type=int, default=50,
                        help="steps between dev scorings in the time-to-accuracy part")
    parser.add_argument("--target-epochs", type=int, default=15,
                        help="most epochs a side trains toward the target")
    parser.add_argument("--wavtune-set", nargs="*", default=list(WAVTUNE_RECIPE),
                        help="settings of wavtune's side in the time-to-accuracy part, beyond the "
                             "shared ones: what wavtune has and the stock recipe has no setting "
                             f"for (default: {' '.join(WAVTUNE_RECIPE)}; none: the shared recipe)")
    parser.add_argument("--base-preset", default="base",
                        help="model preset of the base part (tiny: a smoke run)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, spec_file = args.child
        payload = json.loads(Path(spec_file).read_text())
        if kind == "rss":
            result = run_rss(payload["manifest"], payload["cache"])
        else:
            spec = SideSpec(**payload)
            result = run_wavtune(spec) if spec.side == "wavtune" else run_stock(spec)
        print(json.dumps(result))
        return 0

    with tempfile.TemporaryDirectory(prefix="wavtune-bench-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        q = args.quick
        started = time.perf_counter()
        parts = set(args.only.split(","))
        out = Path(args.out)
        old = json.loads(out.read_text()) if parts != {"fsdd", "synthetic", "rss"} and \
            out.is_file() else {}
        results: dict[str, Any] = {
            "mode": "quick" if q else "full", "command": " ".join([Path(sys.executable).name,
                                                                   *sys.argv]),
            "machine": machine_info(),
            "model": SMALL_8K, "corpora": old.get("corpora", {})}
        results.update({k: old[k] for k in ("rss", "rss_n") if k in old})
        out.parent.mkdir(parents=True, exist_ok=True)

        def save() -> None:  # after every measurement: a failure later keeps what was measured
            results["wall_s"] = round(time.perf_counter() - started, 1)
            out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

        if parts & {"fsdd", "time_to_target"}:
            fsdd_train, fsdd_test = fsdd_manifests(args, work)
            if q:
                fsdd_train = subset(fsdd_train, 300, work / "fsdd-train.jsonl")
                fsdd_test = subset(fsdd_test, 60, work / "fsdd-test.jsonl")
        if "fsdd" in parts:
            results["corpora"]["fsdd"] = compare("fsdd", fsdd_train, fsdd_test, args, work,
                                                 SMALL_8K, 1 if q else 6, 16)
            save()
        if parts & {"fsdd", "time_to_target"}:
            part = time_to_target(fsdd_train, args, work, 30 if q else 270,
                                  1 if q else args.target_epochs)
            results["corpora"].setdefault("fsdd", {})["time_to_target"] = {
                **part, "command": results["command"]}  # it may be run apart from the rest
            save()
        if "synthetic" in parts:
            syn_train, syn_test = synthetic_corpus(work / "synthetic", 60 if q else 300,
                                                   20 if q else 60)
            results["corpora"]["synthetic"] = compare("synthetic", syn_train, syn_test, args,
                                                      work, SMALL_8K, 1 if q else 6, 8)
            save()
        if "base" in parts:
            steps = max(5, 5 * round(args.base_steps / 5))  # whole logging windows of 5 steps
            base_train, _ = synthetic_corpus(work / "base", args.base_clips, 0, seed=2,
                                             spread="long-tail")
            results["corpora"]["base"] = compare(
                "base", base_train, "", args, work, [f"model.preset={args.base_preset}"],
                1, 8, max_steps=steps)
            save()
        if "rss" in parts:
            results["rss_n"] = 50 if q else 300
            results["rss"] = rss_growth(results["rss_n"], work)
            save()
        print(table(results))
        print(f"\n{results['mode']} run in {results['wall_s'] / 60:.1f} min; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
