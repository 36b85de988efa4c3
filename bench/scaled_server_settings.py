"""Settings of the web server and worker ``bench.backlog`` starts: the test settings on a faster clock.

``BENCH_TIME_SCALE`` (e.g. 10): the rate limits and the job layer's retry
delays run that many times faster (``bench.timescale.TimeScaleConfig``), and
so does the longest a call waits in place for a budget slot.
"""
import os

from config.settings_test import *  # noqa: F401,F403
from config.settings_test import EXTERNAL_API_MAX_INLINE_WAIT, INSTALLED_APPS

EXTERNAL_API_MAX_INLINE_WAIT = EXTERNAL_API_MAX_INLINE_WAIT / float(os.environ["BENCH_TIME_SCALE"])
INSTALLED_APPS = [*INSTALLED_APPS, "bench.timescale.TimeScaleConfig"]
