"""Claim, at_least, at_most and claims_hold: the comparison, the report and the verdict."""

import math

import pytest

from toyalgos.core import Claim, at_least, at_most, claims_hold


def test_relations():
    assert at_least("x", 1.0, 1.0).holds and not at_least("x", 0.99, 1.0).holds
    assert at_most("x", 1.0, 1.0).holds and not at_most("x", 1.01, 1.0).holds


def test_a_nan_measurement_is_rejected():
    with pytest.raises(ValueError, match="value"):
        at_least("x", math.nan, 1.0)


def test_str_says_whether_it_holds():
    assert str(at_least("coverage", 0.95, 0.9)) == "[holds] coverage: 0.95 ≥ 0.9"
    assert str(at_most("tv", 0.2, 0.05)) == "[FAILS] tv: 0.2 ≤ 0.05"


def test_claims_hold_prints_all_and_is_false_on_a_failure(capsys):
    good, bad = at_least("a", 2, 1), at_most("b", 2, 1)
    assert claims_hold([good]) is True
    assert claims_hold([good, bad]) is False
    out = capsys.readouterr().out
    assert out.count("\n") == 3  # every claim is printed, not just the failures
    assert out.endswith("[FAILS] b: 2 ≤ 1\n")


def test_claims_hold_wants_claims():
    with pytest.raises(TypeError, match="Claim"):
        claims_hold([True])
    assert isinstance(at_least("a", 1, 0), Claim)
