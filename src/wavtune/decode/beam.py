"""CTC beam search with an n-gram LM and hotwords, on flashlight-text's lexicon-free decoder.

flashlight's C++ ``LexiconFreeDecoder`` does the CTC beam search (blank/repeat handling,
hypothesis merging, pruning); it asks an ``LM`` object for a score each time a hypothesis emits a
new token. :class:`_Scorer` is that LM: it spells tokens into words and scores them with KenLM
(bundled in flashlight-text) when a word ends (``|``), or scores every token with a character/CJK
LM; it adds the word insertion bonus and hotword bonuses. Scores are in nats (KenLM's log10 is
converted), so ``alpha=1`` multiplies acoustic and LM probabilities.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from wavtune.constants import WORD_DELIMITER
from wavtune.data.text import is_cjk
from wavtune.data.vocab import Vocabulary
from wavtune.decode.arpa import EOS, UNK, LMUnit, arpa_unigrams, is_arpa
from wavtune.decode.base import Hypothesis, collapse
from wavtune.decode.settings import DecoderSettings, DecodingError, Hotword

LN10 = math.log(10.0)
LOGIT_LIMIT = 1e4  # infinite logits are clipped to this magnitude before the log-softmax


def _flashlight() -> Any:
    try:
        import flashlight.lib.text.decoder as fl
    except ImportError:
        raise DecodingError(
            "beam search needs flashlight-text: pip install 'wavtune[lm]'"
        ) from None
    return fl


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence KenLM's loading progress bar, which C++ writes straight to file descriptor 2."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def resolve_lm_unit(settings: DecoderSettings, vocab: Vocabulary) -> LMUnit:
    """``word`` or ``char`` for the settings' LM: as given, else an ARPA file whose words are
    all vocabulary tokens or single characters is a char LM; a binary is a char LM for CJK/phone
    vocabularies."""
    if settings.lm_unit != "auto":
        return settings.lm_unit
    if not settings.lm:
        return "word"
    if is_arpa(settings.lm):
        words = set(arpa_unigrams(settings.lm)) - {"<s>", EOS, UNK}
        tokens = set(vocab.tokens)
        return "char" if words and all(w in tokens or len(w) == 1 for w in words) else "word"
    return "char" if vocab.unit in ("cjk", "phone") else "word"


def load_kenlm(path: str, words: Sequence[str]) -> tuple[Any, Any]:
    """flashlight's KenLM model of ``path`` and the dictionary of ``words`` (plus ``<unk>``)
    its scores are asked by."""
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    if not Path(path).is_file():
        raise DecodingError(f"{path}: language model not found; build one with 'wavtune lm "
                            f"build' or give an ARPA/KenLM binary file (a run's decoding.json "
                            f"may name it: --decoder greedy decodes without it)")
    dictionary = Dictionary(list(words) if UNK in words else [*words, UNK])
    try:
        with _quiet_stderr():
            return KenLM(str(path), dictionary), dictionary
    except RuntimeError as e:  # KenLM's C++ exceptions arrive as RuntimeError, with the reason
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise DecodingError(f"{path}: KenLM cannot load it ({reason}); give an ARPA or KenLM "
                            f"binary file") from None


class _Context(NamedTuple):
    """What the scorer knows about one hypothesis (a tuple: made millions of times per run)."""

    lm_state: Any  # flashlight LMState of the KenLM model, None without an LM
    partial: str = ""  # letters of the word being spelled (word LMs)
    scored: bool = False  # the partial word already left every LM word and was scored as <unk>
    match: tuple[int, ...] = ()  # tokens of a hotword prefix matched so far
    credit: float = 0.0  # hotword bonus given for ``match``, taken back if it breaks
    boundary: bool = True  # the last token ended a word (or nothing was emitted yet)


class _Hotwords:
    """Hotwords as token sequences: a prefix table (best weight per prefix) and the complete
    ones."""

    def __init__(self, hotwords: Sequence[Hotword], vocab: Vocabulary) -> None:
        self.prefixes: dict[tuple[int, ...], float] = {}
        self.complete: set[tuple[int, ...]] = set()
        for h in hotwords:
            ids = tuple(vocab.encode(h.text.strip()))
            if not ids or vocab.unk_id in ids:
                raise DecodingError(f"hotword {h.text!r}: empty or has characters outside the "
                                    f"model's vocabulary; give it as the model writes text")
            self.complete.add(ids)
            for n in range(1, len(ids) + 1):
                self.prefixes[ids[:n]] = max(self.prefixes.get(ids[:n], h.weight), h.weight)


class _Scorer:
    """The LM flashlight's decoder calls: see the module docstring. Built by :func:`_scorer`
    (flashlight's ``LM`` base class is imported lazily, so the class is made at run time)."""

    def __init__(self, vocab: Vocabulary, settings: DecoderSettings, unit: LMUnit,
                 lm_words: Sequence[str] | None) -> None:
        fl = _flashlight()
        self.fl = fl
        self.tokens = vocab.tokens
        self.delimiter = (
            vocab.tokens.index(WORD_DELIMITER) if WORD_DELIMITER in vocab.tokens else -1
        )
        self.cjk = [len(t) == 1 and is_cjk(t) for t in vocab.tokens]
        self.unit = unit
        self.alpha, self.beta = settings.alpha * LN10, settings.beta  # alpha on log10 scores
        self.hot = _Hotwords(settings.hotwords, vocab) if settings.hotwords else None
        self.kenlm: Any = None
        self.word_ids: dict[str, int] = {}
        self.unk = 0
        self.word_prefixes: set[str] | None = None
        self.token_ids: list[int] = []
        if settings.lm:
            self._load(settings.lm, unit, lm_words)
        self.cache: dict[Any, tuple[_Context, float]] = {}

    def _load(self, path: str, unit: LMUnit, lm_words: Sequence[str] | None) -> None:
        if unit == "char":
            words = list(self.tokens)
        elif Path(path).is_file() and is_arpa(path):
            words = [w for w in arpa_unigrams(path) if w not in ("<s>", EOS)]
            self.word_prefixes = {w[:i] for w in words for i in range(1, len(w) + 1)}
        elif lm_words:
            words = sorted(set(lm_words) | {UNK})
        elif Path(path).is_file():
            raise DecodingError(f"{path}: a KenLM binary word LM needs its word list; give the "
                                f"ARPA file instead, or use it from a run (its training words)")
        else:
            words = []
        self.kenlm, dictionary = load_kenlm(path, words)
        self.word_ids = {w: int(dictionary.get_index(w)) for w in words}
        self.unk = int(dictionary.get_index(UNK))
        self.token_ids = (
            [int(dictionary.get_index(t)) for t in self.tokens] if unit == "char" else []
        )

    # --- the flashlight LM interface ------------------------------------------------------
    def start(self, start_with_nothing: bool) -> Any:
        self.cache = {}  # states of the previous utterance are no longer referenced
        state = self.fl.LMState()
        lm_state = self.kenlm.start(False) if self.kenlm is not None else None
        self.cache[state] = (_Context(lm_state), 0.0)
        return state

    def score(self, state: Any, token: int) -> tuple[Any, float]:
        child = state.child(token)
        found = self.cache.get(child)
        if found is None:
            found = self._step(self.cache[state][0], token)
            self.cache[child] = found
        return child, found[1]

    def finish(self, state: Any) -> tuple[Any, float]:
        ctx = self.cache[state][0]
        score = 0.0
        lm_state = ctx.lm_state
        if self.kenlm is not None:
            if self.unit == "word" and ctx.partial:  # the last word has no delimiter after it
                if not ctx.scored:
                    lm_state, word = self.kenlm.score(lm_state, self._word(ctx.partial))
                    score += self.alpha * word
                score += self.beta
            lm_state, end = self.kenlm.finish(lm_state)
            score += self.alpha * end
        if ctx.match and ctx.match not in (self.hot.complete if self.hot else ()):
            score -= ctx.credit
        return state.child(len(self.tokens)), score

    # --- scoring ----------------------------------------------------------------------------
    def _word(self, word: str) -> int:
        return self.word_ids.get(word, self.unk)

    def _step(self, ctx: _Context, token: int) -> tuple[_Context, float]:
        score, lm_state, partial, scored = 0.0, ctx.lm_state, ctx.partial, ctx.scored
        is_delimiter = token == self.delimiter
        if self.kenlm is not None and self.unit == "char":
            lm_state, lp = self.kenlm.score(lm_state, self.token_ids[token])
            score += self.alpha * lp + (self.beta if is_delimiter or self.cjk[token] else 0.0)
        elif self.kenlm is not None:
            if is_delimiter:
                if partial and not scored:
                    lm_state, lp = self.kenlm.score(lm_state, self._word(partial))
                    score += self.alpha * lp
                score += self.beta if partial else 0.0
                partial, scored = "", False
            else:
                partial += self.tokens[token]
                if (
                    not scored
                    and self.word_prefixes is not None
                    and partial not in self.word_prefixes
                ):
                    # the spelling left every word the LM knows: score it as <unk> now, so the
                    # beam drops it early rather than at the word's end
                    lm_state, lp = self.kenlm.score(lm_state, self.unk)
                    score += self.alpha * lp
                    scored = True
        match, credit = ctx.match, ctx.credit
        if self.hot is not None:
            bonus, match, credit = self._hotword(ctx, token)
            score += bonus
        boundary = is_delimiter or self.cjk[token]
        return _Context(lm_state, partial, scored, match, credit, boundary), score

    def _hotword(self, ctx: _Context, token: int) -> tuple[float, tuple[int, ...], float]:
        """(bonus, new match, its credit) for emitting ``token`` after ``ctx``."""
        assert self.hot is not None
        extended = (*ctx.match, token)
        if ctx.match and extended in self.hot.prefixes:
            weight = self.hot.prefixes[extended]
            return weight, extended, ctx.credit + weight
        bonus = 0.0
        if ctx.match:  # the match ends here: keep its bonus only for a whole hotword
            whole = ctx.match in self.hot.complete and (
                token == self.delimiter or self.cjk[token] or self.cjk[ctx.match[-1]])
            if not whole:
                bonus -= ctx.credit
        starts = ctx.boundary or self.cjk[token]  # Latin hotwords start at a word's start
        if starts and (token,) in self.hot.prefixes:
            weight = self.hot.prefixes[(token,)]
            return bonus + weight, (token,), weight
        return bonus, (), 0.0


def _scorer_class() -> type:
    """``_Scorer`` mixed into flashlight's ``LM`` base, whose C++ decoder calls it back."""
    fl = _flashlight()

    class FlashlightScorer(_Scorer, fl.LM):  # type: ignore[misc, name-defined]
        def __init__(self, *args: Any) -> None:
            fl.LM.__init__(self)
            _Scorer.__init__(self, *args)

    return FlashlightScorer


class BeamDecoder:
    """CTC beam search (flashlight-text), optionally with a KenLM n-gram LM and hotwords.

    Hypotheses that reach the same text add their probabilities (CTC prefix beam search), so
    beam search can beat the best single path. Without an LM or hotwords it uses flashlight's
    ``ZeroLM``; a char LM without hotwords runs in C++ (flashlight's KenLM, which also merges
    hypotheses whose last n-1 tokens agree); word LMs and hotwords go through :class:`_Scorer`.
    ``decode`` takes ``[frames, vocab]`` logits (or log-probabilities); NaN raises
    ValueError. Not thread-safe: use one decoder per thread.
    """

    def __init__(self, vocab: Vocabulary, settings: DecoderSettings,
                 lm_words: Sequence[str] | None = None) -> None:
        self.vocab = vocab
        self.settings = settings
        self.lm_unit = resolve_lm_unit(settings, vocab)
        self.silence = vocab.tokens.index(WORD_DELIMITER) if WORD_DELIMITER in vocab.tokens \
            else vocab.pad_id  # flashlight starts hypotheses on it: '|', or the blank (phones)
        self.scorer: Any = None
        self.native_lm: Any = None
        if settings.lm and self._native(vocab):
            self.native_lm, _ = load_kenlm(settings.lm, vocab.tokens)
        elif settings.lm or settings.hotwords:
            self.scorer = _scorer_class()(vocab, settings, self.lm_unit, lm_words)
        self._build()

    def _native(self, vocab: Vocabulary) -> bool:
        """A char LM without hotwords needs no Python callback: flashlight's C++ KenLM scores
        every token and its silence score is the word bonus (no CJK: beta is per character
        there, which flashlight cannot express)."""
        return (self.lm_unit == "char" and not self.settings.hotwords
                and not any(len(t) == 1 and is_cjk(t) for t in vocab.tokens))

    def _build(self) -> None:
        fl, s = _flashlight(), self.settings
        if self.native_lm is not None:
            lm, weight, bonus = self.native_lm, s.alpha * LN10, s.beta  # scores are log10
        else:
            lm, weight, bonus = self.scorer or fl.ZeroLM(), 1.0 if self.scorer else 0.0, 0.0
        options = fl.LexiconFreeDecoderOptions(
            beam_size=s.beam_width,
            beam_size_token=min(s.token_beam or len(self.vocab), len(self.vocab)),
            beam_threshold=s.beam_threshold,
            lm_weight=weight,
            sil_score=bonus,
            log_add=True,
            criterion_type=fl.CriterionType.CTC,
        )
        self._decoder = fl.LexiconFreeDecoder(options, lm, self.silence, self.vocab.pad_id, [])

    def set_weights(self, alpha: float, beta: float) -> None:
        """Change the LM weight and word bonus in place (tuning re-decodes without reloading
        the LM)."""
        self.settings = replace(self.settings, alpha=alpha, beta=beta)
        if self.scorer is not None:
            self.scorer.alpha, self.scorer.beta = alpha * LN10, beta
        self._build()

    def log_probs(self, logits: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        """Per-frame log-softmax of ``logits`` ``[frames, vocab]`` (infinities clipped)."""
        x = np.asarray(logits, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.vocab):
            raise ValueError(f"logits of shape {x.shape}: expected [frames, {len(self.vocab)}]")
        if np.isnan(x).any():
            raise ValueError("logits contain NaN; the model's output is broken (check the "
                             "audio and the checkpoint)")
        x = np.clip(x, -LOGIT_LIMIT, LOGIT_LIMIT)
        x = x - x.max(axis=1, keepdims=True)
        x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
        return np.ascontiguousarray(x, dtype=np.float32)

    def decode(self, logits: npt.NDArray[np.float32]) -> Hypothesis:
        emissions = self.log_probs(logits)  # [frames, vocab]
        frames, size = emissions.shape
        if frames == 0:
            return Hypothesis("", ())
        results = self._decoder.decode(emissions.ctypes.data, frames, size)
        if not results:
            return Hypothesis("", ())
        path = results[0].tokens[1:-1]  # flashlight adds the start and end 'silence'
        ids = collapse(path, self.vocab.pad_id)
        return Hypothesis(self.vocab.decode(ids), tuple(ids))
