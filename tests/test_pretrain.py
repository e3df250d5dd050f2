"""wavtune pretrain: the contrastive objective on tone clips, its masks, its folder, its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from factories import VARIED, WORDS, tiny_overrides, write_corpus

from wavtune.cli.main import main
from wavtune.config import PretrainConfig, load_config
from wavtune.train.pretraining import PretrainError, draw_masks

TINY = ["model.preset=tiny", "pretrain.num_codevectors_per_group=16", "pretrain.codevector_dim=16",
        "pretrain.proj_codevector_dim=16", "pretrain.num_negatives=10",
        "pretrain.mask_time_length=4", "train.logging_steps=10", "train.eval_strategy=steps",
        "train.learning_rate=3e-3", "train.warmup_steps=5", "train.train_batch_size=10",
        "train.seed=0"]


def _pretrain(tmp: Path, steps: int) -> Path:
    manifest = write_corpus(tmp / "audio", WORDS + VARIED)
    argv = ["pretrain", str(_empty(tmp)), "--output-dir", str(tmp / "pre"), "--quiet"]
    for item in TINY + [f"data.train={manifest}", f"data.eval={manifest}",
                        f"train.max_steps={steps}", f"train.eval_steps={steps // 2}"]:
        argv += ["--set", item]
    assert main(argv) == 0
    return tmp / "pre"


def _empty(tmp: Path) -> Path:
    path = tmp / "empty.yaml"
    path.write_text("{}\n")
    return path


def test_masks_cover_real_frames_only() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(12, 60, size=16)
    real = np.arange(60)[None, :] < lengths[:, None]
    masks = draw_masks(real, PretrainConfig(mask_time_length=5, num_negatives=8))
    assert masks.masked.any(axis=1).all()
    assert not (masks.masked & ~real).any()
    for b in range(len(lengths)):  # negatives of real frames are real frames of the same clip
        picked = masks.negatives[b][real[b]] - b * 60
        assert picked.min() >= 0 and picked.max() < lengths[b]


def test_clips_too_short_to_mask_get_a_clear_error() -> None:
    real = np.ones((2, 4), dtype=bool)
    with pytest.raises(PretrainError, match="too short to mask"):
        draw_masks(real, PretrainConfig(mask_time_length=10))


def test_regularize_after_steps_is_refused_before_any_work(tmp_path: Path) -> None:
    from wavtune.config import load_config
    from wavtune.train.pretrain_run import pretraining_config

    config = load_config(None, ["model.preset=tiny", "train.regularize_after_steps=100"])
    with pytest.raises(PretrainError, match="train.regularize_after_steps: applies to fine"):
        pretraining_config(config)


def test_empty_manifest_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "train.jsonl"
    empty.write_text("")
    code = main(["pretrain", str(_empty(tmp_path)), "--set", f"data.train={empty}", "--set",
                 "model.preset=tiny",
                 "--output-dir", str(tmp_path / "run"), "--quiet"])
    assert code == 2
    assert "data.train" in capsys.readouterr().err


def test_pretrain_loss_falls_and_folder_fine_tunes(tmp_path: Path) -> None:
    from transformers import Wav2Vec2ForPreTraining

    from wavtune.train.trainer import train

    run = _pretrain(tmp_path, steps=40)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["contrastive_loss"] for r in records if "contrastive_loss" in r]
    assert losses[-1] < losses[0]
    assert all(r["codevector_perplexity"] > 2 for r in records if "codevector_perplexity" in r)
    model = Wav2Vec2ForPreTraining.from_pretrained(run)
    assert model.quantizer.codevectors.shape[1] == 2 * 16
    # fine-tuning gets SpecAugment's usual masks, not the objective's 65%
    assert model.config.mask_time_prob == 0.05 and model.config.mask_time_length == 10
    card = (run / "README.md").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"wavtune train CONFIG --set model.name_or_path={run.resolve()}" in card
    assert f"{metrics['train_hours']:.2f} h of unlabelled audio" in card
    assert f"| Contrastive loss | {losses[0]:.4g} | {losses[-1]:.4g} |" in card
    assert "| Codevector perplexity |" in card and "self-supervised-learning" in card
    assert f"{metrics['last_step']} optimizer steps" in card
    assert main(["card", str(run), "--stdout"]) == 0  # `wavtune card` knows pre-training runs
    # continued pre-training from the folder: the objective goes on where it stopped
    manifest = tmp_path / "audio" / "train.jsonl"
    argv = ["pretrain", str(_empty(tmp_path)), "--output-dir", str(tmp_path / "more"), "--quiet"]
    for item in [o for o in TINY if o != "model.preset=tiny"] + [
            f"model.name_or_path={run}", f"data.train={manifest}", "train.max_steps=10"]:
        argv += ["--set", item]
    assert main(argv) == 0
    more = [json.loads(line) for line in (tmp_path / "more" / "log.jsonl").read_text().splitlines()]
    assert next(r["contrastive_loss"] for r in more if "contrastive_loss" in r) < losses[0]
    overrides = [o for o in tiny_overrides(tmp_path / "ft", manifest, steps=6)
                 if not o.startswith("model.preset")] + [f"model.name_or_path={run}"]
    result = train(load_config(None, overrides), progress=False)
    assert result.eval is not None and result.steps == 6
    fresh = train(load_config(None, overrides + ["model.random_init=true",
                                                 f"train.output_dir={tmp_path / 'rnd'}"]),
                  progress=False)
    assert fresh.eval is not None


def test_pretrain_cache_takes_the_clips_the_checks_decoded(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from wavtune.data import cache as audiocache

    calls: list[str] = []
    real = audiocache.decode
    monkeypatch.setattr(audiocache, "decode", lambda utt, rate: (calls.append(utt.id),
                                                                 real(utt, rate))[1])
    run = _pretrain(tmp_path, steps=2)
    assert calls == []  # every clip came from the data checks' decoding: decoded once
    caches = list((run / "audio-cache").iterdir())
    assert caches and not [c for c in caches if c.name.startswith("spool-")]
