"""The GRPO notebook's claims hold on good runs and fail on the known-bad ones."""

import math

import numpy as np
import pytest

from toyalgos.lm.claims import (
    fewer_samples_than,
    format_before_accuracy,
    rl_final_accuracy,
    rl_start_accuracy,
)


def test_rl_start_accuracy_holds_near_zero():
    assert rl_start_accuracy(0.0).holds


def test_rl_start_accuracy_fails_on_a_policy_that_already_solves_the_task():
    assert not rl_start_accuracy(0.93).holds


def test_rl_final_accuracy_holds_after_rl():
    assert rl_final_accuracy(0.95).holds


def test_rl_final_accuracy_fails_on_the_policy_before_rl():
    assert not rl_final_accuracy(0.0).holds


def test_format_before_accuracy_holds_when_format_comes_first():
    fmt = np.array([0.1, 0.6, 0.97, 0.99, 0.99, 1.0])
    acc = np.array([0.0, 0.01, 0.05, 0.1, 0.3, 0.6])
    assert format_before_accuracy(fmt, acc).holds


def test_format_before_accuracy_fails_when_both_rise_together():
    fmt = np.array([0.1, 0.3, 0.5, 0.8, 0.99])
    acc = np.array([0.02, 0.1, 0.3, 0.6, 0.9])
    claim = format_before_accuracy(fmt, acc)
    assert not claim.holds and claim.value == pytest.approx(0.3)


def test_format_before_accuracy_refuses_a_run_that_never_learns():
    with pytest.raises(ValueError):
        format_before_accuracy(np.ones(5), np.zeros(5))


def test_fewer_samples_than_holds_when_the_baseline_needs_more():
    assert fewer_samples_than(1000, 3000).holds
    assert fewer_samples_than(1000, math.inf).holds


def test_fewer_samples_than_fails_on_equal_sample_counts():
    assert not fewer_samples_than(2688, 2688).holds
