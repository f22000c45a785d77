"""Correct test samples as bits, and McNemar's exact test (adsearch.correctness) on vectors built here."""

from __future__ import annotations

import numpy as np
import pytest

from adsearch import correctness
from adsearch.correctness import Paired, mcnemar_p, paired_test, record

LABELS = np.arange(20) % 4


def rec(hits) -> dict:
    return record(np.asarray(hits, dtype=bool), LABELS[: len(hits)])


def test_a_record_gives_back_its_bits_for_any_length():
    for n in (1, 7, 8, 9, 20):
        hits = np.random.default_rng(n).random(n) < 0.6
        r = record(hits, LABELS[:n])
        assert correctness.samples(r) == n and np.array_equal(correctness.bits(r), hits)
        assert correctness.accuracy(r) == pytest.approx(hits.mean())


def test_a_record_is_plain_text_a_tenth_of_a_byte_per_sample():
    r = record(np.ones(10_000, dtype=bool), np.zeros(10_000))
    n, split, packed = r.split(":")
    assert n == "10000" and len(split) == 16 and len(packed) == 1668  # 1,250 bytes in base64


def test_a_torn_record_is_an_error_naming_what_is_wrong():
    r = rec([True] * 20)
    with pytest.raises(ValueError, match="3 bytes of bits for 25 samples"):
        correctness.bits("25" + r[2:])
    with pytest.raises(ValueError, match="not a record"):
        correctness.bits("3:abc")
    with pytest.raises(ValueError, match="not a record"):
        correctness.bits(r[:-3] + "!!!")
    assert correctness.samples("3:abc") is None and paired_test(r, "3:abc") is None
    with pytest.raises(ValueError, match="4 correctness bits for 3 labels"):
        record([True] * 4, [0, 1, 2])


def test_identical_trials_do_not_differ():
    a = rec([True, False] * 10)
    p = paired_test(a, a)
    assert p == Paired(samples=20, a_only=0, b_only=0, p_value=1.0) and not p.significant


def test_one_flip_is_far_from_significant():
    base = [True] * 15 + [False] * 5
    flipped = [False] + base[1:]
    p = paired_test(rec(base), rec(flipped))
    assert (p.a_only, p.b_only) == (1, 0)
    assert p.p_value == 1.0 and not p.significant  # one discordant sample: 2 * 0.5 ** 1, capped at 1
    assert p.gap == pytest.approx(0.05)


def test_a_clear_difference_is_significant_with_the_binomial_p_value():
    # A right on 9 samples B got wrong, B right on none A got wrong: p = 2 * 0.5 ** 9 = 0.0039
    a = rec([True] * 18 + [False] * 2)
    b = rec([False] * 9 + [True] * 9 + [False] * 2)
    p = paired_test(a, b)
    assert (p.a_only, p.b_only) == (9, 0)
    assert p.p_value == pytest.approx(2 * 0.5 ** 9) and p.significant
    assert p.text() == "McNemar p = 0.0039, significant at 5%"
    assert paired_test(b, a).p_value == p.p_value and paired_test(b, a).gap == -p.gap
    many = paired_test(record(np.ones(40, dtype=bool), np.zeros(40)), record(np.zeros(40, dtype=bool), np.zeros(40)))
    assert many.text() == "McNemar p < 0.001, significant at 5%"


def test_the_p_value_is_the_two_sided_binomial_of_the_discordant_samples():
    # 7 against 2: sum of C(9, k) for k <= 2 and k >= 7, over 2 ** 9 = 2 * 46 / 512
    assert mcnemar_p(7, 2) == pytest.approx(2 * 46 / 512)
    assert mcnemar_p(0, 0) == 1.0
    assert correctness.p_text(0.0312) == "0.031" and correctness.p_text(0.42) == "0.42"
    assert correctness.p_text(2e-6) == "<0.001" and correctness.p_text(0.0039) == "0.0039" and correctness.p_text(1.0) == "1"


def test_trials_on_different_test_samples_are_not_paired():
    a = rec([True] * 20)
    other_split = record(np.ones(20, dtype=bool), LABELS[::-1].copy())
    assert paired_test(a, other_split) is None
    assert paired_test(a, None) is None and paired_test(None, a) is None
    assert paired_test(a, rec([True] * 19)) is None  # another number of samples
