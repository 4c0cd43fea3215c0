"""Claims: a measured number compared with a stated bound, which a broken model would fail.

A notebook's "Does the claim hold?" section does not assert hand-made comparisons. It calls its
family's claim functions (``toyalgos.<family>.claims``), each of which measures one thing
from the raw results (samples, predictions, labels) and returns a ``Claim``, and asserts
``claims_hold(claims)``, which prints them all and is True only when every one holds.
Every claim function has a test that feeds it a known-bad case (a ring for eight Gaussians,
a model scaled by 1.5, equal step counts) and sees it fail, so no claim in a notebook can
pass by construction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from .checks import check_choice, check_number

RELATIONS = ("≥", "≤")


class Claim(NamedTuple):
    """``statement``, measured as ``value``, holds when ``value relation bound``."""

    statement: str
    value: float
    relation: str
    bound: float

    @property
    def holds(self) -> bool:
        return self.value >= self.bound if self.relation == "≥" else self.value <= self.bound

    def __str__(self) -> str:
        mark = "holds" if self.holds else "FAILS"
        return f"[{mark}] {self.statement}: {self.value:.4g} {self.relation} {self.bound:.4g}"


def _claim(statement: str, value: float, relation: str, bound: float) -> Claim:
    check_choice(relation, "relation", RELATIONS)
    value, bound = check_number(float(value), "value"), check_number(float(bound), "bound")
    if math.isnan(value) or math.isnan(bound):
        raise ValueError(f"a claim needs a measured number, got value={value}, bound={bound}: {statement}")
    return Claim(statement, value, relation, bound)


def at_least(statement: str, value: float, bound: float) -> Claim:
    """The claim ``value >= bound``."""
    return _claim(statement, value, "≥", bound)


def at_most(statement: str, value: float, bound: float) -> Claim:
    """The claim ``value <= bound``."""
    return _claim(statement, value, "≤", bound)


def claims_hold(claims: Iterable[Claim]) -> bool:
    """Print every claim with its measured value, marked holds / FAILS; True when all hold.

    A notebook asserts it, so the check is the ``assert`` a reader sees:
    ``assert claims_hold([...]), "a claim fails: see [FAILS] above"``.
    """
    claims = list(claims)
    for c in claims:
        if not isinstance(c, Claim):
            raise TypeError(f"claims must be Claim objects, got {type(c).__name__}")
        print(c)
    return all(c.holds for c in claims)
