"""Settings of the web server the intake benchmark starts (``bench.intake``).

The test settings (test keys, sandbox installed), the benchmark's throw-away
database (``BENCH_DB_NAME``, made by ``bench/__main__.py``), and one more URL:
``/bench/ping/``, the trivial view the intake is compared with.
"""
import os

from config.settings_test import *  # noqa: F401,F403
from config.settings_test import DATABASES

DATABASES["default"]["NAME"] = os.environ["BENCH_DB_NAME"]
ROOT_URLCONF = "bench.urls"
