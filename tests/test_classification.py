"""task: classify end to end, the heads' pooling and loss, label sets and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from factories import SR, WORDS, tiny_overrides, tone_speech, write_corpus

from wavtune.cli.main import main
from wavtune.config import ConfigError, load_config
from wavtune.data.labels import NO_LABEL, LabelError, build_label_set
from wavtune.data.manifest import read_manifest
from wavtune.model.heads import AttentivePooling, masked_cross_entropy, masked_mean
from wavtune.train.trainer import TrainResult, train

# the first letter of each clip: 4 classes the tones tell apart at once
FIRST = [w[0] for w in WORDS]
CLASSIFY = ["task=classify", "data.label_columns=[first]", "train.metric_for_best=accuracy",
            "heads.proj_size=32"]


@pytest.fixture(scope="module")
def classified(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    folder = tmp_path_factory.mktemp("classify")
    manifest = write_corpus(folder, extra={"first": FIRST})
    return train(load_config(None, tiny_overrides(folder, manifest, steps=45) + CLASSIFY),
                 progress=False)


def _log(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_classifier_overfits_the_clips(classified: TrainResult) -> None:
    (head,) = classified.eval_heads
    assert classified.eval is None  # no CTC head
    assert head.name == "first" and head.report.accuracy == 1.0
    assert [p.predicted for p in head.predictions] == FIRST
    losses = [r["loss"] for r in _log(classified.run_dir) if "loss" in r]
    assert losses[-1] < losses[0] / 5


def test_every_eval_logs_the_seed_004_columns(classified: TrainResult) -> None:
    from wavtune.run.log import eval_columns, parse_log

    evals = [r for r in _log(classified.run_dir) if "eval_loss" in r]
    assert len(evals) == 3  # every evaluation, not only the last
    values = parse_log(evals).evals[-1].values
    names = list(dict.fromkeys(c.name for c, _ in eval_columns(values)))
    per_class = [f"{c} {m}" for c in "abcd" for m in ("Precision", "Recall", "F1-score", "Support")]
    averages = [f"{a} avg {m}" for a in ("Macro", "Weighted")
                for m in ("Precision", "Recall", "F1-score", "Support")]
    # seed 004's columns (it adds Wer before Mtrix: see test_multitask), duplicates merged
    assert sorted(names) == sorted(["Validation Loss", *per_class, "Accuracy", *averages, "Mtrix"])
    assert names[0] == "Validation Loss" and names[-1] == "Mtrix"
    assert evals[-1]["eval_confusion"] == [["a", "b", "c", "d"], ["a", 3, 0, 0, 0],
                                           ["b", 0, 2, 0, 0], ["c", 0, 0, 1, 0], ["d", 0, 0, 0, 2]]
    metrics = json.loads((classified.run_dir / "metrics.json").read_text())
    assert metrics["eval"]["accuracy"] == metrics["eval"]["first_accuracy"] == 1.0
    assert metrics["label_sets"] == {"first": ["a", "b", "c", "d"]}


def test_run_loads_in_audio_classification_pipeline_with_the_cli_label(
    classified: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoModelForAudioClassification, pipeline

    model = AutoModelForAudioClassification.from_pretrained(str(classified.run_dir))
    assert type(model).__name__ == "Wav2Vec2ForSequenceClassification"
    assert model.config.id2label == {0: "a", 1: "b", 2: "c", 3: "d"}
    wave = tone_speech("dab", seed=5)
    clip = tmp_path / "clip.wav"
    sf.write(clip, wave, SR)
    clf = pipeline("audio-classification", model=str(classified.run_dir), device="cpu")
    best = clf({"raw": wave, "sampling_rate": SR}, top_k=1)[0]  # no ffmpeg: an array input
    assert main(["classify", str(classified.run_dir), str(clip), "--format", "json", "--top-k",
                 "2", "--quiet"]) == 0
    row = json.loads(capsys.readouterr().out)
    (top, second) = row["labels"]["first"]
    assert top["label"] == best["label"] == "d"
    assert top["probability"] == pytest.approx(best["score"], abs=1e-3) and second["label"] != "d"


def test_evaluate_command_scores_the_head(classified: TrainResult,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    manifest = classified.run_dir.parent / "train.jsonl"
    assert main(["evaluate", str(classified.run_dir), str(manifest), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["accuracy"] == 1.0 and summary["macro_f1"] == 1.0
    assert summary["heads"]["first"]["report"]["a Support"] == 3
    row = json.loads((classified.run_dir / "predictions-train.jsonl").read_text().splitlines()[0])
    assert row["first_reference"] == row["first_predicted"] == "a"


def test_unknown_eval_label_stops_before_training_naming_label_and_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_manifest = write_corpus(tmp_path, WORDS[:4], extra={"first": FIRST[:4]})
    dev = write_corpus(tmp_path / "dev", WORDS[:3], name="dev.jsonl",
                       extra={"first": ["a", "zz", "b"]})
    overrides = tiny_overrides(tmp_path, train_manifest, steps=3) + CLASSIFY + [f"data.eval={dev}"]
    with pytest.raises(LabelError, match=r"eval set row 2 \(id 'utt001'\): first label 'zz' never "
                                         r"occurs in the training split"):
        train(load_config(None, overrides), progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    assert main(["train", str(config), *[f"--set={o}" for o in overrides], "--quiet",
                 "--overwrite"]) == 2
    assert "'zz'" in capsys.readouterr().err


def test_label_set_comes_from_training_rows_in_numeric_order(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path, WORDS[:5], extra={"digit": ["10", "2", "", "2", "1"]})
    labels = build_label_set(read_manifest(manifest), "digit")
    assert labels.labels == ("1", "2", "10") and labels.counts == (1, 2, 1)
    assert labels.unlabelled == 1 and labels.encode(None) == labels.encode("") == NO_LABEL
    assert labels.balanced_weights() == pytest.approx((4 / 3, 2 / 3, 4 / 3))
    with pytest.raises(LabelError, match="single label"):
        build_label_set(read_manifest(manifest)[1:2], "digit")
    with pytest.raises(LabelError, match="no training row has a 'speakr' value"):
        build_label_set(read_manifest(manifest), "speakr")


@pytest.mark.parametrize("overrides, message", [
    (["task=classify"], "task classify predicts one column"),
    (["task=classify", "data.label_columns=[a, b]"], "task classify predicts one column"),
    (["task=classify", "data.label_columns=[first]"], "'wer' is not available for task classify"),
    (["task=multitask"], "task multitask needs at least one label column"),
    (["data.label_columns=[first]"], "set task: classify or multitask"),
    (["task=multitask", "data.label_columns=[spk]", "heads.weights={spkr: 1}"],
     "heads.weights.spkr: not one of data.label_columns"),
    (["task=multitask", "data.label_columns=[spk]", "train.metric_for_best=spk_f1"],
     "spk_accuracy"),  # the message lists the per-head choices
])
def test_config_rejects_task_mismatches(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["model.preset=tiny", *overrides])


def test_per_head_metrics_are_accepted_for_best_checkpoint() -> None:
    config = load_config(None, ["model.preset=tiny", "task=multitask",
                                "data.label_columns=[speaker, digit]",
                                "train.metric_for_best=speaker_accuracy"])
    assert config.train.metric_for_best == "speaker_accuracy"


def test_pooling_ignores_padded_frames() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(1, 5, 4)
    padded = torch.cat([hidden, 100 * torch.randn(1, 3, 4)], dim=1)  # 3 padding frames
    mask = torch.tensor([[True] * 5 + [False] * 3])
    assert torch.allclose(masked_mean(padded, mask), hidden.mean(dim=1))
    pool = AttentivePooling(4)
    assert torch.allclose(pool(padded, mask), pool(hidden, None), atol=1e-6)


def test_masked_cross_entropy_leaves_out_unlabelled_rows() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]])
    targets = torch.tensor([0, 1, NO_LABEL])
    expected = torch.nn.functional.cross_entropy(logits[:2], targets[:2])
    assert torch.allclose(masked_cross_entropy(logits, targets), expected)
    weight = torch.tensor([1.0, 3.0])
    weighted = torch.nn.functional.cross_entropy(logits[:2], targets[:2], weight=weight)
    assert torch.allclose(masked_cross_entropy(logits, targets, weight), weighted)
    none = masked_cross_entropy(logits.requires_grad_(), torch.full((3,), NO_LABEL))
    none.backward()
    assert none.item() == 0.0 and logits.grad is not None  # still in the graph, zero gradient


def test_long_audio_is_classified_in_windows(classified: TrainResult) -> None:
    import numpy as np

    from wavtune.infer.classifier import Classifier
    from wavtune.infer.types import TranscribeOptions

    clf = Classifier(classified.run_dir)
    clip = tone_speech("bad", seed=2)
    (single,) = clf.classify_array(clip, top_k=4)
    # four copies in windows of one copy each: the mean of four identical windows
    options = TranscribeOptions(chunk_s=len(clip) / SR, overlap_s=0.0)
    (windows,) = clf.classify_array(np.tile(clip, 4), top_k=4, options=options)
    assert windows.label == single.label == "b"
    assert dict(windows.top) == pytest.approx(dict(single.top), abs=1e-5)
    assert sum(dict(windows.top).values()) == pytest.approx(1.0, abs=1e-6)
