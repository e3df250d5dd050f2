"""Tests for wavtune.scoring.metrics: hand-computed cases, seed-card formats and property tests."""

from __future__ import annotations

import math

import jiwer
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wavtune.scoring.bootstrap import Interval, bootstrap_accuracy_ci, bootstrap_ci
from wavtune.scoring.metrics import (
    SCORE_UNITS,
    Averages,
    ClassScores,
    ErrorRate,
    cer,
    classification_report,
    combine,
    edit_ops,
    mer,
    per,
    per_utterance,
    tokenize,
    utterance_errors,
    wer,
)

PROPERTY = settings(max_examples=60, deadline=None)


# --------------------------------------------------------------------------- error rates


def test_wer_hand_case_one_substitution_one_insertion() -> None:
    result = wer(["a b c"], ["a x c d"])
    assert result == ErrorRate(
        rate=2 / 3, substitutions=1, deletions=0, insertions=1, hits=2, reference_units=3
    )
    assert result.errors == 2


def test_wer_is_corpus_level_not_mean_of_utterances() -> None:
    # utterance 1: 0/3, utterance 2: 1 sub + 1 del over 2 words -> corpus 2/5, not mean(0, 1)
    result = wer(["a b c", "d e"], ["a b c", "x"])
    assert (result.substitutions, result.deletions, result.insertions) == (1, 1, 0)
    assert result.reference_units == 5
    assert result.rate == pytest.approx(0.4)


def test_wer_ignores_extra_whitespace() -> None:
    assert wer([" a\tb  c "], ["a b c"]).rate == 0.0


def test_cer_counts_single_spaces_between_words() -> None:
    result = cer(["ab cd"], ["abcd"])  # the space is a deleted character
    assert (result.deletions, result.reference_units, result.rate) == (1, 5, 0.2)


def test_cer_collapses_repeated_and_edge_whitespace() -> None:
    result = cer(["ab cd"], ["  ab   ce "])  # same as "ab ce": one substitution
    assert (result.substitutions, result.errors, result.reference_units) == (1, 1, 5)


def test_cer_hand_case() -> None:
    # "abc de" -> "abd e": a b hit, c->d, space hit, d deleted, e hit: 2 edits over 6 chars
    result = cer(["abc de"], ["abd e"])
    assert result.errors == 2
    assert result.reference_units == 6
    assert result.rate == pytest.approx(2 / 6)
    assert result.rate == pytest.approx(jiwer.cer("abc de", "abd e"))


def test_mer_code_switched() -> None:
    # [我, 爱, 你, hello] vs [我, 爱, hello, world]: two edits either way over 4 units
    result = mer(["我爱你 hello"], ["我爱 hello world"])
    assert result.reference_units == 4
    assert result.hits >= 2
    assert result.errors == 2
    assert result.rate == 0.5


def test_mer_treats_each_cjk_character_as_a_word() -> None:
    assert tokenize("我爱你hello world", "mixed") == ["我", "爱", "你", "hello", "world"]
    assert wer(["我爱你"], ["我恨你"]).rate == 1.0  # one 'word' for WER
    assert mer(["我爱你"], ["我恨你"]).rate == pytest.approx(1 / 3)


TIMIT_FOLD = {"ax": "ah", "ao": "aa"}


def fold_timit(phones: list[str]) -> list[str]:
    return [TIMIT_FOLD.get(p, p) for p in phones if p != "h#"]


def test_per_without_and_with_folding() -> None:
    refs, hyps = ["h# sh ax n h#"], ["sh ah n"]
    plain = per(refs, hyps)  # h# deleted twice, ax -> ah
    assert (plain.substitutions, plain.deletions, plain.reference_units) == (1, 2, 5)
    assert plain.rate == pytest.approx(3 / 5)
    folded = per(refs, hyps, fold=fold_timit)
    assert folded.rate == 0.0
    assert folded.reference_units == 3


def test_phone_units_are_multi_character() -> None:
    result = per(["sh iy"], ["s iy"])
    assert (result.substitutions, result.reference_units) == (1, 2)


def test_empty_reference_and_empty_hypothesis_is_no_error() -> None:
    assert wer([""], [""]) == ErrorRate(0.0, 0, 0, 0, 0, 0)
    assert wer([], []) == ErrorRate(0.0, 0, 0, 0, 0, 0)


def test_empty_reference_with_words_counts_insertions_rate_is_count() -> None:
    result = wer([""], ["a b"])
    assert (result.insertions, result.reference_units, result.rate) == (2, 0, 2.0)
    assert math.isfinite(result.rate)
    mixed = wer(["", "a"], ["x y", "a"])  # empty refs add insertions but no units
    assert mixed.rate == 2.0
    assert mixed.rate == jiwer.wer(["", "a"], ["x y", "a"])


