"""N-gram language models in ARPA format, estimated in pure Python (no compiler, no ``lmplz``).

Interpolated modified Kneser-Ney smoothing (Chen & Goodman 1998; what KenLM's ``lmplz`` does):
the highest order uses raw counts, lower orders continuation counts (distinct left neighbours;
n-grams starting with ``<s>`` keep raw counts); three discounts per order come from the counts of
counts, and the unigrams are interpolated with the uniform distribution over the vocabulary
(``<unk>`` included, ``<s>`` excluded). The backoff weight written for a context is its
interpolation weight, so the ARPA backoff rules give back the interpolated probabilities exactly.

Sentences are lists of "words": real words (``unit='word'``) or the vocabulary's tokens
(``unit='char'``: letters with ``|`` between words, one CJK character or one phone each).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wavtune.data.text import Unit, split_units
from wavtune.errors import WavtuneError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LMUnit = Literal["word", "char"]
LM_UNITS: tuple[LMUnit, ...] = ("word", "char")
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz --discount_fallback's defaults, for tiny corpora
NO_PROB = -99.0  # log10 probability ARPA files give <s>, which is never predicted

Ngram = tuple[str, ...]


class LanguageModelError(WavtuneError, ValueError):
    """A language model cannot be built or read; the message names the file and the fix."""


def sentence_units(text: str, unit: LMUnit, text_unit: Unit = "char") -> list[str]:
    """The LM 'words' of one normalised transcript: whitespace-separated words, or the
    vocabulary's tokens (``split_units``: characters with ``|`` for spaces, or phones)."""
    if unit == "word":
        return text.split()
    return split_units(text, text_unit)


@dataclass(frozen=True)
class ArpaModel:
    """An n-gram model: ``logprob[n-1][ngram]`` and ``backoff[n-1][ngram]`` in log10."""

    order: int
    logprob: tuple[dict[Ngram, float], ...]
    backoff: tuple[dict[Ngram, float], ...]
    discounts: tuple[tuple[float, float, float], ...] = ()  # per order (D1, D2, D3+)

    @property
    def vocabulary(self) -> frozenset[str]:
        """The unigrams, ``<s>``, ``</s>`` and ``<unk>`` included."""
        return frozenset(g[0] for g in self.logprob[0])

    def log10_prob(self, word: str, context: Sequence[str] = ()) -> float:
        """log10 P(word | context) by the ARPA backoff rules (unknown words score as ``<unk>``)."""
        if (word,) not in self.logprob[0]:
            word = UNK
        history = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        penalty = 0.0
        while True:
            found = self.logprob[len(history)].get((*history, word))
            if found is not None:
                return penalty + found
            penalty += self.backoff[len(history) - 1].get(history, 0.0) if history else 0.0
            history = history[1:]

    def write(self, path: str | Path) -> Path:
        """Write the model as an ARPA text file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            f.write("\\data\\\n")
            for n, table in enumerate(self.logprob, 1):
                f.write(f"ngram {n}={len(table)}\n")
            for n, table in enumerate(self.logprob, 1):
                f.write(f"\n\\{n}-grams:\n")
                backoff = self.backoff[n - 1] if n < self.order else {}
                for gram in sorted(table):
                    line = f"{table[gram]:.6f}\t{' '.join(gram)}"
                    if gram in backoff:
                        line += f"\t{backoff[gram]:.6f}"
                    f.write(line + "\n")
            f.write("\n\\end\\\n")
        return path


def _discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ from counts of counts; the fallback when the
    corpus is too small for them to be meaningful (a count of counts is zero, or a discount is
    outside (0, k))."""
    t = Counter(c for c in counts if c <= 4)
    if any(t[k] == 0 for k in (1, 2, 3, 4)):
        return FALLBACK_DISCOUNTS
    y = t[1] / (t[1] + 2 * t[2])
    d = (1 - 2 * y * t[2] / t[1], 2 - 3 * y * t[3] / t[2], 3 - 4 * y * t[4] / t[3])
    if not all(0 < dk < k for k, dk in zip((1, 2, 3), d)):
        return FALLBACK_DISCOUNTS
    return d


