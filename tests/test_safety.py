"""Safe loading and safe writing: safetensors only, no code from files, no silent deletions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import soundfile as sf
import torch
from factories import tone_speech, write_corpus

from wavtune.cli.main import main
from wavtune.config import Config, load_config
from wavtune.data.manifest import ManifestError, read_manifest
from wavtune.data.vocab import Vocabulary
from wavtune.model.build import build_ctc_model
from wavtune.model.families import ModelError
from wavtune.run.directory import CONFIG_FILE, RunError, prepare_run_dir

SRC = Path(__file__).resolve().parents[1] / "src" / "wavtune"


@pytest.fixture(scope="module")
def pickle_only_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder whose weights are a pickle (pytorch_model.bin), no safetensors."""
    folder = tmp_path_factory.mktemp("pickled")
    config = load_config(None, ["model.preset=tiny"])
    built = build_ctc_model(config.model, Vocabulary.build(["abc"]))
    built.model.config.save_pretrained(str(folder))
    torch.save(built.model.state_dict(), folder / "pytorch_model.bin")
    return folder


def test_pickle_weights_are_refused_by_default(pickle_only_model: Path) -> None:
    config = load_config(None, [f"model.name_or_path={pickle_only_model}"])
    with pytest.raises(ModelError, match=r"only pickle weights .*model.allow_pickle_weights=true"):
        build_ctc_model(config.model, Vocabulary.build(["abc"]))


def test_pickle_weights_load_only_with_the_explicit_opt_in(pickle_only_model: Path) -> None:
    config = load_config(None, [f"model.name_or_path={pickle_only_model}",
                                "model.allow_pickle_weights=true"])
    built = build_ctc_model(config.model, Vocabulary.build(["abc"]))
    saved = torch.load(pickle_only_model / "pytorch_model.bin", weights_only=True)
    name = "wav2vec2.encoder.layers.0.attention.k_proj.weight"
    torch.testing.assert_close(built.model.state_dict()[name], saved[name])


def _sources() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in SRC.rglob("*.py")}


def test_no_code_runs_from_files_wavtune_reads() -> None:
    """Every torch.load is weights_only; no remote code, pickle, unsafe YAML, eval or exec."""
    loads = 0
    for path, text in _sources().items():
        for call in re.findall(r"torch\.load\((.*?)\)", text, flags=re.S):
            loads += 1
            assert "weights_only=True" in call, f"{path}: torch.load({call})"
        assert "trust_remote_code=True" not in text, path
        for unsafe in (r"pickle\.loads?\(", r"yaml\.load\(", r"yaml\.unsafe_load",
                       r"(?<![\w.])eval\(", r"(?<![\w.])exec\("):
            assert not re.search(unsafe, text), f"{path}: {unsafe}"
    assert loads >= 1  # the checkpoint's optimizer state


def _config_for(run: Path, manifest: Path | None = None) -> Config:
    sets = ["model.preset=tiny", f"train.output_dir={run}", "train.overwrite_output_dir=true",
            f"data.train={manifest or run.parent / 'elsewhere.jsonl'}"]
    return load_config(None, sets)


def test_overwrite_replaces_a_previous_wavtune_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / CONFIG_FILE).write_text("{}\n")
    (run / "old-checkpoint").write_text("x")
    prepare_run_dir(run, _config_for(run), resume=False)
    assert not (run / "old-checkpoint").exists() and (run / CONFIG_FILE).is_file()


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("precious")
    with pytest.raises(RunError, match=r"not a wavtune run directory \(no wavtune.yaml\)"):
        prepare_run_dir(folder, _config_for(folder), resume=False)
    assert (folder / "chapter1.tex").read_text() == "precious"


def test_overwrite_refuses_a_run_holding_the_training_data(tmp_path: Path) -> None:
    run = tmp_path / "run"
    manifest = write_corpus(run / "data", ["abc"])
    (run / CONFIG_FILE).write_text("{}\n")
    with pytest.raises(RunError, match=r"holds data.train"):
        prepare_run_dir(run, _config_for(run, manifest), resume=False)
    assert manifest.is_file()


@pytest.mark.parametrize("where", ["cwd", "parent"])
def test_overwrite_refuses_the_working_directory_and_its_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    inner = tmp_path / "project" / "work"
    inner.mkdir(parents=True)
    (tmp_path / "project" / CONFIG_FILE).write_text("{}\n")
    (inner / CONFIG_FILE).write_text("{}\n")
    monkeypatch.chdir(inner)
    target = inner if where == "cwd" else tmp_path / "project"
    with pytest.raises(RunError, match="working directory or a folder above it"):
        prepare_run_dir(target, _config_for(target), resume=False)
    assert (inner / CONFIG_FILE).is_file()


def _outside_manifest(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    manifest = write_corpus(data, ["abc"])
    sf.write(tmp_path / "outside.wav", tone_speech("cab"), 16_000)
    with manifest.open("a") as f:
        f.write(json.dumps({"id": "out", "audio": "../outside.wav", "text": "cab"}) + "\n")
    return manifest


def test_paths_outside_the_manifest_tree_are_allowed_unless_forbidden(tmp_path: Path) -> None:
    manifest = _outside_manifest(tmp_path)
    assert len(read_manifest(manifest)) == 2
    with pytest.raises(ManifestError, match=r"train.jsonl:2: audio .*outside.wav lies outside"):
        read_manifest(manifest, allow_outside=False)


def test_config_and_check_data_flags_forbid_outside_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wavtune.train.prepare import prepare_data

    manifest = _outside_manifest(tmp_path)
    config = load_config(None, ["model.preset=tiny", f"data.train={manifest}",
                                "data.allow_outside_paths=false"])
    with pytest.raises(ManifestError, match=r"data.train: .*train.jsonl:2: .*allow_outside_paths"):
        prepare_data(config, progress=False)
    assert main(["check-data", str(manifest), "--strict-paths", "--quiet"]) == 2
    assert "train.jsonl:2" in capsys.readouterr().err
