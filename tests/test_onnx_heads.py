"""ONNX export of label heads: a tiny classification run and a tiny multi-task run exported
(fp32 and int8), their named outputs, logits equal to PyTorch's, and the same labels (and
transcripts) from ONNX Runtime as from PyTorch, through the library and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from factories import WORDS, tiny_overrides, write_corpus

from wavtune.cli.main import main
from wavtune.config import load_config
from wavtune.deploy.export import ExportError, ExportOptions, OnnxMeta, export_onnx
from wavtune.deploy.onnx_runtime import OnnxClassifier, OnnxRecognizer
from wavtune.infer.classifier import Classifier
from wavtune.infer.recognizer import Recognizer
from wavtune.train.trainer import train

pytest.importorskip("onnxruntime")

FIRST = [w[0] for w in WORDS]  # 4 classes the tones tell apart at once
TEXTS = ("abc", "cab", "bad", "dab", "bac", "dcba")
SPEAKER = ["s1", "s2", "s2", "s2", "s1", "s2"]


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("onnx-classify")
    manifest = write_corpus(folder, extra={"first": FIRST})
    result = train(load_config(None, tiny_overrides(folder, manifest, steps=45) + [
        "task=classify", "data.label_columns=[first]", "train.metric_for_best=accuracy",
        "heads.proj_size=32"]), progress=False)
    assert result.eval_heads[0].report.accuracy == 1.0
    run: Path = result.run_dir
    return run


@pytest.fixture(scope="module")
def multitask_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("onnx-multitask")
    manifest = write_corpus(folder, TEXTS, extra={"first": [t[0] for t in TEXTS],
                                                  "speaker": SPEAKER})
    result = train(load_config(None, tiny_overrides(folder, manifest, steps=105) + [
        "task=multitask", "data.label_columns=[first, speaker]", "heads.proj_size=32",
        "heads.weights={speaker: 0.5}", "heads.class_weights=balanced",
        "train.learning_rate=5e-3"]), progress=False)
    assert result.eval is not None and result.eval.wer == 0.0
    run: Path = result.run_dir
    return run


def _outputs(model: Path) -> list[str]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return [o.name for o in session.get_outputs()]


def _clips(run: Path) -> list[Path]:
    return sorted(run.parent.glob("utt*.wav"))


def test_classify_export_has_the_label_head_and_pytorchs_logits(classify_run: Path) -> None:
    meta = export_onnx(classify_run, ExportOptions(int8=True)).meta
    assert meta.kind == "classify" and [h.column for h in meta.heads] == ["first"]
    assert meta.heads[0].labels == tuple(sorted(set(FIRST)))
    fp32, int8 = meta.parity
    assert fp32.max_abs_diff is None and fp32.same_transcripts is None  # no CTC head
    assert fp32.label_max_abs_diff is not None and fp32.label_max_abs_diff < 1e-3
    assert fp32.label_agreement == 1.0 and int8.label_agreement is not None
    assert _outputs(classify_run / "onnx" / "model.onnx") == ["class_logits.first"]
    assert not (classify_run / "onnx" / "vocab.json").exists()
    assert OnnxMeta.load(classify_run / "onnx") == meta


def test_onnx_classifier_gives_pytorchs_labels(classify_run: Path) -> None:
    export_onnx(classify_run, ExportOptions(int8=True))
    clips = _clips(classify_run)
    torch_out = list(Classifier(classify_run).classify_files(clips))
    for int8 in (False, True):
        onnx_out = list(OnnxClassifier(classify_run, int8=int8).classify_files(clips))
        assert [c.heads[0].top[0][0] for c in onnx_out] == FIRST
        if not int8:  # fp32: the same probabilities, not only the same best label
            for ours, theirs in zip(onnx_out, torch_out, strict=True):
                assert ours.heads[0].top[0][1] == pytest.approx(theirs.heads[0].top[0][1],
                                                                abs=1e-5)


def test_classify_backend_onnx_prints_what_pytorch_prints(
        classify_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(classify_run), "--onnx"]) == 0
    exported = capsys.readouterr().out
    assert "max |class logit diff|" in exported and "outputs: class_logits.first" in exported
    assert "wavtune classify" in exported
    clips = [str(p) for p in _clips(classify_run)]
    assert main(["classify", str(classify_run), *clips, "--format", "json"]) == 0
    pytorch = capsys.readouterr().out
    assert main(["classify", str(classify_run), *clips, "--format", "json",
                 "--backend", "onnx"]) == 0
    assert capsys.readouterr().out == pytorch


def test_a_classify_export_cannot_transcribe(classify_run: Path) -> None:
    export_onnx(classify_run)
    with pytest.raises(ExportError, match="no CTC output.*wavtune classify .* --backend onnx"):
        OnnxRecognizer(classify_run)


def test_multitask_export_has_both_outputs_and_pytorchs_results(multitask_run: Path) -> None:
    meta = export_onnx(multitask_run, ExportOptions(int8=True)).meta
    assert meta.kind == "multitask" and not meta.ctc_branch_only
    assert _outputs(multitask_run / "onnx" / "model.onnx") == [
        "logits", "frames", "class_logits.first", "class_logits.speaker"]
    fp32, int8 = meta.parity
    assert fp32.max_abs_diff is not None and fp32.max_abs_diff < 1e-3 and fp32.same_transcripts
    assert fp32.label_max_abs_diff is not None and fp32.label_max_abs_diff < 1e-3
    assert int8.frame_agreement is not None and int8.frame_agreement >= 0.9
    clips = _clips(multitask_run)
    theirs = list(Recognizer(multitask_run).transcribe_files(clips))
    ours = list(OnnxRecognizer(multitask_run).transcribe_files(clips))
    assert [t.text for t in ours] == [t.text for t in theirs] == list(TEXTS)
    assert [[h.top[0][0] for h in t.labels] for t in ours] == [
        [h.top[0][0] for h in t.labels] for t in theirs]
    probs = [[p for h in t.labels for _, p in h.top] for t in ours]
    expected = [[p for h in t.labels for _, p in h.top] for t in theirs]
    assert np.allclose(probs, expected, atol=1e-5)
    int8_labels = [[h.top[0][0] for h in c.heads]
                   for c in OnnxClassifier(multitask_run, int8=True).classify_files(clips)]
    assert int8_labels == [[t[0], s] for t, s in zip(TEXTS, SPEAKER)]


def _evaluate(run: Path, capsys: pytest.CaptureFixture[str], *backend: str
              ) -> tuple[dict[str, Any], list[str]]:
    """metrics-NAME.json and predictions-NAME.jsonl of 'wavtune evaluate' on the training clips."""
    name = "-".join(b.lstrip("-") for b in backend) or "pytorch"
    assert main(["evaluate", str(run), str(run.parent / "train.jsonl"), "--name", name,
                 "--quiet", "--json", *backend]) == 0
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((run / f"metrics-{name}.json").read_text(encoding="utf-8"))
    assert printed == metrics
    return metrics, (run / f"predictions-{name}.jsonl").read_text(encoding="utf-8").splitlines()


def _same(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Equal, but losses and probabilities only to float precision (the backend's name left
    out)."""
    if set(ours) != set(theirs):
        return False
    return all(k == "backend" or (ours[k] == pytest.approx(theirs[k], abs=2e-4)
                                  if k.endswith(("loss", "probability")) else ours[k] == theirs[k])
               for k in ours)


