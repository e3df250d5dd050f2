"""PNG figures of a run: training curves, confusion matrices, per-class F1.

matplotlib is imported inside the functions and drives its Agg canvas directly (no pyplot, no
global backend switch), so plotting works headless and never touches a user's backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from wavtune.run.log import RunLog, class_scores, eval_columns, finite, read_log
from wavtune.run.records import read_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOTS_DIR = "plots"
CURVES_FILE = "training_curves.png"
DPI = 110
MAX_METRIC_LINES = 8  # curves in the metrics panel (error rates and accuracies first)
MAX_ANNOTATED_CLASSES = 20  # confusion matrices larger than this lose their per-cell numbers


def _figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), format="png")
    return path


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-") or "head"


def _is_curve(family: str, name: str) -> bool:
    """Error rates and other scores get a curve; of a class report only accuracy and macro F1
    (per-class F1 has its own figure); losses and confusion matrices none."""
    if family == "classification":
        return name.endswith(("Accuracy", "Macro avg F1-score"))
    return family not in ("loss", "confusion")


def plot_curves(log: RunLog, path: str | Path, published_step: int | None = None,
                title: str = "") -> Path:
    """Training and validation loss, evaluation metrics and learning rate against the step."""
    fig = _figure(13.0, 3.8)
    ax_loss, ax_metric, ax_lr = fig.subplots(1, 3)

    train = [(r.step, finite(r.loss)) for r in log.train]
    train_pts = [(s, v) for s, v in train if v is not None]
    evals = [(r.step, finite(r.loss)) for r in log.evals]
    eval_pts = [(s, v) for s, v in evals if v is not None]
    if train_pts:
        ax_loss.plot(*zip(*train_pts), label="train", color="tab:blue", linewidth=1.2)
    if eval_pts:
        ax_loss.plot(*zip(*eval_pts), label="validation", color="tab:orange", marker="o",
                     markersize=3, linewidth=1.2)
    values = [v for _, v in train_pts + eval_pts]
    if values and min(values) > 0 and max(values) / min(values) > 50:
        ax_loss.set_yscale("log")
    ax_loss.set(title="Loss", xlabel="step")

    series: dict[str, list[tuple[int, float]]] = {}
    for record in log.evals:
        for column, value in eval_columns(record.values):
            number = finite(value)
            if number is None or not _is_curve(column.family, column.name):
                continue
            series.setdefault(column.name, []).append((record.step, number))
    for name, points in list(series.items())[:MAX_METRIC_LINES]:
        ax_metric.plot(*zip(*points), label=name, marker="o", markersize=3, linewidth=1.2)
    ax_metric.set(title="Validation metrics", xlabel="step")

    lr = [(r.step, r.learning_rate) for r in log.train if r.learning_rate is not None]
    if lr:
        ax_lr.plot(*zip(*lr), color="tab:green", linewidth=1.2)
    else:
        ax_lr.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax_lr.transAxes)
    ax_lr.set(title="Learning rate", xlabel="step")

    for ax in (ax_loss, ax_metric):
        if published_step is not None and (train_pts or eval_pts or series):
            ax.axvline(published_step, color="grey", linestyle="--", linewidth=1,
                       label=f"published (step {published_step})")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    for ax in (ax_loss, ax_metric, ax_lr):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, Path(path))


def plot_confusion(labels: Sequence[str], matrix: Sequence[Sequence[int]], path: str | Path,
                   title: str = "Confusion matrix") -> Path:
    """Heat map of ``matrix[true][predicted]`` with label names; counts in the cells."""
    k = len(labels)
    side = min(max(3.5, 0.45 * k + 2.0), 14.0)
    fig = _figure(side + 1.0, side)
    ax = fig.subplots()
    data = [[int(x) for x in row] for row in matrix]
    image = ax.imshow(data, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="utterances")
    ax.set_xticks(range(k), [str(lb) for lb in labels], rotation=45 if k > 6 else 0, ha="right"
                  if k > 6 else "center")
    ax.set_yticks(range(k), [str(lb) for lb in labels])
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if k <= MAX_ANNOTATED_CLASSES:
        peak = max((max(row) for row in data if row), default=0)
        for i, row in enumerate(data):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center", fontsize="small",
                        color="white" if peak and count > peak / 2 else "black")
    return _save(fig, Path(path))


def plot_f1(labels: Sequence[str], f1: Sequence[float], path: str | Path,
            title: str = "F1 per class") -> Path:
    """Horizontal bars of per-class F1 (a class whose F1 was not logged is left empty)."""
    k = len(labels)
    fig = _figure(6.0, min(max(2.5, 0.35 * k + 1.2), 16.0))
    ax = fig.subplots()
    values = [0.0 if math.isnan(v) else v for v in f1]
    bars = ax.barh(range(k), values, color="tab:blue")
    ax.set_yticks(range(k), [str(lb) for lb in labels])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.08), xlabel="F1", title=title)
    for bar, value in zip(bars, f1):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2,
                "n/a" if math.isnan(value) else f"{value:.3f}", va="center", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, Path(path))


def write_plots(run: str | Path) -> list[Path]:
    """Write ``RUN/plots/*.png`` from the run's log: curves, and for each classification head of
    the published evaluation a confusion matrix and per-class F1 bars. Returns the files."""
    run = Path(run)
    log = read_log(run)
    if not log.train and not log.evals:
        return []
    published = read_metrics(run).published_step
    folder = run / PLOTS_DIR
    written = [plot_curves(log, folder / CURVES_FILE, published, run.resolve().name)]
    record = (log.eval_at(published) if published is not None else None) or (
        log.evals[-1] if log.evals else None)
    if record is None:
        return written
    for view in class_scores(record.values):
        suffix = f"-{_slug(view.head)}" if view.head else ""
        what = f" ({view.head})" if view.head else ""
        at = f", step {record.step}"
        if view.confusion is not None:
            written.append(plot_confusion(view.labels, view.confusion,
                                          folder / f"confusion{suffix}.png",
                                          f"Confusion matrix{what}{at}"))
        if any(not math.isnan(v) for v in view.f1):
            written.append(plot_f1(view.labels, view.f1, folder / f"f1{suffix}.png",
                                   f"F1 per class{what}{at}"))
    return written