def test_length_mismatch_names_both_lengths() -> None:
    with pytest.raises(ValueError, match=r"refs has 2 items but hyps has 1"):
        wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match=r"3 items but hyps has 0"):
        cer(["a", "b", "c"], [])


def test_single_string_instead_of_list_is_rejected() -> None:
    with pytest.raises(TypeError, match="list of strings"):
        wer("a b", "a b")  # a str is a Sequence[str], so only a runtime check catches it


def test_fold_only_for_phones() -> None:
    with pytest.raises(ValueError, match="fold is only used for unit='phone'"):
        utterance_errors("a", "a", unit="word", fold=fold_timit)


def test_unknown_unit_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown unit 'syllable'"):
        utterance_errors("a", "a", unit="syllable")  # type: ignore[arg-type]


def test_utterance_errors_each_unit() -> None:
    assert utterance_errors("a b c", "a x c d").rate == pytest.approx(2 / 3)
    assert utterance_errors("ab", "ac", unit="char").rate == 0.5
    assert utterance_errors("我爱你", "我爱", unit="mixed").deletions == 1
    assert utterance_errors("h# aa", "aa", unit="phone", fold=fold_timit).rate == 0.0


def test_per_utterance_combines_to_corpus_rate() -> None:
    refs, hyps = ["a b c", "d e", ""], ["a x c d", "d", "z"]
    items = per_utterance(refs, hyps)
    assert [i.errors for i in items] == [2, 1, 1]
    assert combine(items) == wer(refs, hyps)


def test_edit_ops_counts_pairs_insertions_deletions() -> None:
    counts = edit_ops(
        ["the cat sat", "a dog", "cat"],
        ["the hat sat on", "dog", "hat"],
    )
    assert counts.substitutions == {("cat", "hat"): 2}
    assert counts.substitutions.most_common(1) == [(("cat", "hat"), 2)]
    assert counts.insertions == {"on": 1}
    assert counts.deletions == {"a": 1}


def test_edit_ops_char_unit() -> None:
    counts = edit_ops(["abc"], ["abd"], unit="char")
    assert counts.substitutions == {("c", "d"): 1}


def test_many_distinct_units_align() -> None:
    ref = " ".join(f"w{i}" for i in range(60_000))  # more units than the BMP below surrogates
    hyp = ref.replace("w59999", "x")
    assert wer([ref], [hyp]).substitutions == 1


# --------------------------------------------------------------------------- classification


def test_classification_report_hand_example() -> None:
    # 'c' is never predicted, 'd' only predicted (zero support)
    y_true = ["a", "a", "a", "b", "b", "c", "c"]
    y_pred = ["a", "a", "b", "b", "d", "a", "a"]
    report = classification_report(y_true, y_pred)
    assert report.labels == ("a", "b", "c", "d")
    assert report.confusion == ((2, 1, 0, 0), (0, 1, 0, 1), (2, 0, 0, 0), (0, 0, 0, 0))
    expected = (
        ClassScores("a", 0.5, 2 / 3, 4 / 7, 3),
        ClassScores("b", 0.5, 0.5, 0.5, 2),
        ClassScores("c", 0.0, 0.0, 0.0, 2),
        ClassScores("d", 0.0, 0.0, 0.0, 0),
    )
    for got, want in zip(report.per_class, expected):
        assert got.label == want.label and got.support == want.support
        assert (got.precision, got.recall, got.f1) == pytest.approx(
            (want.precision, want.recall, want.f1)
        )
    assert report.accuracy == pytest.approx(3 / 7)
    assert report.macro.support == 7 and report.weighted.support == 7
    assert (report.macro.precision, report.macro.recall, report.macro.f1) == pytest.approx(
        (0.25, 7 / 24, 15 / 56)
    )
    assert (report.weighted.precision, report.weighted.recall, report.weighted.f1) == (
        pytest.approx((5 / 14, 3 / 7, 19 / 49))
    )


def test_confusion_rows_are_true_labels_columns_predictions() -> None:
    report = classification_report(["x", "x", "x"], ["y", "y", "x"])
    assert report.labels == ("x", "y")
    assert report.confusion == ((1, 2), (0, 0))


def test_explicit_labels_fix_order_and_add_unseen_classes() -> None:
    report = classification_report(["b", "a"], ["b", "a"], labels=["b", "a", "z"])
    assert report.labels == ("b", "a", "z")
    assert report.confusion == ((1, 0, 0), (0, 1, 0), (0, 0, 0))
    assert report.per_class[2] == ClassScores("z", 0.0, 0.0, 0.0, 0)
    assert report.macro.f1 == pytest.approx(2 / 3)


