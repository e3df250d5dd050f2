"""A tiny CTC run trained once per test session on tone speech, shared by the timestamp, service
and page tests (about a minute on 2 cores), and the true word positions of tone speech."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from factories import GAP_S, LETTER_S, SR, WORD_GAP_S, WORDS, tiny_overrides, write_corpus

CLIP_TEXT = "a bad cab"  # a training text: the tiny run transcribes it exactly


@functools.cache
def tiny_ctc_run() -> Path:
    """The run directory of a tiny model overfit on ``factories.WORDS`` (trained on first use)."""
    from wavtune.config import load_config
    from wavtune.train.trainer import train

    folder = Path(tempfile.mkdtemp(prefix="wavtune-tinyrun-"))
    atexit.register(shutil.rmtree, folder, True)
    manifest = write_corpus(folder, WORDS)
    result = train(load_config(None, tiny_overrides(folder, manifest, steps=150)), progress=False)
    return result.run_dir


def tone_word_spans(text: str, sample_rate: int = SR) -> list[tuple[str, float, float]]:
    """Each word of ``factories.tone_speech(text)`` with the second its first tone starts and its
    last tone ends (the layout tone_speech writes, sample for sample)."""
    position = int(0.05 * sample_rate)  # leading silence
    spans: list[tuple[str, float, float]] = []
    for word in text.split(" "):
        start = position
        for _ in word:
            position += int(LETTER_S * sample_rate)
            end = position
            position += int(GAP_S * sample_rate)
        spans.append((word, start / sample_rate, end / sample_rate))
        position += int(WORD_GAP_S * sample_rate)
    return spans


@functools.cache
def tiny_label_run(task: str) -> Path:
    """A ``multitask`` (CTC + a ``first``-letter head) or ``classify`` run trained for a few
    steps only: enough to carry labels through the service, not to be right."""
    from wavtune.config import load_config
    from wavtune.train.trainer import train

    folder = Path(tempfile.mkdtemp(prefix=f"wavtune-tiny{task}-"))
    atexit.register(shutil.rmtree, folder, True)
    manifest = write_corpus(folder, WORDS, extra={"first": [w[0] for w in WORDS]})
    overrides = tiny_overrides(folder, manifest, steps=4) + [
        f"task={task}", "data.label_columns=[first]", "heads.proj_size=16"]
    if task == "classify":
        overrides.append("train.metric_for_best=accuracy")
    return train(load_config(None, overrides), progress=False).run_dir
