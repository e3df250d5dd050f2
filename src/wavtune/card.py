"""Model cards: the ``README.md`` of a run directory, rendered from the run's own files.

:func:`render_card` reads ``wavtune.yaml``, ``log.jsonl``, ``metrics.json``,
``predictions-*.jsonl``, ``config.json``/``vocab.json`` and notes which plots and reports exist;
it returns Markdown with Hugging Face Hub front matter (license, language, tags, base model,
datasets, metrics and a FILLED ``model-index`` for the published checkpoint). The body follows the
Trainer-generated seed cards section by section and line format by line format, and says what they
left out: the data, which checkpoint is published and why, confidence intervals, diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from wavtune import __version__
from wavtune.hub_metadata import ASR_TASK, base_model, front_matter, task_type
from wavtune.report import REPORT_FILE, interval_text
from wavtune.runfacts import RunFacts, gather, label_sets
from wavtune.runinfo import SplitData, framework_versions
from wavtune.runlog import CSV_FILE, ERROR_RATES, TENSORBOARD_DIR, Column, eval_columns, finite
from wavtune.trainer_format import (
    DECIMALS,
    cell_value,
    column_selected,
    hyperparameter_lines,
    maybe_round,
    results_table,
    wanted_metrics,
)

CARD_FILE = "README.md"
HUB = "https://huggingface.co"
MAX_LISTED_TOKENS = 80  # vocabularies up to this size are listed in full
METRIC_LABELS = {"wer": "WER", "cer": "CER", "mer": "MER", "per": "PER", "loss": "loss",
                 "accuracy": "accuracy", "macro_f1": "macro F1", "weighted_f1": "weighted F1"}
LANGUAGES = {"en": "English", "zh": "Chinese", "fr": "French", "de": "German", "es": "Spanish",
             "it": "Italian", "ja": "Japanese", "ko": "Korean", "pt": "Portuguese", "ru": "Russian",
             "ar": "Arabic", "hi": "Hindi", "nl": "Dutch"}


def summary_values(facts: RunFacts) -> dict[str, Any]:
    """'It achieves the following results on the evaluation set': the published evaluation.

    Scores come from the log's evaluation at the published step; metrics.json's re-evaluation
    of the published model overrides the ones it has (loss, wer, cer, ...).
    """
    wanted = wanted_metrics(facts.card)
    record = facts.published_eval
    out: dict[str, Any] = {}
    if record is not None:
        for column, value in eval_columns(record.values):
            if column_selected(column, wanted):
                out.setdefault("Loss" if column.name == "Validation Loss" else column.name, value)
    scores = facts.metrics.scores.get("eval", {})
    names = {"loss": "Loss", "wer": "Wer", "cer": "Cer", "mer": "Mer", "per": "Per",
             "accuracy": "Accuracy"}
    for key, name in names.items():
        value = finite(scores.get(key))
        if value is None:
            continue
        family = key if key in ERROR_RATES else "classification" if key == "accuracy" else "loss"
        if name in out or column_selected(Column(f"eval_{key}", name, family), wanted):
            out[name] = value
    return {k: (str(v) if isinstance(v, (list, tuple)) else cell_value(v)) for k, v in out.items()}


# --- body sections ------------------------------------------------------------------------------

def _fmt(value: float | None, digits: int = DECIMALS) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name.replace("_", " "))


def intro(facts: RunFacts) -> list[str]:
    config = facts.config
    base = base_model(config)
    name = facts.dataset_name
    data = f"the {name}" if name.lower().endswith("dataset") else f"the {name} dataset"
    if base:
        lines = [f"This model is a fine-tuned version of [{base}]({HUB}/{base}) on {data}."]
    elif config.model.name_or_path:
        lines = [f"This model is a fine-tuned version of `{config.model.name_or_path}` on {data}."]
    else:
        preset = f"preset `{config.model.preset}`, " if config.model.preset else ""
        lines = [f"This model was trained from scratch (random initialisation: {preset}"
                 f"architecture `{config.model.arch}`) on {data}."]
    values = summary_values(facts)
    if values:
        step = facts.published_step
        lines.append("It achieves the following results on the evaluation set"
                     + (f" (published checkpoint: step {step})" if step is not None else "") + ":")
        lines += [f"- {name}: {maybe_round(value)}" for name, value in values.items()]
    test = facts.metrics.scores.get("test")
    if test:
        lines += ["", "and on the test set:"]
        lines += [f"- {name.capitalize()}: {maybe_round(float(v))}" for name, v in test.items()
                  if finite(v) is not None and name != "utterances"
                  and (name == "loss" or column_selected(
                      Column(f"eval_{name}", name, name if name in ERROR_RATES else "other"),
                      wanted_metrics(facts.card)))]
    return lines


def _count(n: int) -> str:
    """``94.4M``, ``61k``."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def _hours(hours: float) -> str:
    if hours >= 0.1:
        return f"{hours:.2f} h"
    return f"{hours * 60:.1f} min" if hours * 60 >= 1 else f"{hours * 3600:.0f} s"


