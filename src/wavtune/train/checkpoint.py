"""Resumable training states, written atomically (temporary folder renamed into place)."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from wavtune.model.regularization import built_values
from wavtune.run.directory import COMPLETE_MARKER, RunDir, RunError
from wavtune.train import faults

log = logging.getLogger("wavtune")

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
TRAINABLE_FILE = "trainable.safetensors"  # PEFT runs: only the trainable tensors


@dataclass(frozen=True)
class TrainerState:
    """Where training stands; enough to continue exactly."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batches_done: int = 0  # micro-batches of `epoch` already consumed
    best_step: int | None = None
    best_metric: float | None = None
    nonfinite_steps: int = 0  # optimizer steps skipped for a non-finite loss or gradient
    dropped_while_training: int = 0  # clips that failed to decode mid-run (data.on_error=skip)


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
        with built_values(model):  # train.regularize_after_steps: the configured rates
            model.save_pretrained(str(directory), safe_serialization=True)
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


class CheckpointError(RunError):
    """A checkpoint cannot be written (disk full, ...) or read; the message names the folder."""


def save_checkpoint(
    run: RunDir,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainerState,
    command: str = "train",
    trainable_only: bool = False,
) -> Path:
    """Write model weights (safetensors), optimizer/scheduler/RNG states and ``state``;
    ``trainable_only`` (PEFT runs): only the trainable tensors, the frozen base stays where the
    run loads it from.

    Everything goes to ``.tmp-step-N`` first, then one rename makes it ``step-N``: a kill at any
    point leaves the previous checkpoints as they were. A failed write (a full disk) removes the
    temporary folder and raises CheckpointError, whose fix resumes with ``wavtune COMMAND``.
    """
    final = run.checkpoint(state.step)
    tmp = final.with_name(f".tmp-{final.name}")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        if trainable_only:
            from safetensors.torch import save_file

            save_file({n: p.detach().contiguous() for n, p in model.named_parameters()
                       if p.requires_grad}, str(tmp / TRAINABLE_FILE))
        else:
            save_model(model, tmp)
        faults.in_checkpoint(state.step)
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
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(_write_failure(run, final, e, command)) from None
    old = final.with_name(f".old-{final.name}")
    if final.exists():  # rewriting a step (e.g. a stop right after an eval): keep it until replaced
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _write_failure(run: RunDir, final: Path, error: OSError, command: str) -> str:
    latest = run.latest_checkpoint()
    kept = (f"the last good checkpoint {latest} is intact" if latest else
            "there is no earlier checkpoint")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(run.root).free / 2**30
        return (f"{final}: the disk is full ({error.strerror}; {free:.2f} GiB free on the disk of "
                f"{run.root}); the partial checkpoint was removed and {kept}. Free space there, "
                f"lower train.save_total_limit or choose a train.output_dir on a larger disk, then "
                f"continue with: wavtune {command} {run.config} --resume")
    return (f"{final}: cannot write the checkpoint ({error}); the partial checkpoint was removed "
            f"and {kept}")


def checkpoint_problem(path: Path) -> str | None:
    """What is missing from checkpoint folder ``path``, or None when every file is there."""
    if not (path / COMPLETE_MARKER).is_file():
        return f"no {COMPLETE_MARKER} marker (the write never finished)"
    missing = [name for name in (STATE_FILE, OPTIMIZER_FILE) if not (path / name).is_file()]
    if not any(path.glob("*.safetensors")):
        missing.append("model weights (*.safetensors)")
    return f"missing {', '.join(missing)}" if missing else None


def resume_checkpoint(
    run: RunDir,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[Path, TrainerState] | None:
    """Load the newest checkpoint of ``run`` that is whole; a corrupt one is reported (logged
    with its folder and what is wrong) and the one before it used. None: nothing to resume."""
    _tidy(run)
    for path in reversed(run.complete_checkpoints()):
        problem = checkpoint_problem(path)
        if problem is None:
            try:
                return path, load_checkpoint(path, model, optimizer, scheduler)
            except CheckpointError:
                raise  # the checkpoint is whole but belongs to another model: do not guess
            except Exception as e:  # noqa: BLE001 - any unreadable file: fall back to the previous
                problem = f"cannot be read ({type(e).__name__}: {e})"
        log.warning("checkpoint %s is corrupt or partial: %s; trying the previous one", path,
                    problem)
    if run.checkpoints.is_dir():
        log.warning("%s: no usable checkpoint; training starts from step 0", run.checkpoints)
    return None


def _tidy(run: RunDir) -> None:
    """Undo what a kill during :func:`save_checkpoint` left: temporary folders are deleted, a
    checkpoint moved aside to be replaced is put back when its replacement never arrived."""
    if not run.checkpoints.is_dir():
        return
    for path in run.checkpoints.glob(".old-step-*"):
        final = path.with_name(path.name.removeprefix(".old-"))
        if final.exists():
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.replace(path, final)
    for path in run.checkpoints.glob(".tmp-step-*"):
        log.info("removing %s, a checkpoint whose write was interrupted", path)
        shutil.rmtree(path, ignore_errors=True)
    for path in sorted(run.checkpoints.glob("step-*")):
        if not (path / COMPLETE_MARKER).is_file():
            log.warning("checkpoint %s is partial: %s; it is ignored", path,
                        checkpoint_problem(path))


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
    if (path / TRAINABLE_FILE).is_file():  # a PEFT checkpoint: only the trainable tensors
        frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
        missing = [k for k in missing if k not in frozen]
    if unexpected or [k for k in missing if "masked_spec_embed" not in k]:
        raise CheckpointError(
            f"{path}: checkpoint does not match the model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); was the config changed since?"
        )
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
    """Delete all but the newest ``keep`` complete checkpoints, never the one at step
    ``protect``."""
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

    from wavtune.model.multitask import MultitaskModel, ctc_branch, register
    from wavtune.run.directory import RunError, load_vocab

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
