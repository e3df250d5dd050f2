"""train.regularize_after_steps: dropout, LayerDrop and SpecAugment off for the first steps and
back at their configured values after; saved models keep the configured values throughout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from factories import tiny_overrides, write_corpus

from wavtune.card.model_card import render_card
from wavtune.config import ConfigError, load_config
from wavtune.data.vocab import Vocabulary
from wavtune.model.build import build_model
from wavtune.model.regularization import Regularization
from wavtune.train.checkpoint import save_model
from wavtune.train.objective import Objective
from wavtune.train.trainer import train

REGULARISED = ["model.preset=tiny", "model.hidden_dropout=0.2", "model.attention_dropout=0.2",
               "model.activation_dropout=0.2", "model.final_dropout=0.2", "model.layerdrop=0.3",
               "model.mask_time_prob=0.4", "model.mask_time_length=2",
               "model.mask_feature_prob=0.1", "model.mask_feature_length=2"]
VOCAB = Vocabulary.build(["abc cab"])


def _outputs(model: torch.nn.Module, wave: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        logits: torch.Tensor = model(wave).logits
    return logits


def test_switched_off_a_training_model_computes_what_it_computes_in_eval_mode() -> None:
    model = build_model(load_config(None, REGULARISED), VOCAB).model
    wave = torch.randn(1, 16_000)
    model.eval()
    plain = _outputs(model, wave, 0)
    model.train()
    assert not torch.allclose(_outputs(model, wave, 0), plain, atol=1e-5)  # it regularises
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    built = [m.p for m in dropouts]
    assert max(built) == 0.2
    reg = Regularization.of(model)
    reg.switch(False)
    assert {m.p for m in dropouts} == {0.0}
    torch.testing.assert_close(_outputs(model, wave, 1), plain, atol=1e-5, rtol=1e-5)
    config = model.config
    assert (config.layerdrop, config.mask_time_prob, config.mask_feature_prob) == (0, 0, 0)
    reg.switch(True)
    assert (config.layerdrop, config.mask_time_prob, config.mask_feature_prob) == (0.3, 0.4, 0.1)
    assert [m.p for m in dropouts] == built
    assert not torch.allclose(_outputs(model, wave, 1), plain, atol=1e-5)


def test_a_model_saved_while_switched_off_keeps_its_configured_rates(tmp_path: Path) -> None:
    model = build_model(load_config(None, REGULARISED), VOCAB).model
    Regularization.of(model).switch(False)
    save_model(model, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["mask_time_prob"], saved["layerdrop"], saved["hidden_dropout"]) == \
        (0.4, 0.3, 0.2)
    assert model.config.mask_time_prob == 0.0  # still off in the live model


def test_the_objective_switches_at_the_configured_step() -> None:
    config = load_config(None, [*REGULARISED, "train.regularize_after_steps=3"])
    built = build_model(config, VOCAB)
    objective = Objective.for_run(config, built, ())
    for step, on in ((0, False), (2, False), (3, True), (4, True), (1, False)):  # 1: resumed
        objective.on_step(built.model, step)
        assert built.model.config.mask_time_prob == (0.4 if on else 0.0), step
    plain = Objective.for_run(load_config(None, REGULARISED), built, ())
    assert plain.regularization is None  # 0, the default: nothing is switched


def test_a_run_that_ends_before_the_switch_publishes_its_configured_rates(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path, ["abc", "cab", "bad"])
    config = load_config(None, [*tiny_overrides(tmp_path, manifest, steps=4),
                                "model.mask_time_prob=0.3", "model.hidden_dropout=0.1",
                                "train.regularize_after_steps=100"])
    result = train(config, progress=False)
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["mask_time_prob"] == 0.3 and saved["hidden_dropout"] == 0.1
    card = render_card(result.run_dir)
    assert "dropout, LayerDrop and SpecAugment off for the first 100 steps" in card
    with pytest.raises(ConfigError, match="train.regularize_after_steps"):
        load_config(None, ["train.regularize_after_steps=-1"])
