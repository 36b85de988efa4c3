"""The alerts' django-q2 schedule (created by migration ``0002``), kept at ``ALERTS_CHECK_MINUTES``."""
from django.conf import settings

SCHEDULE_NAME = "alerts: evaluate conditions"


def align_schedule(**kwargs) -> None:
    """Keep the schedule's interval equal to ``ALERTS_CHECK_MINUTES`` (run after every ``migrate``)."""
    from django_q.models import Schedule

    Schedule.objects.filter(name=SCHEDULE_NAME).exclude(minutes=settings.ALERTS_CHECK_MINUTES).update(
        minutes=settings.ALERTS_CHECK_MINUTES)
