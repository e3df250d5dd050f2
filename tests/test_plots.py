"""Figures are valid PNGs; the log exports (CSV, TensorBoard) hold every value."""

from __future__ import annotations

import csv
import importlib.util
import math
import struct
from pathlib import Path

import pytest
from rundirs import seed_log, write_run

from wavtune.card.plots import plot_confusion, write_plots
from wavtune.run import log as runlog
from wavtune.run.log import class_scores, eval_columns, export_log, parse_log
from wavtune.scoring.metrics import classification_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _classification_records() -> list[dict[str, object]]:
    """A multi-task log: CTC scores plus a seed-004 style report of one 'label' head."""
    truth = ["0", "1", "2", "3", "1", "2"]
    records: list[dict[str, object]] = []
    for step, pred in ((10, ["0", "0", "0", "0", "0", "0"]), (20, ["0", "1", "2", "1", "1", "2"])):
        report = classification_report(truth, pred)
        records.append({"step": step, "epoch": step / 10, "loss": 3.0 / step})
        records.append({"step": step, "epoch": step / 10, "train_loss": 3.0 / step,
                        "eval_loss": 2.0 / step, "eval_wer": 0.5, "eval_cer": 0.2,
                        **{f"eval_{k}": v for k, v in report.as_flat_dict().items()},
                        "eval_mtrix": report.confusion_as_seed_rows(), "best_step": step})
    return records


def test_write_plots_makes_curves_confusion_and_f1_pngs(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", records=_classification_records(),
                    metrics={"published_step": 20})
    written = write_plots(run)
    names = sorted(p.name for p in written)
    assert names == ["confusion.png", "f1.png", "training_curves.png"]
    for path in written:
        width, height = png_size(path)
        assert path.stat().st_size > 1000 and width > 200 and height > 200


def test_curves_of_a_seed_log_with_a_huge_loss_range(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", records=seed_log(0), metrics={"published_step": 39500})
    (curves,) = write_plots(run)
    assert png_size(curves)[0] > 1000


def test_confusion_heat_map_with_label_names(tmp_path: Path) -> None:
    path = plot_confusion(["yes", "no", "maybe"], [[5, 1, 0], [0, 4, 2], [1, 0, 3]],
                          tmp_path / "c.png")
    assert png_size(path) > (100, 100)


def test_empty_log_makes_no_plots(tmp_path: Path) -> None:
    assert write_plots(write_run(tmp_path / "run")) == []


def test_class_scores_read_back_from_a_log() -> None:
    log = parse_log(_classification_records())
    (view,) = class_scores(log.evals[-1].values)
    assert view.labels == ("0", "1", "2", "3")
    assert view.confusion == ((1, 0, 0, 0), (0, 2, 0, 0), (0, 0, 2, 0), (0, 1, 0, 0))
    assert view.f1[0] == 1.0 and view.f1[3] == 0.0 and not math.isnan(view.f1[1])


def test_eval_columns_use_the_seed_names_and_order() -> None:
    values = {"eval_loss": 1.0, "eval_wer": 0.3, "eval_cer": 0.1, "eval_empty_hypotheses": 2,
              "eval_speaker_accuracy": 0.9, "eval_speaker_macro_f1": 0.8,
              "eval_confusion": [[0, 1], [0, 1, 0], [1, 0, 1]]}
    names = [c.name for c, _ in eval_columns(values)]
    assert names == ["Validation Loss", "Speaker Accuracy", "Speaker Macro avg F1-score", "Wer",
                     "Cer", "Mtrix"]


def test_csv_export_has_every_logged_key(tmp_path: Path) -> None:
    records = _classification_records()
    run = write_run(tmp_path / "run", records=records)
    (csv_path, *rest) = export_log(run)
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert len(rows) == len(records)
    assert {"step", "loss", "eval_wer", "eval_0 Precision", "eval_mtrix"} <= set(rows[0])
    assert rows[1]["eval_mtrix"].startswith("[[0, 1, 2, 3]")
    if importlib.util.find_spec("tensorboard") is None:
        assert rest == []


def test_tensorboard_is_skipped_silently_without_it(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert runlog.write_tensorboard([{"step": 1, "loss": 1.0}], tmp_path / "tb") is None
    assert not (tmp_path / "tb").exists()