def usage(facts: RunFacts) -> list[str]:
    """How to run the published model."""
    task = str(facts.config.task)
    if task == "multitask":
        return ["Transcribe and classify with wavtune (the CTC branch alone can be exported as a "
                "plain transformers CTC model):", "", "```bash",
                f"wavtune transcribe {facts.model_name} audio.wav", "```"]
    return ["Use it with transformers:", "", "```python", "from transformers import pipeline", "",
            f'pipe = pipeline("{task_type(facts.config)}", model="{facts.model_name}")',
            'print(pipe("audio.wav"))', "```"]


def model_description(facts: RunFacts) -> list[str]:
    config, model = facts.config, facts.model
    lines = []
    if facts.card.description:
        lines += [facts.card.description.strip(), ""]
    arch = model.architecture or f"{config.model.arch} ({config.task})"
    size = f", {_count(model.parameters)} parameters" if model.parameters else ""
    rate = f", input audio at {model.sample_rate} Hz" if model.sample_rate else ""
    lines.append(f"- Architecture: `{arch}`{size}{rate}.")
    base = config.model.name_or_path
    lines.append(f"- Initialisation: {'pre-trained `' + base + '`' if base else 'random'}"
                 + ("; feature encoder frozen" if config.model.freeze_feature_encoder else "")
                 + (f"; encoder frozen for the first {config.model.freeze_encoder_steps} steps"
                    if config.model.freeze_encoder_steps else "") + ".")
    if str(config.task) in ("ctc", "multitask"):
        unit = facts.metrics.unit or config.text.unit
        size_v = facts.metrics.vocab_size or len(model.tokens) or None
        tokens = ""
        if model.tokens and len(model.tokens) <= MAX_LISTED_TOKENS:
            tokens = ": " + " ".join(f"`{t}`" for t in model.tokens)
        lines.append(f"- Output: CTC over {size_v if size_v else 'the'} tokens ({unit} units; "
                     f"the pad token is the blank){tokens}.")
        lines.append(decoding_line(facts))
    for head, labels in label_sets(facts).items():
        name = f"`{head}` head" if head else "Labels"
        lines.append(f"- {name}: {len(labels)} classes: " + ", ".join(f"`{lb}`" for lb in labels)
                     + ".")
    return lines + ["", *usage(facts)]


def intended_uses(facts: RunFacts) -> list[str]:
    lines = []
    if facts.card.intended_uses:
        lines += [facts.card.intended_uses.strip(), ""]
    train = facts.metrics.data.get("train")
    language = "/".join(LANGUAGES.get(code, code) for code in facts.card.language)
    what = {"ctc": "transcribing", "classify": "classifying",
            "multitask": "transcribing and classifying"}.get(str(facts.config.task), "processing")
    amount = ""
    if train:
        amount = f" ({_hours(train.hours)}" + (f" from {train.speakers} speakers" if train.speakers
                                               else "") + ")"
    lines.append(f"- Intended for {what} short utterances of {language + ' ' if language else ''}"
                 f"speech similar to the {facts.dataset_name} training data{amount}.")
    lines.append("- Expect higher error rates on other domains, accents, microphones and noise "
                 "conditions than on the evaluation data below; evaluate on your own data first.")
    if task_type(facts.config) == ASR_TASK[0]:
        lines.append("- Greedy CTC decoding without a language model or punctuation/casing "
                     "restoration: output is normalised text as in training.")
    if facts.model.sample_rate:
        lines.append(f"- Input is resampled to {facts.model.sample_rate} Hz mono; long audio must be "
                     f"chunked (`wavtune transcribe` does it).")
    for split in ("eval", "test"):
        data = facts.metrics.data.get(split)
        if data and data.unknown_units:
            lines.append(f"- The {split} references contain characters the model cannot output: "
                         + ", ".join(f"`{u}`" for u in data.unknown_units) + ".")
    return lines


