"""Turning a config's manifests into checked, normalised splits and a training vocabulary."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from wavtune.checks.checker import check_utterances, require_clean
from wavtune.checks.rows import CheckOptions
from wavtune.config import Config
from wavtune.data.frames import FrameGeometry
from wavtune.data.labels import LabelSet, build_label_set, check_labels, label_counts
from wavtune.data.manifest import (
    ManifestError,
    Utterance,
    read_manifest,
    read_manifest_skipping,
    with_durations,
)
from wavtune.data.spool import DecodedSpool
from wavtune.data.vocab import Vocabulary
from wavtune.run.directory import RunDir
from wavtune.tasks import has_ctc_head

log = logging.getLogger("wavtune")
SPLITS = ("train", "eval", "test")


@dataclass(frozen=True)
class PreparedData:
    """The utterances of each split (empty tuple: split not configured), the vocabulary (None:
    no CTC head) and one label set per classification head, all from the training split."""

    config: Config
    train: tuple[Utterance, ...]
    eval: tuple[Utterance, ...]
    test: tuple[Utterance, ...]
    vocab: Vocabulary | None
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> problem -> rows
    label_sets: tuple[LabelSet, ...] = ()
    malformed: dict[str, int] = field(default_factory=dict)  # split -> manifest lines left out
    # the clips the checks decoded, for the audio cache to take instead of decoding them again
    decoded: DecodedSpool | None = field(default=None, compare=False)

    def split(self, name: str) -> tuple[Utterance, ...]:
        utts: tuple[Utterance, ...] = getattr(self, name)
        return utts

    def unknown_units(self, name: str) -> Counter[str]:
        """Units of a split's transcripts that the vocabulary lacks (they score as errors)."""
        if self.vocab is None:
            return Counter()
        normalizer = self.config.text.normalizer()
        texts = (u.label(self.config.data.text_column) or "" for u in self.split(name))
        return self.vocab.unknown_units(normalizer(t) for t in texts)

    def checked(self, geometry: FrameGeometry, sample_rate: int,
                on_error: Literal["fail", "skip"], progress: bool = True,
                spool: DecodedSpool | None = None) -> PreparedData:
        """Run the data checks on every split for a model with this frame geometry (``sample_rate``
        in Hz); drop or fail. With ``spool``, the train and eval clips the checks decode are kept
        in it for the audio cache (``decoded`` of the result)."""
        data = self.config.data
        options = CheckOptions(
            normalizer=self.config.text.normalizer(), vocab=self.vocab, sample_rate=sample_rate,
            geometry=geometry,
            min_duration_s=data.min_duration_s or None, max_duration_s=data.max_duration_s or None,
            text_column=data.text_column, need_text=self.vocab is not None,
        )
        kept: dict[str, tuple[Utterance, ...]] = {}
        dropped: dict[str, dict[str, int]] = {}
        for name in SPLITS:
            utts = self.split(name)
            if self.malformed.get(name):
                dropped[name] = {"malformed_line": self.malformed[name]}
            if not utts:
                kept[name] = ()
                continue
            keep = spool.put if spool is not None and name in ("train", "eval") else None
            report = check_utterances(utts, replace(options, on_decoded=keep), progress=progress)
            manifest = getattr(data, name)
            kept[name] = tuple(require_clean(utts, report, manifest, on_error))
            if len(kept[name]) < len(utts):
                worst: Counter[str] = Counter()
                bad = report.bad_rows()
                for f in report.findings:
                    if f.fatal and f.row in bad:
                        worst[f.problem.value] += 1
                        bad.discard(f.row)
                dropped[name] = {**dropped.get(name, {}), **worst}
        label_sets = _label_sets(self.config, kept["train"], kept["eval"], kept["test"])
        return replace(self, train=kept["train"], eval=kept["eval"], test=kept["test"],
                       dropped=dropped, label_sets=label_sets, decoded=spool)

    def summary(self) -> dict[str, Any]:
        """Facts about the data for metrics.json and the model card."""
        out: dict[str, Any] = {}
        if self.vocab is not None:
            out.update({"vocab_size": len(self.vocab), "unit": self.vocab.unit})
        if self.label_sets:
            out["label_sets"] = {s.column: list(s.labels) for s in self.label_sets}
        for name in SPLITS:
            utts = self.split(name)
            if not utts:
                continue
            speakers = {u.speaker for u in utts if u.speaker}
            out[f"{name}_data"] = {
                "manifest": getattr(self.config.data, name) or (
                    f"{self.config.data.train} (held-out {self.config.data.eval_from_train:.0%})"),
                "utterances": len(utts),
                "hours": round(sum(u.duration_s or 0.0 for u in utts) / 3600, 4),
                "speakers": len(speakers),
                "dropped": self.dropped.get(name, {}),
            }
            if self.label_sets:
                out[f"{name}_data"]["labels"] = {s.column: label_counts(utts, s.column)
                                                 for s in self.label_sets}
            if name != "train" and self.vocab is not None:
                unknown = self.unknown_units(name)
                out[f"{name}_data"]["unknown_units"] = dict(unknown.most_common(20))
        return out


