"""Model building: every *ForCTC architecture, checkpoints from a folder, freezing, presets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from factories import tiny_overrides, write_corpus

from wavtune.config import ModelConfig, load_config
from wavtune.data.vocab import Vocabulary
from wavtune.model.build import build_ctc_model, set_encoder_frozen
from wavtune.model.families import WAV2VEC2_PRESETS, ModelError

VOCAB = Vocabulary.build(["abc cab", "bad"])


@pytest.mark.parametrize("arch", ["wav2vec2", "hubert", "wavlm", "data2vec-audio",
                                  "wav2vec2-conformer"])
def test_every_ctc_architecture_builds_and_computes_a_loss(arch: str) -> None:
    overrides = {"num_conv_pos_embeddings": 16} if arch != "data2vec-audio" else {}
    built = build_ctc_model(ModelConfig(preset="tiny", arch=arch, overrides=overrides), VOCAB)
    assert built.model.config.vocab_size == len(VOCAB)
    assert built.model.config.pad_token_id == VOCAB.pad_id  # the blank
    assert built.model.config.ctc_zero_infinity and built.model.config.ctc_loss_reduction == "mean"
    out = built.model(torch.randn(2, 8000), labels=torch.tensor([[2, 3], [4, -100]]))
    assert torch.isfinite(out.loss)
    assert out.logits.shape[-1] == len(VOCAB)


def test_pretrained_folder_gets_a_new_head_sized_to_the_vocabulary(tmp_path: Path) -> None:
    from transformers import AutoConfig, Wav2Vec2Model

    # a stand-in for facebook/wav2vec2-base: an encoder without a CTC head, saved to a folder
    config = AutoConfig.for_model("wav2vec2", **WAV2VEC2_PRESETS["tiny"])
    encoder = Wav2Vec2Model(config)
    encoder.save_pretrained(tmp_path / "base")
    built = build_ctc_model(ModelConfig(name_or_path=str(tmp_path / "base"), mask_time_prob=0.3,
                                        layerdrop=0.0), VOCAB)
    assert built.model.lm_head.out_features == len(VOCAB)
    assert built.model.config.mask_time_prob == 0.3
    torch.testing.assert_close(built.model.wav2vec2.encoder.layers[0].attention.q_proj.weight,
                               encoder.encoder.layers[0].attention.q_proj.weight)
    # no preprocessor_config.json in the folder: the default extractor is used
    assert built.feature_extractor.sampling_rate == 16_000


def test_gradient_checkpointing_is_switched_on() -> None:
    built = build_ctc_model(ModelConfig(preset="tiny", gradient_checkpointing=True), VOCAB)
    assert built.model.is_activation_checkpointing
    out = built.model(torch.randn(2, 8000), labels=torch.tensor([[2, 3], [4, -100]]))
    out.loss.backward()  # recomputes the encoder layers in the backward pass


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model.name_or_path"):
        build_ctc_model(ModelConfig(name_or_path=str(tmp_path / "nothing-here")), VOCAB)


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(ModelError, match="tiny"):
        build_ctc_model(ModelConfig(preset="huge"), VOCAB)


def test_freezing_leaves_only_the_head_trainable() -> None:
    model = build_ctc_model(ModelConfig(preset="tiny"), VOCAB).model
    set_encoder_frozen(model, frozen=True, freeze_feature_encoder=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"lm_head.weight", "lm_head.bias"}
    set_encoder_frozen(model, frozen=False, freeze_feature_encoder=True)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("wav2vec2.feature_extractor") for n in frozen)


def test_encoder_stays_fixed_for_the_first_n_steps(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from wavtune.train.trainer import Trainer

    manifest = write_corpus(tmp_path, ["abc", "cab"])
    config = load_config(None, tiny_overrides(tmp_path, manifest, steps=3)
                         + ["model.freeze_encoder_steps=3", "train.eval_steps=1",
                            "train.train_batch_size=2", "train.save_total_limit=5"])
    trainer = Trainer(config, progress=False)
    before = {k: v.clone() for k, v in trainer.unwrapped.state_dict().items()}
    trainer.fit()
    after = load_file(str(trainer.run.checkpoint(2) / "model.safetensors"))
    assert torch.equal(after["wav2vec2.encoder.layers.0.feed_forward.output_dense.weight"],
                       before["wav2vec2.encoder.layers.0.feed_forward.output_dense.weight"])
    assert not torch.equal(after["lm_head.weight"], before["lm_head.weight"])


def test_mixed_precision_on_cpu_falls_back_to_fp32_with_a_notice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from wavtune.train.trainer import Trainer

    manifest = write_corpus(tmp_path, ["abc"])
    config = load_config(None, tiny_overrides(tmp_path, manifest, steps=3)
                         + ["train.mixed_precision=fp16", "train.device=cpu"])
    with caplog.at_level(logging.WARNING, logger="wavtune"):
        trainer = Trainer(config, progress=False)
    assert trainer.accelerator.mixed_precision == "no"
    assert "fp16" in caplog.text and "CPU" in caplog.text


@pytest.mark.parametrize("task", ["ctc", "classify", "multitask"])
def test_random_init_keeps_the_architecture_and_drops_the_weights(tmp_path: Path,
                                                                  task: str) -> None:
    from transformers import AutoConfig, Wav2Vec2Model

    from wavtune.data.labels import LabelSet
    from wavtune.model.build import build_model

    config = AutoConfig.for_model("wav2vec2", **{**WAV2VEC2_PRESETS["tiny"], "hidden_size": 48})
    encoder = Wav2Vec2Model(config)
    encoder.save_pretrained(tmp_path / "base")
    labels = (LabelSet("speaker", ("a", "b"), (1, 1)),) if task != "ctc" else ()
    base = [f"model.name_or_path={tmp_path / 'base'}", f"task={task}", "heads.proj_size=16"]
    if task != "ctc":
        base += ["data.label_columns=[speaker]"]
    if task == "classify":
        base += ["train.metric_for_best=accuracy"]

    def q_proj(random_init: bool) -> torch.Tensor:
        cfg = load_config(None, base + [f"model.random_init={str(random_init).lower()}"])
        model = build_model(cfg, VOCAB if task != "classify" else None, labels).model
        assert model.config.to_dict().get("hidden_size", 48) == 48  # the checkpoint's shape
        core = model.encoder if task == "multitask" else model.wav2vec2
        assert core.config.hidden_size == 48
        weight: torch.Tensor = core.encoder.layers[0].attention.q_proj.weight
        return weight

    reference = encoder.encoder.layers[0].attention.q_proj.weight
    torch.testing.assert_close(q_proj(False), reference)
    assert not torch.allclose(q_proj(True), reference)  # fresh weights, same shape
