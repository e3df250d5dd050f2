"""The results a model card reports: summary scores, evaluation tables, the published checkpoint.

Split from :mod:`wavtune.card.model_card` (which lays out the card) so that what a card *claims*
(which numbers, from which file, for which checkpoint) sits in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wavtune.card.facts import RunFacts
from wavtune.card.report import REPORT_FILE, interval_text
from wavtune.card.trainer_format import (
    DECIMALS,
    cell_value,
    column_selected,
    maybe_round,
    results_table,
    wanted_metrics,
)
from wavtune.run.log import CSV_FILE, TENSORBOARD_DIR, Column, eval_columns, finite
from wavtune.scoring.registry import ERROR_RATES, METRICS, display_name


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
    # the summary lists the Trainer's names ('Loss', 'Wer'): the results-table column, bare 'Loss'
    names = {"loss": "Loss", **{k: METRICS[k].column for k in (*ERROR_RATES, "accuracy")}}
    for key, name in names.items():
        value = finite(scores.get(key))
        if value is None:
            continue
        family = key if key in ERROR_RATES else METRICS[key].family
        if name in out or column_selected(Column(f"eval_{key}", name, family), wanted):
            out[name] = value
    return {k: (str(v) if isinstance(v, (list, tuple)) else cell_value(v)) for k, v in out.items()}


def fmt(value: float | None, digits: int = DECIMALS) -> str:
    """A score with DECIMALS digits, or ``n/a``."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def metric_label(name: str) -> str:
    """The display name of a metric key (``wer`` -> ``WER``)."""
    return display_name(name)


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
        lines += ["| Split | " + " | ".join(metric_label(k) for k in next(iter(scores.values()))
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
    return [f"| {split} | {name} | {lm.get('utterances', '-')} | {fmt(wer)} | {fmt(cer)} |"]


def decoding_line(facts: RunFacts) -> str:
    """How ``wavtune transcribe``/``evaluate`` decode: RUN/decoding.json (``wavtune lm tune``)."""
    from wavtune.decode.runfile import read_decoding

    record = read_decoding(facts.root)
    if not record or record.get("kind") != "beam":
        return "- Decoding: greedy (best path), no language model."
    lm = (f" with a {record.get('lm_unit', 'n-gram')} n-gram LM (`{record['lm']}`, alpha "
          f"{record.get('alpha')}, beta {record.get('beta')})") if record.get("lm") else ""
    return (
        f"- Decoding: beam search (width {record.get('beam_width')}){lm}, from `decoding.json`; "
        f"`--decoder greedy` gives best-path decoding."
    )


def tuned_rows(facts: RunFacts) -> list[str]:
    """Dev-set WER with and without the LM, as ``wavtune lm tune`` measured them."""
    from wavtune.decode.runfile import read_decoding

    dev = (read_decoding(facts.root) or {}).get("dev")
    if not isinstance(dev, Mapping):
        return []
    name = f"tuning dev (`{Path(str(dev.get('manifest', '?'))).name}`)"
    n = dev.get("utterances", "-")
    rows = [(f"| {name} | greedy | {n} | {fmt(finite(dev.get('greedy_wer')))} | "
             f"{fmt(finite(dev.get('greedy_cer')))} |")]
    if finite(dev.get("beam_wer")) is not None:
        rows.append(f"| {name} | beam, no LM | {n} | {fmt(finite(dev.get('beam_wer')))} | - |")
    rows.append(f"| {name} | beam + LM (tuned) | {n} | {fmt(finite(dev.get('wer')))} | "
                f"{fmt(finite(dev.get('cer')))} |")
    return rows


def published_text(facts: RunFacts) -> str:
    """Which checkpoint is published and why, with the numbers."""
    m = facts.metrics
    last = m.last_step if m.last_step is not None else facts.log.last_step
    step = facts.published_step
    if m.best_step is None or m.best_metric is None:
        return (f"No evaluation set chose the checkpoint: the last step ({last}) is published."
                if step is not None else "The run has not published a model yet.")
    label = metric_label(m.metric_for_best)
    last_eval = facts.log.evals[-1] if facts.log.evals else None
    last_value = last_eval.number(m.metric_for_best) if last_eval else None
    if step == last:
        return (f"The published checkpoint is the last step, {last}, which also had the best eval "
                f"{label}: {fmt(m.best_metric)}.")
    tail = f"; the last step had {fmt(last_value)}" if last_value is not None else ""
    return (f"The published checkpoint is step {step} of {last}: best eval {label} "
            f"{fmt(m.best_metric)} at step {m.best_step} of {last}{tail}.")


def _peft_settings(method: str, settings: Mapping[str, Any]) -> str:
    if method == "lora":
        targets = ", ".join(f"`{t}`" for t in settings.get("target_modules") or ()) or (
            "the family's attention and feed-forward linears")
        return (f"LoRA (r={settings.get('r')}, alpha={settings.get('alpha')}, dropout "
                f"{settings.get('dropout')}, bias {settings.get('bias')}; targets: {targets})")
    return (f"MMS adapters (adapter_attn_dim={settings.get('adapter_attn_dim')}, name "
            f"`{settings.get('adapter_name')}`)")


def peft_note(facts: RunFacts) -> str | None:
    """What metrics.json's ``peft`` record says: method, settings, trainable share, artefact."""
    peft = facts.metrics.extra.get("peft")
    if not isinstance(peft, Mapping) or peft.get("method", "none") == "none":
        return None
    method, params = str(peft["method"]), peft.get("params") or {}
    total, trainable = int(params.get("total", 0)), int(params.get("trainable", 0))
    share = f" ({100 * trainable / total:.2f}%)" if total else ""
    files = [f for f in peft.get("adapter_files") or () if not str(f).endswith(".md")]
    size = float(peft.get("adapter_bytes", 0)) / 1e6
    where = ("`adapter/`" if method == "lora" else ", ".join(f"`{f}`" for f in files))
    loads = ('peft.PeftModel.from_pretrained(base, "adapter")' if method == "lora" else
             f'model.load_adapter("{peft.get("settings", {}).get("adapter_name")}")')
    merged = ("the LoRA updates are merged into the published weights" if method == "lora"
              else "the published model holds its adapter layers")
    return (f"Parameter-efficient fine-tuning: {_peft_settings(method, peft.get('settings', {}))}"
            f" trained {trainable:,} of {total:,} parameters{share}; {merged}. The adapter "
            f"artefact, {where} ({size:.2f} MB), loads with `{loads}`.")


def procedure_notes(facts: RunFacts) -> list[str]:
    notes = [published_text(facts)]
    peft = peft_note(facts)
    if peft:
        notes.append(peft)
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
