"""Resumable training states, written atomically (temporary folder renamed into place)."""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from wavtune.rundir import COMPLETE_MARKER, RunDir

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"


@dataclass(frozen=True)
class TrainerState:
    """Where training stands; enough to continue exactly."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batches_done: int = 0  # micro-batches of `epoch` already consumed
    best_step: int | None = None
    best_metric: float | None = None
    nonfinite_steps: int = 0  # optimizer steps skipped for a non-finite loss or gradient


def _rng_state() -> dict[str, Any]:
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    py_state = random.getstate()
    return {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],  # SpecAugment masks use numpy
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    nps = state["numpy"]
    np.random.set_state((nps[0], np.asarray(nps[1], dtype=np.uint32), *nps[2:]))


def save_model(model: PreTrainedModel, directory: str | Path) -> None:
    """``save_pretrained`` as safetensors, without transformers' per-shard progress bar."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(str(directory), safe_serialization=True)
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def save_checkpoint(
    run: RunDir,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainerState,
) -> Path:
    """Write model weights (safetensors), optimizer/scheduler/RNG states and ``state``."""
    final = run.checkpoint(state.step)
    tmp = final.with_name(f".tmp-{final.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_model(model, tmp)
    tensors = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    torch.save(tensors, tmp / OPTIMIZER_FILE)
    payload = {"state": asdict(state), "rng": _rng_state()}
    (tmp / STATE_FILE).write_text(json.dumps(payload), encoding="utf-8")
    (tmp / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def load_checkpoint(
    path: Path,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> TrainerState:
    """Restore everything :func:`save_checkpoint` wrote; tensors are loaded with weights_only."""
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for shard in sorted(path.glob("*.safetensors")):  # one file, or shards of a large model
        weights.update(load_file(str(shard)))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or [k for k in missing if "masked_spec_embed" not in k]:
        raise ValueError(f"{path}: checkpoint does not match the model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}); was the config changed since?")
    tensors = torch.load(path / OPTIMIZER_FILE, weights_only=True, map_location="cpu")
    optimizer.load_state_dict(tensors["optimizer"])
    scheduler.load_state_dict(tensors["scheduler"])
    torch.set_rng_state(tensors["torch_rng"])
    if tensors["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["cuda_rng"])
    payload = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    _set_rng_state(payload["rng"])
    return TrainerState(**payload["state"])


def prune_checkpoints(run: RunDir, keep: int, protect: int | None) -> None:
    """Delete all but the newest ``keep`` complete checkpoints, never the one at step ``protect``."""
    done = run.complete_checkpoints()
    for path in done[:-keep] if keep > 0 else done:
        if protect is not None and path == run.checkpoint(protect):
            continue
        shutil.rmtree(path, ignore_errors=True)


def export_ctc(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the CTC branch of a multi-task run as a plain ``*ForCTC`` model folder.

    The encoder and CTC head become the stock transformers model of the encoder's architecture,
    with the run's tokenizer and feature extractor files, so ``pipeline("automatic-speech-
    recognition", model=out_dir)`` loads it without wavtune.
    """
    from transformers import AutoFeatureExtractor, AutoModel

    from wavtune.multitask import MultitaskModel, ctc_branch, register
    from wavtune.rundir import RunError, load_vocab

    run, out = Path(run_dir), Path(out_dir)
    if not (run / "config.json").is_file():
        raise RunError(f"{run}: no config.json; is this a finished wavtune run directory?")
    register()
    model = AutoModel.from_pretrained(str(run), use_safetensors=True)
    if not isinstance(model, MultitaskModel) or model.lm_head is None:
        raise RunError(f"{run}: not a multi-task run with a CTC head ({type(model).__name__}); "
                       f"a CTC run's folder already is a *ForCTC model")
    if out.exists() and any(out.iterdir()):
        raise RunError(f"{out}: exists and is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    save_model(ctc_branch(model), out)
    load_vocab(run).save(out)
    AutoFeatureExtractor.from_pretrained(str(run)).save_pretrained(str(out))
    return out
