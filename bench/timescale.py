"""Rate limits on a faster clock, so that minutes of real-world rate limiting fit in a benchmark.

On a 1:``scale`` time scale every window of the simulated Zenduty's limits
(``sandbox.zenduty.api.RATE_LIMITS``) and of the portal's own budget
(``connections.budget``, the same limits, kept before each call) is
``scale``× shorter; the counts stay Zenduty's real ones. The budget's arrival
margin becomes ``ARRIVAL_MARGIN``: a call on 127.0.0.1 takes a few ms, not
the 0.25 s the real margin allows for. The time a turn that has come is kept
for its job (``budget.TURN_GRACE``) is ``scale``× shorter too.

* :func:`scaled_rate_limits`: in this process, for a ``with`` block
  (``bench.polling``, whose poller runs here);
* :class:`TimeScaleConfig`: in the web server and worker that ``bench.backlog``
  starts (settings ``bench.scaled_server_settings``, scale from
  ``BENCH_TIME_SCALE``); also the job layer's retry delays, which stand for
  real time too.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager

from django.apps import AppConfig

ARRIVAL_MARGIN = 0.05  # s, the scaled connections.budget.WINDOW_MARGIN


def scale_rate_limits(scale: float, margin: float = ARRIVAL_MARGIN) -> Callable[[], None]:
    """Zenduty's windows and the portal's budget ``scale``× shorter, the budget's margin ``margin`` s;
    returns what undoes it."""
    from connections import budget
    from sandbox.zenduty import api

    saved = (api.RATE_LIMITS, budget.take, budget.WINDOW_MARGIN, budget.TURN_GRACE)
    original_take = budget.take
    api.RATE_LIMITS = {bucket: tuple((limit, seconds / scale) for limit, seconds in windows)
                       for bucket, windows in saved[0].items()}

    def scaled_take(key, limits, **kwargs):
        return original_take(key, tuple(budget.Limit(l.calls, l.seconds / scale) for l in limits), **kwargs)

    budget.take = scaled_take
    budget.WINDOW_MARGIN = margin
    budget.TURN_GRACE = saved[3] / scale

    def restore() -> None:
        api.RATE_LIMITS, budget.take, budget.WINDOW_MARGIN, budget.TURN_GRACE = saved

    return restore


@contextmanager
def scaled_rate_limits(scale: float):
    """:func:`scale_rate_limits` for the ``with`` block."""
    restore = scale_rate_limits(scale)
    try:
        yield
    finally:
        restore()


class TimeScaleConfig(AppConfig):
    """Puts a server process on the 1:``BENCH_TIME_SCALE`` clock once the apps are loaded (bench only).

    ``BENCH_ARRIVAL_MARGIN``: the budget's margin in seconds (default ``ARRIVAL_MARGIN``).

    The rate limits (:func:`scale_rate_limits`) and the job layer's retry
    delays (``syncengine.jobs``: 30 s doubling, capped at an hour). The
    settings scale ``EXTERNAL_API_MAX_INLINE_WAIT`` (the longest a call waits
    for a budget slot in place before its job is rescheduled).
    """

    name = "bench"
    label = "bench_timescale"

    def ready(self) -> None:
        from syncengine import jobs

        scale = float(os.environ["BENCH_TIME_SCALE"])
        scale_rate_limits(scale, float(os.environ.get("BENCH_ARRIVAL_MARGIN", ARRIVAL_MARGIN)))
        jobs.RETRY_BASE_SECONDS /= scale
        jobs.RETRY_MAX_SECONDS /= scale
