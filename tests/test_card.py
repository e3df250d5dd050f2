"""Model cards from hand-built run directories: Hub metadata, the seeds' formats, the truth."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from rundirs import (
    eval_record,
    headings,
    prediction,
    results_table,
    seed_card,
    seed_log,
    table_columns,
    write_run,
)

from wavtune.card.facts import gather
from wavtune.card.hub import front_matter
from wavtune.card.model_card import render_card
from wavtune.card.trainer_format import hyperparameter_lines, markdown_table, maybe_round
from wavtune.card.trainer_format import results_table as card_results_table
from wavtune.cli.main import main
from wavtune.config import TrainConfig
from wavtune.run.log import parse_log

# a few of the Hub's license ids (https://huggingface.co/docs/hub/repositories-licenses)
HUB_LICENSES = {"apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "other"}
SEED_SECTIONS = ["## Model description", "## Intended uses & limitations",
                 "## Training and evaluation data", "## Training procedure",
                 "### Training hyperparameters", "### Training results", "### Framework versions"]

PAIRS = [("u1", "spk1", "zero one two", "zero one two"), ("u2", "spk1", "three four", "three for"),
         ("u3", "spk2", "five six", "five six"), ("u4", "spk2", "seven", "")]


def _front_matter(text: str) -> dict[str, Any]:
    match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "no front matter"
    meta: dict[str, Any] = yaml.safe_load(match.group(1))
    return meta


def _worsening_log() -> list[dict[str, Any]]:
    """Validation WER best at step 200, then worse until the end at step 400."""
    records: list[dict[str, Any]] = []
    for step, wer, loss, best in ((100, 0.5, 1.5, 100), (200, 0.2, 0.9, 200), (300, 0.3, 1.0, 200),
                                  (400, 0.35, 1.1, 200)):
        records.append({"step": step, "epoch": step / 100, "loss": 2.0 - step / 400,
                        "learning_rate": 1e-4, "grad_norm": 1.0})
        records.append(eval_record(step, wer=wer, loss=loss, train_loss=2.0 - step / 400,
                                   best_step=best))
    return records


def _ctc_run(root: Path, with_metrics: bool = True, **config: Any) -> Path:
    manifest = root.parent / "data" / "dev.jsonl"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("".join(json.dumps({"id": i, "audio": f"{i}.wav", "text": r, "speaker": s,
                                            "duration": 1.5}) + "\n" for i, s, r, _ in PAIRS))
    preds = [prediction(i, r, h) for i, _, r, h in PAIRS]
    metrics = {
        "published_step": 200, "last_step": 400, "best_step": 200, "metric_for_best": "wer",
        "best_metric": 0.2, "nonfinite_steps": 0, "train_runtime_s": 90.0, "vocab_size": 20,
        "unit": "char",
        "train_data": {"manifest": str(root.parent / "data" / "train.jsonl"), "utterances": 40,
                       "hours": 0.05, "speakers": 2, "dropped": {"ctc_infeasible": 2}},
        "eval_data": {"manifest": str(manifest), "utterances": 4, "hours": 0.002, "speakers": 2,
                      "dropped": {}, "unknown_units": {}},
        "test_data": {"manifest": str(manifest.with_name("test.jsonl")), "utterances": 4,
                      "hours": 0.002, "speakers": 2, "dropped": {}, "unknown_units": {}},
        "eval": {"loss": 0.9, "wer": 0.2, "cer": 0.1, "utterances": 4},
        "test": {"loss": 1.0, "wer": 0.2222, "cer": 0.12, "utterances": 4},
    }
    base: dict[str, Any] = {
        "model": {"preset": "", "name_or_path": "facebook/wav2vec2-base"},
        "train": {"learning_rate": 1e-4, "warmup_steps": 50, "num_epochs": 4},
        "card": {"model_name": "digits-base", "language": ["en"], "dataset": "fsdd",
                 "dataset_name": "Free Spoken Digits"},
    }
    for section, values in config.items():
        base.setdefault(section, {}).update(values)
    return write_run(root, base, _worsening_log(), metrics if with_metrics else None,
                     {"eval": preds, "test": preds})


# --- the seeds' formats ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_results_table_reproduces_each_seed_table(seed: int) -> None:
    table = card_results_table(parse_log(seed_log(seed)).evals, frozenset())
    assert table.splitlines() == results_table(seed_card(seed))


def test_transformers_rounding_and_table_layout() -> None:
    assert [maybe_round(v) for v in (0.97501, 0.975, 1.0, 98, "No log")] == [
        "0.9750", "0.975", "1.0", "98", "No log"]
    assert markdown_table([{"Step": 5, "Wer": 0.12345}]).splitlines() == [
        "| Step | Wer    |", "|:----:|:------:|", "| 5    | 0.1235 |"]


def test_hyperparameter_lines_follow_the_trainer_rules() -> None:
    plain = hyperparameter_lines(TrainConfig(learning_rate=1e-4, train_batch_size=32,
                                             eval_batch_size=1, warmup_steps=1000, num_epochs=30))
    assert plain == ["- learning_rate: 0.0001", "- train_batch_size: 32", "- eval_batch_size: 1",
                     "- seed: 42", "- optimizer: Adam with betas=(0.9,0.999) and epsilon=1e-08",
                     "- lr_scheduler_type: linear", "- lr_scheduler_warmup_steps: 1000",
                     "- num_epochs: 30"]
    accumulated = hyperparameter_lines(
        TrainConfig(
            train_batch_size=8,
            gradient_accumulation_steps=2,
            num_epochs=20.0,
            mixed_precision="bf16",
        )
    )
    assert "- gradient_accumulation_steps: 2" in accumulated
    assert "- total_train_batch_size: 16" in accumulated
    assert accumulated[-2:] == ["- num_epochs: 20.0", "- mixed_precision_training: Native AMP"]
    steps = hyperparameter_lines(TrainConfig(max_steps=500, warmup_steps=0, weight_decay=0.01),
                                 num_processes=2)
    assert "- training_steps: 500" in steps and not any("num_epochs" in s for s in steps)
    assert not any("warmup" in s for s in steps)
    assert {"- distributed_type: multi-GPU", "- num_devices: 2", "- total_train_batch_size: 16",
            "- total_eval_batch_size: 16", "- weight_decay: 0.01"} <= set(steps)


# --- Hub metadata --------------------------------------------------------------------------------

def test_front_matter_passes_hub_metadata_validation(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import eval_results_to_model_index

    text = render_card(_ctc_run(tmp_path / "run"))
    card = ModelCard(text)  # raises on an unparsable model-index
    data = card.data
    assert isinstance(data, ModelCardData)
    assert data.license in HUB_LICENSES and data.language == ["en"]
    assert data.base_model == "facebook/wav2vec2-base" and data.datasets == ["fsdd"]
    assert {"automatic-speech-recognition", "wav2vec2", "wavtune"} <= set(data.tags or [])
    assert data.metrics == ["wer", "cer"] and data.pipeline_tag == "automatic-speech-recognition"
    assert data.model_name == "digits-base"
    results = data.eval_results or []
    assert {(r.dataset_split, r.metric_type, r.metric_value) for r in results} == {
        ("dev", "wer", 0.2), ("dev", "cer", 0.1), ("test", "wer", 0.2222), ("test", "cer", 0.12)}
    for r in results:
        assert r.task_type == "automatic-speech-recognition" and r.dataset_type == "fsdd"
        assert r.dataset_name == "Free Spoken Digits" and isinstance(r.metric_value, float)
    meta = _front_matter(text)
    # the model-index survives the round trip through huggingface_hub's EvalResult objects
    assert eval_results_to_model_index("digits-base", results) == meta["model-index"]
    for code in meta["language"]:
        assert re.fullmatch(r"[a-z]{2,3}", code)
    assert text.split("---\n")[2].lstrip().startswith("<!--")  # body after the metadata block


def test_random_init_has_no_base_model_and_derives_the_dataset_name(tmp_path: Path) -> None:
    run = _ctc_run(tmp_path / "run", model={"preset": "tiny", "name_or_path": ""},
                   card={"dataset": "", "dataset_name": "", "model_name": ""})
    meta = front_matter(gather(run))
    assert "base_model" not in meta and "datasets" not in meta
    (entry,) = meta["model-index"]
    assert entry["name"] == "run"
    assert {r["dataset"]["type"] for r in entry["results"]} == {"data"}  # the manifests' folder
    assert "trained from scratch" in render_card(run)


def _classification_results(tmp_path: Path, scores: dict[str, float]) -> list[dict[str, Any]]:
    run = _ctc_run(tmp_path / "run", card={"metrics": ["wer", "accuracy"]})
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["eval"].update(scores)
    (run / "metrics.json").write_text(json.dumps(metrics))
    results: list[dict[str, Any]] = front_matter(gather(run))["model-index"][0]["results"]
    asr = [m["type"] for r in results if r["task"]["type"] == "automatic-speech-recognition"
           for m in r["metrics"]]
    assert set(asr) == {"wer"}  # card.metrics leaves CER out
    return [r for r in results if r["task"]["type"] == "audio-classification"]


def test_one_head_fills_an_audio_classification_result(tmp_path: Path) -> None:
    # evaluation logs the first head's scores twice: 'accuracy' and 'speaker_accuracy'
    (entry,) = _classification_results(tmp_path, {
        "accuracy": 0.95, "macro_f1": 0.9, "weighted_f1": 0.93, "speaker_accuracy": 0.95,
        "speaker_macro_f1": 0.9})
    assert [(m["type"], m["value"], m["name"]) for m in entry["metrics"]] == [
        ("accuracy", 0.95, "Dev Accuracy"), ("f1", 0.9, "Dev Macro F1")]


def test_several_heads_are_named_in_the_model_index(tmp_path: Path) -> None:
    (entry,) = _classification_results(tmp_path, {
        "accuracy": 0.95, "speaker_accuracy": 0.95, "speaker_id_accuracy": 0.5,
        "speaker_id_macro_f1": 0.4})
    assert [(m["value"], m["name"]) for m in entry["metrics"]] == [
        (0.95, "Dev Speaker Accuracy"), (0.5, "Dev Speaker Id Accuracy"),
        (0.4, "Dev Speaker Id Macro F1")]


# --- telling the truth ---------------------------------------------------------------------------

def test_published_checkpoint_is_the_best_when_validation_worsens_at_the_end(
    tmp_path: Path,
) -> None:
    text = render_card(_ctc_run(tmp_path / "run"))
    assert ("The published checkpoint is step 200 of 400: best eval WER 0.2000 at step 200 of 400; "
            "the last step had 0.3500.") in text
    assert "(published checkpoint: step 200):\n- Loss: 0.9\n- Wer: 0.2\n- Cer: 0.1\n" in text
    values = {m["name"]: m["value"] for r in _front_matter(text)["model-index"][0]["results"]
              for m in r["metrics"]}
    assert values["Dev WER"] == 0.2


def test_unfinished_run_reports_the_best_logged_step_not_the_last(tmp_path: Path) -> None:
    run = _ctc_run(tmp_path / "run", with_metrics=False)
    (run / "predictions-eval.jsonl").unlink()
    (run / "predictions-test.jsonl").unlink()
    text = render_card(run)
    assert "(published checkpoint: step 200):" in text and "- Wer: 0.2\n" in text
    (entry,) = _front_matter(text)["model-index"][0]["results"]
    assert {m["type"]: m["value"] for m in entry["metrics"]} == {"wer": 0.2, "cer": 0.1}


def test_card_sections_data_and_confidence_intervals(tmp_path: Path) -> None:
    text = render_card(_ctc_run(tmp_path / "run"))
    found = [h for h in headings(text) if h in SEED_SECTIONS]
    assert found == SEED_SECTIONS  # the seeds' sections, in the seeds' order
    assert "| train | `train.jsonl` | 40 | 0.05 | 2 | 2 ctc infeasible |" in text
    assert re.search(r"\| eval \| greedy \| 4 \| 0\.2500 \[\d\.\d{4}, \d\.\d{4}\] \| "
                     r"0\.\d{4} \[", text)
    assert "Rows dropped by the data checks before training: train: 2 ctc infeasible." in text
    assert "- Transformers " in text and "- wavtune " in text


def test_card_metrics_choose_the_table_columns(tmp_path: Path) -> None:
    text = render_card(_ctc_run(tmp_path / "run", card={"metrics": ["wer"]}))
    assert table_columns(results_table(text)) == [
        "Training Loss", "Epoch", "Step", "Validation Loss", "Wer"]
    assert _front_matter(text)["metrics"] == ["wer"]


def test_blank_collapse_is_recorded_in_the_card(tmp_path: Path) -> None:
    records = [eval_record(step, wer=1.0, loss=4.0, train_loss=4.0, best_step=100, cer=1.0,
                           empty=4) for step in (100, 200, 300, 400)]
    run = _ctc_run(tmp_path / "run", train={"learning_rate": 1.0, "warmup_steps": 50})
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text = render_card(run)
    diagnostics = text.split("### Diagnostics")[1].split("### Framework versions")[0]
    assert "**blank collapse** (warning)" in diagnostics
    assert "from step 100 to step 400 (4 evaluations)" in diagnostics
    assert "learning rate 1 is above" in diagnostics


def test_card_command_writes_card_plots_report_and_csv(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = _ctc_run(tmp_path / "run")
    assert main(["card", str(run), "--stdout"]) == 0
    assert capsys.readouterr().out.startswith("---\nlicense: apache-2.0\n")
    assert not (run / "README.md").exists()
    assert main(["card", str(run)]) == 0
    for name in ("README.md", "report.md", "log.csv", "plots/training_curves.png"):
        assert (run / name).is_file(), name
    text = (run / "README.md").read_text()
    assert "![Training curves](plots/training_curves.png)" in text
    assert "[report.md](report.md)" in text and "[log.csv](log.csv)" in text


def test_card_command_names_a_missing_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["card", str(tmp_path / "nope")]) == 2
    assert "wavtune.yaml" in capsys.readouterr().err
