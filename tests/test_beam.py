"""Beam search with LMs and hotwords (wavtune.decode.beam) on hand-built frame probabilities whose
best paths are known, and fuzzed logits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from wavtune.data.vocab import Vocabulary
from wavtune.decode.arpa import build_arpa
from wavtune.decode.beam import BeamDecoder
from wavtune.decode.greedy import GreedyDecoder
from wavtune.decode.registry import make_decoder
from wavtune.decode.settings import DecoderSettings, DecodingError, Hotword

VOCAB = Vocabulary.build(["abc d"])  # [PAD]=0 (blank), [UNK]=1, |=2, a=3, b=4, c=5, d=6
B, SP, A, BB, C, D = 0, 2, 3, 4, 5, 6
BEAM = DecoderSettings("beam", beam_width=16)


def frames(*rows: dict[int, float], vocab: Vocabulary = VOCAB) -> np.ndarray:
    """Log-probabilities ``[frames, vocab]``: each row's given ids share its mass as stated, the
    rest of the vocabulary gets a tiny remainder."""
    out = np.full((len(rows), len(vocab)), 1e-4)
    for i, row in enumerate(rows):
        for token, p in row.items():
            out[i, token] = p
    logits: np.ndarray = np.log(out / out.sum(axis=1, keepdims=True)).astype(np.float32)
    return logits


def spell(text: str, vocab: Vocabulary = VOCAB, p: float = 0.9) -> list[dict[int, float]]:
    """Confident frames for ``text``: each token then a blank."""
    rows: list[dict[int, float]] = []
    for token in vocab.encode(text):
        rows += [{token: p, B: 1 - p}, {B: p, token: 1 - p}]
    return rows


def test_beam_sums_paths_and_beats_the_best_single_path() -> None:
    # two frames, blank 0.6 / 'a' 0.4 each: the best path is blank-blank (text "", p=0.36), but
    # "a" has three paths (a-, -a, aa) worth 0.24+0.24+0.16 = 0.64
    logits = frames({B: 0.6, A: 0.4}, {B: 0.6, A: 0.4})
    assert GreedyDecoder(VOCAB).decode(logits).text == ""
    assert BeamDecoder(VOCAB, BEAM).decode(logits).text == "a"


def test_beam_without_lm_matches_greedy_on_confident_frames() -> None:
    logits = frames(*spell("cab dab"))
    assert BeamDecoder(VOCAB, BEAM).decode(logits) == GreedyDecoder(VOCAB).decode(logits)


def _ambiguous_cab(p: float = 0.9, tail: bool = True) -> np.ndarray:
    """'ca?' whose last letter is d (0.55) or b (0.45): greedy says 'cad'. ``tail``: a final
    mostly-blank frame (where a decoder could still add a letter)."""
    rows = [*spell("ca", p=p), {D: 0.55, BB: 0.45}]
    return frames(*rows, *([{B: 0.9, D: 0.05, BB: 0.05}] if tail else []))


def test_word_lm_fixes_an_ambiguous_letter(tmp_path: Path) -> None:
    lm = tmp_path / "words.arpa"
    build_arpa(["cab", "a cab", "cab dab", "dab cab"] * 5, lm, order=2)
    logits = _ambiguous_cab()
    assert GreedyDecoder(VOCAB).decode(logits).text == "cad"
    decoder = BeamDecoder(VOCAB, DecoderSettings("beam", lm=str(lm)))
    assert decoder.lm_unit == "word"
    assert decoder.decode(logits).text == "cab"
    # alpha=0 turns the LM off again: acoustics decide
    assert (
        BeamDecoder(VOCAB, DecoderSettings("beam", lm=str(lm), alpha=0.0)).decode(logits).text
        == "cad"
    )


def test_char_lm_fixes_an_ambiguous_letter(tmp_path: Path) -> None:
    lm = tmp_path / "chars.arpa"
    build_arpa(["cab", "ab cab", "bab"] * 5, lm, order=3, unit="char")
    decoder = BeamDecoder(VOCAB, DecoderSettings("beam", lm=str(lm)))
    assert decoder.lm_unit == "char"
    assert decoder.decode(_ambiguous_cab()).text == "cab"


def test_native_char_lm_agrees_with_the_python_callback(tmp_path: Path) -> None:
    # without hotwords a char LM runs in flashlight's C++ (KenLM scores every token, beta is the
    # delimiter's score); a weight-0 hotword forces wavtune's Python callback. They differ only
    # in recombination (C++ merges hypotheses whose last n-1 tokens agree), so on speech-like
    # frames they give the same text
    lm = tmp_path / "chars.arpa"
    build_arpa(["cab", "ab cab", "bab", "dab cd"] * 5, lm, order=3, unit="char")
    settings = DecoderSettings("beam", beam_width=8, lm=str(lm), alpha=0.8, beta=0.5)
    native = BeamDecoder(VOCAB, settings)
    python = BeamDecoder(VOCAB, replace(settings, hotwords=(Hotword("a", 0.0),)))
    assert native.native_lm is not None and python.scorer is not None
    rng = np.random.default_rng(0)
    for text in ("cab", "ab cab", "dab cd", "bad", "cc dd"):
        for _ in range(4):
            logits = frames(*spell(text, p=float(rng.uniform(0.5, 0.95))))
            logits += rng.normal(0, 0.5, logits.shape).astype(np.float32)
            assert native.decode(logits) == python.decode(logits)
    assert native.decode(_ambiguous_cab()).text == "cab"
    native.set_weights(0.0, 0.0)
    assert native.decode(_ambiguous_cab()).text == "cad"


def test_hotword_changes_the_result_and_weight_zero_does_not() -> None:
    logits = _ambiguous_cab()
    hot = BeamDecoder(VOCAB, DecoderSettings("beam", hotwords=(Hotword("cab", 2.0),)))
    assert hot.decode(logits).text == "cab"
    cold = BeamDecoder(VOCAB, DecoderSettings("beam", hotwords=(Hotword("cab", 0.0),)))
    assert cold.decode(logits).text == "cad"


def test_half_matched_hotword_gives_no_bonus() -> None:
    # "cabd" is a hotword: "cab" is only its prefix, so the bonus is taken back and the
    # acoustics' "cad" stays (no frame is left to finish "cabd")
    logits = _ambiguous_cab(tail=False)
    decoder = BeamDecoder(VOCAB, DecoderSettings("beam", hotwords=(Hotword("cabd", 1.0),)))
    assert decoder.decode(logits).text == "cad"
    whole = BeamDecoder(VOCAB, DecoderSettings("beam", hotwords=(Hotword("cab", 1.0),)))
    assert whole.decode(logits).text == "cab"  # the same weight flips a whole word


def test_hotword_matches_whole_words_only() -> None:
    # "ab" inside "cab" is not the hotword "ab": no bonus, so the ambiguous "cad" stays
    # (dropping the confident "c" to make the word "ab" costs more than the bonus)
    decoder = BeamDecoder(VOCAB, DecoderSettings("beam", hotwords=(Hotword("ab", 1.5),)))
    assert decoder.decode(_ambiguous_cab(p=0.99)).text == "cad"
    decoder = BeamDecoder(VOCAB, DecoderSettings("beam", hotwords=(Hotword("cab", 1.5),)))
    assert decoder.decode(_ambiguous_cab(p=0.99)).text == "cab"


def test_hotword_outside_the_vocabulary_is_a_clear_error() -> None:
    with pytest.raises(DecodingError, match="hotword 'xyz'"):
        BeamDecoder(VOCAB, DecoderSettings("beam", hotwords=(Hotword("xyz"),)))


def test_hotword_spec_parsing() -> None:
    assert Hotword.parse("cab") == Hotword("cab")
    assert Hotword.parse("ab cd:2.5") == Hotword("ab cd", 2.5)
    assert Hotword.parse("a:b") == Hotword("a:b")


CJK = Vocabulary.build(["北京 上海 北经"], unit="cjk")


def test_cjk_character_lm_fixes_an_ambiguous_character(tmp_path: Path) -> None:
    lm = tmp_path / "zh.arpa"
    build_arpa(["我在北京", "北京很大", "去北京"] * 5, lm, order=3, unit="char", text_unit="cjk")
    _bei, jing, jing2 = CJK.encode("北京经")
    logits = frames(*spell("北", CJK), {jing2: 0.55, jing: 0.45}, {B: 0.9, jing: 0.05, jing2: 0.05},
                    vocab=CJK)
    assert GreedyDecoder(CJK).decode(logits).text == "北经"
    decoder = BeamDecoder(CJK, DecoderSettings("beam", lm=str(lm)))
    assert decoder.lm_unit == "char"
    assert decoder.decode(logits).text == "北京"
    hot = BeamDecoder(CJK, DecoderSettings("beam", hotwords=(Hotword("北京", 2.0),)))
    assert hot.decode(logits).text == "北京"


def test_missing_lm_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DecodingError, match="nope.arpa: language model not found"):
        BeamDecoder(VOCAB, DecoderSettings("beam", lm=str(tmp_path / "nope.arpa"), lm_unit="word"))


def test_unreadable_lm_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_text("garbage\n", encoding="utf-8")
    with pytest.raises(DecodingError, match="bad.bin: KenLM cannot load it"):
        BeamDecoder(VOCAB, DecoderSettings("beam", lm=str(bad), lm_unit="char"))
    with pytest.raises(DecodingError, match="binary word LM needs its word list"):
        BeamDecoder(VOCAB, DecoderSettings("beam", lm=str(bad), lm_unit="word"))


def test_make_decoder_picks_the_kind() -> None:
    assert isinstance(make_decoder(VOCAB, DecoderSettings()), GreedyDecoder)
    assert isinstance(make_decoder(VOCAB, BEAM), BeamDecoder)


def test_nan_logits_raise_a_clear_value_error() -> None:
    logits = frames(*spell("ab"))
    logits[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        BeamDecoder(VOCAB, BEAM).decode(logits)


@pytest.fixture(scope="module")
def fuzz_decoders(tmp_path_factory: pytest.TempPathFactory) -> list[BeamDecoder]:
    lm = tmp_path_factory.mktemp("lm") / "w.arpa"
    build_arpa(["ab cd", "dab", "cab a"], lm, order=3)
    return [BeamDecoder(VOCAB, DecoderSettings("beam", beam_width=4)),
            BeamDecoder(VOCAB, DecoderSettings("beam", beam_width=4, lm=str(lm),
                                               hotwords=(Hotword("cab"),)))]


@settings(max_examples=60, deadline=None)
@given(logits=arrays(np.float32, st.tuples(st.integers(0, 25), st.just(len(VOCAB))),
                     elements=st.floats(width=32, allow_nan=False)),  # +-inf included
       which=st.integers(0, 1))
def test_random_logits_never_crash(fuzz_decoders: list[BeamDecoder], logits: np.ndarray,
                                   which: int) -> None:
    hyp = fuzz_decoders[which].decode(logits)
    assert VOCAB.pad_id not in hyp.ids
    assert len(hyp.ids) <= len(logits)
    assert hyp.text == VOCAB.decode(hyp.ids)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(2, 4), n=st.integers(0, 12), seed=st.integers(0, 2**16))
def test_tiny_vocabularies_never_crash(size: int, n: int, seed: int) -> None:
    vocab = Vocabulary.build(["ab"[: size - 2 or 1]], unit="phone") if size == 2 else \
        Vocabulary.build(["ab"[: size - 3 or 1]])
    logits = np.random.default_rng(seed).normal(0, 3, (n, len(vocab))).astype(np.float32)
    hyp = BeamDecoder(vocab, DecoderSettings("beam", beam_width=2)).decode(logits)
    assert all(0 < i < len(vocab) for i in hyp.ids)


def test_decoding_json_round_trip_and_overrides(tmp_path: Path) -> None:
    from wavtune.decode.runfile import load_decoding, save_decoding
    from wavtune.decode.settings import with_overrides

    (tmp_path / "lm").mkdir()
    inside = DecoderSettings("beam", lm=str(tmp_path / "lm" / "w.arpa"), lm_unit="word", alpha=1.5,
                             hotwords=(Hotword("cab", 2.0),))
    save_decoding(tmp_path, inside)
    assert '"lm": "lm/w.arpa"' in (tmp_path / "decoding.json").read_text()
    assert load_decoding(tmp_path) == inside
    assert load_decoding(tmp_path / "lm") is None
    assert with_overrides(inside, decoder="greedy").kind == "greedy"
    assert with_overrides(DecoderSettings(), hotwords=[Hotword("ab")]).kind == "beam"
    changed = with_overrides(inside, lm="/x.arpa", beta=3.0)
    assert (changed.lm, changed.lm_unit, changed.beta, changed.alpha) == (
        "/x.arpa",
        "auto",
        3.0,
        1.5,
    )
    assert changed.name == "beam 32 + n-gram LM" and inside.name == "beam 32 + word LM"
