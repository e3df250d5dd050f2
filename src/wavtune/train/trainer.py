"""The training loop: build data, model and engine from a Config, train, evaluate, publish.

Runs on one process or under ``accelerate launch`` / ``torchrun`` (accelerate does device
placement, mixed precision and DDP). Never reads argv. ``fit`` is a short loop of named steps:
:meth:`Trainer.micro_step`, :meth:`Trainer.optimizer_step` (its outcome: stepped, fp16 overflow,
non-finite loss or gradient), :meth:`Trainer.after_step`, :meth:`Trainer.log_window`,
:meth:`Trainer.eval_and_checkpoint`, and the stop conditions (max steps, a signal, divergence).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from wavtune.config import Config
from wavtune.data.collate import Batch
from wavtune.data.dataset import SpeechDataset
from wavtune.errors import WavtuneError
from wavtune.infer.evaluation import evaluate
from wavtune.model.build import build_model, set_encoder_frozen
from wavtune.run.diagnostics import DiagnosticMonitor, DiagnosticSettings
from wavtune.scoring.classification import HeadEvaluation
from wavtune.scoring.evaluation import CTCEvaluation, Evaluation, write_task_predictions
from wavtune.train import faults
from wavtune.train.checkpoint import prune_checkpoints, save_checkpoint
from wavtune.train.divergence import GoodStep, divergence_message
from wavtune.train.engine import build_engine, make_accelerator
from wavtune.train.interrupts import StopFlag
from wavtune.train.loader import build_train_data
from wavtune.train.loopstate import LoopState, StepOutcome, step_outcome
from wavtune.train.meter import TrainMeter
from wavtune.train.objective import Objective, TrainingObjective, is_better
from wavtune.train.prepare import prepare_data
from wavtune.train.publish import load_best_weights, publish_model, run_metrics
from wavtune.train.setup import (
    audio_settings,
    check_first_step,
    fit_to_model,
    log_summary,
    open_run,
)
from wavtune.train.trackers import start_trackers

log = logging.getLogger("wavtune")

SHOWN_SCORES = ("loss", "wer", "cer")  # eval scores printed while training, with every *_accuracy


class TrainingError(WavtuneError, RuntimeError):
    """Training cannot continue; the message says why and what to change."""


class Interrupted(WavtuneError, RuntimeError):
    """SIGINT/SIGTERM arrived; a checkpoint was written and the run can be resumed."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished run published."""

    run_dir: Path
    steps: int
    published_step: int
    best_step: int | None  # None when there was no eval set to choose by
    metric: str
    best_metric: float | None
    eval: CTCEvaluation | None  # the CTC head's scores (None: no CTC head)
    test: CTCEvaluation | None
    wall_s: float
    eval_heads: tuple[HeadEvaluation, ...] = ()  # classification heads (classify, multitask)
    test_heads: tuple[HeadEvaluation, ...] = ()
    is_main: bool = True  # False in the other processes of a torchrun job: they write nothing


