"""``wavtune demo``: synthesise a spoken corpus, train a small model from scratch, show results.

Everything is offline and built in (no config file): an eSpeak NG corpus of digit strings and
command words from several synthetic speakers, and the ``small`` random-init preset of the
w2v-BERT family (fbank features into a small conformer: the FSDD recipe's front end).
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wavtune.cli.reports import write_run_reports
from wavtune.config import CardConfig, Config, DataConfig, ModelConfig, TextConfig, TrainConfig

if TYPE_CHECKING:
    from wavtune.train.trainer import TrainResult


@dataclass(frozen=True)
class DemoOptions:
    """Corpus and training budget. ``quick`` is a reduced size for CI: enough
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
        # fbank features into a small conformer (the FSDD recipe's front end): no conv feature
        # encoder over raw samples, so an epoch costs about half the waveform model's; no adapter
        # keeps 20 ms per CTC frame (the stride-2 adapter's 40 ms leaves short words too few)
        model=ModelConfig(arch="wav2vec2-bert", preset="small", sample_rate=16000,
                          overrides={"add_adapter": False}, freeze_feature_encoder=False,
                          mask_time_prob=0.1, mask_time_length=5, hidden_dropout=0.1,
                          final_dropout=0.1),
        train=TrainConfig(output_dir=str(run_dir), overwrite_output_dir=options.overwrite,
                          learning_rate=1.5e-3, lr_scheduler_type="tri_stage", warmup_steps=200,
                          train_batch_size=16, eval_batch_size=32, num_epochs=options.epochs,
                          eval_strategy="epoch", logging_steps=20, seed=options.seed),
    )


def run_demo(options: DemoOptions) -> DemoResult:
    """Synthesise OUT/corpus, train OUT/run, and transcribe a few held-out test clips."""
    # here, not at the top: `wavtune --help` must not load torch and transformers
    from wavtune.data.manifest import read_manifest
    from wavtune.infer.recognizer import Recognizer
    from wavtune.synth.corpus import SynthOptions, synthesize_corpus
    from wavtune.train.trainer import train

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
    write_run_reports(result.run_dir)  # one process: the demo is never run under torchrun
    assert result.test is not None  # the demo config always has a test split
    test = read_manifest(synth.manifests["test"])
    picked = random.Random(options.seed).sample(test, k=min(5, len(test)))
    recognizer = Recognizer(result.run_dir)
    hyps = recognizer.transcribe_files([u.audio for u in picked])
    examples = tuple((u.audio.name, u.text or "", h.text) for u, h in zip(picked, hyps))
    return DemoResult(result, result.test.wer, examples, corpus_s, time.perf_counter() - start)


def cmd_demo(args: argparse.Namespace) -> int:
    result = run_demo(DemoOptions(Path(args.out), quick=args.quick, seed=args.seed,
                                  overwrite=args.overwrite, progress=not args.quiet))
    print("\nheld-out test clips:")
    for clip, ref, hyp in result.examples:
        mark = "ok " if ref == hyp else "ERR"
        print(f"  {mark} {clip:<22} reference: {ref:<28} wavtune: {hyp}")
    run = result.run
    print(
        f"\ntest WER {result.test_wer:.4f} (published step {run.published_step}, best dev WER "
        f"{run.best_metric:.4f}); corpus {result.corpus_s:.0f} s, total {result.wall_s / 60:.1f} "
        "min"
    )
    print(f"run directory: {run.run_dir}  (try: wavtune transcribe {run.run_dir} AUDIO.wav)")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="offline demo: synthesise speech, train, evaluate, transcribe",
                       description="Synthesise a corpus of spoken digits and commands, train a "
                                   "1.5M-parameter model (fbank + conformer) from scratch on "
                                   "CPU, evaluate it on held-out clips and transcribe a few "
                                   "(the README gives its measured duration).")
    p.add_argument("out", nargs="?", default="wavtune-demo", help="output folder")
    p.add_argument("--quick", action="store_true", help="smaller corpus and budget (CI)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
