"""Model cards: the ``README.md`` of a run directory, rendered from the run's own files.

:func:`render_card` reads ``wavtune.yaml``, ``log.jsonl``, ``metrics.json``,
``predictions-*.jsonl``, ``config.json``/``vocab.json`` and notes which plots and reports exist;
it returns Markdown with Hugging Face Hub front matter (license, language, tags, base model,
datasets, metrics and a FILLED ``model-index`` for the published checkpoint). The body follows the
Trainer-generated seed cards section by section and line format by line format, and says what they
left out: the data, which checkpoint is published and why, confidence intervals, diagnostics.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from wavtune import __version__
from wavtune.card.facts import RunFacts, gather, label_sets
from wavtune.card.hub import ASR_TASK, base_model, front_matter, task_type
from wavtune.card.results import (
    decoding_line,
    evaluation_section,
    procedure_notes,
    results_section,
    summary_values,
)
from wavtune.card.trainer_format import (
    column_selected,
    hyperparameter_lines,
    maybe_round,
    wanted_metrics,
)
from wavtune.run.log import Column, finite
from wavtune.run.records import SplitData, framework_versions
from wavtune.scoring.registry import ERROR_RATES

CARD_FILE = "README.md"
HUB = "https://huggingface.co"
MAX_LISTED_TOKENS = 80  # vocabularies up to this size are listed in full
LANGUAGES = {"en": "English", "zh": "Chinese", "fr": "French", "de": "German", "es": "Spanish",
             "it": "Italian", "ja": "Japanese", "ko": "Korean", "pt": "Portuguese", "ru": "Russian",
             "ar": "Arabic", "hi": "Hindi", "nl": "Dutch"}


# --- body sections ------------------------------------------------------------------------------

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
                    if config.model.freeze_encoder_steps else "")
                 + ("; dropout, LayerDrop and SpecAugment off for the first "
                    f"{config.train.regularize_after_steps} steps"
                    if config.train.regularize_after_steps else "") + ".")
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
        lines.append(
            f"- Input is resampled to {facts.model.sample_rate} Hz mono; long audio must be "
            f"chunked (`wavtune transcribe` does it)."
        )
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

    from wavtune.card.plots import write_plots
    from wavtune.card.report import write_report
    from wavtune.run.directory import load_run_config
    from wavtune.run.log import export_log

    load_run_config(run)  # a RunError naming the folder when it is not a run directory
    written = export_log(run)
    if plots and importlib.util.find_spec("matplotlib") is not None:
        written += write_plots(run)
    written.append(write_report(run))
    written.append(write_card(run))
    return written
