"""Training diagnostics: pure functions over log records that name a problem, its causes and a fix.

* blank collapse: after warm-up, every hypothesis empty (or WER and CER both 1.0) for ``patience``
  evaluations in a row: the CTC model only predicts the blank;
* overfitting: validation loss rising well above its minimum while training loss keeps falling;
* non-finite losses: optimizer steps skipped for a NaN/inf loss or gradient;
* rows dropped before training (CTC-infeasible, silent, ...) and eval characters outside the
  vocabulary (recorded in metrics.json).

During training, :class:`DiagnosticMonitor` returns each diagnosis once, when it first appears; the
model card calls :func:`diagnose` on the whole log.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from wavtune.run.log import EvalRecord, RunLog, parse_log

Severity = Literal["warning", "info"]

DEFAULT_PATIENCE = 3  # evaluations in a row before blank collapse / overfitting is reported
DEFAULT_OVERFIT_TOLERANCE = 0.05  # validation loss this far (relative) above its minimum
DEFAULT_UNKNOWN_RATE = 0.001  # unknown-character share of eval references worth a warning
COLLAPSE_TOLERANCE = 1e-9
TYPICAL_MAX_FINETUNE_LR = 3e-4  # above this, fine-tuning wav2vec2-family encoders often collapses


@dataclass(frozen=True)
class Diagnosis:
    """One finding: what happened (with the numbers), likely causes and what to change."""

    kind: str  # blank_collapse, overfitting, nonfinite_loss, dropped_rows, unknown_characters
    summary: str
    step: int | None = None  # the step at which it became visible
    causes: tuple[str, ...] = ()
    advice: tuple[str, ...] = ()
    severity: Severity = "warning"

    def render(self) -> str:
        """One paragraph for the training log."""
        text = self.summary
        if self.causes:
            text += " Likely causes: " + "; ".join(self.causes) + "."
        if self.advice:
            text += " What to change: " + "; ".join(self.advice) + "."
        return text

    def markdown(self) -> str:
        """A bullet list item (with sub-items) for the model card."""
        lines = [f"- **{self.kind.replace('_', ' ')}** ({self.severity}): {self.summary}"]
        lines += [f"  - likely cause: {c}" for c in self.causes]
        lines += [f"  - what to change: {a}" for a in self.advice]
        return "\n".join(lines)


@dataclass(frozen=True)
class DiagnosticSettings:
    """What the diagnostics need to know about the run (``from_config`` fills it)."""

    warmup_steps: int = 0
    patience: int = DEFAULT_PATIENCE
    overfit_tolerance: float = DEFAULT_OVERFIT_TOLERANCE
    eval_utterances: int | None = None  # when known, 'all hypotheses empty' is checked exactly
    metric_for_best: str = "wer"
    learning_rate: float | None = None
    freeze_encoder_steps: int = 0
    freeze_feature_encoder: bool = True
    min_duration_s: float = 0.0

    @classmethod
    def from_config(cls, config: Any, eval_utterances: int | None = None) -> DiagnosticSettings:
        """Settings from a :class:`wavtune.config.Config` (typed loosely: diagnostics stay pure)."""
        t, m = config.train, config.model
        return cls(warmup_steps=int(t.warmup_steps), eval_utterances=eval_utterances,
                   metric_for_best=str(t.metric_for_best), learning_rate=float(t.learning_rate),
                   freeze_encoder_steps=int(m.freeze_encoder_steps),
                   freeze_feature_encoder=bool(m.freeze_feature_encoder),
                   min_duration_s=float(config.data.min_duration_s))


Records = Sequence[Mapping[str, Any]]


def _as_log(records: Records | RunLog) -> RunLog:
    return records if isinstance(records, RunLog) else parse_log(records)


def _near(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) <= COLLAPSE_TOLERANCE


def is_collapsed(record: EvalRecord, eval_utterances: int | None = None) -> bool:
    """Every hypothesis empty: all-blank CTC output.

    Exact when the number of evaluated utterances is known (``eval_utterances`` or an
    ``eval_utterances`` key); otherwise WER and CER both exactly 1.0, which empty hypotheses give
    (all deletions). WER 1.0 alone counts only when CER was not logged.
    """
    total = record.utterances or eval_utterances
    empty = record.empty_hypotheses
    if total and empty is not None:
        return empty >= total
    if record.cer is None:
        return _near(record.wer, 1.0)
    return _near(record.wer, 1.0) and _near(record.cer, 1.0)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def blank_collapse(records: Records | RunLog, settings: DiagnosticSettings) -> Diagnosis | None:
    """Reported when ``patience`` evaluations in a row after warm-up produced only blanks."""
    evals = [r for r in _as_log(records).evals if r.step > settings.warmup_steps]
    runs: list[list[EvalRecord]] = []
    current: list[EvalRecord] = []
    for record in evals:
        if is_collapsed(record, settings.eval_utterances):
            current.append(record)
        else:
            if current:
                runs.append(current)
            current = []
    if current:
        runs.append(current)
    runs = [r for r in runs if len(r) >= settings.patience]
    if not runs:
        return None
    first, longest = runs[0], max(runs, key=len)
    ongoing = current is longest
    span = (f"from step {longest[0].step} to step {longest[-1].step} ({len(longest)} evaluations)"
            + (", and still at the last evaluation" if ongoing else ""))
    summary = (f"Blank collapse: after the {settings.warmup_steps} warm-up steps the model output "
               f"only blanks (every hypothesis empty; WER 1.0) {span}.")
    causes = _collapse_causes(settings)
    advice = (
        f"lower train.learning_rate (e.g. to {_fmt(min(settings.learning_rate or 1e-4, 1e-4) / 3)}"
        f" for large pre-trained encoders) or raise train.warmup_steps",
        "check that vocab.json's [PAD] id equals pad_token_id in config.json (the CTC blank) and "
        "that the vocabulary was built from the same text normalisation as the data",
        "lower model.freeze_encoder_steps or set model.freeze_feature_encoder=false for "
        "from-scratch models",
        "drop clips shorter than about 1 s with data.min_duration_s, and run "
        "'wavtune check-data' for CTC-infeasible rows",
        "if the loss is still falling, train longer: large encoders often emit only blanks for "
        "the first few hundred steps",
    )
    return Diagnosis("blank_collapse", summary, first[settings.patience - 1].step, causes, advice)


def _collapse_causes(settings: DiagnosticSettings) -> tuple[str, ...]:
    causes: list[str] = []
    lr = settings.learning_rate
    if lr is not None and lr > TYPICAL_MAX_FINETUNE_LR:
        causes.append(f"learning rate {_fmt(lr)} is above the {_fmt(TYPICAL_MAX_FINETUNE_LR)} that "
                      f"fine-tuning wav2vec2-family encoders usually tolerates")
    else:
        causes.append("learning rate too high (or warm-up too short) for this model and batch size")
    causes.append("vocabulary / pad-blank mismatch: the CTC blank is the pad token, and a model "
                  "whose pad_token_id is not the vocabulary's [PAD] learns the wrong blank")
    if settings.freeze_encoder_steps > 0:
        causes.append(f"frozen layers: only the head trains for the first "
                      f"{settings.freeze_encoder_steps} steps (model.freeze_encoder_steps)")
    else:
        causes.append("frozen layers: a frozen feature encoder or encoder cannot adapt "
                      "(model.freeze_feature_encoder / freeze_encoder_steps)")
    causes.append("audio too short for its transcript: CTC needs at least one frame per token "
                  "(plus one between repeats)"
                  + (f"; data.min_duration_s is {settings.min_duration_s:g}"
                     if settings.min_duration_s else ""))
    return tuple(causes)


def overfitting(records: Records | RunLog, settings: DiagnosticSettings) -> Diagnosis | None:
    """Reported when the last ``patience`` validation losses all sit more than
    ``overfit_tolerance`` above the minimum reached before them, while training loss fell."""
    evals = [r for r in _as_log(records).evals
             if r.loss is not None and math.isfinite(r.loss)]
    if len(evals) <= settings.patience:
        return None
    best = min(range(len(evals)), key=lambda i: (evals[i].loss or 0.0, i))
    best_loss = evals[best].loss or 0.0
    tail = evals[best + 1:]
    threshold = best_loss * (1 + settings.overfit_tolerance)
    if len(tail) < settings.patience or not all((r.loss or 0.0) > threshold
                                                for r in tail[-settings.patience:]):
        return None
    train_then, train_now = evals[best].train_loss, evals[-1].train_loss
    if train_then is None or train_now is None or not train_now < train_then:
        return None
    last = evals[-1]
    rise = (last.loss or 0.0) / best_loss - 1 if best_loss > 0 else math.inf
    summary = (f"Overfitting: validation loss was lowest at step {evals[best].step} "
               f"({best_loss:.4f}) and rose to {last.loss:.4f} by step {last.step} "
               f"(+{rise:.0%}) while training loss fell from {train_then:.4f} to {train_now:.4f}.")
    if last.best_step is not None:
        summary += (f" The best checkpoint by {settings.metric_for_best} is step {last.best_step}, "
                    f"the one wavtune publishes.")
    advice = (
        "keep the published (best) checkpoint rather than the last one",
        "stop earlier (fewer train.num_epochs) or add data",
        "regularise: SpecAugment (model.mask_time_prob), dropout (model.hidden_dropout, "
        "final_dropout, layerdrop), train.weight_decay",
    )
    return Diagnosis("overfitting", summary, tail[settings.patience - 1].step,
                     ("the model memorises the training set",), advice, "info")


def nonfinite_losses(records: Records | RunLog, skipped_steps: int = 0) -> Diagnosis | None:
    """Reported when steps were skipped (``skipped_steps``, or ``nonfinite_steps`` in the log) or
    a logged loss or gradient norm is NaN/inf."""
    log = _as_log(records)
    bad = [
        r
        for r in log.train
        if not math.isfinite(r.loss) or (r.grad_norm is not None and not math.isfinite(r.grad_norm))
    ]
    bad_evals = [r for r in log.evals if r.loss is not None and not math.isfinite(r.loss)]
    logged = max((r.nonfinite_steps or 0 for r in log.train), default=0)
    skipped = max(skipped_steps, logged)
    if not (skipped or bad or bad_evals):
        return None
    parts = []
    if skipped:
        parts.append(f"{skipped} optimizer step{'s' if skipped != 1 else ''} skipped for a "
                     f"non-finite loss or gradient")
    if bad:
        parts.append(f"{len(bad)} logged training record{'s' if len(bad) != 1 else ''} with a "
                     f"non-finite loss or gradient norm (first at step {bad[0].step})")
    if bad_evals:
        parts.append(f"{len(bad_evals)} evaluation{'s' if len(bad_evals) != 1 else ''} with a "
                     f"non-finite validation loss (first at step {bad_evals[0].step})")
    steps = [r.step for r in bad] + [r.step for r in bad_evals]
    return Diagnosis(
        "nonfinite_loss", "Non-finite losses: " + "; ".join(parts) + ".",
        min(steps) if steps else None,
        ("learning rate too high or warm-up too short", "fp16 overflow",
         "utterances too short for their transcripts (CTC loss is infinite; "
         "model.ctc_zero_infinity hides it)"),
        ("lower train.learning_rate or raise train.warmup_steps",
         "keep train.max_grad_norm > 0; try train.mixed_precision=bf16 or no",
         "run 'wavtune check-data' to find CTC-infeasible rows"),
    )


def dropped_rows(dropped: Mapping[str, Mapping[str, int]]) -> Diagnosis | None:
    """Rows removed by the data checks (``on_error: skip``), by split and problem."""
    parts = [f"{split}: " + ", ".join(f"{n} {problem.replace('_', ' ')}"
                                      for problem, n in sorted(problems.items()))
             for split, problems in dropped.items() if problems]
    if not parts:
        return None
    return Diagnosis("dropped_rows", "Rows dropped by the data checks before training: "
                     + "; ".join(parts) + ".", None, (),
                     ("'wavtune check-data MANIFEST' lists every dropped row with its reason",),
                     "info")


def unknown_characters(unknown: Mapping[str, int], reference_chars: int, split: str = "eval",
                       threshold: float = DEFAULT_UNKNOWN_RATE) -> Diagnosis | None:
    """Characters of ``split``'s references that the vocabulary lacks: they can never be right."""
    count = sum(unknown.values())
    if count == 0:
        return None
    rate = count / max(reference_chars, 1)
    shown = ", ".join(f"{u!r} x{n}" for u, n in sorted(unknown.items(), key=lambda x: -x[1])[:8])
    return Diagnosis(
        "unknown_characters",
        f"Unknown characters at evaluation: {count} of {reference_chars} reference characters "
        f"in the {split} set ({rate:.2%}) are not in the vocabulary ({shown}); they always count "
        f"as errors.",
        None,
        ("the training text lacks them, or the text normalisation differs between splits",),
        ("remove or map them with text.remove / text.remove_regex / text.allowed",
         "or add training data that contains them"),
        "warning" if rate >= threshold else "info",
    )


