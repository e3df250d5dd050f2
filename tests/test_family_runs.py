"""Every encoder family as a new user tries it (issue 18): a tiny model from the family's preset
trained on a few real FSDD clips, saved, reloaded by transformers' own ``pipeline()`` with the
logits and transcript ``wavtune transcribe`` gives, and exported to ONNX with the same transcript;
and CTC, classify and multi-task models built from a pre-trained folder of each family, or refused
before training with a message naming the family and what to use instead."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FSDD
from factories import tiny_overrides

from wavtune.cli.main import main
from wavtune.config import load_config
from wavtune.data.audio import load_audio, normalize_waveform
from wavtune.data.labels import LabelSet
from wavtune.data.vocab import Vocabulary
from wavtune.infer.recognizer import Recognizer
from wavtune.model.build import build_model
from wavtune.model.families import FAMILIES, FamilyError
from wavtune.train.trainer import train

pytestmark = pytest.mark.skipif(not (FSDD / "recordings").is_dir(),
                                reason="the shared FSDD copy (../shared/data/fsdd) is not here")

# four training takes of two speakers (the FSDD test takes 0-4 stay unused)
CLIPS = ("0_george_5", "1_jackson_5", "2_george_6", "3_jackson_6")
WORDS = ("zero", "one", "two", "three")
STEPS = 150


def fsdd_manifest(folder: Path) -> Path:
    """A manifest of ``CLIPS``, read in place from the shared FSDD copy (8 kHz; resampled)."""
    manifest = folder / "fsdd.jsonl"
    manifest.write_text("".join(
        json.dumps({"id": clip, "audio": str(FSDD / "recordings" / f"{clip}.wav"), "text": word})
        + "\n" for clip, word in zip(CLIPS, WORDS, strict=True)), encoding="utf-8")
    return manifest


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_family_trains_on_fsdd_clips_and_round_trips_through_pipeline_and_onnx(
        arch: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import pipeline

    overrides = [*tiny_overrides(tmp_path, fsdd_manifest(tmp_path), steps=STEPS),
                 f"model.arch={arch}", f"train.eval_steps={STEPS}", "train.logging_steps=5"]
    result = train(load_config(None, overrides), progress=False)
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < 0.8 * losses[0], f"{arch} did not learn: losses {losses}"
    run, clips = result.run_dir, [FSDD / "recordings" / f"{c}.wav" for c in CLIPS]
    waves = [load_audio(c, 16_000) for c in clips]  # pipeline() resamples with torchaudio
    asr = pipeline("automatic-speech-recognition", model=str(run), device="cpu")
    inputs = asr.feature_extractor(waves[1], sampling_rate=16_000, return_tensors="pt")
    with torch.no_grad():
        theirs = asr.model(**inputs).logits[0].numpy()
    rec = Recognizer(run)
    ours = rec.forward_batch([normalize_waveform(waves[1]) if rec.audio.do_normalize
                              else waves[1]])[0]
    np.testing.assert_allclose(ours, theirs, atol=1e-4)  # the saved model is the trained one
    expected = [f"{c}\t{asr({'raw': w, 'sampling_rate': 16_000})['text'].strip()}"
                for c, w in zip(clips, waves, strict=True)]
    assert any(not line.endswith("\t") for line in expected), f"{arch}: blanks only"
    capsys.readouterr()
    assert main(["transcribe", str(run), *map(str, clips), "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines() == expected
    if FAMILIES[arch].onnx_unsupported:  # its refusal is tested in test_family_export
        return
    assert main(["export", str(run), "--onnx"]) == 0  # exits non-zero when parity fails
    capsys.readouterr()
    assert main(["transcribe", str(run), *map(str, clips), "--backend", "onnx", "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines() == expected


VOCAB = Vocabulary.build(["zero one"])
LABELS = (LabelSet("speaker", ("george", "jackson"), (2, 2)),)
TASKS = {"ctc": [], "classify": ["train.metric_for_best=accuracy"], "multitask": []}


def pretrained_folder(arch: str, folder: Path) -> tuple[Path, torch.Tensor]:
    """A stand-in for a released checkpoint of ``arch``: the encoder alone (no head), saved with
    its feature extractor; returns the folder and the encoder's first weight (SpecAugment's mask
    embedding aside: a recipe that turns SpecAugment off builds none)."""
    built = build_model(load_config(None, ["model.preset=tiny", f"model.arch={arch}"]), VOCAB)
    encoder = built.model.base_model
    first = next(p for n, p in encoder.named_parameters() if "masked_spec_embed" not in n)
    with torch.no_grad():  # weights no fresh initialisation can give
        first.add_(0.125)
    encoder.save_pretrained(str(folder))
    built.feature_extractor.save_pretrained(str(folder))
    return folder, first.detach().clone()


@pytest.mark.parametrize("arch", sorted(FAMILIES))
@pytest.mark.parametrize("task", sorted(TASKS))
def test_each_task_starts_from_a_pretrained_folder_of_each_family_or_is_refused(
        arch: str, task: str, tmp_path: Path) -> None:
    folder, first = pretrained_folder(arch, tmp_path / "base")
    labels = [] if task == "ctc" else ["data.label_columns=[speaker]"]
    config = load_config(None, [f"model.name_or_path={folder}", f"task={task}", *labels,
                                *TASKS[task]])
    if task not in FAMILIES[arch].tasks:
        with pytest.raises(FamilyError, match=rf"model.arch={arch!r}.*use a waveform family"):
            build_model(config, VOCAB, LABELS)
        return
    built = build_model(config, VOCAB if task != "classify" else None, LABELS)
    weights = [p for p in built.model.parameters() if p.shape == first.shape]
    assert any(torch.equal(p, first) for p in weights), f"{arch}: pre-trained weights not loaded"
    waves = [np.random.default_rng(i).standard_normal(n).astype(np.float32)
             for i, n in enumerate((8_000, 12_000))]
    inputs = built.feature_extractor(waves, sampling_rate=16_000, padding=True,
                                     return_tensors="pt")
    with torch.no_grad():
        out = built.model(**inputs)
    if task != "classify":  # a CTC head sized to the vocabulary
        assert out.logits.shape[-1] == len(VOCAB) and torch.isfinite(out.logits).all()
    else:
        assert out.logits.shape == (2, len(LABELS[0].labels))
