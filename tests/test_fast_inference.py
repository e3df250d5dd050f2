"""Fast inference on a tiny overfit model: length-sorted batches, long files streamed with flat
memory, and the ONNX export (fp32 and int8) agreeing with PyTorch, from the library and the CLI."""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from factories import VARIED, tiny_overrides, tone_speech, write_corpus

from wavtune.cli.main import main
from wavtune.config import load_config
from wavtune.data.audio import load_audio
from wavtune.deploy.export import (
    ExportError,
    ExportOptions,
    OnnxMeta,
    export_onnx,
    require_onnxruntime,
)
from wavtune.deploy.onnx_runtime import OnnxRecognizer
from wavtune.infer.recognizer import Recognizer
from wavtune.infer.types import TranscribeOptions
from wavtune.train.trainer import train

SR = 16_000


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fast")
    manifest = write_corpus(folder, VARIED)
    result = train(load_config(None, tiny_overrides(folder, manifest, steps=150)
                               + ["train.eval_steps=150"]), progress=False)
    assert result.eval is not None and result.eval.wer == 0.0
    run_dir: Path = result.run_dir
    return run_dir


@pytest.fixture(scope="module")
def exported(run: Path) -> OnnxMeta:
    return export_onnx(run, ExportOptions(int8=True)).meta


@pytest.fixture(scope="module")
def clips(run: Path) -> list[Path]:
    return sorted(run.parent.glob("utt*.wav"))


def test_export_parity_fp32_and_int8(run: Path, exported: OnnxMeta) -> None:
    fp32, int8 = exported.parity
    assert (fp32.file, int8.file) == ("model.onnx", "model.int8.onnx")
    assert fp32.max_abs_diff < 1e-3 and fp32.frame_agreement == 1.0 and fp32.same_transcripts
    assert int8.frame_agreement >= 0.9
    folder = run / "onnx"
    for name in ("model.onnx", "model.int8.onnx", "vocab.json", "preprocessor_config.json",
                 "onnx.json"):
        assert (folder / name).is_file(), name
    assert not exported.ctc_branch_only and exported.use_attention_mask


def test_onnx_recognizer_matches_pytorch_logits_and_text(run: Path, exported: OnnxMeta) -> None:
    torch_rec, onnx_rec = Recognizer(run), OnnxRecognizer(run)
    wave = tone_speech("cab dab", seed=5)
    assert np.abs(torch_rec.logits(wave) - onnx_rec.logits(wave)).max() < 1e-3
    # a long input through 2 s windows: the same stitching drives both backends
    long = tone_speech("abc cab bad dab abc", seed=6)
    options = TranscribeOptions(chunk_s=2.0, overlap_s=0.5)
    text = torch_rec.transcribe_array(long, options)
    assert text.replace(" ", "") == "abccabbaddababc"
    assert onnx_rec.transcribe_array(long, options) == text
    assert OnnxRecognizer(run, int8=True, threads=1).transcribe_array(long, options) == text


