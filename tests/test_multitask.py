"""task: multitask end to end: one encoder, a CTC head and two label heads; the exported CTC
branch; rows without a label; the registered transformers classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from factories import SR, tiny_overrides, tone_speech, write_corpus

from wavtune.cli.main import main
from wavtune.config import Config, load_config
from wavtune.data.labels import NO_LABEL, LabelSet
from wavtune.data.vocab import Vocabulary
from wavtune.model.build import build_model
from wavtune.model.families import WAV2VEC2_PRESETS
from wavtune.model.multitask import MultitaskModel, ctc_branch
from wavtune.train.trainer import TrainResult, train

VOCAB = Vocabulary.build(["abc cab", "bad"])

TEXTS = ("abc", "cab", "bad", "dab", "bac", "dcba")
FIRST = [t[0] for t in TEXTS]
SPEAKER = ["s1", "s2", "", "s2", "s1", "s2"]  # the third row has no speaker: masked, not dropped


@pytest.fixture(scope="module")
def multitask(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    folder = tmp_path_factory.mktemp("multitask")
    manifest = write_corpus(folder, TEXTS, extra={"first": FIRST, "speaker": SPEAKER})
    overrides = tiny_overrides(folder, manifest, steps=105) + [
        "task=multitask", "data.label_columns=[first, speaker]", "heads.proj_size=32",
        "heads.weights={speaker: 0.5}", "heads.class_weights=balanced",
        "train.learning_rate=5e-3",
    ]
    return train(load_config(None, overrides), progress=False)


def test_one_encoder_learns_transcripts_and_labels(multitask: TrainResult) -> None:
    assert multitask.eval is not None
    assert multitask.eval.wer == 0.0, [
        (p.reference, p.hypothesis) for p in multitask.eval.predictions
    ]
    first, speaker = multitask.eval_heads
    assert first.report.accuracy == 1.0 and speaker.report.accuracy == 1.0
    log = [json.loads(line) for line in (multitask.run_dir / "log.jsonl").read_text().splitlines()]
    train_records = [r for r in log if "loss" in r]
    assert {"ctc_loss", "first_loss", "speaker_loss"} <= set(train_records[0])
    assert train_records[-1]["loss"] < train_records[0]["loss"] / 5
    last_eval = [r for r in log if "eval_loss" in r][-1]
    assert last_eval["eval_wer"] == 0.0 and last_eval["eval_speaker_accuracy"] == 1.0
    assert last_eval["eval_speaker_confusion"] == [["s1", "s2"], ["s1", 2, 0], ["s2", 0, 3]]


def test_rows_without_a_label_are_masked_not_dropped(multitask: TrainResult) -> None:
    metrics = json.loads((multitask.run_dir / "metrics.json").read_text())
    assert metrics["train_data"]["utterances"] == len(TEXTS)  # kept for CTC and the other head
    speaker = metrics["eval"]["heads"]["speaker"]
    assert speaker["unlabelled"] == 1 and speaker["support"] == 5
    assert speaker["report"]["Macro avg Support"] == 5
    assert metrics["eval"]["heads"]["first"]["support"] == len(TEXTS)
    rows = [
        json.loads(x)
        for x in (multitask.run_dir / "predictions-eval.jsonl").read_text().splitlines()
    ]
    assert rows[2]["speaker_reference"] is None and rows[2]["speaker_predicted"] in ("s1", "s2")
    assert rows[2]["hypothesis"] == "bad"
    config = json.loads((multitask.run_dir / "config.json").read_text())
    assert config["heads"][1]["class_weights"] == pytest.approx([5 / 4, 5 / 6])  # 2 vs 3 rows
    assert config["heads"][1]["weight"] == 0.5


def test_transcribe_prints_transcript_and_labels(multitask: TrainResult, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone_speech("dab", seed=3), SR)
    assert main(["transcribe", str(multitask.run_dir), str(clip), "--quiet"]) == 0
    text, labels = capsys.readouterr().out.strip().split("\t")
    assert text == "dab" and labels.startswith("first=d (")
    assert main(["transcribe", str(multitask.run_dir), str(clip), "--format", "json",
                 "--quiet"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["text"] == "dab" and row["labels"]["speaker"][0]["label"] == "s2"


def test_exported_ctc_branch_loads_in_the_asr_pipeline(multitask: TrainResult,
                                                       tmp_path: Path) -> None:
    from transformers import pipeline

    out = tmp_path / "ctc"
    assert main(["export-ctc", str(multitask.run_dir), str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["Wav2Vec2ForCTC"] and config["model_type"] == "wav2vec2"
    asr = pipeline("automatic-speech-recognition", model=str(out), device="cpu")
    wave = tone_speech("bac", seed=7)
    assert asr({"raw": wave, "sampling_rate": SR})["text"] == "bac"  # no ffmpeg: an array


def test_run_is_a_registered_transformers_model(multitask: TrainResult) -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForCTC

    from wavtune.model.multitask import MultitaskModel, register
    from wavtune.train.checkpoint import export_ctc

    register()
    config = AutoConfig.from_pretrained(str(multitask.run_dir))
    assert config.head_names == ("first", "speaker") and config.encoder_config.hidden_size == 32
    model = AutoModel.from_pretrained(str(multitask.run_dir))
    assert isinstance(model, MultitaskModel)
    assert isinstance(AutoModelForCTC.from_pretrained(str(multitask.run_dir)), MultitaskModel)
    wave = torch.from_numpy(tone_speech("cab"))[None]
    with torch.no_grad():
        out = model(wave)
    assert out.logits.shape[-1] == config.vocab_size
    assert [h.shape for h in out.head_logits] == [torch.Size([1, 4]), torch.Size([1, 2])]
    with pytest.raises(ValueError, match="not empty"):
        export_ctc(multitask.run_dir, multitask.run_dir)


def test_evaluate_reports_every_task(multitask: TrainResult,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    manifest = multitask.run_dir.parent / "train.jsonl"
    assert main(["evaluate", str(multitask.run_dir), str(manifest), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "WER 0.0000" in out and "first: accuracy 1.0000" in out and "speaker: accuracy" in out
    assert "speaker confusion" in out


# --- building: every architecture, pre-trained encoders, freezing, attentive pooling --------

def _config(*overrides: str) -> Config:
    return load_config(None, ["model.preset=tiny", "heads.proj_size=16", *overrides])


LABELS = (LabelSet("speaker", ("a", "b", "c"), (2, 1, 1)),)


@pytest.mark.parametrize("arch", ["wav2vec2", "hubert", "wavlm", "data2vec-audio",
                                  "wav2vec2-conformer"])
def test_every_architecture_builds_a_classifier_and_a_multitask_model(arch: str) -> None:
    extra = "model.overrides={num_conv_pos_embeddings: 16}" if arch != "data2vec-audio" else \
        "model.overrides={}"
    common = [f"model.arch={arch}", extra, "data.label_columns=[speaker]"]
    wave, mask = torch.randn(2, 8000), torch.ones(2, 8000, dtype=torch.long)
    mask[1, 5000:] = 0
    classifier = build_model(_config("task=classify", "train.metric_for_best=accuracy", *common),
                             None, LABELS).model
    assert type(classifier).__name__.endswith("ForSequenceClassification")
    assert classifier(wave, attention_mask=mask).logits.shape == (2, 3)
    model = build_model(_config("task=multitask", *common), VOCAB, LABELS).model
    out = model(wave, attention_mask=mask, labels=torch.tensor([[2, 3], [4, -100]]),
                class_labels=torch.tensor([[0], [NO_LABEL]]))
    assert torch.isfinite(out.loss) and out.head_logits[0].shape == (2, 3)


def test_multitask_ctc_loss_is_the_stock_ctc_loss() -> None:
    model = build_model(_config("task=multitask", "data.label_columns=[speaker]",
                                "model.mask_time_prob=0.0"), VOCAB, LABELS).model.eval()
    stock = ctc_branch(model).eval()
    wave, mask = torch.randn(2, 8000), torch.ones(2, 8000, dtype=torch.long)
    mask[1, 6000:] = 0
    labels = torch.tensor([[2, 3, 4], [4, -100, -100]])
    with torch.no_grad():
        ours = model(wave, attention_mask=mask, labels=labels)
        theirs = stock(wave, attention_mask=mask, labels=labels)
    torch.testing.assert_close(ours.logits, theirs.logits)
    torch.testing.assert_close(ours.ctc_loss, theirs.loss)
    torch.testing.assert_close(ours.loss, ours.ctc_loss)  # no class labels: CTC alone


def test_pretrained_encoder_is_loaded_under_new_heads(tmp_path: Path) -> None:
    from transformers import AutoConfig, Wav2Vec2Model

    encoder = Wav2Vec2Model(AutoConfig.for_model("wav2vec2", **WAV2VEC2_PRESETS["tiny"]))
    encoder.save_pretrained(tmp_path / "base")
    config = load_config(None, [f"model.name_or_path={tmp_path / 'base'}", "task=multitask",
                                "data.label_columns=[speaker]", "model.freeze_encoder_steps=10"])
    model = build_model(config, VOCAB, LABELS).model
    torch.testing.assert_close(model.encoder.encoder.layers[0].attention.q_proj.weight,
                               encoder.encoder.layers[0].attention.q_proj.weight)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"lm_head", "heads"}  # the encoder waits for freeze_encoder_steps


def test_attentive_pooling_classifier_is_a_multitask_model_without_ctc() -> None:
    config = _config("task=classify", "data.label_columns=[speaker]", "heads.pooling=attentive",
                     "train.metric_for_best=macro_f1")
    model = build_model(config, None, LABELS).model
    assert isinstance(model, MultitaskModel) and model.lm_head is None
    out = model(torch.randn(2, 8000), class_labels=torch.tensor([[1], [2]]))
    assert out.logits is None and torch.isfinite(out.loss)
