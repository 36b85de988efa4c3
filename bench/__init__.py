"""Benchmarks of the portal: speed and memory targets live here, not in the tests.

Run them with ``make bench`` (all) or ``.venv/bin/python -m bench <name>``
(one); ``bench/__main__.py`` prepares Django and a throw-away database.
Each benchmark module has a ``run() -> list[Row]`` function and says in its
docstring what it measures and why its targets are what they are.

A row without a target is information (e.g. throughput on this machine);
a row with one passes or fails, and any failure makes the exit code 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


@dataclass
class Row:
    """One line of the result table."""

    name: str
    value: float
    unit: str
    # Passes when ``check(value, target)``; None: informational only.
    target: float | None = None
    check: str = "<"  # "<", "<=", ">=" or "=="

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        compare: dict[str, Callable[[float, float], bool]] = {
            "<": lambda v, t: v < t, "<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t,
            "==": lambda v, t: v == t}
        return compare[self.check](self.value, self.target)


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