def estimate(sentences: Iterable[Sequence[str]], order: int) -> ArpaModel:
    """Interpolated modified Kneser-Ney n-gram model of ``sentences`` (lists of words)."""
    if order < 1:
        raise LanguageModelError(f"order {order}: an n-gram model needs order 1 or more")
    raw: list[Counter[Ngram]] = [Counter() for _ in range(order)]
    for words in sentences:
        words = [w for w in words if w not in (BOS, EOS)]
        if not words:  # an empty transcript says nothing about word order
            continue
        seq = (BOS, *words, EOS)
        for n in range(1, order + 1):
            table = raw[n - 1]
            for i in range(len(seq) - n + 1):
                table[seq[i : i + n]] += 1
    if not raw[0]:
        raise LanguageModelError("the corpus has no words after normalisation; nothing to "
                                 "estimate a language model from")
    # adjusted counts: continuation counts below the top order, except for n-grams after <s>
    adjusted: list[dict[Ngram, int]] = [dict(raw[-1])]
    for n in range(order - 1, 0, -1):
        left: Counter[Ngram] = Counter(g[1:] for g in raw[n])  # distinct left neighbours
        adjusted.insert(0, {g: (c if g[0] == BOS else left[g]) for g, c in raw[n - 1].items()})
    adjusted[0].pop((BOS,), None)  # <s> is a context, never predicted
    adjusted[0].setdefault((UNK,), 0)

    logprob: list[dict[Ngram, float]] = []
    backoff: list[dict[Ngram, float]] = []
    discounts: list[tuple[float, float, float]] = []
    probs: list[dict[Ngram, float]] = []
    vocab_size = len(adjusted[0])
    for n in range(1, order + 1):
        counts = adjusted[n - 1]
        d = _discounts(c for c in counts.values() if c > 0)
        discounts.append(d)
        by_context: dict[Ngram, list[Ngram]] = defaultdict(list)
        for g in counts:
            by_context[g[:-1]].append(g)
        p: dict[Ngram, float] = {}
        gammas: dict[Ngram, float] = {}
        for context, grams in by_context.items():
            total = sum(counts[g] for g in grams)
            if total == 0:  # only <unk> with no count: all mass from the uniform distribution
                gammas[context] = 1.0
            else:
                kept = sum(d[min(counts[g], 3) - 1] for g in grams if counts[g] > 0)
                gammas[context] = kept / total
            for g in grams:
                c = counts[g]
                own = max(c - d[min(c, 3) - 1], 0.0) / total if c > 0 else 0.0
                lower = probs[n - 2][g[1:]] if n > 1 else 1.0 / vocab_size
                p[g] = own + gammas[context] * lower
        probs.append(p)
        logprob.append({g: math.log10(v) for g, v in p.items()})
        if n > 1:
            backoff.append({c: math.log10(v) for c, v in gammas.items() if v > 0})
    logprob[0][(BOS,)] = NO_PROB
    backoff.append({})
    # contexts whose extensions all got discounted to nothing keep backoff 0 (weight 1);
    # every n-gram that is a context of a higher order has its weight in backoff[n-1]
    return ArpaModel(order, tuple(logprob), tuple(backoff), tuple(discounts))


def build_arpa(texts: Iterable[str], out: str | Path, order: int, unit: LMUnit = "word",
               text_unit: Unit = "char") -> ArpaModel:
    """Estimate an ``order``-gram model of normalised ``texts`` and write it to ``out``."""
    model = estimate((sentence_units(t, unit, text_unit) for t in texts), order)
    model.write(out)
    return model


def build_with_lmplz(texts: Iterable[str], out: str | Path, order: int, unit: LMUnit = "word",
                     text_unit: Unit = "char") -> Path:
    """Estimate the model with KenLM's ``lmplz`` (must be on PATH) and write ARPA to ``out``."""
    lmplz = shutil.which("lmplz")
    if lmplz is None:
        raise LanguageModelError(
            "--engine kenlm needs KenLM's lmplz on PATH; build it from "
            "https://github.com/kpu/kenlm (cmake, a C++ compiler and Boost) or use the default "
            "--engine python, which needs nothing")
    corpus = "".join(" ".join(sentence_units(t, unit, text_unit)) + "\n" for t in texts)
    with Path(out).open("w", encoding="utf-8") as f:
        done = subprocess.run([lmplz, "-o", str(order), "--discount_fallback"], input=corpus,
                              stdout=f, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise LanguageModelError(f"lmplz failed (exit {done.returncode}): {done.stderr[-500:]}")
    return Path(out)


def read_arpa(path: str | Path) -> ArpaModel:
    """Read an ARPA file (any n-gram model in the standard text format)."""
    path = Path(path)
    logprob: list[dict[Ngram, float]] = []
    backoff: list[dict[Ngram, float]] = []
    section = 0
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("ngram ") or line == "\\data\\":
                continue
            if line == "\\end\\":
                break
            if line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1:].split("-")[0])
                logprob.append({})
                backoff.append({})
                continue
            fields = line.split()
            if section == 0 or len(fields) < section + 1:
                raise LanguageModelError(f"{path}:{number}: not an ARPA n-gram line: {line[:80]!r}")
            gram = tuple(fields[1 : section + 1])
            logprob[-1][gram] = float(fields[0])
            if len(fields) > section + 1:
                backoff[-1][gram] = float(fields[section + 1])
    if not logprob:
        raise LanguageModelError(f"{path}: no \\1-grams: section; is it an ARPA file?")
    return ArpaModel(len(logprob), tuple(logprob), tuple(backoff))


def arpa_unigrams(path: str | Path) -> list[str]:
    """The words of an ARPA file's 1-gram section, without reading the higher orders."""
    words: list[str] = []
    inside = False
    with Path(path).open(encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and line.startswith("\\"):
                break
            elif inside and line:
                words.append(line.split()[1])
    return words


def is_arpa(path: str | Path) -> bool:
    """True when ``path`` starts like an ARPA text file (KenLM binaries do not)."""
    with Path(path).open("rb") as f:
        head = f.read(64).lstrip()
    return head.startswith(b"\\data\\")