class Trainer:
    """One run: everything the loop needs, built once from the config."""

    command = "train"  # the CLI command that resumes this kind of run

    def __init__(self, config: Config, resume: bool = False, progress: bool = True) -> None:
        from accelerate.utils import set_seed

        self.config, self.progress = config, progress
        t = config.train
        self.accelerator = make_accelerator(config, config.model.freeze_encoder_steps > 0)
        self.is_main = self.accelerator.is_main_process
        set_seed(t.seed)  # before the model is built: its initial weights follow the seed
        self.run = open_run(config, self.accelerator, resume)
        shown = progress and self.is_main
        prepared = prepare_data(config, progress=shown)  # vocabulary and label sets: data only
        self.built = build_model(config, prepared.vocab, prepared.label_sets)
        self.data = fit_to_model(prepared, self.built, config,
                                 self.run if self.is_main else None, shown)
        self.objective: TrainingObjective = Objective.for_run(config, self.built,
                                                              self.data.label_sets)
        self._start_engine(config, resume, shown, with_test=True)
        # blank collapse, overfitting, non-finite losses: said when seen, recorded in the card
        self.monitor = DiagnosticMonitor(
            DiagnosticSettings.from_config(config, len(self.eval_set) if self.eval_set else None),
            self.run.read_log() if resume else ())
        self.meter = TrainMeter()
        if self.is_main:
            log_summary(self.built, self.data, len(self.train_set), len(self.eval_set or []),
                        self.total_steps, self.steps_per_epoch)
        self.trackers = start_trackers(self.accelerator, config, self.run.root)  # report_to

    def _start_engine(self, config: Config, resume: bool, progress: bool,
                      with_test: bool) -> None:
        """Batches of ``self.data``, the step budget, and the optimizer/schedule prepared by the
        accelerator (restored from the newest checkpoint with ``resume``)."""
        t = config.train
        data = build_train_data(config, self.data, audio_settings(self.built), self.accelerator,
                                self.run.root, progress)
        self.train_set, self.eval_set = data.train_set, data.eval_set
        self.test_set = data.test_set if with_test else None
        self.sampler, self.loader = data.sampler, data.loader
        self.steps_per_epoch = max(1, math.ceil(len(self.sampler) / t.gradient_accumulation_steps))
        self.total_steps = t.max_steps or math.ceil(t.num_epochs * self.steps_per_epoch)
        engine = build_engine(self.accelerator, self.built.model, config, self.total_steps,
                              self.run, resume)
        self.model, self.optimizer, self.scheduler = (
            engine.model, engine.optimizer, engine.scheduler)
        self.state = engine.state

    @property
    def unwrapped(self) -> Any:
        return self.accelerator.unwrap_model(self.model)

    def fit(self) -> TrainResult:
        """Train to ``total_steps``, evaluating and checkpointing as configured; then publish."""
        loop = LoopState()
        self.meter = TrainMeter()  # windows start now, not when the Trainer was built
        bar = tqdm(total=self.total_steps, initial=self.state.step, desc="train", unit="step",
                   disable=not (self.progress and self.is_main), dynamic_ncols=True)
        self.objective.on_step(self.unwrapped, self.state.step)
        self.model.train()
        with StopFlag() as stop, contextlib.closing(self.trackers):
            for epoch, index, batch in self._batches():
                if self.state.step >= self.total_steps:
                    break
                usable = self._usable(batch)
                if usable is None:
                    continue  # every clip of the batch failed to decode
                ends_epoch = index == len(self.sampler) + self.sampler.start_batch - 1
                if not self.micro_step(usable, loop, ends_epoch):
                    continue  # gradients accumulate until the step's last micro-batch
                outcome = self.optimizer_step(loop)
                if outcome == "fp16_overflow":
                    continue  # the scaler lowered its scale; the next micro-batches retry
                if outcome == "stepped":
                    self.after_step(loop, epoch, index)
                    bar.update(1)
                    self.log_window(loop, bar)
                    if self._due_for_eval(epoch_ended=ends_epoch):
                        self.eval_and_checkpoint(loop.last_train_loss)
                else:
                    self.skip_step(outcome, loop)  # stops the run after too many in a row
                if stop.signal is not None:
                    self._stop(stop.signal)
        bar.close()
        return self._publish(loop.elapsed_s())

    # --- the named steps of fit ---------------------------------------------------------------
    def micro_step(self, batch: Batch, loop: LoopState, ends_epoch: bool = False) -> bool:
        """Forward and backward one micro-batch (gradients accumulate) and count its loss; True
        when it completes an optimizer step."""
        accum = self.config.train.gradient_accumulation_steps
        sync = loop.accumulate(accum, ends_epoch)
        no_sync = self.accelerator.no_sync(self.model) if not sync else contextlib.nullcontext()
        with no_sync:  # DDP all-reduces the gradients only at the step's last micro-batch
            step_loss = self.objective(self.model, batch)
            loss = faults.loss(step_loss.total, self.state.step + 1)
            # a non-finite loss is back-propagated too: under DDP every process must join
            # the gradient all-reduce, whose NaNs then make every process skip the step
            self.accelerator.backward(loss / accum)
            value = loss.item()  # one device sync per micro-batch
        if math.isfinite(value):
            self.meter.loss(value)
        loop.micro_batch(value, step_loss.parts)
        return sync

    def optimizer_step(self, loop: LoopState) -> StepOutcome:
        """Clip and apply the accumulated gradients, or discard them: a non-finite loss or
        gradient updates nothing (weights, Adam moments, LR schedule); the outcome says which."""
        faults.gradients(self.model, self.state.step + 1)
        # max_grad_norm 0: no clipping, but the norm is still measured (non-finite check)
        loop.grad_norm = self.accelerator.clip_grad_norm_(
            self.model.parameters(), self.config.train.max_grad_norm or math.inf)
        finite = bool(torch.isfinite(torch.as_tensor(loop.grad_norm)))
        if self.state.step == 0 and finite:
            check_first_step(self.built, self.unwrapped)  # PEFT: every trainable tensor moved
        scaler = self.accelerator.scaler
        if not finite and scaler is not None:
            self.optimizer.step()  # fp16: the scaler sees the inf/NaN, skips and lowers its scale
        outcome = step_outcome(loop.bad_loss, finite,
                               scaler.get_scale() if scaler is not None and not finite else None)
        if outcome == "stepped":
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return outcome

    def after_step(self, loop: LoopState, epoch: int, index: int) -> None:
        """A step was taken: the state moves past micro-batch ``index`` of ``epoch``."""
        self.state = replace(self.state, step=self.state.step + 1, epoch=epoch,
                             batches_done=index + 1)
        frozen_for = self.config.model.freeze_encoder_steps
        if self.state.step == frozen_for > 0:
            set_encoder_frozen(self.unwrapped, False, self.config.model.freeze_feature_encoder)
        self.objective.on_step(self.unwrapped, self.state.step)
        loop.stepped(GoodStep(self.state.step, loop.last_loss, self.scheduler.get_last_lr()[0]))
        faults.after_step(self.state.step)

    def skip_step(self, outcome: StepOutcome, loop: LoopState) -> None:
        """Count and log a step discarded for a non-finite loss or gradient; after
        ``train.max_consecutive_nonfinite`` in a row, checkpoint and raise TrainingError."""
        t = self.config.train
        kind = "loss" if outcome == "nonfinite_loss" else "gradient"
        in_a_row = loop.skipped()
        self.state = replace(self.state, nonfinite_steps=self.state.nonfinite_steps + 1)
        log.warning("step %d: non-finite %s; step skipped (%d skipped so far)",
                    self.state.step + 1, kind, self.state.nonfinite_steps)
        if self.is_main:
            self._log({"step": self.state.step, "epoch": self._epoch_float(),
                       "skipped_nonfinite": kind, "nonfinite_steps": self.state.nonfinite_steps})
        if in_a_row >= t.max_consecutive_nonfinite:
            self._checkpoint()  # the last good weights: nothing was updated since
            raise TrainingError(divergence_message(
                t, in_a_row, kind, self.state.step + 1, loop.last_good,
                self.run.latest_checkpoint(), self.run.log, self.run.config))

    def log_window(self, loop: LoopState, bar: Any = None) -> dict[str, Any] | None:
        """Every ``train.logging_steps``: the window's figures, summed over processes (every
        process must call this), logged by the main process; the record, or None."""
        if self.state.step % self.config.train.logging_steps != 0:
            return None
        window = self.meter.reduce(self._sum_over_processes, self.built.sample_rate)
        if not (loop.window.count and self.is_main):
            return None
        loop.audio_s += window.audio_s  # every process's audio, not only this one's
        local_loss, parts = loop.close_window()
        record: dict[str, Any] = {
            "step": self.state.step, "epoch": self._epoch_float(),
            "loss": local_loss if window.loss is None else window.loss,
            "learning_rate": self.scheduler.get_last_lr()[0],
            "grad_norm": float(loop.grad_norm), "audio_s_per_s": loop.audio_s / loop.elapsed_s(),
            "nonfinite_steps": self.state.nonfinite_steps,
            "padding_ratio": round(window.padding_ratio, 4),
            "data_share": round(window.data_share, 4),
            **parts,  # the objective's loss parts, by name
        }
        self._log(record)
        if bar is not None:
            bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['learning_rate']:.2e}")
        return record

    def eval_and_checkpoint(self, train_loss: float) -> None:
        """Score the eval set (main process), track the best step, write a checkpoint."""
        record: dict[str, Any] = {"step": self.state.step, "epoch": self._epoch_float()}
        if self.eval_set is not None and self.is_main:
            result = self.evaluate(self.eval_set)
            record.update({"train_loss": train_loss, **result.log_record()})
            metric = self.config.train.metric_for_best
            value = result.scores()[metric]
            if is_better(value, self.state.best_metric, metric):
                self.state = replace(self.state, best_step=self.state.step, best_metric=value)
            record["best_step"] = self.state.best_step
            self._log(record)
            shown = " ".join(f"{k} {v:.4f}" for k, v in result.scores().items()
                             if k in SHOWN_SCORES or k.endswith("_accuracy"))
            tqdm.write(f"step {self.state.step}: eval {shown} (best {metric} "
                       f"{self.state.best_metric:.4f} at step {self.state.best_step})")
        if self.eval_set is not None and self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            # rank 0 scored the eval set: every rank must agree on the checkpoint to publish
            best = broadcast_object_list([self.state.best_step, self.state.best_metric])
            self.state = replace(self.state, best_step=best[0], best_metric=best[1])
        self._checkpoint()

    # --- what the steps share -----------------------------------------------------------------
    def _batches(self) -> Iterator[tuple[int, int, Batch]]:
        """(epoch, index in the epoch, batch) of every micro-batch, epoch after epoch, from where
        the state stands (mid-epoch after a resume)."""
        while True:
            epoch, start = self.state.epoch, self.state.batches_done
            self.sampler.set_epoch(epoch, start_batch=start)
            self.train_set.epoch = epoch
            batches: Iterator[Batch] = iter(self.loader)  # the collator makes Batches
            i, waited = start, time.perf_counter()
            for batch in batches:
                self.meter.waited(time.perf_counter() - waited)
                self.meter.count(epoch, batch)
                yield epoch, i, batch
                i, waited = i + 1, time.perf_counter()
            self.state = replace(self.state, epoch=epoch + 1, batches_done=0)

    def _usable(self, batch: Batch) -> Batch | None:
        """``batch`` on the device, after counting and logging the clips that failed to decode
        in it (data.on_error=skip); None when none is left."""
        if batch.dropped:
            self._dropped_while_training(batch)
        return batch.to(self.accelerator.device) if batch.ids else None

    def _dropped_while_training(self, batch: Batch) -> None:
        self.state = replace(self.state, dropped_while_training=(
            self.state.dropped_while_training + len(batch.dropped)))
        for utt_id, reason in batch.dropped:
            log.warning("skipped utterance %r: %s (data.on_error=skip)", utt_id, reason)
        if self.is_main:
            self._log({"step": self.state.step, "epoch": self._epoch_float(),
                       "dropped": [{"id": i, "reason": r} for i, r in batch.dropped],
                       "dropped_while_training": self.state.dropped_while_training})

    def _sum_over_processes(self, values: torch.Tensor) -> torch.Tensor:
        if self.accelerator.num_processes == 1:
            return values
        summed: torch.Tensor = self.accelerator.reduce(values.to(self.accelerator.device), "sum")
        return summed.cpu()

    def evaluate(self, dataset: SpeechDataset, desc: str = "evaluate") -> Evaluation:
        return evaluate(self.unwrapped, dataset, self.config.train.eval_batch_size,
                        self.built.uses_attention_mask, self.config.data.num_workers,
                        progress=self.progress and self.is_main,
                        on_error=self.config.data.on_error)

    def _log(self, record: dict[str, Any]) -> None:
        self.run.append_log(record)
        self.trackers.log(record)  # live curves: every record as it is written
        for diagnosis in self.monitor.update(record, self.state.nonfinite_steps):
            log.warning("%s", diagnosis.render())

    def _checkpoint(self) -> None:
        if self.is_main:
            save_checkpoint(self.run, self.unwrapped, self.optimizer, self.scheduler, self.state,
                            self.command, self.config.model.peft.method != "none")
            prune_checkpoints(self.run, self.config.train.save_total_limit, self.state.best_step)
        self.accelerator.wait_for_everyone()

    def _epoch_float(self) -> float:
        return round(self.state.step / self.steps_per_epoch, 2)

    def _due_for_eval(self, epoch_ended: bool) -> bool:
        t = self.config.train
        if self.state.step >= self.total_steps:
            return True
        if t.eval_strategy == "epoch":
            return epoch_ended
        return self.state.step % t.eval_steps == 0

    def _stop(self, signum: int) -> None:
        """SIGINT/SIGTERM arrived: checkpoint, then raise Interrupted with how to continue."""
        self._checkpoint()
        raise Interrupted(
            f"stopped by signal {signum} at step {self.state.step}; checkpoint written to "
            f"{self.run.latest_checkpoint()}. Continue with: wavtune {self.command} "
            f"{self.run.config} --resume")

    def _publish(self, wall_s: float) -> TrainResult:
        """Load the best checkpoint's weights, save them as the run's model, score eval and test
        (main process), write metrics.json. The caller writes the model card."""
        published = load_best_weights(self.run, self.state, self.unwrapped)
        padding = self.meter.epoch_padding(self._sum_over_processes)  # all ranks take part
        scored: dict[str, Evaluation] = {}
        peft = publish_model(self.run, self.unwrapped, self.built.tuning)[1] if self.is_main else {}
        if self.is_main:
            for split, dataset, desc in (("eval", self.eval_set, "eval (published model)"),
                                         ("test", self.test_set, "test")):
                if dataset is not None:
                    scored[split] = self.evaluate(dataset, desc)
                    write_task_predictions(scored[split], self.run.predictions(split))
            machine = {"device": str(self.accelerator.device),
                       "num_processes": self.accelerator.num_processes,
                       "padding_ratio_by_epoch": padding}
            self.run.write_json(self.run.metrics, run_metrics(
                self.config, self.state, published, wall_s, self.data, machine, scored, peft))
        self.accelerator.wait_for_everyone()
        evaluated, tested = scored.get("eval"), scored.get("test")
        return TrainResult(
            self.run.root, self.state.step, published, self.state.best_step,
            self.config.train.metric_for_best, self.state.best_metric,
            evaluated.ctc if evaluated else None, tested.ctc if tested else None, wall_s,
            evaluated.heads if evaluated else (), tested.heads if tested else (),
            is_main=self.is_main)


def train(config: Config, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train and publish the model ``config`` describes (CTC, classifier or multi-task) in the
    run directory ``config.train.output_dir``. The model card is not written here: the caller
    writes it (``wavtune train`` does; ``wavtune card RUN`` rebuilds it)."""
    return Trainer(config, resume=resume, progress=progress).fit()
