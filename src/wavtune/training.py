"""The training loop: build data, model and optimizer from a Config, train, evaluate, publish.

Runs on one process or under ``accelerate launch`` / ``torchrun`` (accelerate does device
placement, mixed precision and DDP). Never reads argv.
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
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from wavtune import faults
from wavtune.augment import Augmenter
from wavtune.checkpoint import (
    TrainerState,
    prune_checkpoints,
    resume_checkpoint,
    save_checkpoint,
    save_model,
)
from wavtune.classification import HeadEvaluation
from wavtune.collate import Batch, Collator
from wavtune.config import Config, augment_options
from wavtune.data import AudioSettings, Example, SpeechDataset
from wavtune.dataprep import PreparedData, prepare_data
from wavtune.diagnostics import DiagnosticMonitor, DiagnosticSettings
from wavtune.divergence import GoodStep, divergence_message
from wavtune.engine import make_accelerator, make_optimizer
from wavtune.evaluation import (
    CTCEvaluation,
    Evaluation,
    evaluate,
    write_task_predictions,
)
from wavtune.interrupts import StopFlag
from wavtune.loader import LoaderOptions, attach_caches, cache_folder
from wavtune.modeling import (
    BuiltModel,
    build_model,
    count_parameters,
    encoder_config,
    set_encoder_frozen,
)
from wavtune.objective import Objective, is_better
from wavtune.rundir import RunDir, prepare_run_dir
from wavtune.runinfo import framework_versions
from wavtune.sampling import DurationBatchSampler
from wavtune.skipping import Failed, SkippingCollator, SkippingDataset
from wavtune.trainmeter import TrainMeter

log = logging.getLogger("wavtune")



class TrainingError(RuntimeError):
    """Training cannot continue; the message says why and what to change."""


class Interrupted(RuntimeError):
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


class Trainer:
    """One run: everything the loop needs, built once from the config."""

    def __init__(self, config: Config, resume: bool = False, progress: bool = True) -> None:
        from accelerate.utils import set_seed

        self.config, self.progress = config, progress
        t = config.train
        self.accelerator = make_accelerator(t, config.model.freeze_encoder_steps > 0)
        self.is_main = self.accelerator.is_main_process
        set_seed(t.seed)
        self.run = RunDir(Path(t.output_dir))
        if self.is_main:
            self.run = prepare_run_dir(t.output_dir, config, resume)
        self.accelerator.wait_for_everyone()

        self.data: PreparedData = prepare_data(config, self.run, progress=progress and self.is_main)
        built: BuiltModel = build_model(config, self.data.vocab, self.data.label_sets)
        self.built = built
        encoder = encoder_config(built.model.config)
        self.data = self.data.checked(encoder.conv_kernel, encoder.conv_stride,
                                      built.sample_rate, config.data.on_error,
                                      progress=progress and self.is_main)
        if self.is_main:
            if self.data.vocab is not None:
                self.data.vocab.save(self.run.root)
            built.feature_extractor.save_pretrained(str(self.run.root))
        audio = AudioSettings(built.sample_rate, bool(built.feature_extractor.do_normalize))
        normalizer = config.text.normalizer()

        def dataset(utts: Any) -> SpeechDataset:
            return SpeechDataset(utts, audio, self.data.vocab, normalizer, config.data.text_column,
                                 label_sets=self.data.label_sets)

        self.train_set = dataset(self.data.train)
        augment = augment_options(config.augment)
        if augment.enabled:
            self.train_set.augment = Augmenter(augment, built.sample_rate, t.seed)
        self.eval_set = dataset(self.data.eval) if self.data.eval else None
        self.test_set = dataset(self.data.test) if self.data.test else None
        if config.data.audio_cache:  # decoded once here; every epoch (and eval) reads the cache
            attach_caches([d for d in (self.train_set, self.eval_set) if d is not None],
                          cache_folder(config.data, self.run.root), self.is_main,
                          self.accelerator.wait_for_everyone, config.data.cache_threads,
                          progress and self.is_main)
        # blank collapse, overfitting, non-finite losses: said when seen, recorded in the card
        self.monitor = DiagnosticMonitor(
            DiagnosticSettings.from_config(config, len(self.eval_set) if self.eval_set else None),
            self.run.read_log() if resume else ())
        self.sampler = DurationBatchSampler(
            self.train_set.durations(), batch_size=t.train_batch_size,
            max_batch_seconds=t.max_batch_seconds, seed=t.seed,
            num_replicas=self.accelerator.num_processes, rank=self.accelerator.process_index,
            max_batch_size=t.max_batch_size,
        )
        self.meter = TrainMeter()
        loading = LoaderOptions.from_config(config.data, self.accelerator.device.type == "cuda",
                                            augment.enabled)
        self.loader: DataLoader[Example | Failed] = DataLoader(
            # a clip that fails to decode mid-run is skipped or fatal, as data.on_error says
            SkippingDataset(self.train_set, config.data.on_error), batch_sampler=self.sampler,
            collate_fn=SkippingCollator(Collator()),
            # workers re-created each epoch see the dataset's new epoch (augmentation seeds)
            **loading.kwargs(),
            # its own generator: starting an epoch must not draw from the global RNG, or a run
            # resumed mid-epoch would see different dropout and SpecAugment masks
            generator=torch.Generator().manual_seed(t.seed),
        )
        batches_per_epoch = len(self.sampler)
        self.steps_per_epoch = max(1, math.ceil(batches_per_epoch / t.gradient_accumulation_steps))
        self.total_steps = t.max_steps or math.ceil(t.num_epochs * self.steps_per_epoch)
        self.objective = Objective.for_run(config, built, self.data.label_sets)

        model = built.model
        optimizer, scheduler = make_optimizer(model, t, self.total_steps)
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            model, optimizer, scheduler)
        self.state = TrainerState()
        found = (resume_checkpoint(self.run, self.unwrapped, self.optimizer, self.scheduler)
                 if resume else None)
        if found is not None:
            latest, self.state = found
            log.info("resumed from %s (step %d)", latest, self.state.step)
        if self.state.step >= config.model.freeze_encoder_steps:
            set_encoder_frozen(self.unwrapped, False, config.model.freeze_feature_encoder)
        if self.is_main:
            heads = [f"vocabulary {len(self.data.vocab)} tokens"] if self.data.vocab else []
            heads += [f"{s.column}: {len(s)} labels" for s in self.data.label_sets]
            log.info("model: %s, %.2fM parameters (%.2fM trainable); %s",
                     type(model).__name__, count_parameters(model) / 1e6,
                     count_parameters(model, trainable_only=True) / 1e6, "; ".join(heads))
            log.info("data: %d train / %d eval utterances; %d steps (%d per epoch)",
                     len(self.train_set), len(self.eval_set or []), self.total_steps,
                     self.steps_per_epoch)

    def _sum_over_processes(self, values: torch.Tensor) -> torch.Tensor:
        if self.accelerator.num_processes == 1:
            return values
        summed: torch.Tensor = self.accelerator.reduce(values.to(self.accelerator.device), "sum")
        return summed.cpu()

    @property
    def unwrapped(self) -> Any:
        return self.accelerator.unwrap_model(self.model)

    # --- one epoch of micro-batches, resuming mid-epoch when asked ----------------------------
    def _batches(self) -> Iterator[tuple[int, int, Batch]]:
        while True:
            epoch, start = self.state.epoch, self.state.batches_done
            self.sampler.set_epoch(epoch, start_batch=start)
            self.train_set.epoch = epoch
            batches: Iterator[Batch] = iter(self.loader)  # the collator makes Batches
            i, waited = start, time.perf_counter()
            for batch in batches:
                self.meter.waited(time.perf_counter() - waited)
                self.meter.batch(epoch, batch.num_samples, batch.attention_mask.numel())
                yield epoch, i, batch
                i, waited = i + 1, time.perf_counter()
            self.state = replace(self.state, epoch=epoch + 1, batches_done=0)

    def evaluate(self, dataset: SpeechDataset, desc: str = "evaluate") -> Evaluation:
        return evaluate(self.unwrapped, dataset, self.config.train.eval_batch_size,
                        self.built.uses_attention_mask, self.config.data.num_workers,
                        progress=self.progress and self.is_main,
                        on_error=self.config.data.on_error)

    def _log(self, record: dict[str, Any]) -> None:
        self.run.append_log(record)
        for diagnosis in self.monitor.update(record, self.state.nonfinite_steps):
            log.warning("%s", diagnosis.render())

    def _checkpoint(self) -> None:
        if self.is_main:
            save_checkpoint(self.run, self.unwrapped, self.optimizer, self.scheduler, self.state)
            prune_checkpoints(self.run, self.config.train.save_total_limit, self.state.best_step)
        self.accelerator.wait_for_everyone()

    def _eval_and_checkpoint(self, train_loss: float) -> None:
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
                             if k in ("loss", "wer", "cer") or k.endswith("_accuracy"))
            tqdm.write(f"step {self.state.step}: eval {shown} (best {metric} "
                       f"{self.state.best_metric:.4f} at step {self.state.best_step})")
        if self.eval_set is not None and self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            # rank 0 scored the eval set: every rank must agree on the checkpoint to publish
            best = broadcast_object_list([self.state.best_step, self.state.best_metric])
            self.state = replace(self.state, best_step=best[0], best_metric=best[1])
        self._checkpoint()

    def _epoch_float(self) -> float:
        return round(self.state.step / self.steps_per_epoch, 2)

    def _due_for_eval(self, epoch_ended: bool) -> bool:
        t = self.config.train
        if self.state.step >= self.total_steps:
            return True
        if t.eval_strategy == "epoch":
            return epoch_ended
        return self.state.step % t.eval_steps == 0

    def _dropped_while_training(self, batch: Batch) -> None:
        """Count and log the clips of ``batch`` that failed to decode (data.on_error=skip)."""
        self.state = replace(self.state, dropped_while_training=(
            self.state.dropped_while_training + len(batch.dropped)))
        for utt_id, reason in batch.dropped:
            log.warning("skipped utterance %r: %s (data.on_error=skip)", utt_id, reason)
        if self.is_main:
            self._log({"step": self.state.step, "epoch": self._epoch_float(),
                       "dropped": [{"id": i, "reason": r} for i, r in batch.dropped],
                       "dropped_while_training": self.state.dropped_while_training})

    def _stop(self, signum: int) -> None:
        """SIGINT/SIGTERM arrived: checkpoint, then raise Interrupted with how to continue."""
        self._checkpoint()
        raise Interrupted(
            f"stopped by signal {signum} at step {self.state.step}; checkpoint written to "
            f"{self.run.latest_checkpoint()}. Continue with: wavtune train {self.run.config} "
            f"--resume")

    def fit(self) -> TrainResult:
        """Train to ``total_steps``, evaluating and checkpointing as configured; then publish."""
        t, cfg = self.config.train, self.config
        start = time.perf_counter()
        accum = t.gradient_accumulation_steps
        bar = tqdm(total=self.total_steps, initial=self.state.step, desc="train", unit="step",
                   disable=not (self.progress and self.is_main), dynamic_ncols=True)
        running_loss, running_n, consecutive_bad, audio_s = 0.0, 0, 0, 0.0
        running_parts: dict[str, float] = {}  # multi-task: each head's loss
        bad_loss = False  # a micro-batch of the current optimizer step had a non-finite loss
        last_good: GoodStep | None = None
        self.meter = TrainMeter()  # windows start now, not when the Trainer was built
        self.model.train()
        with StopFlag() as stop:
            micro = 0
            for epoch, index, batch in self._batches():
                if self.state.step >= self.total_steps:
                    break
                if batch.dropped:
                    self._dropped_while_training(batch)
                    if not batch.ids:  # every clip of the batch failed to decode
                        continue
                batch = batch.to(self.accelerator.device)
                last_of_epoch = index == len(self.sampler) + self.sampler.start_batch - 1
                micro += 1
                sync = micro % accum == 0 or last_of_epoch
                ctx = self.accelerator.no_sync(self.model) if not sync else contextlib.nullcontext()
                with ctx:
                    step_loss = self.objective(self.model, batch)
                    loss = faults.loss(step_loss.total, self.state.step + 1)
                    # a non-finite loss is back-propagated too: under DDP every process must join
                    # the gradient all-reduce, whose NaNs then make every process skip the step
                    self.accelerator.backward(loss / accum)
                    loss_value = loss.item()  # one device sync per micro-batch
                    if math.isfinite(loss_value):
                        running_loss, running_n = running_loss + loss_value, running_n + 1
                        self.meter.loss(loss_value)
                        for name, part in step_loss.parts.items():
                            running_parts[name] = running_parts.get(name, 0.0) + part.item()
                    else:
                        bad_loss = True
                if not sync:
                    continue
                micro = 0
                faults.gradients(self.model, self.state.step + 1)
                # max_grad_norm 0: no clipping, but the norm is still measured (non-finite check)
                grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(),
                                                             t.max_grad_norm or math.inf)
                finite_grad = bool(torch.isfinite(torch.as_tensor(grad_norm)))
                scaler = self.accelerator.scaler
                if not finite_grad and scaler is not None:
                    # fp16: the scaler sees the inf/NaN, skips the update and halves its scale
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    if not bad_loss and scaler.get_scale() >= 1.0:
                        continue  # an overflow of loss scaling at work, not a fault; below a
                    # scale of 1 the gradients are non-finite unscaled: counted as a fault
                if bad_loss or not finite_grad:
                    kind = "loss" if bad_loss else "gradient"
                    bad_loss = False
                    self.optimizer.zero_grad(set_to_none=True)  # no update: weights, moments, LR
                    consecutive_bad += 1
                    self.state = replace(self.state, nonfinite_steps=self.state.nonfinite_steps + 1)
                    log.warning("step %d: non-finite %s; step skipped (%d skipped so far)",
                                self.state.step + 1, kind, self.state.nonfinite_steps)
                    if self.is_main:
                        self._log({"step": self.state.step, "epoch": self._epoch_float(),
                                   "skipped_nonfinite": kind,
                                   "nonfinite_steps": self.state.nonfinite_steps})
                    if consecutive_bad >= t.max_consecutive_nonfinite:
                        self._checkpoint()  # the last good weights: nothing was updated since
                        raise TrainingError(divergence_message(
                            t, consecutive_bad, kind, self.state.step + 1, last_good,
                            self.run.latest_checkpoint(), self.run.log, self.run.config))
                    if stop.signal is not None:
                        self._stop(stop.signal)
                    continue
                consecutive_bad = 0
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.state = replace(self.state, step=self.state.step + 1, epoch=epoch,
                                     batches_done=index + 1)
                if self.state.step == cfg.model.freeze_encoder_steps > 0:
                    set_encoder_frozen(self.unwrapped, False, cfg.model.freeze_feature_encoder)
                last_good = GoodStep(self.state.step, loss_value, self.scheduler.get_last_lr()[0])
                bar.update(1)
                faults.after_step(self.state.step)
                window = (self.meter.reduce(self._sum_over_processes, self.built.sample_rate)
                          if self.state.step % t.logging_steps == 0 else None)  # all ranks
                if window is not None and running_n and self.is_main:
                    elapsed = time.perf_counter() - start
                    audio_s += window.audio_s  # every process's audio, not only this one's
                    record = {"step": self.state.step, "epoch": self._epoch_float(),
                              "loss": running_loss / running_n if window.loss is None
                              else window.loss,
                              "learning_rate": self.scheduler.get_last_lr()[0],
                              "grad_norm": float(grad_norm), "audio_s_per_s": audio_s / elapsed,
                              "nonfinite_steps": self.state.nonfinite_steps,
                              "padding_ratio": round(window.padding_ratio, 4),
                              "data_share": round(window.data_share, 4)}
                    record.update({k: v / running_n for k, v in running_parts.items()})
                    running_parts = {}
                    self._log(record)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['learning_rate']:.2e}")
                    self._last_train_loss = running_loss / running_n
                    running_loss, running_n = 0.0, 0
                if self._due_for_eval(epoch_ended=last_of_epoch):
                    self._eval_and_checkpoint(getattr(self, "_last_train_loss", float("nan")))
                if stop.signal is not None:
                    self._stop(stop.signal)
        bar.close()
        return self._publish(time.perf_counter() - start)

    def _publish(self, wall_s: float) -> TrainResult:
        """Load the best checkpoint's weights, save them as the run's model, score eval and test."""
        published = self.state.step
        if self.state.best_step is not None and self.run.checkpoint(self.state.best_step).is_dir():
            from safetensors.torch import load_file

            best = self.run.checkpoint(self.state.best_step)
            weights: dict[str, torch.Tensor] = {}
            for shard in sorted(best.glob("*.safetensors")):
                weights.update(load_file(str(shard)))
            self.unwrapped.load_state_dict(weights, strict=False)
            published = self.state.best_step
        eval_result = test_result = None
        padding = self.meter.epoch_padding(self._sum_over_processes)  # all ranks take part
        if self.is_main:
            save_model(self.unwrapped, self.run.root)
            if self.eval_set is not None:
                eval_result = self.evaluate(self.eval_set, "eval (published model)")
                write_task_predictions(eval_result, self.run.predictions("eval"))
            if self.test_set is not None:
                test_result = self.evaluate(self.test_set, "test")
                write_task_predictions(test_result, self.run.predictions("test"))
            metrics: dict[str, Any] = {
                "published_step": published, "last_step": self.state.step,
                "best_step": self.state.best_step, "metric_for_best": self.config.train.metric_for_best,
                "best_metric": self.state.best_metric, "nonfinite_steps": self.state.nonfinite_steps,
                "dropped_while_training": self.state.dropped_while_training,
                "train_runtime_s": round(wall_s, 1), **self.data.summary(),
                "versions": framework_versions(), "device": str(self.accelerator.device),
                "num_processes": self.accelerator.num_processes,
                "padding_ratio_by_epoch": padding,
            }
            for split, result in (("eval", eval_result), ("test", test_result)):
                if result is not None:
                    metrics[split] = {**result.scores(), "utterances": result.num_utterances}
                    for head in result.heads:
                        metrics[split].setdefault("heads", {})[head.name] = head.details()
            self.run.write_json(self.run.metrics, metrics)
            self._write_reports()
        self.accelerator.wait_for_everyone()
        return TrainResult(self.run.root, self.state.step, published, self.state.best_step,
                           self.config.train.metric_for_best, self.state.best_metric,
                           eval_result.ctc if eval_result else None,
                           test_result.ctc if test_result else None, wall_s,
                           eval_result.heads if eval_result else (),
                           test_result.heads if test_result else ())


    def _write_reports(self) -> None:
        """Model card, plots and error report; a failure here must not lose a finished run."""
        from wavtune.card import write_reports

        try:
            write_reports(self.run.root)
        except Exception as e:  # noqa: BLE001 - reported, and `wavtune card` rebuilds them
            log.warning("model card not written (%s); rebuild it with: wavtune card %s", e,
                        self.run.root)


def train(config: Config, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train a CTC model as ``config`` says; the run directory is ``config.train.output_dir``."""
    return Trainer(config, resume=resume, progress=progress).fit()
