"""The metric registry is the one source of metric names, directions and display names."""

from __future__ import annotations

import pytest

from wavtune.card.hub import HUB_METRICS
from wavtune.errors import WavtuneError
from wavtune.run.log import COLUMN_NAMES
from wavtune.scoring.registry import (
    ERROR_RATES,
    METRICS,
    MetricError,
    base_metric,
    display_name,
    higher_is_better,
    metric,
    score,
)
from wavtune.tasks import metric_choices


def test_every_task_metric_is_registered() -> None:
    for task, columns in (("ctc", []), ("classify", ["speaker"]), ("multitask", ["speaker"])):
        for name in metric_choices(task, columns):  # type: ignore[arg-type]
            assert base_metric(name) is not None, name


def test_direction_comes_from_the_row_and_heads_share_it() -> None:
    assert not higher_is_better("wer") and not higher_is_better("eval_cer")
    assert higher_is_better("accuracy") and higher_is_better("speaker_macro_f1")
    assert not higher_is_better("speaker_loss") and not higher_is_better("ctc_loss")
    assert base_metric("speaker_accuracy") == ("speaker", METRICS["accuracy"])


def test_tables_and_hub_read_the_registry() -> None:
    for name in ERROR_RATES:
        assert COLUMN_NAMES[name] == METRICS[name].column
    assert HUB_METRICS["mer"] == ("wer", "MER")  # the Hub has no 'mer' type: MER is a WER variant
    assert display_name("speaker_accuracy") == "speaker accuracy"


def test_scores_compute_from_strings() -> None:
    assert score("wer", ["a b c d"], ["a x c d"]) == pytest.approx(0.25)
    assert score("cer", ["ab"], ["ab"]) == 0.0
    assert score("accuracy", ["1", "2"], ["1", "1"]) == pytest.approx(0.5)
    with pytest.raises(MetricError, match="not computed from strings"):
        score("loss", ["a"], ["a"])


def test_unknown_metric_suggests_the_near_one() -> None:
    with pytest.raises(WavtuneError, match="did you mean 'accuracy'"):
        metric("acuracy")
