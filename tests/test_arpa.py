"""Pure-Python modified Kneser-Ney ARPA models (wavtune.decode.arpa), checked against hand-computed
values, the normalisation of every context's distribution, and KenLM reading the file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from wavtune.decode.arpa import (
    BOS,
    EOS,
    UNK,
    LanguageModelError,
    build_arpa,
    build_with_lmplz,
    estimate,
    is_arpa,
    read_arpa,
    sentence_units,
)


def _random_corpus(n: int = 300, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice("abcdefg") for _ in range(rng.randint(1, 8))] for _ in range(n)]


def test_two_sentence_bigram_matches_hand_computed_values() -> None:
    # <s> a b </s> / <s> a c </s>: counts of counts are too thin, so the fallback discounts
    # 0.5/1/1.5 apply. Unigram continuation counts a=1 b=1 c=1 </s>=2 (total 5), gamma 2.5/5,
    # 5 words with <unk>: p(a)=0.5/5+0.5/5=0.2, p(</s>)=1/5+0.1=0.3, p(<unk>)=0.1.
    # Context a: counts b=1 c=1, p(b|a)=0.5/2 + (1/2)*0.2 = 0.35, backoff(a)=0.5.
    # Context <s>: raw count a=2 (D2=1), p(a|<s>) = (2-1)/2 + (1/2)*0.2 = 0.6.
    model = estimate([["a", "b"], ["a", "c"]], order=2)
    assert 10 ** model.log10_prob("a") == pytest.approx(0.2)
    assert 10 ** model.log10_prob(EOS) == pytest.approx(0.3)
    assert 10 ** model.log10_prob(UNK) == pytest.approx(0.1)
    assert 10 ** model.log10_prob("b", ["a"]) == pytest.approx(0.35)
    assert 10 ** model.log10_prob("a", [BOS]) == pytest.approx(0.6)
    assert 10 ** model.backoff[0][("a",)] == pytest.approx(0.5)
    assert model.discounts[0] == (0.5, 1.0, 1.5)
    assert 10 ** model.log10_prob("never-seen", ["a"]) == pytest.approx(0.5 * 0.1)


@pytest.mark.parametrize("context", [(), ("a",), (BOS,), (BOS, "a"), ("a", "b", "c"),
                                     ("z", "q", "r"), ("g", "g")])
def test_every_context_distribution_sums_to_one(context: tuple[str, ...]) -> None:
    model = estimate(_random_corpus(), order=4)
    assert model.discounts[3] != (0.5, 1.0, 1.5)  # real discounts from counts of counts
    vocab = [w for w in model.vocabulary if w != BOS]
    assert sum(10 ** model.log10_prob(w, context) for w in vocab) == pytest.approx(1.0, abs=1e-9)


def test_written_file_reads_back_to_the_same_model(tmp_path: Path) -> None:
    model = estimate(_random_corpus(100), order=3)
    path = model.write(tmp_path / "lm.arpa")
    back = read_arpa(path)
    assert is_arpa(path) and back.order == 3
    for context in [(), ("a",), ("b", "c")]:
        for word in ("a", "d", EOS):
            assert back.log10_prob(word, context) == pytest.approx(
                model.log10_prob(word, context), abs=1e-5)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("\\data\\\nngram 1=10\n") and text.rstrip().endswith("\\end\\")


def test_kenlm_in_flashlight_reads_the_file_and_agrees(tmp_path: Path) -> None:
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    model = estimate(_random_corpus(), order=4)
    path = model.write(tmp_path / "lm.arpa")
    words = sorted(w for w in model.vocabulary if w not in (BOS, EOS))
    dictionary = Dictionary(words)
    kenlm = KenLM(str(path), dictionary)
    state = kenlm.start(False)
    history: list[str] = [BOS]
    for word in ["a", "b", "g", "a", "c"]:
        state, score = kenlm.score(state, dictionary.get_index(word))
        assert score == pytest.approx(model.log10_prob(word, history), abs=1e-5)
        history.append(word)
    _, end = kenlm.finish(state)
    assert end == pytest.approx(model.log10_prob(EOS, history), abs=1e-5)


def test_char_units_use_the_vocabulary_tokens() -> None:
    assert sentence_units("ab cd", "char") == ["a", "b", "|", "c", "d"]
    assert sentence_units("ab cd", "word") == ["ab", "cd"]
    assert sentence_units("北京", "char", "cjk") == ["北", "京"]
    assert sentence_units("h# sh iy", "char", "phone") == ["h#", "sh", "iy"]


def test_build_arpa_char_model_knows_every_letter(tmp_path: Path) -> None:
    model = build_arpa(["ab cd", "dab"], tmp_path / "c.arpa", order=3, unit="char")
    assert {"a", "b", "c", "d", "|"} <= model.vocabulary
    assert model.log10_prob("b", ["a"]) > model.log10_prob("c", ["a"])


def test_empty_corpus_and_bad_order_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(LanguageModelError, match="no words"):
        build_arpa(["", "  "], tmp_path / "x.arpa", order=2)
    with pytest.raises(LanguageModelError, match="order 0"):
        estimate([["a"]], order=0)


def test_read_arpa_names_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\n\\end\\\n", encoding="utf-8")
    with pytest.raises(LanguageModelError, match=r"bad.arpa:5"):
        read_arpa(bad)


def test_lmplz_engine_fails_clearly_when_absent(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LanguageModelError, match="lmplz on PATH.*kpu/kenlm"):
        build_with_lmplz(["a b"], tmp_path / "x.arpa", 2)
