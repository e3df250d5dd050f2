"""The model-family registry: presets build for every family, its frame geometry is the model's
own (the CTC-feasibility check and timestamps rely on it), batched inference and evaluation give
each clip what it gets alone, and Wav2Vec2-BERT (fbank input) trains and loads in pipeline()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from factories import WORDS, tiny_overrides, tone_speech, write_corpus
from rundirs import random_family_run

from wavtune.cli.main import main
from wavtune.config import Config, ModelConfig, load_config
from wavtune.data.dataset import SpeechDataset
from wavtune.data.manifest import Utterance
from wavtune.data.vocab import Vocabulary
from wavtune.infer.evaluation import iter_outputs
from wavtune.infer.recognizer import Recognizer
from wavtune.model.build import build_model, random_init_config
from wavtune.model.families import (
    FAMILIES,
    FamilyError,
    ModelError,
    families_for,
    family,
    geometry_of,
)
from wavtune.train.trainer import train


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_geometry_matches_the_models_output_lengths(arch: str) -> None:
    vocab = Vocabulary.build(["ab"])
    built = build_model(Config(model=ModelConfig(preset="tiny", arch=arch)), vocab)
    geometry = geometry_of(built.model.config)
    samples = [399, 400, 719, 720, 16_000, 16_321]
    if built.front_end.extractor is not None:  # fbank: the model counts stacked input frames
        samples = samples[2:]  # (an fbank extractor refuses clips shorter than its window)
        lengths = torch.cat([built.front_end([np.zeros(n, np.float32)])[1].sum(-1)
                             for n in samples])
    else:
        lengths = torch.tensor(samples)
    frames = built.model._get_feat_extract_output_lengths(lengths)
    assert [geometry.frames(n) for n in samples] == [max(0, int(f)) for f in frames]


def test_unknown_family_and_preset_name_the_choices() -> None:
    with pytest.raises(FamilyError, match=r"model.arch='whisper': not a family wavtune trains"):
        family("whisper")
    with pytest.raises(FamilyError, match=r"model.preset='huge' is unknown for wav2vec2; "
                                          r"choose one of tiny, small, base"):
        family("wav2vec2").preset("huge")
    with pytest.raises((FamilyError, ModelError)):
        build_model(Config(model=ModelConfig(preset="huge")), Vocabulary.build(["ab"]))


CLIP_LENGTHS = (8_000, 11_000, 12_000, 16_000)  # samples at 16 kHz: all but the longest padded;
# 12,000 samples make 37 frames: an odd count, which SEW's squeeze pooling pairs with padding


@pytest.mark.parametrize("arch,overrides", [
    # wav2vec2-bert: 11,000 samples make 67 fbank frames, padded to 68 and stacked to 34 with
    # the last masked, so even one clip needs its attention mask (the adapter reads frame 34)
    *[(a, None) for a in sorted(FAMILIES)],
    # a group-norm conv stack (wav2vec2-base's): no attention mask, so padding is normalised over
    ("wav2vec2", {"feat_extract_norm": "group", "do_stable_layer_norm": False}),
])
def test_batched_inference_and_evaluation_equal_each_clip_alone(
        arch: str, overrides: dict[str, object] | None, tmp_path: Path) -> None:
    run = random_family_run(arch, tmp_path, overrides)
    rec = Recognizer(run)
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) for n in CLIP_LENGTHS]
    batched = rec.forward_batch(waves)
    alone = [rec.forward_batch([w])[0] for w in waves]
    geometry = geometry_of(rec.model.config)
    for w, b, a in zip(waves, batched, alone, strict=True):
        assert b.shape == a.shape == (geometry.frames(len(w)), len(rec.vocab))
        np.testing.assert_allclose(b, a, atol=1e-4)
    for i, w in enumerate(waves):
        sf.write(tmp_path / f"c{i}.wav", w / 10, 16_000)
    utts = [Utterance(id=f"c{i}", audio=tmp_path / f"c{i}.wav", text="abc", duration_s=n / 16_000)
            for i, n in enumerate(CLIP_LENGTHS)]
    dataset = SpeechDataset(utts, rec.audio, rec.vocab)
    together = {o.id: o.frames for o in iter_outputs(rec.model, dataset, 3, rec.use_attention_mask,
                                                     progress=False)}
    for utt in utts:
        one = next(iter_outputs(rec.model, SpeechDataset([utt], rec.audio, rec.vocab), 1,
                                rec.use_attention_mask, progress=False))
        frames = together[utt.id]
        assert one.frames is not None and frames is not None
        np.testing.assert_allclose(frames.logits, one.frames.logits, atol=1e-4)


def test_messages_name_the_families_a_task_can_use() -> None:
    assert "wav2vec2-bert" in families_for("ctc") and "wav2vec2-bert" not in families_for(
        "classify")
    assert {"wav2vec2", "hubert", "wav2vec2-conformer"} <= set(families_for("multitask"))


def test_registry_says_which_families_batch_alone() -> None:
    vocab = Vocabulary.build(["ab"])
    def sensitive(arch: str, **overrides: object) -> bool:
        built = build_model(Config(model=ModelConfig(preset="tiny", arch=arch,
                                                     overrides=dict(overrides))), vocab)
        return built.front_end.padding_sensitive
    assert sensitive("wav2vec2-conformer") and sensitive("sew") and sensitive("sew-d")
    assert sensitive("wav2vec2", feat_extract_norm="group", do_stable_layer_norm=False)
    assert not sensitive("wav2vec2") and not sensitive("hubert") and not sensitive("wav2vec2-bert")


def test_wav2vec2_bert_reads_stacked_fbank_and_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    vocab = Vocabulary.build(["ab"])
    built = build_model(Config(model=ModelConfig(preset="tiny", arch="wav2vec2-bert")), vocab)
    front = built.front_end
    assert front.input_name == "input_features"
    feats, mask = front([np.zeros(16_000, np.float32), np.zeros(8_000, np.float32)])
    assert feats.shape[-1] == 160 and mask.sum(-1).tolist() == [49, 24]  # 10 ms hop, stacked by 2
    assert geometry_of(built.model.config).samples_per_frame == 640  # 40 ms per CTC frame
    with pytest.raises(FamilyError, match=r"task 'multitask' is not supported for "
                                          r"model.arch='wav2vec2-bert'.*wav2vec2-conformer"):
        build_model(Config(task="multitask", model=ModelConfig(preset="tiny",
                                                               arch="wav2vec2-bert")), vocab)


@pytest.mark.slow
def test_wav2vec2_bert_trains_and_loads_in_pipeline_with_the_same_transcript(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import pipeline

    manifest = write_corpus(tmp_path, WORDS[:4])
    result = train(load_config(None, [*tiny_overrides(tmp_path, manifest, steps=60),
                                      "model.arch=wav2vec2-bert"]), progress=False)
    assert (result.run_dir / "preprocessor_config.json").is_file()
    wave = tone_speech("cab", seed=3)
    clip = tmp_path / "clip.wav"
    sf.write(clip, wave, 16_000)
    asr = pipeline("automatic-speech-recognition", model=str(result.run_dir), device="cpu")
    expected = asr({"raw": wave, "sampling_rate": 16_000})["text"]
    capsys.readouterr()  # training's progress lines
    assert main(["transcribe", str(result.run_dir), str(clip), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == expected.strip()


@pytest.mark.parametrize("adapter", [{"add_adapter": False}, {"adapter_stride": 2},
                                     {"adapter_stride": 3}])
def test_wav2vec2_bert_frame_geometry_matches_the_model_with_each_adapter(
        adapter: dict[str, object]) -> None:
    from transformers import Wav2Vec2BertForCTC

    from wavtune.model.build import random_init_config

    config = random_init_config(ModelConfig(arch="wav2vec2-bert", preset="tiny",
                                            overrides=adapter), {"vocab_size": 8})
    model = Wav2Vec2BertForCTC(config).eval()
    geometry = family("wav2vec2-bert").geometry(config)
    extractor = family("wav2vec2-bert").default_feature_extractor(config)
    for samples in (3_000, 11_000, 16_321):
        inputs = extractor(np.zeros(samples, np.float32), sampling_rate=16_000,
                           return_attention_mask=True, return_tensors="pt")
        with torch.no_grad():
            frames = model(input_features=inputs.input_features).logits.shape[1]
        # the valid frames the CTC loss counts (an odd fbank frame count is padded to an even
        # one and its last stacked frame masked, so the logits may hold one frame more)
        valid = int(model._get_feat_extract_output_lengths(
            inputs.attention_mask.sum(-1), add_adapter=config.add_adapter)[0])
        assert geometry.frames(samples) == valid and frames - valid in (0, 1), (adapter, samples)


def test_an_adapter_stride_transformers_miscounts_is_refused_before_training() -> None:
    from wavtune.model.build import random_init_config

    with pytest.raises(ModelError, match="add_adapter: false"):
        random_init_config(ModelConfig(arch="wav2vec2-bert", preset="tiny",
                                       overrides={"adapter_stride": 1}), {"vocab_size": 8})


def test_wav2vec2_bert_warns_when_its_frames_leave_the_recipes_stable_band() -> None:
    bert = family("wav2vec2-bert")

    def config(**overrides: object) -> Any:
        return random_init_config(ModelConfig(arch="wav2vec2-bert", preset="tiny",
                                              overrides=dict(overrides)), {})

    # ms per CTC output frame: 10 ms fbank hop (160 samples at 16 kHz) x 2 stacked x adapter
    assert bert.frame_ms(config(), 16_000) == 40.0  # the preset's stride-2 adapter
    assert bert.frame_ms(config(add_adapter=False), 16_000) == 20.0
    assert bert.frame_warning(config(add_adapter=False), 16_000) == ""
    warning = bert.frame_warning(config(), 16_000)
    assert "40 ms per CTC output frame" in warning and "10-35 ms" in warning
    assert "model.overrides.add_adapter: false" in warning  # the setting to change
    slow = bert.frame_warning(config(add_adapter=False), 8_000)  # the hop is 20 ms at 8 kHz
    assert "40 ms" in slow and "model.sample_rate: 16000" in slow
    # waveform families have no such recipe fact: 40 ms wav2vec2 frames at 8 kHz pass
    wav2vec2 = random_init_config(ModelConfig(preset="small"), {})
    assert family("wav2vec2").frame_ms(wav2vec2, 8_000) == 40.0
    assert family("wav2vec2").frame_warning(wav2vec2, 8_000) == ""


def _encoder_folder(arch: str, folder: Path, **fields: Any) -> Path:
    """A stand-in for a released encoder of ``arch`` (no head), its config fields set."""
    config = random_init_config(ModelConfig(preset="tiny", arch=arch), fields)
    from transformers import AutoModel

    AutoModel.from_config(config).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("settings, expected", [
    ([], {"add_adapter": True, "mask_time_prob": 0.0, "layerdrop": 0.0}),
    (["model.mask_time_prob=0.1", "model.overrides={add_adapter: false}"],
     {"add_adapter": False, "mask_time_prob": 0.1, "layerdrop": 0.0}),
    # the no-pre-training baseline is the same architecture and recipe
    (["model.random_init=true"], {"add_adapter": True, "mask_time_prob": 0.0, "layerdrop": 0.0}),
])
def test_wav2vec2_bert_fine_tunes_a_released_encoder_with_the_recipes_defaults(
        settings: list[str], expected: dict[str, Any], tmp_path: Path) -> None:
    """The w2v-BERT 2.0 recipe (adapter on, SpecAugment and LayerDrop off) applies to an
    encoder-only checkpoint; a field the user sets wins."""
    folder = _encoder_folder("wav2vec2-bert", tmp_path / "enc", add_adapter=False,
                             mask_time_prob=0.05, layerdrop=0.1)
    vocab = Vocabulary.build(["ab"])
    model = build_model(load_config(None, [f"model.name_or_path={folder}", *settings]),
                        vocab).model
    assert {k: getattr(model.config, k) for k in expected} == expected


def test_fine_tuning_defaults_leave_checkpoints_with_heads_and_other_families_alone(
        tmp_path: Path) -> None:
    vocab = Vocabulary.build(["ab"])
    fine_tuned = tmp_path / "ctc"
    built = build_model(load_config(None, ["model.arch=wav2vec2-bert", "model.preset=tiny",
                                           "model.overrides={add_adapter: false}",
                                           "model.mask_time_prob=0.05"]), vocab)
    built.model.save_pretrained(str(fine_tuned))
    built.feature_extractor.save_pretrained(str(fine_tuned))
    wav2vec2 = _encoder_folder("wav2vec2", tmp_path / "w2v", mask_time_prob=0.05, layerdrop=0.1)
    for folder in (fine_tuned, wav2vec2):
        config = build_model(load_config(None, [f"model.name_or_path={folder}"]),
                             vocab).model.config
        assert config.mask_time_prob == 0.05, folder
        assert getattr(config, "add_adapter", False) is False, folder


def test_a_folder_whose_config_names_no_known_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"hidden_size": 4}')
    with pytest.raises(ModelError, match=r"model.name_or_path=.*wavtune trains the families"):
        build_model(load_config(None, [f"model.name_or_path={tmp_path}"]),
                    Vocabulary.build(["ab"]))