def test_explicit_labels_must_cover_data_and_be_unique() -> None:
    with pytest.raises(ValueError, match=r"labels \['c'\] occur in y_true/y_pred"):
        classification_report(["a", "c"], ["a", "a"], labels=["a"])
    with pytest.raises(ValueError, match=r"\['a'\] more than once"):
        classification_report(["a"], ["a"], labels=["a", "a"])


def test_default_label_order_is_numeric_for_integer_labels() -> None:
    labels = ["10", "2", "b", "a", "0"]
    assert classification_report(labels, labels).labels == ("0", "2", "10", "a", "b")


def test_empty_inputs_give_zero_report() -> None:
    report = classification_report([], [])
    assert report.labels == () and report.confusion == ()
    assert report.accuracy == 0.0
    assert report.macro == Averages(0.0, 0.0, 0.0, 0)


# The final evaluation of seed card 004 (four classes, 98 items).
SEED_CONFUSION = [[30, 1, 0, 0], [0, 29, 1, 0], [0, 0, 22, 0], [0, 1, 0, 14]]
SEED_MTRIX = [[0, 1, 2, 3], [0, 30, 1, 0, 0], [1, 0, 29, 1, 0], [2, 0, 0, 22, 0], [3, 0, 1, 0, 14]]
SEED_VALUES = {
    "0 Precision": 1.0, "0 Recall": 0.9677, "0 F1-score": 0.9836, "0 Support": 31,
    "1 Precision": 0.9355, "1 Recall": 0.9667, "1 F1-score": 0.9508, "1 Support": 30,
    "2 Precision": 0.9565, "2 Recall": 1.0, "2 F1-score": 0.9778, "2 Support": 22,
    "3 Precision": 1.0, "3 Recall": 0.9333, "3 F1-score": 0.9655, "3 Support": 15,
    "Accuracy": 0.9694,
    "Macro avg Precision": 0.9730, "Macro avg Recall": 0.9669, "Macro avg F1-score": 0.9694,
    "Macro avg Support": 98,
    "Weighted avg Precision": 0.9705, "Weighted avg Recall": 0.9694,
    "Weighted avg F1-score": 0.9695, "Weighted avg Support": 98,
}  # fmt: skip


def _items_from_confusion(confusion: list[list[int]]) -> tuple[list[str], list[str]]:
    y_true: list[str] = []
    y_pred: list[str] = []
    for t, row in enumerate(confusion):
        for p, n in enumerate(row):
            y_true += [str(t)] * n
            y_pred += [str(p)] * n
    return y_true, y_pred


def test_flat_dict_matches_seed_card_keys_and_values() -> None:
    report = classification_report(*_items_from_confusion(SEED_CONFUSION))
    flat = report.as_flat_dict()
    assert list(flat) == list(SEED_VALUES)
    for key, value in SEED_VALUES.items():
        assert round(flat[key], 4) == value, key
    assert isinstance(flat["0 Support"], int)


def test_confusion_as_seed_rows_matches_seed_mtrix() -> None:
    report = classification_report(*_items_from_confusion(SEED_CONFUSION))
    assert report.confusion_as_seed_rows() == SEED_MTRIX


def test_seed_rows_keep_non_integer_labels_as_strings() -> None:
    rows = classification_report(
        ["yes", "no", "007"], ["yes", "yes", "007"]
    ).confusion_as_seed_rows()
    assert rows[0] == ["007", "no", "yes"]
    assert rows[2] == ["no", 0, 0, 1]


# --------------------------------------------------------------------------- bootstrap


