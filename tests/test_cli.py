"""The command line: help everywhere, exit codes, and messages that name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import write_corpus

from wavtune.cli.main import build_parser, main

SUBCOMMANDS = ("train", "evaluate", "transcribe", "prepare", "check-data", "join", "synth",
               "demo")


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: wavtune " + command in capsys.readouterr().out


def test_parser_lists_all_subcommands() -> None:
    help_text = build_parser().format_help()
    assert all(c in help_text for c in SUBCOMMANDS)


def test_check_data_exit_codes_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    good = write_corpus(tmp_path, ["abc", "cab"])
    assert main(["check-data", str(good), "--quiet"]) == 0
    with good.open("a") as f:
        f.write(json.dumps({"id": "x", "audio": "nope.wav", "text": "abc"}) + "\n")
    report = tmp_path / "report.json"
    assert main(["check-data", str(good), "--quiet", "--json", str(report)]) == 1
    out = capsys.readouterr().out
    assert "error: row 3 (id 'x'): missing_file: audio file not found" in out
    assert json.loads(report.read_text())


def test_user_errors_are_one_line_with_exit_code_2(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lerning_rate: 1e-4\n")
    assert main(["train", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "train.lerning_rate: unknown key" in err and "Traceback" not in err
    assert main(["transcribe", str(tmp_path), str(tmp_path / "a.wav"), "--quiet"]) == 2
    assert "config.json" in capsys.readouterr().err


def test_synth_writes_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("espeakng_loader")
    assert main(["synth", str(tmp_path / "s"), "--kinds", "digits,commands", "--per-kind", "3",
                 "--speakers", "2"]) == 0
    assert (tmp_path / "s" / "train.jsonl").is_file()
    assert "clips" in capsys.readouterr().out


def test_prepare_fsdd_from_the_shared_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    from conftest import FSDD

    if not FSDD.is_dir():
        pytest.skip("../shared/data/fsdd is not beside the repository")
    assert main(["prepare", "fsdd", str(FSDD), str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "train: 2700 utterances" in out and "test: 300 utterances" in out


@pytest.mark.parametrize("command", ["transcribe", "classify"])
def test_bad_inputs_are_reported_before_the_model_loads(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from wavtune.infer.loaded import LoadedRun

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(LoadedRun, "__init__", no_load)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert main([command, str(run), str(tmp_path / "missing.wav"), "--quiet"]) == 2
    assert "missing.wav: no such file or folder" in capsys.readouterr().err
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    assert main([command, str(run), str(broken), "--quiet"]) == 2
    assert "broken.wav: cannot read the audio header" in capsys.readouterr().err


def test_library_progress_bars_only_with_verbose(capfd: pytest.CaptureFixture[str]) -> None:
    import soundfile as sf
    from factories import tone_speech
    from tinyrun import CLIP_TEXT, tiny_ctc_run

    run = tiny_ctc_run()
    clip = run.parent / "clip.wav"
    sf.write(clip, tone_speech(CLIP_TEXT), 16_000)
    capfd.readouterr()
    assert main(["transcribe", str(run), str(clip), "--quiet"]) == 0
    quiet = capfd.readouterr()
    assert quiet.out.strip() == CLIP_TEXT and "Loading weights" not in quiet.err
    assert main(["transcribe", str(run), str(clip), "--quiet", "--verbose"]) == 0
    assert "Loading weights" in capfd.readouterr().err
