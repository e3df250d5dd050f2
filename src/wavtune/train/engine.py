"""The training engine: accelerate's Accelerator for the run's device and precision, AdamW with
the run's learning-rate schedule, and the state they resume from.

accelerate handles devices, DDP (torchrun / ``accelerate launch``) and mixed precision; this
module only turns the ``train`` config into its arguments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from wavtune.config import Config, TrainConfig
from wavtune.model.build import set_encoder_frozen
from wavtune.run.directory import RunDir
from wavtune.train.checkpoint import TrainerState, resume_checkpoint
from wavtune.train.schedule import Schedule
from wavtune.train.threads import apply_threads, plan_threads
from wavtune.train.trackers import TRACKING_FOLDER, check_trackers

log = logging.getLogger("wavtune")

CACHE_BUILD_TIMEOUT_S = 6 * 3600  # longest wait at a barrier for rank 0 (its cache build)


def run_precision(train: TrainConfig) -> tuple[bool, str]:
    """(train on CPU?, the mixed precision accelerate gets): fp16/bf16 need a GPU; a GPU without
    bf16 gets fp16 with loss scaling instead."""
    precision = train.mixed_precision
    use_cpu = train.device == "cpu" or not torch.cuda.is_available()
    if use_cpu and precision != "no":
        log.warning("train.mixed_precision=%s needs a GPU; training in fp32 on CPU", precision)
        return use_cpu, "no"
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        log.warning("train.mixed_precision=bf16: this GPU has no bf16; using fp16 with loss "
                    "scaling instead")
        return use_cpu, "fp16"
    if precision == "fp16" and torch.cuda.is_bf16_supported():
        log.info("this GPU supports bf16, which needs no loss scaling and rarely overflows; "
                 "consider train.mixed_precision=bf16")
    return use_cpu, precision


def make_accelerator(config: Config, find_unused_parameters: bool) -> Any:
    """An ``accelerate.Accelerator`` for this process (one of several under torchrun), with the
    trackers of ``train.report_to`` (started by :func:`wavtune.train.trackers.start_trackers`),
    and torch's compute threads sized to the free cores beside the DataLoader workers."""
    from accelerate import Accelerator
    from accelerate.utils import (
        DistributedDataParallelKwargs,
        InitProcessGroupKwargs,
        ProjectConfiguration,
    )

    train = config.train
    check_trackers(train.report_to)  # a missing extra stops the run before any work
    apply_threads(plan_threads(train.num_threads, config.data.num_workers))
    use_cpu, precision = run_precision(train)
    tracking = Path(train.output_dir) / TRACKING_FOLDER
    return Accelerator(
        cpu=use_cpu, mixed_precision=precision, log_with=list(train.report_to) or None,
        project_config=ProjectConfiguration(project_dir=train.output_dir,
                                            logging_dir=str(tracking)),
        # frozen-then-unfrozen encoders leave parameters without gradients for a while
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters),
                         # the other ranks wait at a barrier while rank 0 builds the audio cache,
                         # which takes longer than the default 10-30 min on a large corpus
                         InitProcessGroupKwargs(timeout=timedelta(seconds=CACHE_BUILD_TIMEOUT_S))],
    )


def make_optimizer(model: torch.nn.Module, train: TrainConfig, total_steps: int,
                   trainable_only: bool = False
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no weight decay on biases and norms: parameters with fewer than 2 dimensions) and
    its per-step LR multiplier over ``total_steps`` optimizer steps; ``trainable_only`` (PEFT):
    over the trainable parameters alone (frozen ones never thaw)."""
    params = [p for p in model.parameters() if p.requires_grad or not trainable_only]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": train.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    betas = (train.adam_beta1, train.adam_beta2)
    try:
        # one fused kernel per step instead of a loop over tensors: on CPU (torch >= 2.4) as on
        # CUDA; the state dict is the same, so checkpoints resume either way
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            groups, lr=train.learning_rate, betas=betas, eps=train.adam_epsilon, fused=True
        )
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        optimizer = torch.optim.AdamW(
            groups, lr=train.learning_rate, betas=betas, eps=train.adam_epsilon
        )
    schedule = Schedule(train.lr_scheduler_type, train.warmup_steps, total_steps,
                        train.tri_stage_hold_ratio, train.tri_stage_final_lr_scale)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


@dataclass(frozen=True)
class Engine:
    """The model, optimizer and LR schedule as ``accelerator.prepare`` wrapped them (DDP, mixed
    precision, loss scaling), and the training state they start from."""

    accelerator: Any
    model: Any  # the model, wrapped in DDP under several processes
    optimizer: Any  # accelerate's AcceleratedOptimizer
    scheduler: Any  # accelerate's AcceleratedScheduler
    state: TrainerState  # step 0, or where the resumed checkpoint stood


def build_engine(accelerator: Any, model: torch.nn.Module, config: Config, total_steps: int,
                 run: RunDir, resume: bool) -> Engine:
    """Optimizer and schedule for ``model``, prepared by ``accelerator``; with ``resume``, the
    newest whole checkpoint of ``run`` restored into all three."""
    efficient = config.model.peft.method != "none"
    optimizer, scheduler = make_optimizer(model, config.train, total_steps, efficient)
    if config.train.compile:  # in place: the module, its parameters and state_dict keys stay
        model.compile()
    wrapped, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    state = TrainerState()
    unwrapped = accelerator.unwrap_model(wrapped)
    found = resume_checkpoint(run, unwrapped, optimizer, scheduler) if resume else None
    if found is not None:
        latest, state = found
        log.info("resumed from %s (step %d)", latest, state.step)
    if not efficient and state.step >= config.model.freeze_encoder_steps:  # else the loop does
        set_encoder_frozen(unwrapped, False, config.model.freeze_feature_encoder)
    return Engine(accelerator, wrapped, optimizer, scheduler, state)
