"""wavtune pretrain with pretrain.objective=hubert: MFCC targets at the encoder's frame rate, the
k-means codebook kept in the run folder, masks and loss on real frames only, the published folder
as a HubertModel that fine-tunes, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from factories import VARIED, WORDS, tiny_overrides, tone_speech, write_corpus

from wavtune.cli.main import main
from wavtune.config import ConfigError, ModelConfig, PretrainConfig, load_config
from wavtune.data.clusters import CLUSTERS_FILE, ClusterError, fit_codebook, load_codebook
from wavtune.data.collate import IGNORE_INDEX, Batch
from wavtune.data.mfcc import MfccSettings, mfcc_frames
from wavtune.model.families import FamilyError, families_for_objective, family
from wavtune.model.pretraining import build_pretraining_model
from wavtune.train.hubert import HubertObjective, frame_targets

TINY = ["model.arch=hubert", "model.preset=tiny", "pretrain.objective=hubert",
        "pretrain.num_clusters=8", "pretrain.mask_time_length=4", "train.logging_steps=10",
        "train.eval_strategy=steps", "train.learning_rate=3e-3", "train.warmup_steps=5",
        "train.train_batch_size=10", "train.seed=0", "train.device=cpu"]
SETTINGS = MfccSettings(sample_rate=16_000, hop=320, field=400)


def _config_file(tmp: Path) -> Path:
    path = tmp / "empty.yaml"
    path.write_text("{}\n")
    return path


def _pretrain(tmp: Path, out: str, *items: str) -> Path:
    manifest = tmp / "audio" / "train.jsonl"
    if not manifest.is_file():
        write_corpus(tmp / "audio", WORDS + VARIED)
    argv = ["pretrain", str(_config_file(tmp)), "--output-dir", str(tmp / out), "--quiet"]
    for item in [*TINY, f"data.train={manifest}", *items]:
        argv += ["--set", item]
    assert main(argv) == 0
    return tmp / out


def _records(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_mfcc_frames_line_up_with_encoder_frames() -> None:
    wave = tone_speech("abc")
    frames = (len(wave) - SETTINGS.field) // SETTINGS.hop + 1  # the conv stack's output frames
    features = mfcc_frames(wave, SETTINGS, frames)
    assert features.shape == (frames, 39) and np.isfinite(features).all()
    constant = mfcc_frames(np.full(16_000, 0.1, dtype=np.float32), SETTINGS, 40)
    np.testing.assert_allclose(constant[5:-5, 13:], 0.0, atol=1e-4)  # deltas of a steady signal
    # a tone moves the cepstra: its frames differ from silence's
    silence = mfcc_frames(np.zeros_like(wave), SETTINGS, frames)
    assert np.abs(features[5, :13] - silence[5, :13]).max() > 1.0


def test_codebook_round_trips_and_assigns_like_its_centres(tmp_path: Path) -> None:
    waves = [(tone_speech(t, seed=i), 20) for i, t in enumerate(WORDS)]
    codebook = fit_codebook(waves, SETTINGS, 6, seed=0)
    assert codebook.centres.shape == (6, 39)
    again = load_codebook(codebook.save(tmp_path))
    ids = again.targets(waves[0][0], 20)
    assert ids.shape == (20,) and set(ids) <= set(range(6)) and len(set(ids)) > 1
    z = (mfcc_frames(waves[0][0], SETTINGS, 20) - again.mean) / again.scale
    nearest = ((z[:, None, :] - again.centres[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(ids, nearest)
    with pytest.raises(ClusterError, match="num_clusters=500"):
        fit_codebook(waves, SETTINGS, 500, seed=0)
    (tmp_path / CLUSTERS_FILE).write_text("{not json")
    with pytest.raises(ClusterError, match="delete it"):
        load_codebook(tmp_path)


def test_masks_targets_and_loss_never_touch_padding() -> None:
    built = build_pretraining_model(ModelConfig(arch="hubert", preset="tiny"),
                                    PretrainConfig(objective="hubert", num_clusters=6,
                                                   mask_time_length=3))
    model = built.model.eval()
    clips = [tone_speech(t, seed=i) for i, t in enumerate(("a bad cab", "ab", "bac"))]
    waves = torch.zeros(3, max(len(c) for c in clips))
    mask = torch.zeros(3, waves.shape[1], dtype=torch.long)
    for b, clip in enumerate(clips):
        waves[b, :len(clip)], mask[b, :len(clip)] = torch.from_numpy(clip), 1
    codebook = fit_codebook([(c, 30) for c in clips], SETTINGS, 6, seed=0)
    pre = PretrainConfig(objective="hubert", mask_time_length=3)
    objective = HubertObjective(codebook, pre)
    batch = Batch(("x", "y", "z"), waves, mask, None)
    frames = int(model._get_feat_extract_output_lengths(waves.shape[1]))
    real = model._get_feature_vector_attention_mask(frames, mask).numpy().astype(bool)
    targets = frame_targets(codebook, batch, real)
    assert ((targets == IGNORE_INDEX) == torch.from_numpy(~real)).all()
    np.random.seed(0)
    first = objective(model, batch)
    noisy = waves + (1 - mask) * torch.randn_like(waves)  # other values in the padding only
    np.random.seed(0)
    second = objective(model, Batch(batch.ids, noisy, mask, None))
    torch.testing.assert_close(first.total, second.total)
    assert 0 < float(first.parts["masked_share"]) < 1
    assert 1 <= float(first.parts["target_perplexity"]) <= 6


@pytest.mark.slow  # three tiny trainings (40 + 10 pre-training steps, 6 fine-tuning): ~30 s
def test_hubert_loss_falls_folder_loads_fine_tunes_and_continues(tmp_path: Path) -> None:
    from transformers import HubertModel

    from wavtune.train.trainer import train

    run = _pretrain(tmp_path, "pre", "train.max_steps=40", "train.eval_steps=20",
                    f"data.eval={tmp_path / 'audio' / 'train.jsonl'}")
    windows = [r for r in _records(run) if "masked_loss" in r]
    losses = [r["masked_loss"] for r in windows]
    assert losses[-1] < losses[0] - 0.1  # measured: 2.02 -> 1.88 in 40 steps
    assert windows[-1]["masked_accuracy"] > windows[0]["masked_accuracy"]
    assert (run / CLUSTERS_FILE).is_file()
    encoder = HubertModel.from_pretrained(run)  # the published folder, as transformers loads it
    assert encoder.config.mask_time_prob == 0.05  # fine-tuning's SpecAugment, not the objective's
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["objective"] == "hubert" and "masked_accuracy" in metrics["eval"]
    card = (run / "README.md").read_text()
    assert "`HubertModel.from_pretrained` loads its encoder" in card
    assert f"| Masked cross-entropy | {losses[0]:.4g} | {losses[-1]:.4g} |" in card
    # continued pre-training from the folder: same clusters, the loss goes on where it stopped
    more = _pretrain(tmp_path, "more", f"model.name_or_path={run}", "model.preset=",
                     "model.arch=wav2vec2", "train.max_steps=10")
    assert (more / CLUSTERS_FILE).read_bytes() == (run / CLUSTERS_FILE).read_bytes()
    assert next(r["masked_loss"] for r in _records(more) if "masked_loss" in r) < losses[0]
    manifest = tmp_path / "audio" / "train.jsonl"
    overrides = [o for o in tiny_overrides(tmp_path / "ft", manifest, steps=6)
                 if not o.startswith("model.preset")] + [f"model.name_or_path={run}"]
    result = train(load_config(None, overrides), progress=False)
    assert result.eval is not None and result.steps == 6
    assert json.loads((tmp_path / "ft" / "run" / "config.json").read_text())["model_type"] == \
        "hubert"


def test_resume_reuses_the_codebook_and_ends_like_an_unbroken_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import load_file

    from wavtune.run.directory import RunDir
    from wavtune.train import hubert
    from wavtune.train.trainer import Interrupted

    steps = ["train.max_steps=8", "train.eval_steps=4", "train.logging_steps=2",
             "train.train_batch_size=5", "train.save_total_limit=10"]
    unbroken = _pretrain(tmp_path, "unbroken", *steps)
    monkeypatch.setenv("WAVTUNE_TEST_SIGNAL_AT_STEP", "6:INT")
    with pytest.raises(Interrupted):
        from wavtune.train.pretrain_run import pretrain

        config = load_config(_config_file(tmp_path), [
            *TINY, f"data.train={tmp_path / 'audio' / 'train.jsonl'}", *steps,
            f"train.output_dir={tmp_path / 'killed'}"])
        pretrain(config, progress=False)
    monkeypatch.delenv("WAVTUNE_TEST_SIGNAL_AT_STEP")
    codebook = (tmp_path / "killed" / CLUSTERS_FILE).read_bytes()

    def refit(*args: object, **kwargs: object) -> None:
        raise AssertionError("a resumed run must read its codebook back, not fit a new one")

    monkeypatch.setattr(hubert, "fit_codebook", refit)
    assert main(["pretrain", str(tmp_path / "killed" / "wavtune.yaml"), "--resume",
                 "--quiet"]) == 0
    assert (tmp_path / "killed" / CLUSTERS_FILE).read_bytes() == codebook
    final = [load_file(str(RunDir(r).checkpoint(8) / "model.safetensors"))
             for r in (unbroken, tmp_path / "killed")]
    for name, tensor in final[0].items():  # same batches, masks and targets after the resume
        torch.testing.assert_close(final[1][name], tensor, rtol=0, atol=2e-5, msg=name)


def test_bad_settings_get_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "hubert" not in family("wav2vec2-bert").pretrain_objectives
    assert {"hubert", "wav2vec2", "wavlm"} <= set(families_for_objective("hubert"))
    assert "hubert" not in families_for_objective("contrastive")
    with pytest.raises(FamilyError, match="pretrain.objective=hubert.*runs with"):
        build_pretraining_model(ModelConfig(arch="wav2vec2-bert", preset="tiny"),
                                PretrainConfig(objective="hubert"))
    with pytest.raises(FamilyError, match="pretrain.objective=hubert"):  # the way out
        build_pretraining_model(ModelConfig(arch="hubert", preset="tiny"), PretrainConfig())
    with pytest.raises(ConfigError, match="pretrain.num_clusters"):
        load_config(None, ["model.preset=tiny", "pretrain.num_clusters=1"])
    manifest = write_corpus(tmp_path / "audio", WORDS)
    code = main(["pretrain", str(_config_file(tmp_path)), "--output-dir", str(tmp_path / "run"),
                 "--quiet", *[a for o in [*TINY, f"data.train={manifest}",
                                          "pretrain.num_clusters=5000", "train.max_steps=2"]
                              for a in ("--set", o)]])
    assert code == 2
    assert "pretrain.num_clusters=5000" in capsys.readouterr().err
