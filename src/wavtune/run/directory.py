"""The run directory: a transformers-loadable model folder plus wavtune's logs and checkpoints.

Layout::

    RUN/
      config.json, model.safetensors          the published (best) model
      vocab.json, tokenizer_config.json,      processor files: pipeline(...) and AutoProcessor load
      preprocessor_config.json, ...
      wavtune.yaml                            the resolved wavtune config
      log.jsonl                               every logged value (train and eval), one per line
      metrics.json                            final results, and which checkpoint was published
      predictions-<split>.jsonl               per-utterance hypotheses and errors
      checkpoints/step-000500/                resumable training states (latest K + the best)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wavtune.config import Config, dump_config, from_dict
from wavtune.data.vocab import Vocabulary, VocabularyError
from wavtune.errors import WavtuneError

log = logging.getLogger("wavtune")

CONFIG_FILE = "wavtune.yaml"
LOG_FILE = "log.jsonl"
METRICS_FILE = "metrics.json"
CHECKPOINTS = "checkpoints"
COMPLETE_MARKER = "COMPLETE"  # written last into a checkpoint: its absence means a partial write


class RunError(WavtuneError, ValueError):
    """A run directory is missing, incomplete or would be overwritten; the message says what to
    do."""


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    def predictions(self, split: str) -> Path:
        return self.root / f"predictions-{split}.jsonl"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:07d}"

    def complete_checkpoints(self) -> list[Path]:
        """Checkpoints whose write finished, oldest first."""
        if not self.checkpoints.is_dir():
            return []
        done = [p for p in self.checkpoints.glob("step-*") if (p / COMPLETE_MARKER).is_file()]
        return sorted(done, key=lambda p: int(p.name.split("-")[1]))

    def latest_checkpoint(self) -> Path | None:
        done = self.complete_checkpoints()
        return done[-1] if done else None

    def append_log(self, record: dict[str, Any]) -> None:
        with self.log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read_log(self) -> list[dict[str, Any]]:
        if not self.log.is_file():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()
                if line.strip()]

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def prepare_run_dir(root: str | Path, config: Config, resume: bool) -> RunDir:
    """Create the run directory; refuse to reuse a non-empty one unless resuming or overwriting."""
    run = RunDir(Path(root))
    if run.root.exists() and any(run.root.iterdir()) and not resume:
        if not config.train.overwrite_output_dir:
            raise RunError(
                f"{run.root}: output directory exists and is not empty. Resume it with --resume, "
                f"choose another train.output_dir, or pass --overwrite to delete it."
            )
        _check_deletable(run, config)
        shutil.rmtree(run.root)
    if resume and not run.root.is_dir():
        raise RunError(f"{run.root}: nothing to resume (no such run directory)")
    run.root.mkdir(parents=True, exist_ok=True)
    dump_config(config, run.config)
    return run


def resume_wanted(root: str | Path, mode: str | None, is_main: bool = True) -> bool:
    """Whether a run at ``root`` continues from a checkpoint: ``mode`` is ``--resume``'s value
    (None: not given; ``latest``: the run must exist; ``auto``: continue when the run has a
    complete checkpoint, else start from step 0).

    ``auto`` is for schedulers that re-run the same command after a pre-emption (Slurm
    ``--requeue``). A folder holding anything but an unfinished wavtune run is refused as
    without ``--resume``. An attempt killed before its first checkpoint starts over in place:
    its ``log.jsonl`` is discarded (by the main process) and the audio cache kept.
    """
    if mode != "auto":
        return mode is not None
    run = RunDir(Path(root))
    if run.complete_checkpoints():  # resume_checkpoint falls back past a corrupt newest one
        return True
    if not (run.root.is_dir() and any(run.root.iterdir())):
        return False
    if not run.config.is_file():
        raise RunError(f"{run.root}: --resume auto found no checkpoint, and the folder is not a "
                       f"wavtune run (no {CONFIG_FILE}); choose another train.output_dir")
    if run.metrics.is_file():
        raise RunError(f"{run.root}: the run has finished ({METRICS_FILE}) and kept no checkpoint "
                       f"to resume from; pass --overwrite to train it again")
    if is_main and run.log.is_file():
        log.warning("%s: no checkpoint yet; training starts from step 0 (the earlier "
                    "attempt's %s is discarded)", run.root, LOG_FILE)
        run.log.unlink()
    return True


def _check_deletable(run: RunDir, config: Config) -> None:
    """--overwrite deletes a previous wavtune run, never a folder that holds anything else."""
    root = run.root.resolve()
    if root == Path.cwd().resolve() or root in Path.cwd().resolve().parents:
        raise RunError(f"{run.root}: --overwrite would delete the working directory or a folder "
                       f"above it; choose a dedicated train.output_dir")
    if not run.config.is_file():
        raise RunError(f"{run.root}: --overwrite refuses to delete it: it is not a wavtune run "
                       f"directory (no {CONFIG_FILE}). Choose another train.output_dir, or delete "
                       f"it yourself if you are sure")
    for key in ("train", "eval", "test"):
        manifest = getattr(config.data, key)
        if manifest and Path(manifest).resolve().is_relative_to(root):
            raise RunError(f"{run.root}: --overwrite refuses to delete it: it holds data.{key} "
                           f"({manifest}), which this run trains on. Choose another "
                           f"train.output_dir")


def load_run_config(root: str | Path) -> Config:
    """The wavtune config saved in a run directory."""
    import yaml

    path = Path(root) / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"{path}: not found; is {root} a wavtune run directory?")
    config: Config = from_dict(Config, yaml.safe_load(path.read_text(encoding="utf-8")))
    return config


def load_vocab(root: str | Path) -> Vocabulary:
    try:
        return Vocabulary.load(root)
    except VocabularyError as e:
        raise RunError(str(e)) from None
