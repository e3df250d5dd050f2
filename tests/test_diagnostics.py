"""Diagnostics over hand-written logs and over the seed cards' own training tables."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from rundirs import eval_record, seed_log

from wavtune.config import load_config
from wavtune.run.diagnostics import (
    DiagnosticMonitor,
    DiagnosticSettings,
    blank_collapse,
    diagnose,
    dropped_rows,
    is_collapsed,
    nonfinite_losses,
    overfitting,
    unknown_characters,
)
from wavtune.run.log import parse_log

# warm-up steps of each seed (from its hyperparameter block)
SEED_WARMUP = {0: 1000, 1: 500, 2: 500, 3: 1000, 4: 200}


def _settings(seed: int, **kw: object) -> DiagnosticSettings:
    return DiagnosticSettings(warmup_steps=SEED_WARMUP[seed], **kw)  # type: ignore[arg-type]


def test_seed_001_blank_collapse_is_named_with_its_span() -> None:
    found = blank_collapse(seed_log(1), _settings(1, learning_rate=3e-4))
    assert found is not None and found.kind == "blank_collapse"
    assert found.step == 2061  # the third collapsed evaluation after the 500 warm-up steps
    assert "from step 687 to step 6870 (10 evaluations)" in found.summary
    assert any("pad" in c and "blank" in c for c in found.causes)
    assert any("learning_rate" in a for a in found.advice)


@pytest.mark.parametrize("seed", [0, 2, 3, 4])
def test_healthy_seeds_show_no_blank_collapse(seed: int) -> None:
    # seed 003 had WER 1.0 for four evaluations, all within its 1000 warm-up steps
    assert blank_collapse(seed_log(seed), _settings(seed)) is None


def test_forced_collapse_with_absurd_learning_rate_names_the_rate() -> None:
    records = [eval_record(step, wer=1.0, loss=9.0, train_loss=9.0, best_step=10, cer=1.0,
                           empty=8) for step in range(10, 60, 10)]
    settings = DiagnosticSettings(warmup_steps=5, learning_rate=1.0, eval_utterances=8)
    found = blank_collapse(records, settings)
    assert found is not None
    assert "still at the last evaluation" in found.summary
    assert "learning rate 1 is above" in found.causes[0]
    assert "Blank collapse" in found.render() and "What to change" in found.render()


def test_collapse_is_exact_when_the_utterance_count_is_known() -> None:
    log = parse_log([{"step": 1, "eval_wer": 1.0, "eval_cer": 0.97, "eval_empty_hypotheses": 8}])
    record = log.evals[0]
    assert is_collapsed(record, eval_utterances=8)
    assert not is_collapsed(record, eval_utterances=9)
    assert not is_collapsed(record)  # without the count: CER 0.97 means some output


def test_collapse_needs_patience_consecutive_evaluations() -> None:
    bad = {"eval_wer": 1.0, "eval_cer": 1.0}
    good = {"eval_wer": 0.9, "eval_cer": 0.5}
    records = [{"step": s, **(good if s == 30 else bad)} for s in (10, 20, 30, 40, 50)]
    assert blank_collapse(records, DiagnosticSettings(patience=3)) is None
    assert blank_collapse(records, DiagnosticSettings(patience=2)) is not None


def test_seed_000_overfitting_names_the_best_loss_and_published_steps() -> None:
    found = overfitting(seed_log(0), _settings(0))
    assert found is not None and found.kind == "overfitting"
    assert "lowest at step 17500 (0.8552)" in found.summary
    assert "rose to 1.3413 by step 43000" in found.summary
    assert "training loss fell from 0.4260 to 0.1600" in found.summary
    assert "best checkpoint by wer is step 39500" in found.summary


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_seeds_without_a_rising_validation_loss_are_not_overfitting(seed: int) -> None:
    assert overfitting(seed_log(seed), _settings(seed)) is None


def test_nonfinite_losses_are_counted() -> None:
    records = [{"step": 1, "loss": 2.0, "grad_norm": 1.0},
               {"step": 2, "loss": math.nan, "grad_norm": 1.0},
               {"step": 3, "loss": 1.0, "grad_norm": math.inf},
               {"step": 3, "eval_loss": math.inf, "eval_wer": 0.5}]
    found = nonfinite_losses(records, skipped_steps=4)
    assert found is not None and found.step == 2
    assert "4 optimizer steps skipped" in found.summary
    assert "2 logged training records" in found.summary and "1 evaluation" in found.summary
    assert nonfinite_losses([{"step": 1, "loss": 2.0}]) is None


def test_dropped_rows_and_unknown_characters() -> None:
    dropped = dropped_rows({"train": {"ctc_infeasible": 3, "silent": 1}, "eval": {}})
    assert dropped is not None and "train: 3 ctc infeasible, 1 silent" in dropped.summary
    assert dropped_rows({"train": {}}) is None
    unknown = unknown_characters({"é": 3, "ß": 1}, reference_chars=400)
    assert unknown is not None and unknown.severity == "warning" and "(1.00%)" in unknown.summary
    assert "'é' x3" in unknown.summary
    assert unknown_characters({}, 100) is None


def test_monitor_reports_each_kind_once_and_remembers_a_resumed_log() -> None:
    settings = DiagnosticSettings(patience=2)
    monitor = DiagnosticMonitor(settings)
    bad = {"eval_wer": 1.0, "eval_cer": 1.0, "eval_loss": 5.0, "train_loss": 5.0}
    assert monitor.update({"step": 1, **bad}) == []
    assert [d.kind for d in monitor.update({"step": 2, **bad})] == ["blank_collapse"]
    assert monitor.update({"step": 3, **bad}) == []
    resumed = DiagnosticMonitor(settings, [{"step": 1, **bad}, {"step": 2, **bad}])
    assert resumed.update({"step": 3, **bad}) == []


def test_settings_come_from_a_config() -> None:
    config = load_config(None, ["model.preset=tiny", "train.warmup_steps=7",
                                "train.learning_rate=0.5", "model.freeze_encoder_steps=3"])
    settings = DiagnosticSettings.from_config(config, eval_utterances=12)
    assert (settings.warmup_steps, settings.learning_rate, settings.eval_utterances) == (7, 0.5, 12)
    records = [eval_record(s, 1.0, 3.0, 3.0, 10, cer=1.0, empty=12) for s in (10, 20, 30)]
    (found,) = diagnose(records, settings)
    assert any("freeze_encoder_steps" in c for c in found.causes)


def test_monitor_flags_skipped_steps_from_training_records_once() -> None:
    monitor = DiagnosticMonitor(DiagnosticSettings())
    assert monitor.update({"step": 1, "loss": 2.0, "grad_norm": 1.0}) == []
    (found,) = monitor.update({"step": 2, "loss": 1.5, "grad_norm": 1.0}, skipped_steps=1)
    assert found.kind == "nonfinite_loss" and "1 optimizer step skipped" in found.summary
    assert monitor.update({"step": 3, "loss": 1.0, "grad_norm": 1.0}, skipped_steps=2) == []


def test_a_real_run_stuck_on_blanks_warns_of_blank_collapse(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from factories import tiny_overrides, write_corpus

    from wavtune.config import load_config
    from wavtune.train.trainer import train

    manifest = write_corpus(tmp_path, ["abc", "cab", "bad"])
    # a learning rate too low to leave CTC's all-blank plateau within the run
    config = load_config(None, tiny_overrides(tmp_path, manifest, steps=12)
                         + ["train.learning_rate=2e-3", "train.warmup_steps=0",
                            "train.eval_steps=2"])
    with caplog.at_level(logging.WARNING, logger="wavtune"):
        train(config, progress=False)
    assert "blank" in caplog.text.lower()
    assert "learning rate" in caplog.text.lower() or "learning_rate" in caplog.text
