"""Experiment trackers (``train.report_to``): TensorBoard, Weights & Biases and MLflow through
accelerate's trackers. Every record the loop writes to ``log.jsonl`` (each logging window, each
evaluation) is sent to them at once, so the curves are live while the run trains.

Local files go to ``RUN/tracking/``: TensorBoard's event files (``tracking/<project>/``), W&B's
run folder (``tracking/wandb/``, also offline with ``WANDB_MODE=offline``) and, unless
``MLFLOW_TRACKING_URI`` names a server, MLflow's SQLite store (``tracking/mlflow.db``). A resumed
run keeps its W&B run id (``tracking/wandb-run-id``), so its curves continue in the same run.
"""

from __future__ import annotations

import importlib.util
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wavtune.config import Config, to_dict
from wavtune.errors import WavtuneError

TRACKING_FOLDER = "tracking"  # inside the run directory
WANDB_ID_FILE = "wandb-run-id"
MLFLOW_DB = "mlflow.db"  # MLflow's store when MLFLOW_TRACKING_URI is unset
# report_to choice -> the module it needs (each is the optional extra of the same name)
TRACKER_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
EVAL_PREFIX = "eval_"
EVAL_KEYS = {"best_step"}  # logged with an evaluation, unprefixed
SKIPPED = {"step", "train_loss"}  # the step is the x axis; train_loss repeats the window's loss


class TrackerError(WavtuneError, RuntimeError):
    """A tracker in ``train.report_to`` cannot be used; the message names the extra to install."""


def check_trackers(names: Sequence[str]) -> None:
    """Raise TrackerError when a tracker's package is missing (before any work is done)."""
    for name in names:
        module = TRACKER_MODULES[name]
        if importlib.util.find_spec(module) is None:
            raise TrackerError(
                f"train.report_to: {name} needs the '{module}' package, which is not installed. "
                f"Install it with: pip install 'wavtune[{name}]' (or remove {name} from "
                f"train.report_to)")


def tracker_values(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one ``log.jsonl`` record as tracker scalars: ``eval_wer`` -> ``eval/wer``,
    ``loss`` -> ``train/loss``; the step, lists, reports and non-finite values are left out."""
    values: dict[str, float] = {}
    for key, value in record.items():
        if key in SKIPPED or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            continue
        evaluated = key.startswith(EVAL_PREFIX) or key in EVAL_KEYS
        name = f"eval/{key.removeprefix(EVAL_PREFIX)}" if evaluated else f"train/{key}"
        values[name] = float(value)
    return values


def hyperparameters(config: Config) -> dict[str, str | int | float | bool]:
    """The config as flat ``section.key`` values (lists and mappings as text), as every tracker
    accepts them."""
    flat: dict[str, str | int | float | bool] = {}
    for section, keys in to_dict(config).items():
        if not isinstance(keys, dict):
            flat[section] = str(keys)
            continue
        for key, value in keys.items():
            ok = isinstance(value, (str, int, float, bool))
            flat[f"{section}.{key}"] = value if ok else str(value)
    return flat


def _wandb_run_id(folder: Path, is_main: bool) -> str:
    """The W&B run id of this run directory: made at its first start, kept across resumes."""
    path = folder / WANDB_ID_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    run_id = uuid.uuid4().hex[:12]
    if is_main:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id + "\n", encoding="utf-8")
    return run_id


def mlflow_store(folder: Path) -> str:
    """The MLflow tracking URI of a run without ``MLFLOW_TRACKING_URI``: a SQLite file in it."""
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / MLFLOW_DB).resolve()}"


def _init_kwargs(names: Sequence[str], folder: Path, run_name: str,
                 is_main: bool) -> dict[str, dict[str, Any]]:
    kwargs: dict[str, dict[str, Any]] = {}
    if "wandb" in names:
        kwargs["wandb"] = {"name": run_name, "dir": str(folder), "resume": "allow",
                           "id": _wandb_run_id(folder, is_main)}
    if "mlflow" in names:
        kwargs["mlflow"] = {"run_name": run_name}
        if is_main and not os.environ.get("MLFLOW_TRACKING_URI"):
            import mlflow

            mlflow.set_tracking_uri(mlflow_store(folder))
    return kwargs


@dataclass(frozen=True)
class Trackers:
    """The run's trackers, started; ``log`` and ``close`` do nothing when there are none."""

    accelerator: Any
    names: tuple[str, ...] = ()

    def log(self, record: Mapping[str, Any]) -> None:
        """Send one ``log.jsonl`` record (it has a ``step``) to every tracker."""
        values = tracker_values(record) if self.names else {}
        if values:
            self.accelerator.log(values, step=int(record["step"]))

    def close(self) -> None:
        """Flush and close every tracker (the W&B run is marked finished)."""
        if self.names:
            self.accelerator.end_training()


def start_trackers(accelerator: Any, config: Config, run_root: Path) -> Trackers:
    """Start the trackers of ``train.report_to`` (the accelerator was made with them, see
    :func:`wavtune.train.engine.make_accelerator`) and store the config as hyperparameters."""
    names = tuple(config.train.report_to)
    if not names:
        return Trackers(accelerator)
    folder = run_root / TRACKING_FOLDER
    kwargs = _init_kwargs(names, folder, run_root.resolve().name, accelerator.is_main_process)
    accelerator.init_trackers(config.train.tracker_project, config=hyperparameters(config),
                              init_kwargs=kwargs)
    return Trackers(accelerator, names)