def data_section(facts: RunFacts) -> list[str]:
    lines = [f"Dataset: {facts.dataset_name}"
             + (f" ([{facts.card.dataset}]({HUB}/datasets/{facts.card.dataset}))"
                if facts.card.dataset else "") + "."]
    splits = [d for d in (facts.metrics.data.get(s) for s in ("train", "eval", "test")) if d]
    if splits:
        lines += ["", "| Split | Manifest | Utterances | Hours | Speakers | Dropped rows |",
                  "|:------|:---------|-----------:|------:|---------:|:-------------|"]
        for d in splits:
            lines.append(f"| {_split_name(d)} | `{_manifest_name(d)}` | {d.utterances} | "
                         f"{d.hours:.2f} | {d.speakers or '-'} | {_dropped(d)} |")
    else:
        lines += ["", "No data summary was recorded (metrics.json is missing: the run did not "
                      "finish)."]
    if facts.metrics.vocab_size:
        lines += ["", f"Vocabulary: {facts.metrics.vocab_size} tokens "
                      f"({facts.metrics.unit or facts.config.text.unit} units), built from the "
                      f"training transcripts only."]
    for head, labels in label_sets(facts).items():
        train = facts.metrics.data.get("train")
        counts = train.labels.get(head, {}) if train else {}
        shown = ", ".join(f"`{lb}` ({counts[lb]})" if lb in counts else f"`{lb}`" for lb in labels)
        lines += ["", f"Labels{f' of `{head}`' if head else ''}: {len(labels)} classes from the "
                      f"training split (training rows per class): {shown}."]
    text = facts.config.text
    normal = [n for n, on in (("NFKC", text.nfkc), ("lower-cased", text.lowercase)) if on]
    if text.remove:
        normal.append(f"removed `{text.remove}`")
    if text.remove_regex:
        normal.append(f"removed regex `{text.remove_regex}`")
    if normal:
        lines += ["", "Transcripts normalised: " + ", ".join(normal) + "."]
    return lines


def _split_name(d: SplitData) -> str:
    return d.name + (" (held out from train)" if d.held_out else "")


def _manifest_name(d: SplitData) -> str:
    return d.manifest_path.name if d.manifest_path else "-"


def _dropped(d: SplitData) -> str:
    return ", ".join(f"{n} {p.replace('_', ' ')}" for p, n in d.dropped.items()) or "0"


def evaluation_section(facts: RunFacts) -> list[str]:
    lines = []
    step = facts.published_step
    if facts.headlines:
        lines += [f"Scores of the published checkpoint (step {step}), greedy decoding; 95% "
                  f"confidence intervals from 1000 bootstrap resamples of utterances.", "",
                  "| Split | Decoding | Utterances | WER [95% CI] | CER [95% CI] |",
                  "|:------|:---------|-----------:|:-------------|:-------------|"]
        for split, h in facts.headlines.items():
            cer = interval_text(h.cer) if h.cer else "-"
            lines.append(f"| {split} | greedy | {h.utterances} | {interval_text(h.wer)} | {cer} |")
            lines += lm_rows(facts, split)
        lines += tuned_rows(facts)
    else:
        scores = {s: v for s, v in facts.metrics.scores.items() if v}
        if not scores:
            return ["No evaluation was recorded."]
        lines += ["| Split | " + " | ".join(_metric_label(k) for k in next(iter(scores.values()))
                                             if k != "utterances") + " |"]
        for split, values in scores.items():
            lines.append(f"| {split} | " + " | ".join(maybe_round(v) for k, v in values.items()
                                                      if k != "utterances") + " |")
    if REPORT_FILE in facts.files:
        lines += ["", f"Error analysis (frequent substitutions, worst utterances, WER by speaker "
                      f"and duration): [{REPORT_FILE}]({REPORT_FILE})."]
    return lines


