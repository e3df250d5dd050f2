"""The model card of a ``wavtune pretrain`` run: what the encoder was pre-trained on, for how
long, where its objective ended, and the command that fine-tunes it.

:func:`write_pretrain_reports` writes ``README.md`` (with Hub front matter), ``log.csv`` and
``plots/pretraining_curves.png`` (when matplotlib is installed), all from the run's own files:
``wavtune.yaml``, ``log.jsonl`` and ``metrics.json``.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from wavtune import __version__
from wavtune.config import Config
from wavtune.run.directory import load_run_config
from wavtune.run.log import export_log, finite, read_records
from wavtune.run.records import framework_versions

CARD_FILE = "README.md"
CURVES = "plots/pretraining_curves.png"
# logged key -> card label, in table order
FIGURES = {"loss": "Loss", "contrastive_loss": "Contrastive loss",
           "diversity_loss": "Diversity loss", "codevector_perplexity": "Codevector perplexity",
           "contrastive_accuracy": "Contrastive accuracy",
           "gumbel_temperature": "Gumbel temperature",
           "masked_loss": "Masked cross-entropy", "unmasked_loss": "Unmasked cross-entropy",
           "masked_accuracy": "Masked accuracy", "cluster_perplexity": "Cluster perplexity",
           "target_perplexity": "Target perplexity"}
# per objective: the figure the card starts from, the plotted ones, what the objective does
OBJECTIVES = {
    "contrastive": ("contrastive_loss", ("contrastive_loss", "contrastive_accuracy",
                                         "codevector_perplexity"),
                    "wav2vec 2.0: masked frames pick their quantized target among distractors"),
    "hubert": ("masked_loss", ("masked_loss", "masked_accuracy", "cluster_perplexity"),
               "HuBERT's first iteration: masked frames predict the k-means cluster of their MFCC "
               "frame"),
}


def is_pretrain_run(run: str | Path) -> bool:
    path = Path(run) / "metrics.json"
    if not path.is_file():
        return False
    return bool(json.loads(path.read_text(encoding="utf-8")).get("task") == "pretrain")


def _last(records: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [finite(r[key]) for r in records if key in r]
    found = [v for v in values if v is not None]
    return found[-1] if found else None


def _model_facts(root: Path) -> tuple[str, int]:
    """The published model's class (config.json) and parameter count (its safetensors)."""
    from safetensors import safe_open

    config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    count = 0
    for shard in sorted(root.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as weights:
            for key in weights.keys():  # noqa: SIM118 - safe_open is not a mapping
                count += math.prod(weights.get_slice(key).get_shape())
    return str((config.get("architectures") or ["pre-training model"])[0]), count


def _front_matter(config: Config) -> dict[str, Any]:
    card = config.card
    meta: dict[str, Any] = {"library_name": "transformers", "license": card.license}
    if card.language:
        meta["language"] = list(card.language)
    if card.dataset:
        meta["datasets"] = [card.dataset]
    meta["tags"] = ["wavtune", config.model.arch, "self-supervised-learning", "pretraining",
                    *card.tags]
    return meta


def _start(config: Config) -> str:
    model = config.model
    if model.name_or_path and not model.random_init:
        return f"continued from `{model.name_or_path}`"
    if model.name_or_path:
        return f"from scratch with the architecture of `{model.name_or_path}`"
    return f"from scratch (preset `{model.preset}`, architecture `{model.arch}`)"


def _figures_table(records: Sequence[dict[str, Any]], metrics: dict[str, Any],
                   objective: str) -> list[str]:
    rows = ["| figure | first logged window | last logged window |", "|---|---|---|"]
    first = next((r for r in records if OBJECTIVES[objective][0] in r), {})
    for key, label in FIGURES.items():
        end = _last(records, key)
        if end is not None:
            start = finite(first.get(key))
            rows.append(f"| {label} | {'' if start is None else f'{start:.4g}'} | {end:.4g} |")
    scored = metrics.get("eval") or {}
    if scored:
        shown = ", ".join(f"{FIGURES.get(k, k).lower()} {v:.4f}" for k, v in scored.items()
                          if k != "utterances")
        rows += ["", f"Held-out audio ({scored.get('utterances')} clips) at the published step: "
                 f"{shown}."]
    return rows


def _objective_line(config: Config) -> str:
    pre, t = config.pretrain, config.train
    training = (f"Learning rate {t.learning_rate} ({t.lr_scheduler_type}, {t.warmup_steps} "
                f"warm-up steps), batch size {t.train_batch_size}, seed {t.seed}. The complete "
                f"configuration is in `wavtune.yaml`.")
    if pre.objective == "hubert":
        return (f"Objective: mask_time_prob {pre.mask_time_prob}, mask_time_length "
                f"{pre.mask_time_length}; targets: k-means clusters of MFCC (+deltas) frames at "
                f"the encoder's frame rate, fitted on up to {pre.kmeans_sample_s:g} s of the "
                f"training audio (`mfcc_clusters.json`); unmasked-frame loss weight "
                f"{pre.unmasked_loss_weight}. {training}")
    return (f"Objective: mask_time_prob {pre.mask_time_prob}, mask_time_length "
            f"{pre.mask_time_length}, {pre.num_negatives} negatives from {pre.negatives_from} "
            f"frames, codebook {pre.num_codevector_groups} x {pre.num_codevectors_per_group} "
            f"(dim {pre.codevector_dim}), Gumbel temperature {pre.gumbel_temperature_max} -> "
            f"{pre.gumbel_temperature_min} (decay {pre.gumbel_temperature_decay} a step), "
            f"diversity loss weight {pre.diversity_loss_weight}. {training}")


def _loaders(model_class: str) -> str:
    """Which transformers classes load the folder (a cluster-prediction model is wavtune's:
    its encoder loads as the family's base and CTC classes)."""
    family = model_class.removesuffix("ForClusterPrediction")
    if family == model_class:
        return f"`{model_class}.from_pretrained` loads it"
    return (f"`{family}Model.from_pretrained` loads its encoder, `{family}ForCTC` puts a new head "
            f"on it; the cluster head `cluster_head.*` and the k-means codebook "
            f"`mfcc_clusters.json` serve continued pre-training")


def render_pretrain_card(run: str | Path) -> str:
    """The card text of pre-training run ``run`` (nothing is written)."""
    root = Path(run)
    config = load_run_config(root)
    metrics = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
    records = read_records(root)
    model_class, parameters = _model_facts(root)
    chosen = "best held-out loss" if metrics.get("best_step") is not None else "the last step"
    name = config.card.model_name or root.name
    dataset = config.card.dataset_name or Path(config.data.train).parent.name
    hours = metrics.get("train_hours", 0.0)
    meta = yaml.safe_dump(_front_matter(config), sort_keys=False, allow_unicode=True, width=1000)
    parts = [
        f"---\n{meta}---",
        "<!-- This model card was generated by wavtune from the run's logs "
        "(`wavtune card RUN` rebuilds it). -->",
        f"# {name}",
        f"A self-supervised {model_class} ({parameters / 1e6:.2f}M parameters), "
        f"{_start(config)}, pre-trained with the {config.pretrain.objective} objective "
        f"({OBJECTIVES[config.pretrain.objective][2]}) on "
        f"{hours:.2f} h of unlabelled audio from {dataset} "
        f"({metrics.get('train_utterances')} clips of `{config.data.train}`; transcripts are not "
        f"read). It is an encoder, not a recognizer: fine-tune it on labelled speech.",
        "## Fine-tune it",
        f"```\nwavtune train CONFIG --set model.name_or_path={root.resolve()}\n```\n\nThe folder "
        f"is a transformers model folder ({_loaders(model_class)}); `wavtune train` puts a "
        f"new CTC or classification head on its encoder, and "
        f"`model.random_init: true` gives the same architecture without the pre-training, the "
        f"baseline to compare against.",
        "## Pre-training",
        f"{metrics.get('last_step')} optimizer steps in "
        f"{metrics.get('train_runtime_s', 0) / 60:.1f} min; published step "
        f"{metrics.get('published_step')} ({chosen}).",
        "\n".join(_figures_table(records, metrics, config.pretrain.objective)),
        _objective_line(config),
        "### Framework versions",
        "\n".join(f"- {k} {v}" for k, v in {**framework_versions(),
                                            "wavtune": __version__}.items()),
    ]
    if (root / CURVES).is_file():
        parts.insert(parts.index("## Pre-training") + 3, f"![pre-training curves]({CURVES})")
    return "\n\n".join(parts) + "\n"


def plot_pretraining(run: str | Path) -> Path | None:
    """The objective's loss, accuracy and perplexity per step; None without a log."""
    from wavtune.card.plots import _figure, _save

    first, shown, _ = OBJECTIVES[load_run_config(run).pretrain.objective]
    records = [r for r in read_records(run) if first in r]
    if not records:
        return None
    fig = _figure(10.0, 3.2)
    steps = [r["step"] for r in records]
    for i, key in enumerate(shown):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.plot(steps, [r[key] for r in records])
        ax.set_xlabel("step")
        ax.set_title(FIGURES[key])
    return _save(fig, Path(run) / CURVES)


def write_pretrain_reports(run: str | Path, plots: bool = True) -> list[Path]:
    """``log.csv``, the curves (matplotlib installed and ``plots``) and ``README.md``."""
    written = export_log(run)
    if plots and importlib.util.find_spec("matplotlib") is not None:
        curves = plot_pretraining(run)
        written += [curves] if curves is not None else []
    path = Path(run) / CARD_FILE
    path.write_text(render_pretrain_card(run), encoding="utf-8")
    return [*written, path]