def _synthetic_items(n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    units = rng.integers(1, 20, size=n)
    errors = rng.binomial(units, 0.2)
    return [(int(e), int(u)) for e, u in zip(errors, units)]


def test_bootstrap_contains_point_and_narrows_with_more_data() -> None:
    small = bootstrap_ci(_synthetic_items(100, seed=1))
    large = bootstrap_ci(_synthetic_items(2_000, seed=1))
    for interval in (small, large):
        assert interval.low <= interval.point <= interval.high
    assert large.high - large.low < (small.high - small.low) / 2
    items = _synthetic_items(100, seed=1)
    assert small.point == pytest.approx(sum(e for e, _ in items) / sum(u for _, u in items))


def test_bootstrap_is_deterministic_per_seed() -> None:
    items = _synthetic_items(50, seed=3)
    assert bootstrap_ci(items, seed=7) == bootstrap_ci(items, seed=7)
    assert bootstrap_ci(items, seed=7) != bootstrap_ci(items, seed=8)


def test_bootstrap_wider_for_higher_confidence() -> None:
    items = _synthetic_items(200, seed=2)
    narrow, wide = bootstrap_ci(items, confidence=0.5), bootstrap_ci(items, confidence=0.99)
    assert wide.low <= narrow.low and narrow.high <= wide.high


def test_bootstrap_degenerate_and_invalid_inputs() -> None:
    assert bootstrap_ci([(0, 5), (0, 3)]) == Interval(0.0, 0.0, 0.0)
    assert bootstrap_ci([(2, 0)]).point == 2.0  # no units: same convention as ErrorRate.rate
    with pytest.raises(ValueError, match="at least one utterance"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="confidence=1.5"):
        bootstrap_ci([(1, 2)], confidence=1.5)
    with pytest.raises(ValueError, match="n_resamples=0"):
        bootstrap_ci([(1, 2)], n_resamples=0)
    with pytest.raises(ValueError, match="one \\(errors, units\\) pair"):
        bootstrap_ci([(1, 2, 3)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="negative"):
        bootstrap_ci([(-1, 2)])


def test_bootstrap_accuracy() -> None:
    y_true = ["a"] * 100
    y_pred = ["a"] * 80 + ["b"] * 20
    interval = bootstrap_accuracy_ci(y_true, y_pred)
    assert interval.point == 0.8
    assert 0.0 <= interval.low < 0.8 < interval.high <= 1.0
    with pytest.raises(ValueError, match="y_true has 2 items but y_pred has 1"):
        bootstrap_accuracy_ci(["a", "b"], ["a"])


def test_bootstrap_handles_many_items() -> None:
    interval = bootstrap_ci(_synthetic_items(10_000, seed=0), n_resamples=200)
    assert interval.low <= interval.point <= interval.high
    assert interval.high - interval.low < 0.02


# --------------------------------------------------------------------------- properties

texts = st.text(alphabet="ab 我你\tX", max_size=12)
text_lists = st.integers(0, 4).flatmap(
    lambda n: st.tuples(
        st.lists(texts, min_size=n, max_size=n), st.lists(texts, min_size=n, max_size=n)
    )
)


@PROPERTY
@given(text_lists, st.sampled_from(SCORE_UNITS))
def test_random_text_never_raises_and_counts_are_consistent(
    pair: tuple[list[str], list[str]], unit: str
) -> None:
    refs, hyps = pair
    items = per_utterance(refs, hyps, unit)  # type: ignore[arg-type]
    for ref, hyp, item in zip(refs, hyps, items):
        assert item.rate >= 0 and math.isfinite(item.rate)
        assert item.reference_units == len(tokenize(ref, unit))  # type: ignore[arg-type]
        assert item.hits + item.substitutions + item.insertions == len(tokenize(hyp, unit))  # type: ignore[arg-type]
    assert combine(items).rate >= 0


@PROPERTY
@given(st.lists(texts, max_size=4), st.sampled_from(SCORE_UNITS))
def test_identical_reference_and_hypothesis_score_zero(refs: list[str], unit: str) -> None:
    result = combine(per_utterance(refs, refs, unit))  # type: ignore[arg-type]
    assert result.rate == 0.0 and result.errors == 0
    assert wer(refs, refs).rate == 0.0


@PROPERTY
@given(text_lists)
def test_wer_and_cer_agree_with_jiwer_on_normalised_text(pair: tuple[list[str], list[str]]) -> None:
    refs = [" ".join(t.split()) for t in pair[0]]
    hyps = [" ".join(t.split()) for t in pair[1]]
    if not refs:
        return
    assert wer(refs, hyps).rate == pytest.approx(jiwer.wer(refs, hyps))
    assert cer(refs, hyps).rate == pytest.approx(jiwer.cer(refs, hyps))


labels_st = st.sampled_from(["0", "1", "2", "cat"])


@PROPERTY
@given(st.integers(0, 30).flatmap(lambda n: st.tuples(
    st.lists(labels_st, min_size=n, max_size=n), st.lists(labels_st, min_size=n, max_size=n)
)))  # fmt: skip
def test_classification_properties(pair: tuple[list[str], list[str]]) -> None:
    y_true, y_pred = pair
    report = classification_report(y_true, y_pred)
    assert 0.0 <= report.accuracy <= 1.0
    assert sum(map(sum, report.confusion)) == len(y_true)
    assert [sum(row) for row in report.confusion] == [c.support for c in report.per_class]
    scores = [(c.precision, c.recall, c.f1) for c in report.per_class] + [
        (a.precision, a.recall, a.f1) for a in (report.macro, report.weighted)
    ]
    assert all(0.0 <= value <= 1.0 for triple in scores for value in triple)
    if y_true:
        correct = sum(t == p for t, p in zip(y_true, y_pred))
        assert report.accuracy == pytest.approx(correct / len(y_true))
        assert report.weighted.recall == pytest.approx(report.accuracy)
