"""Hugging Face Hub metadata of a model card: front matter and a FILLED ``model-index``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wavtune.card.facts import RunFacts
from wavtune.card.trainer_format import DECIMALS, column_selected, wanted_metrics
from wavtune.config import Config
from wavtune.run.log import Column, finite
from wavtune.scoring.registry import ERROR_RATES, METRICS

ASR_TASK = ("automatic-speech-recognition", "Automatic Speech Recognition")
CLASSIFICATION_TASK = ("audio-classification", "Audio Classification")
SPLIT_NAMES = {"eval": "validation", "test": "test"}
# metrics.json score keys -> (Hub metric type, metric name suffix) for model-index
HUB_METRICS = {n: (m.hub_type, m.hub_name or m.display) for n, m in METRICS.items() if m.hub_type}


def split_label(facts: RunFacts, split: str) -> str:
    data = facts.metrics.data.get(split)
    if data is not None and not data.held_out and data.manifest_path is not None:
        stem = data.manifest_path.stem
        if stem and stem not in ("train", "manifest"):
            return stem
    return SPLIT_NAMES.get(split, split)


def _slug(name: str) -> str:
    """A dataset id-like form of a name: ``Free Spoken Digits`` -> ``free-spoken-digits``."""
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split()) or "custom"


def _head_metric(key: str) -> tuple[str, str] | None:
    """``('speaker', 'accuracy')`` for ``speaker_accuracy``; ``('', 'wer')`` for ``wer``."""
    for base in sorted(HUB_METRICS, key=len, reverse=True):
        if key == base:
            return "", base
        if key.endswith("_" + base):
            return key[: -len(base) - 1], base
    return None


def _title_words(name: str) -> str:
    return " ".join(part.capitalize() for part in name.split("_"))


def model_index_results(facts: RunFacts) -> list[dict[str, Any]]:
    """model-index results of the published checkpoint: one entry per split and task type."""
    wanted = wanted_metrics(facts.card)
    results: list[dict[str, Any]] = []
    dataset: dict[str, Any] = {"type": facts.card.dataset or _slug(facts.dataset_name),
                               "name": facts.dataset_name}
    if facts.card.dataset_config:
        dataset["config"] = facts.card.dataset_config
    for split in ("eval", "test"):
        scores = dict(facts.metrics.scores.get(split, {}))
        if not scores and split == "eval" and facts.published_eval is not None:
            scores = {k.removeprefix("eval_"): v for k, v in facts.published_eval.values.items()}
        by_task: dict[tuple[str, str], list[dict[str, Any]]] = {}
        found = [(key, hm, finite(value)) for key, value in scores.items()
                 if (hm := _head_metric(key)) is not None and finite(value) is not None]
        heads = {head for _, (head, base), _ in found if head and base not in ERROR_RATES}
        for _key, (head, base), number in found:
            if base not in ERROR_RATES and (bool(head) != (len(heads) > 1)) and heads:
                continue  # one head: its unprefixed scores; several: each head's own
            family = base if base in ERROR_RATES else "classification"
            if number is None or not column_selected(Column(f"eval_{base}", base, family),
                                                     wanted):
                continue
            hub_type, label = HUB_METRICS[base]
            name = " ".join(p for p in (split_label(facts, split).capitalize(),
                                        _title_words(head) if len(heads) > 1 else "", label) if p)
            task = ASR_TASK if base in ERROR_RATES else CLASSIFICATION_TASK
            by_task.setdefault(task, []).append(
                {"type": hub_type, "value": round(number, DECIMALS), "name": name})
        for (task_type, task_name), metric_list in by_task.items():
            results.append({"task": {"type": task_type, "name": task_name},
                            "dataset": {**dataset, "split": split_label(facts, split)},
                            "metrics": metric_list})
    return results


def task_type(config: Config) -> str:
    return CLASSIFICATION_TASK[0] if str(config.task) == "classify" else ASR_TASK[0]


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def base_model(config: Config) -> str:
    """The Hub id fine-tuned from ('' for random init or a local folder)."""
    name = config.model.name_or_path
    if not name or Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        return ""
    return name


def front_matter(facts: RunFacts) -> dict[str, Any]:
    """The card's YAML metadata (Hub model card spec)."""
    card, config = facts.card, facts.config
    meta: dict[str, Any] = {}
    if card.license:
        meta["license"] = card.license
    if card.language:
        meta["language"] = list(card.language)
    meta["library_name"] = "transformers"
    base = base_model(config)
    if base:
        meta["base_model"] = base
    meta["tags"] = _unique([task_type(config), facts.model.model_type or config.model.arch,
                            "wavtune", *card.tags])
    if card.dataset:
        meta["datasets"] = [card.dataset]
    results = model_index_results(facts)
    metric_types = _unique([m["type"] for r in results for m in r["metrics"]])
    if metric_types:
        meta["metrics"] = metric_types
    meta["pipeline_tag"] = task_type(config)
    if results:
        meta["model-index"] = [{"name": facts.model_name, "results": results}]
    return meta
