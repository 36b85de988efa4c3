"""The alerts' django-q2 schedule (created by migration ``0002``), kept at ``ALERTS_CHECK_MINUTES``."""
from utilities.schedules import schedule_aligner

SCHEDULE_NAME = "alerts: evaluate conditions"

align_schedule = schedule_aligner(SCHEDULE_NAME, "ALERTS_CHECK_MINUTES")