def diagnose(records: Records | RunLog, settings: DiagnosticSettings,
             skipped_steps: int = 0) -> tuple[Diagnosis, ...]:
    """Every log-based diagnosis that applies, in a fixed order."""
    log = _as_log(records)
    found = (blank_collapse(log, settings), overfitting(log, settings),
             nonfinite_losses(log, skipped_steps))
    return tuple(d for d in found if d is not None)


class DiagnosticMonitor:
    """For the training loop: feed each logged record; get each kind of diagnosis once, when new.

    Evaluation records re-run the log-wide checks over the evaluations so far (a few hundred at
    most); training records are checked on their own, so a long run stays linear.

    >>> monitor = DiagnosticMonitor(DiagnosticSettings(warmup_steps=0, patience=2))
    >>> [d.kind for r in ({"step": 10, "eval_wer": 1.0, "eval_cer": 1.0},
    ...                   {"step": 20, "eval_wer": 1.0, "eval_cer": 1.0})
    ...  for d in monitor.update(r)]
    ['blank_collapse']
    """

    def __init__(self, settings: DiagnosticSettings, records: Iterable[Mapping[str, Any]] = ()):
        self.settings = settings
        log = parse_log(list(records))
        self._evals: list[EvalRecord] = list(log.evals)
        self._reported: set[str] = {d.kind for d in diagnose(log, settings)}

    def update(self, record: Mapping[str, Any], skipped_steps: int = 0) -> list[Diagnosis]:
        """Diagnoses that ``record`` (just logged) makes visible for the first time.
        ``skipped_steps``: the trainer's count of steps skipped for non-finite values so far."""
        parsed = parse_log([record])
        found: list[Diagnosis | None] = [nonfinite_losses(parsed, skipped_steps)]
        if parsed.evals:
            self._evals.extend(parsed.evals)
            evals = RunLog((), tuple(self._evals))
            found += [blank_collapse(evals, self.settings), overfitting(evals, self.settings)]
        new = [d for d in found if d is not None and d.kind not in self._reported]
        self._reported.update(d.kind for d in new)
        return new
