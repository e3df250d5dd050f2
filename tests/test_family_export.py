"""ONNX export per model family: the graph takes the family's front-end input (waveform
``input_values`` or Wav2Vec2-BERT's fbank ``input_features``) and gives PyTorch's logits, batched
as the family must be; a family that cannot export says so before anything is traced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rundirs import random_family_run

from wavtune.deploy.export import ExportError, OnnxMeta, export_onnx, probe_audio
from wavtune.deploy.onnx_runtime import OnnxRecognizer
from wavtune.infer.recognizer import Recognizer
from wavtune.model.families import FAMILIES, Family

pytest.importorskip("onnxruntime")

EXPORTABLE = sorted(name for name, f in FAMILIES.items() if not f.onnx_unsupported)


@pytest.mark.parametrize("arch", EXPORTABLE)
def test_exported_graph_gives_pytorchs_logits(arch: str, tmp_path: Path) -> None:
    run = random_family_run(arch, tmp_path)
    meta = export_onnx(run).meta
    rec = Recognizer(run)
    assert meta.input_name == rec.audio.front_end.input_name
    assert meta.padding_sensitive == rec.audio.front_end.padding_sensitive
    assert meta.parity[0].max_abs_diff < 1e-3 and meta.parity[0].same_transcripts
    onnx = OnnxRecognizer(run)
    waves = probe_audio(16_000, seed=1)  # other clips than the export's own parity probe
    for ours, theirs in zip(onnx.forward_batch(waves), rec.forward_batch(waves), strict=True):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-3)
    assert OnnxMeta.load(run / "onnx") == meta


def test_wav2vec2_bert_export_reads_fbank_features(tmp_path: Path) -> None:
    run = random_family_run("wav2vec2-bert", tmp_path)
    meta = export_onnx(run).meta
    assert meta.input_name == "input_features" and meta.samples_per_frame == 640
    import onnxruntime as ort

    session = ort.InferenceSession(str(run / "onnx" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    (features, mask) = session.get_inputs()
    assert (features.name, features.shape[-1], mask.name) == ("input_features", 160,
                                                               "attention_mask")


def test_a_family_that_cannot_export_says_why_before_tracing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = random_family_run("hubert", tmp_path)
    refusing = Family("hubert", onnx_unsupported="its layers do not trace")
    monkeypatch.setitem(FAMILIES, "hubert", refusing)
    with pytest.raises(ExportError, match=r"model.arch='hubert' cannot be exported to ONNX: "
                                          r"its layers do not trace"):
        export_onnx(run)
    assert not (run / "onnx" / "model.onnx").exists()