def lm_rows(facts: RunFacts, split: str) -> list[str]:
    """Hook for language-model decoding: rows from ``metrics.json[split]["lm"]`` when recorded."""
    lm = facts.metrics.scores.get(split, {}).get("lm")
    if not isinstance(lm, Mapping):
        return []
    name = str(lm.get("name", "greedy + LM"))
    wer, cer = finite(lm.get("wer")), finite(lm.get("cer"))
    return [f"| {split} | {name} | {lm.get('utterances', '-')} | {_fmt(wer)} | {_fmt(cer)} |"]


def decoding_line(facts: RunFacts) -> str:
    """How ``wavtune transcribe``/``evaluate`` decode: RUN/decoding.json (``wavtune lm tune``)."""
    from wavtune.decoder_settings import read_decoding

    record = read_decoding(facts.root)
    if not record or record.get("kind") != "beam":
        return "- Decoding: greedy (best path), no language model."
    lm = (f" with a {record.get('lm_unit', 'n-gram')} n-gram LM (`{record['lm']}`, alpha "
          f"{record.get('alpha')}, beta {record.get('beta')})") if record.get("lm") else ""
    return (f"- Decoding: beam search (width {record.get('beam_width')}){lm}, from `decoding.json`; "
            f"`--decoder greedy` gives best-path decoding.")


def tuned_rows(facts: RunFacts) -> list[str]:
    """Dev-set WER with and without the LM, as ``wavtune lm tune`` measured them."""
    from wavtune.decoder_settings import read_decoding

    dev = (read_decoding(facts.root) or {}).get("dev")
    if not isinstance(dev, Mapping):
        return []
    name = f"tuning dev (`{Path(str(dev.get('manifest', '?'))).name}`)"
    n = dev.get("utterances", "-")
    rows = [(f"| {name} | greedy | {n} | {_fmt(finite(dev.get('greedy_wer')))} | "
             f"{_fmt(finite(dev.get('greedy_cer')))} |")]
    if finite(dev.get("beam_wer")) is not None:
        rows.append(f"| {name} | beam, no LM | {n} | {_fmt(finite(dev.get('beam_wer')))} | - |")
    rows.append(f"| {name} | beam + LM (tuned) | {n} | {_fmt(finite(dev.get('wer')))} | "
                f"{_fmt(finite(dev.get('cer')))} |")
    return rows


def published_text(facts: RunFacts) -> str:
    """Which checkpoint is published and why, with the numbers."""
    m = facts.metrics
    last = m.last_step if m.last_step is not None else facts.log.last_step
    step = facts.published_step
    if m.best_step is None or m.best_metric is None:
        return (f"No evaluation set chose the checkpoint: the last step ({last}) is published."
                if step is not None else "The run has not published a model yet.")
    label = _metric_label(m.metric_for_best)
    last_eval = facts.log.evals[-1] if facts.log.evals else None
    last_value = last_eval.number(m.metric_for_best) if last_eval else None
    if step == last:
        return (f"The published checkpoint is the last step, {last}, which also had the best eval "
                f"{label}: {_fmt(m.best_metric)}.")
    tail = f"; the last step had {_fmt(last_value)}" if last_value is not None else ""
    return (f"The published checkpoint is step {step} of {last}: best eval {label} "
            f"{_fmt(m.best_metric)} at step {m.best_step} of {last}{tail}.")