@pytest.mark.parametrize("task", ["classify", "multitask"])
def test_evaluate_backend_onnx_scores_what_pytorch_scores(
        task: str, classify_run: Path, multitask_run: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = classify_run if task == "classify" else multitask_run
    export_onnx(run, ExportOptions(int8=True))
    metrics, predictions = _evaluate(run, capsys)
    assert metrics["backend"] == "pytorch" and metrics["accuracy"] == 1.0
    for backend in (("--backend", "onnx"), ("--backend", "onnx", "--int8")):
        ours, rows = _evaluate(run, capsys, *backend)
        assert ours["backend"] == ("onnx-int8" if "--int8" in backend else "onnx")
        if "--int8" not in backend:  # fp32: every score and predicted row as PyTorch's
            assert _same(ours, metrics) and len(rows) == len(predictions)
            assert all(_same(json.loads(a), json.loads(b)) for a, b in zip(rows, predictions))
        assert ours["accuracy"] == metrics["accuracy"]
        assert ours.get("wer") == metrics.get("wer")


def test_evaluate_backend_onnx_without_an_export_says_what_to_run(
        tmp_path: Path, classify_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(classify_run, run, ignore=shutil.ignore_patterns("onnx"))
    assert main(["evaluate", str(run), str(classify_run.parent / "train.jsonl"),
                 "--backend", "onnx"]) == 2
    assert f"wavtune export {run} --onnx" in capsys.readouterr().err


def test_evaluate_help_tells_the_backend_story(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--backend {pytorch,onnx}" in text and "wavtune export RUN --onnx [--int8]" in text
    assert "only the forward pass differs" in text
