"""Alpha/beta search on cached logits (wavtune.infer.tuning), without a model: hand-built frames
whose last letter is ambiguous, and an LM that knows the word."""

from __future__ import annotations

from pathlib import Path

from test_beam import VOCAB, _ambiguous_cab

from wavtune.decode.arpa import build_arpa
from wavtune.decode.settings import DecoderSettings
from wavtune.infer.tuning import DevSet, Trial, grid, random_points, tune


def test_tune_prefers_an_lm_weight_that_fixes_the_ambiguous_word(tmp_path: Path) -> None:
    lm = tmp_path / "w.arpa"
    build_arpa(["cab", "a cab", "cab cab"] * 5, lm, order=2)
    logits = _ambiguous_cab()
    dev = DevSet("hand-built", ("u1", "u2"), (logits, logits), ("cab", "cab"))
    seen: list[Trial] = []
    result = tune(VOCAB, DecoderSettings("beam", beam_width=8, lm=str(lm)), dev,
                  grid([0.0, 1.0], [0.0, 1.0]), seen.append)
    assert len(result.trials) == len(seen) == 4
    assert result.greedy.wer == 1.0 and result.beam.wer == 1.0
    assert [t.scores.wer for t in result.trials if t.alpha == 0.0] == [1.0, 1.0]
    assert result.best.alpha == 1.0 and result.best.scores.wer == 0.0
    assert result.settings.alpha == 1.0 and result.settings.lm_unit == "word"
    assert result.best.scores.utterances == 2 and result.best.scores.utterances_per_s > 0


def test_random_points_are_seeded_and_in_range() -> None:
    points = random_points(20, seed=3)
    assert points == random_points(20, seed=3) != random_points(20, seed=4)
    assert all(0.0 <= a <= 3.0 and -2.0 <= b <= 5.0 for a, b in points)
    assert len(set(points)) == 20
    assert (
        grid([1, 2, 3], [0, 1])[:3] == [(1, 0), (1, 1), (2, 0)]
        and len(grid([1, 2, 3], [0, 1])) == 6
    )