@pytest.mark.parametrize("extra", [[], ["--int8"]])
def test_transcribe_backend_onnx_prints_what_pytorch_prints(
        run: Path, exported: OnnxMeta, clips: list[Path], extra: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transcribe", str(run), str(run.parent), "--quiet", "--format", "json"]) == 0
    expected = capsys.readouterr().out
    assert main(["transcribe", str(run), str(run.parent), "--quiet", "--format", "json",
                 "--backend", "onnx", *extra]) == 0
    got = capsys.readouterr().out
    if not extra:
        assert got == expected
    else:  # int8 moves the scores a little: same words and times, confidences within 0.05
        def parts(out: str) -> tuple[list[Any], list[float]]:
            rows = [json.loads(line) for line in out.splitlines()]
            conf = [w.pop("confidence") for r in rows for w in r["words"]]
            return rows, conf
        (rows, conf), (want, want_conf) = parts(got), parts(expected)
        assert rows == want
        assert np.allclose(conf, want_conf, atol=0.05)
    assert [json.loads(line)["text"] for line in expected.splitlines()] == list(VARIED)


def test_evaluate_backend_onnx_gives_pytorchs_wer_and_predictions(
        run: Path, exported: OnnxMeta, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = str(run.parent / "train.jsonl")
    scores = {}
    for name, backend in (("pt", ()), ("ort", ("--backend", "onnx")),
                          ("ort8", ("--backend", "onnx", "--int8"))):
        assert main(["evaluate", str(run), manifest, "--name", name, "--quiet", *backend]) == 0
        assert f"-> {run / f'predictions-{name}.jsonl'}" in capsys.readouterr().out
        scores[name] = json.loads((run / f"metrics-{name}.json").read_text(encoding="utf-8"))
    assert scores["pt"]["wer"] == scores["ort"]["wer"] == scores["ort8"]["wer"] == 0.0
    assert scores["ort"]["loss"] == pytest.approx(scores["pt"]["loss"], abs=1e-4)
    assert [scores[n]["backend"] for n in scores] == ["pytorch", "onnx", "onnx-int8"]
    assert (run / "predictions-ort.jsonl").read_text() == (run / "predictions-pt.jsonl"
                                                           ).read_text()


def test_export_command_reports_parity(run: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(run), "--onnx", "--out", str(tmp_path / "x")]) == 0
    out = capsys.readouterr().out
    assert "model.onnx: max |logit diff| vs PyTorch" in out and "transcripts equal" in out
    assert (tmp_path / "x" / "model.onnx").is_file() and not (tmp_path / "x" / "model.int8.onnx"
                                                              ).exists()
    assert main(["export", str(run)]) == 2
    assert "--onnx" in capsys.readouterr().err


def test_missing_export_or_runtime_says_what_to_run(tmp_path: Path, run: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ExportError, match="wavtune export .* --onnx"):
        OnnxRecognizer(tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ExportError, match=r'pip install "wavtune\[onnx\]"'):
        require_onnxruntime()


def test_batches_give_one_by_one_transcripts_in_input_order(run: Path, clips: list[Path]) -> None:
    rec = Recognizer(run)
    shuffled = [clips[i] for i in np.random.default_rng(0).permutation(len(clips))]
    one_by_one = [rec.transcribe_array(load_audio(p)) for p in shuffled]
    for options in (TranscribeOptions(batch_size=1), TranscribeOptions(batch_size=5),
                    TranscribeOptions(batch_size=64, max_batch_s=4.0)):
        results = list(rec.transcribe_files(shuffled, options))
        assert [r.source for r in results] == [str(p) for p in shuffled]
        assert [r.text for r in results] == one_by_one


def test_long_file_streams_with_flat_memory_and_keeps_seams(run: Path, tmp_path: Path) -> None:
    rec = Recognizer(run)
    words = "abc cab bad dab"
    options = TranscribeOptions(chunk_s=8.0, overlap_s=1.0)
    peaks = []
    for repeats in (8, 32):  # ~19 s and ~77 s
        path = tmp_path / f"long{repeats}.wav"
        sf.write(path, tone_speech(" ".join([words] * repeats), seed=2), SR, subtype="FLOAT")
        tracemalloc.start()
        text, timed = rec.transcribe_file(path, options)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        # streaming cuts the windows in-memory chunking cuts: same transcript
        assert rec.transcribe_array(load_audio(path), options) == text
        # spaces are the model's guess on gaps this long (see test_training); every letter must
        # come out once, in order: a seam that dropped or repeated frames would not
        assert text.replace(" ", "") == words.replace(" ", "") * repeats
        # frame times run on across windows: every character is timed, in order, within the file
        starts = [c.start_s for c in timed.chars]
        assert len(starts) == len(text.replace(" ", "")) and starts == sorted(starts)
        assert 0.0 <= starts[0] and timed.chars[-1].end_s <= len(load_audio(path)) / SR + 0.05
    long_audio_bytes = 4 * SR * 77  # float32: what reading the whole file would hold at least
    # 4x the audio: the peak stays about that of one window and one block (what grows is the
    # frame ids of the transcript), below the file's size; whole-file reading would hold 2-3x it
    assert peaks[1] < 1.5 * peaks[0] and peaks[1] < 0.75 * long_audio_bytes, peaks


def test_untrained_attentive_multitask_model_exports_both_heads(tmp_path: Path) -> None:
    from wavtune.data.labels import LabelSet
    from wavtune.data.vocab import Vocabulary
    from wavtune.model.build import build_multitask_model
    from wavtune.train.checkpoint import save_model

    config = load_config(None, ["model.preset=tiny", "task=multitask",
                                "data.label_columns=[speaker]",
                                "heads.pooling=attentive"])
    vocab = Vocabulary.build(["abc cab", "dab"])
    built = build_multitask_model(config.model, config.heads, vocab,
                                  [LabelSet("speaker", ("x", "y"), (1, 1))])
    save_model(built.model, tmp_path)  # an untrained model: parity needs no training
    built.feature_extractor.save_pretrained(str(tmp_path))
    vocab.save(tmp_path)
    meta = export_onnx(tmp_path).meta
    (fp32,) = meta.parity
    assert meta.kind == "multitask" and not meta.ctc_branch_only
    assert fp32.max_abs_diff is not None and fp32.max_abs_diff < 1e-3
    assert fp32.label_max_abs_diff is not None and fp32.label_max_abs_diff < 1e-3
    wave = tone_speech("bad cab", seed=4)
    assert OnnxRecognizer(tmp_path).transcribe_array(wave) == Recognizer(tmp_path).transcribe_array(
        wave
    )


def _op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_int8_schemes_quantise_the_graph_they_name(run: Path, exported: OnnxMeta,
                                                   tmp_path: Path) -> None:
    from wavtune.deploy.int8 import DEFAULT_INT8_SCHEME, INT8_SCHEMES

    assert exported.int8_scheme == DEFAULT_INT8_SCHEME  # --int8 without a scheme: the default
    fused = _op_types(run / "onnx" / "model.int8.onnx")
    meta = export_onnx(run, ExportOptions(tmp_path / "mm", int8=True, int8_scheme="matmul")).meta
    unfused = _op_types(tmp_path / "mm" / "model.int8.onnx")
    assert meta.int8_scheme == "matmul" and json.loads(
        (tmp_path / "mm" / "onnx.json").read_text())["int8_scheme"] == "matmul"
    assert "MatMulInteger" in unfused and "Softmax" in unfused  # attention left as plain ops
    assert not {"Attention", "QAttention", "SkipLayerNormalization"} & unfused
    if INT8_SCHEMES[DEFAULT_INT8_SCHEME].fuse:
        assert {"QAttention", "SkipLayerNormalization"} <= fused
    assert meta.parity[1].frame_agreement is not None and meta.parity[1].frame_agreement >= 0.9
    assert main(["export", str(run), "--onnx", "--int8-scheme", "matmul-per-channel", "--out",
                 str(tmp_path / "cli")]) == 0  # the scheme implies --int8
    assert json.loads((tmp_path / "cli" / "onnx.json").read_text())["int8_scheme"] == \
        "matmul-per-channel"
    with pytest.raises(ExportError, match="unknown int8 scheme 'int4'.*matmul"):
        export_onnx(run, ExportOptions(tmp_path / "bad", int8=True, int8_scheme="int4"))


def test_graph_optimisation_levels_give_the_same_scores(run: Path, exported: OnnxMeta) -> None:
    wave = tone_speech("bad cab", seed=7)
    full = OnnxRecognizer(run).logits(wave)
    for level in ("disable", "basic", "extended"):
        assert np.abs(OnnxRecognizer(run, graph_level=level).logits(wave) - full).max() < 1e-4
    with pytest.raises(ExportError, match="level 'max'; choose one of disable, basic"):
        OnnxRecognizer(run, graph_level="max")
