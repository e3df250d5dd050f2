"""Run directories and logs made by hand, and the seed cards read back as data.

``seed_log(n)`` turns seed card n's "Training results" table into the log records wavtune would
have written for that run, so reports can be checked against the seeds' own numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

# the Trainer-generated seed cards wavtune's cards are checked against, read in place from
# ../shared/seeds (shared/ is never copied into the repository)
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
HYPERPARAMETER_INTRO = "The following hyperparameters were used during training:"
# seed table column -> logged key
SEED_KEYS = {"Validation Loss": "eval_loss", "Wer": "eval_wer", "Cer": "eval_cer",
             "Accuracy": "eval_accuracy", "Mtrix": "eval_mtrix"}


def seed_card(number: int) -> str:
    (path,) = SEEDS.glob(f"{number:03d}_*.txt")
    return path.read_text(encoding="utf-8")


def headings(card: str) -> list[str]:
    return [line for line in card.splitlines() if line.startswith("#")]


def hyperparameter_block(card: str) -> list[str]:
    """The ``- name: value`` lines after the seeds' hyperparameter sentence."""
    lines = card.splitlines()
    start = lines.index(HYPERPARAMETER_INTRO) + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("- "):
            break
        block.append(line)
    return block


def results_table(card: str) -> list[str]:
    """The table lines under '### Training results'."""
    lines = card.splitlines()
    start = lines.index("### Training results") + 1
    table = []
    for line in lines[start:]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return table


def table_columns(table: Sequence[str]) -> list[str]:
    return [cell.strip() for cell in table[0].strip().strip("|").split("|")]


def _value(text: str) -> Any:
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    if text.lstrip("-").isdigit():
        return int(text)
    if len(text.partition(".")[2]) == 4:  # printed rounded to 4 decimals: the value had more
        return float(text) + (1e-9 if not text.startswith("-") else -1e-9)
    return float(text)


def seed_log(number: int) -> list[dict[str, Any]]:
    """Train and eval records reproducing seed ``number``'s results table."""
    table = results_table(seed_card(number))
    columns = table_columns(table)
    records: list[dict[str, Any]] = []
    best: tuple[float, int] | None = None
    for line in table[2:]:
        cells = dict(zip(columns, (c.strip() for c in line.strip().strip("|").split("|"))))
        step, epoch = int(cells["Step"]), float(cells["Epoch"])
        train_loss = float(cells["Training Loss"])
        records.append({"step": step, "epoch": epoch, "loss": train_loss, "learning_rate": 1e-4,
                        "grad_norm": 1.0})
        record: dict[str, Any] = {"step": step, "epoch": epoch, "train_loss": train_loss}
        for name in columns[3:]:
            record[SEED_KEYS.get(name, "eval_" + name)] = _value(cells[name])
        wer = record.get("eval_wer", record["eval_loss"])
        if best is None or wer < best[0]:
            best = (wer, step)
        record["best_step"] = best[1]
        records.append(record)
    return records


def write_run(root: Path, config: Mapping[str, Any] | None = None,
              records: Iterable[Mapping[str, Any]] = (), metrics: Mapping[str, Any] | None = None,
              predictions: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> Path:
    """A run directory with the given wavtune.yaml, log, metrics.json and predictions files."""
    root.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {"model": {"preset": "tiny"}, "train": {"output_dir": str(root)}}
    for section, values in (config or {}).items():
        if isinstance(values, Mapping):
            base.setdefault(section, {}).update(values)
        else:
            base[section] = values
    (root / "wavtune.yaml").write_text(yaml.safe_dump(base, sort_keys=False), encoding="utf-8")
    (root / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records),
                                    encoding="utf-8")
    if metrics is not None:
        (root / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    for split, rows in (predictions or {}).items():
        (root / f"predictions-{split}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return root


def prediction(utt_id: str, reference: str, hypothesis: str) -> dict[str, Any]:
    """A predictions row with the error counts wavtune.infer.evaluation writes."""
    from wavtune.scoring.metrics import utterance_errors

    word = utterance_errors(reference, hypothesis, "word")
    char = utterance_errors(reference, hypothesis, "char")
    return {"id": utt_id, "reference": reference, "hypothesis": hypothesis,
            "word_errors": word.errors, "words": word.reference_units,
            "char_errors": char.errors, "chars": char.reference_units}


def eval_record(step: int, wer: float, loss: float, train_loss: float, best_step: int,
                cer: float | None = None, empty: int = 0, epoch: float | None = None
                ) -> dict[str, Any]:
    record: dict[str, Any] = {"step": step, "epoch": step / 100 if epoch is None else epoch,
                              "train_loss": train_loss, "eval_loss": loss, "eval_wer": wer,
                              "eval_cer": wer / 2 if cer is None else cer,
                              "eval_empty_hypotheses": empty, "best_step": best_step}
    return record


def random_family_run(arch: str, folder: Path, overrides: Mapping[str, object] | None = None
                      ) -> Path:
    """A random-init tiny CTC model of family ``arch`` saved as a run directory (model, feature
    extractor, vocabulary), its weights jittered so the logits differ from frame to frame."""
    import torch

    from wavtune.config import Config, ModelConfig
    from wavtune.data.vocab import Vocabulary
    from wavtune.model.build import build_model

    vocab = Vocabulary.build(["abc cab"])
    built = build_model(Config(model=ModelConfig(preset="tiny", arch=arch,
                                                 overrides=dict(overrides or {}))), vocab)
    torch.manual_seed(0)
    with torch.no_grad():  # a random head gives all-blank argmax; make the logits differ
        for p in built.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    built.model.save_pretrained(str(folder))
    built.feature_extractor.save_pretrained(str(folder))
    vocab.save(folder)
    return folder
