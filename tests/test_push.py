"""``wavtune push``: the card is checked first, the dry run lists exactly what would go (the model,
processor files, card, plots, report; never checkpoints or caches), and an unreachable Hub gives
one clear error with nothing written locally."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from factories import tiny_overrides, write_corpus

from wavtune.card.upload import upload_plan
from wavtune.cli.main import main

SRC = Path(__file__).resolve().parents[1] / "src"
MUST_GO = {"config.json", "model.safetensors", "preprocessor_config.json", "vocab.json",
           "tokenizer_config.json", "README.md", "report.md", "log.csv", "metrics.json",
           "wavtune.yaml", "plots/training_curves.png"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from wavtune.cli.reports import write_run_reports
    from wavtune.config import load_config
    from wavtune.train.trainer import train

    folder = tmp_path_factory.mktemp("push")
    manifest = write_corpus(folder / "data", ["abc", "cab", "bad", "dab"])
    result = train(load_config(None, tiny_overrides(folder, manifest, steps=4)), progress=False)
    write_run_reports(result.run_dir)
    (result.run_dir / "tracking" / "tiny").mkdir(parents=True)  # a tracker's files stay local
    (result.run_dir / "tracking" / "tiny" / "events.out.tfevents.1").write_bytes(b"x")
    (result.run_dir / "notes.txt").write_text("mine\n", encoding="utf-8")
    return result.run_dir


def _listed(out: str) -> dict[str, str]:
    return dict(re.findall(r"^  (\S+)  (\d[\d.]* [KMG]?B)$", out, flags=re.MULTILINE))


def test_dry_run_lists_the_model_card_and_report_but_no_checkpoint_or_cache(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (run / "checkpoints").is_dir() and (run / "audio-cache").is_dir()
    assert main(["push", str(run), "me/tiny-model", "--dry-run", "--private"]) == 0
    out = capsys.readouterr().out
    listed = _listed(out)
    assert MUST_GO <= set(listed), out
    card_events = sorted(p.relative_to(run).as_posix() for p in run.glob("tensorboard/*"))
    assert set(card_events) <= set(listed)  # wavtune card wrote them when tensorboard is there
    for path in listed:
        assert not path.startswith(("checkpoints/", "audio-cache/", "tracking/")), path
    assert not {"log.jsonl", "notes.txt", "predictions-eval.jsonl"} & set(listed)
    assert (run / "predictions-eval.jsonl").is_file() and (run / "log.jsonl").is_file()
    weights = (run / "model.safetensors").stat().st_size
    assert listed["model.safetensors"] == f"{weights / 1e3:.1f} KB"  # a tiny model: ~160 KB
    assert f"would upload {len(listed)} files" in out and "to me/tiny-model (private)" in out
    assert [f.path for f in upload_plan(run)] == sorted(listed)


def test_sizes_are_shown_as_the_hub_shows_them() -> None:
    from wavtune.cli.push import _size

    assert [_size(n) for n in (999, 1_234, 5_600_000, 2_000_000_000)] == [
        "999 B", "1.2 KB", "5.6 MB", "2.0 GB"]


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("checkpoints", "audio-cache"))
    return to


@pytest.mark.parametrize("breakage, message", [
    ("no card", "no model card; write it with: wavtune card"),
    ("bad model-index", "the card's metadata does not parse"),
    ("no license", "the card's metadata has no license"),
    ("no weights", "missing *.safetensors"),
])
def test_a_run_with_a_broken_card_is_refused_before_anything_is_sent(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], breakage: str, message: str
) -> None:
    copy = _copy(run, tmp_path / "run")
    card = copy / "README.md"
    text = card.read_text(encoding="utf-8")
    if breakage == "no card":
        card.unlink()
    elif breakage == "bad model-index":
        card.write_text(text.replace("model-index:", "model-index: 3\nold-index:", 1),
                        encoding="utf-8")
    elif breakage == "no license":
        card.write_text(re.sub(r"^license: .*\n", "", text, count=1, flags=re.MULTILINE),
                        encoding="utf-8")
    else:
        (copy / "model.safetensors").unlink()
    assert main(["push", str(copy), "me/tiny-model", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_a_bad_repo_id_is_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", str(run), "tiny-model", "--dry-run"]) == 2
    assert "give the namespace too, e.g. my-user/tiny-model" in capsys.readouterr().err
    assert main(["push", str(run), "me/bad name!", "--dry-run"]) == 2
    assert "repo id 'me/bad name!'" in capsys.readouterr().err


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


def test_an_unreachable_hub_is_one_clear_error_and_nothing_is_written(
    run: Path, tmp_path: Path
) -> None:
    before = _snapshot(run)
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(SRC), "HOME": str(home), "HF_HOME": str(home / "hf"),
           "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens there
           "HF_TOKEN": "hf_not_a_real_token_for_tests"}
    pushed = subprocess.run(
        [sys.executable, "-m", "wavtune.cli.main", "push", str(run), "me/tiny-model",
         "--revision", "v1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert pushed.returncode == 2, pushed.stderr
    assert "wavtune push: error: pushing to me/tiny-model failed" in pushed.stderr
    assert "HF_ENDPOINT (http://127.0.0.1:9)" in pushed.stderr
    assert "Traceback" not in pushed.stderr
    assert _snapshot(run) == before  # nothing added, changed or half-written in the run
    assert [p.name for p in tmp_path.iterdir() if p != home] == []  # nor in the working folder


def test_offline_mode_is_named_in_the_error(run: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE  # tests/conftest.py sets HF_HUB_OFFLINE=1
    assert main(["push", str(run), "me/tiny-model"]) == 2
    assert "HF_HUB_OFFLINE is set: unset it to reach the Hub" in capsys.readouterr().err
