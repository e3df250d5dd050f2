"""``wavtune demo``: synthesise a spoken corpus, train a small model from scratch, show results.

Everything is offline and built in (no config file): an eSpeak NG corpus of digit strings and
command words from several synthetic speakers, and the ``small`` random-init preset.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from wavtune.config import CardConfig, Config, DataConfig, ModelConfig, TextConfig, TrainConfig
from wavtune.inference import Recognizer
from wavtune.manifest import read_manifest
from wavtune.synth import SynthOptions, synthesize_corpus
from wavtune.training import TrainResult, train


@dataclass(frozen=True)
class DemoOptions:
    """Corpus and training budget. ``quick`` is a reduced size for CI (about 3 minutes): enough
    optimizer steps to leave CTC's all-blank plateau, not enough to spell well."""

    out: Path
    quick: bool = False
    seed: int = 42
    overwrite: bool = False
    progress: bool = True

    @property
    def per_kind(self) -> int:
        return 150 if self.quick else 500

    @property
    def epochs(self) -> float:
        return 40


@dataclass(frozen=True)
class DemoResult:
    run: TrainResult
    test_wer: float
    examples: tuple[tuple[str, str, str], ...]  # (clip, reference, hypothesis)
    corpus_s: float  # wall time of synthesis
    wall_s: float


def demo_config(corpus: Path, run_dir: Path, options: DemoOptions) -> Config:
    """The built-in demo recipe (saved resolved as RUN/wavtune.yaml like any other run)."""
    return Config(
        card=CardConfig(model_name="wavtune-demo-small", language=["en"],
                        dataset_name="wavtune synth (eSpeak NG digits and commands)",
                        description="A demo model: trained from scratch on synthetic speech, it "
                                    "transcribes eSpeak NG digit strings and command words."),
        data=DataConfig(train=str(corpus / "train.jsonl"), eval=str(corpus / "dev.jsonl"),
                        test=str(corpus / "test.jsonl")),
        text=TextConfig(unit="char"),
        # 8 kHz input keeps everything below 4 kHz, plenty for words, at half the conv cost;
        # strides 5*4*4*2 = 160 samples give wav2vec2's usual 20 ms frames
        model=ModelConfig(preset="small", sample_rate=8000,
                          overrides={"conv_kernel": [10, 4, 4, 2], "conv_stride": [5, 4, 4, 2]},
                          freeze_feature_encoder=False, mask_time_prob=0.05, mask_time_length=5,
                          hidden_dropout=0.1, final_dropout=0.1),
        train=TrainConfig(output_dir=str(run_dir), overwrite_output_dir=options.overwrite,
                          learning_rate=1.5e-3, lr_scheduler_type="tri_stage", warmup_steps=200,
                          train_batch_size=16, eval_batch_size=32, num_epochs=options.epochs,
                          eval_strategy="epoch", logging_steps=20, seed=options.seed),
    )


def run_demo(options: DemoOptions) -> DemoResult:
    """Synthesise OUT/corpus, train OUT/run, and transcribe a few held-out test clips."""
    start = time.perf_counter()
    corpus = options.out / "corpus"
    synth = synthesize_corpus(
        corpus, SynthOptions(kinds=("digits", "commands"), per_kind=options.per_kind,
                             n_speakers=8, seed=options.seed),
        overwrite=True,
    )
    corpus_s = time.perf_counter() - start
    config = demo_config(corpus, options.out / "run", options)
    result = train(config, progress=options.progress)
    assert result.test is not None  # the demo config always has a test split
    test = read_manifest(synth.manifests["test"])
    picked = random.Random(options.seed).sample(test, k=min(5, len(test)))
    recognizer = Recognizer(result.run_dir)
    hyps = recognizer.transcribe_files([u.audio for u in picked])
    examples = tuple((u.audio.name, u.text or "", h.text) for u, h in zip(picked, hyps))
    return DemoResult(result, result.test.wer, examples, corpus_s, time.perf_counter() - start)
