"""Publishing a finished run: the best checkpoint's weights become the run's model, and
``metrics.json`` says which step was published, why, and how it scored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from wavtune.config import Config
from wavtune.model.peft import Tuning, merged_model, parameter_counts, save_artifact
from wavtune.run.directory import RunDir
from wavtune.run.records import framework_versions
from wavtune.scoring.evaluation import Evaluation
from wavtune.train.checkpoint import TrainerState
from wavtune.train.prepare import PreparedData


def load_best_weights(run: RunDir, state: TrainerState, model: torch.nn.Module) -> int:
    """Load checkpoint ``state.best_step``'s weights into ``model`` when it is on disk; the step
    whose weights ``model`` now holds (the last one without an eval set to choose by)."""
    if state.best_step is None or not run.checkpoint(state.best_step).is_dir():
        return state.step
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for shard in sorted(run.checkpoint(state.best_step).glob("*.safetensors")):
        weights.update(load_file(str(shard)))
    model.load_state_dict(weights, strict=False)
    return state.best_step


def publish_model(run: RunDir, model: torch.nn.Module, tuning: Tuning | None
                  ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Save the run's model: PEFT runs write their adapter artefact first, then the model merged
    into a plain transformers folder. The model now published (evaluate this one) and the
    ``peft`` record for metrics.json and the card (method, settings, params, adapter bytes)."""
    from dataclasses import asdict

    from wavtune.train.checkpoint import save_model

    params = parameter_counts(model)  # before merging: LoRA's trainable share
    files = save_artifact(model, tuning, run.root) if tuning is not None else []  # type: ignore[arg-type]
    published = merged_model(model, tuning) if tuning is not None else model  # type: ignore[arg-type]
    save_model(published, run.root)  # type: ignore[arg-type]
    method = tuning.method if tuning is not None else "none"
    record: dict[str, Any] = {"method": method, "params": params}
    if tuning is not None and tuning.efficient:
        record["settings"] = asdict(tuning.settings)
        record["adapter_files"] = [str(f.relative_to(run.root)) for f in files]
        record["adapter_bytes"] = sum(f.stat().st_size for f in files if f.suffix != ".md")
    return published, record


def run_metrics(config: Config, state: TrainerState, published: int, wall_s: float,
                data: PreparedData, machine: Mapping[str, Any],
                scored: Mapping[str, Evaluation], peft: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    """The content of ``metrics.json``. ``machine``: device, num_processes and
    padding_ratio_by_epoch; ``scored``: the published model's evaluation of each split;
    ``peft``: :func:`publish_model`'s record (its ``params`` also at the top level)."""
    metrics: dict[str, Any] = {
        "published_step": published, "last_step": state.step,
        "best_step": state.best_step, "metric_for_best": config.train.metric_for_best,
        "best_metric": state.best_metric, "nonfinite_steps": state.nonfinite_steps,
        "dropped_while_training": state.dropped_while_training,
        "train_runtime_s": round(wall_s, 1), **data.summary(),
        "versions": framework_versions(), **machine,
    }
    if peft is not None:
        metrics.update(params=peft["params"], peft=dict(peft))
    for split, result in scored.items():
        metrics[split] = {**result.scores(), "utterances": result.num_utterances}
        for head in result.heads:
            metrics[split].setdefault("heads", {})[head.name] = head.details()
    return metrics