def _label_sets(config: Config, train: Sequence[Utterance], eval: Sequence[Utterance],
                test: Sequence[Utterance]) -> tuple[LabelSet, ...]:
    """One label set per label column, from ``train``; a label ``eval``/``test`` adds is an
    error."""
    sets = tuple(build_label_set(train, column) for column in config.data.label_columns)
    check_labels(eval, sets, "eval")
    check_labels(test, sets, "test")
    return sets


def hold_out(utts: Sequence[Utterance], fraction: float, seed: int
             ) -> tuple[tuple[Utterance, ...], tuple[Utterance, ...]]:
    """Split off a seeded random ``fraction`` of ``utts`` (at least one row) as an eval set."""
    rng = np.random.default_rng(seed)
    n_eval = max(1, round(len(utts) * fraction))
    if n_eval >= len(utts):
        raise ManifestError(f"data.eval_from_train={fraction} leaves no training rows out of "
                            f"{len(utts)}; lower it or give data.eval")
    chosen = set(rng.choice(len(utts), size=n_eval, replace=False).tolist())
    train = tuple(u for i, u in enumerate(utts) if i not in chosen)
    return train, tuple(u for i, u in enumerate(utts) if i in chosen)


def read_split(config: Config, name: str) -> tuple[tuple[Utterance, ...], int]:
    """The rows of split ``name``'s manifest and how many malformed lines were left out (only
    with data.on_error=skip; with fail the first one raises ManifestError naming its line)."""
    data = config.data
    path = getattr(data, name)
    if not path:
        return (), 0
    try:
        if data.on_error == "skip":  # duplicate ids pass here; the data checks drop and count them
            utts, errors = read_manifest_skipping(path, data.allow_outside_paths)
            for message in errors:
                log.warning("data.%s: skipped a malformed line (data.on_error=skip): %s", name,
                            message)
        else:
            utts, errors = read_manifest(path, allow_outside=data.allow_outside_paths), []
        return tuple(with_durations(utts)), len(errors)
    except ManifestError as e:
        raise ManifestError(f"data.{name}: {e}") from None


def prepare_data(config: Config, run: RunDir | None = None, progress: bool = True) -> PreparedData:
    """Read the manifests and build the vocabulary from the TRAINING transcripts only."""
    data = config.data
    if not data.train:
        raise ManifestError("data.train: no training manifest given; set it in the config or with "
                            "--set data.train=PATH")
    read = {name: read_split(config, name) for name in SPLITS}
    splits = {name: utts for name, (utts, _) in read.items()}
    malformed = {name: n for name, (_, n) in read.items() if n}
    if data.eval_from_train > 0:
        splits["train"], splits["eval"] = hold_out(splits["train"], data.eval_from_train,
                                                   config.train.seed)
    vocab = None
    if has_ctc_head(config.task):
        normalizer = config.text.normalizer()
        texts = [normalizer(u.label(data.text_column) or "") for u in splits["train"]]
        vocab = Vocabulary.build(texts, config.text.unit)
    label_sets = _label_sets(config, splits["train"], splits["eval"], splits["test"])
    prepared = PreparedData(config, splits["train"], splits["eval"], splits["test"], vocab,
                            label_sets=label_sets, malformed=malformed)
    for name in ("eval", "test"):
        unknown = prepared.unknown_units(name)
        if unknown:
            log.warning("%s set: %d units outside the training vocabulary (%s); they count as "
                        "errors", name, sum(unknown.values()),
                        ", ".join(f"{u!r} x{n}" for u, n in unknown.most_common(8)))
    return prepared