def procedure_notes(facts: RunFacts) -> list[str]:
    notes = [published_text(facts)]
    runtime = facts.metrics.train_runtime_s
    if runtime:
        device = facts.metrics.extra.get("device")
        took = f"{runtime / 60:.1f} min" if runtime >= 60 else f"{runtime:.0f} s"
        notes.append(f"Training took {took}" + (f" on {device}" if device else "") + ".")
    device = str(facts.metrics.extra.get("device", ""))
    if facts.config.train.mixed_precision != "no" and device.startswith("cpu"):
        notes.append(f"mixed_precision={facts.config.train.mixed_precision} was configured, but "
                     f"training ran on CPU in fp32.")
    return notes


def results_section(facts: RunFacts) -> list[str]:
    lines = []
    if facts.log.evals:
        lines.append(results_table(facts.log.evals, wanted_metrics(facts.card)).rstrip("\n"))
    else:
        lines.append("No evaluation was logged.")
    for caption, path in facts.images:
        lines += ["", f"![{caption}]({path})"]
    logs = [f"[{name}]({name})" for name in (CSV_FILE, "log.jsonl") if name in facts.files]
    if logs:
        lines += ["", "Every logged value: " + ", ".join(logs)
                  + (f"; TensorBoard events in `{TENSORBOARD_DIR}/`."
                     if TENSORBOARD_DIR in facts.files else ".")]
    return lines


def diagnostics_section(facts: RunFacts) -> list[str]:
    if not facts.diagnoses:
        return ["None found: no blank collapse, overfitting, non-finite losses, dropped rows or "
                "unknown evaluation characters."]
    return [d.markdown() for d in facts.diagnoses]


def versions_section(facts: RunFacts) -> list[str]:
    versions = dict(facts.metrics.versions) or framework_versions()
    versions.setdefault("wavtune", __version__)
    return [f"- {name} {version}" for name, version in versions.items()]


def render(facts: RunFacts) -> str:
    """The card text for gathered facts."""
    meta = yaml.safe_dump(front_matter(facts), sort_keys=False, allow_unicode=True, width=1000)
    parts = [
        f"---\n{meta}---",
        "<!-- This model card was generated by wavtune from the run's logs "
        "(`wavtune card RUN` rebuilds it). -->",
        f"# {facts.model_name}",
        "\n".join(intro(facts)),
        "## Model description", "\n".join(model_description(facts)),
        "## Intended uses & limitations", "\n".join(intended_uses(facts)),
        "## Training and evaluation data", "\n".join(data_section(facts)),
        "## Evaluation results", "\n".join(evaluation_section(facts)),
        "## Training procedure", "\n\n".join(procedure_notes(facts)),
        "### Training hyperparameters",
        "The following hyperparameters were used during training:\n"
        + "\n".join(hyperparameter_lines(facts.config.train,
                                         int(facts.metrics.extra.get("num_processes", 1) or 1)))
        + "\n\nThe complete configuration is in `wavtune.yaml`.",
        "### Training results", "\n".join(results_section(facts)),
        "### Diagnostics", "\n".join(diagnostics_section(facts)),
        "### Framework versions", "\n".join(versions_section(facts)),
    ]
    return "\n\n".join(parts) + "\n"


def render_card(run: str | Path) -> str:
    """The model card of run directory ``run`` as Markdown text (nothing is written)."""
    return render(gather(run))


def write_card(run: str | Path) -> Path:
    """Write ``RUN/README.md`` and return its path."""
    path = Path(run) / CARD_FILE
    path.write_text(render_card(run), encoding="utf-8")
    return path


def write_reports(run: str | Path, plots: bool = True) -> list[Path]:
    """Everything the card links to, then the card: ``log.csv`` (and TensorBoard events when
    tensorboard is installed), ``plots/*.png`` (when matplotlib is installed and ``plots``),
    ``report.md`` and ``README.md``. Returns the files written; the call for publish time."""
    import importlib.util

    from wavtune.plots import write_plots
    from wavtune.report import write_report
    from wavtune.rundir import load_run_config
    from wavtune.runlog import export_log

    load_run_config(run)  # a RunError naming the folder when it is not a run directory
    written = export_log(run)
    if plots and importlib.util.find_spec("matplotlib") is not None:
        written += write_plots(run)
    written.append(write_report(run))
    written.append(write_card(run))
    return written
