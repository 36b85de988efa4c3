"""The apps' django-q2 schedules, each kept at the interval its setting names.

Each schedule is created once by its app's migration (django-q2 schedule names
are unique), with the interval the setting had then; a later change of the
setting is applied by the app's ``align_schedule``, a ``post_migrate`` receiver
made here.
"""
from typing import Callable

from django.conf import settings


def schedule_aligner(name: str, setting: str) -> Callable[..., None]:
    """Return a ``post_migrate`` receiver that keeps the schedule ``name`` every ``settings.<setting>`` minutes.

    The setting is read each time the receiver runs, so an override (a test's,
    or an environment variable read at start-up) is what counts.
    """
    def align_schedule(**kwargs) -> None:
        from django_q.models import Schedule

        minutes = getattr(settings, setting)
        Schedule.objects.filter(name=name).exclude(minutes=minutes).update(minutes=minutes)

    align_schedule.__doc__ = f"Keep the schedule {name!r} every ``{setting}`` minutes (run after every ``migrate``)."
    return align_schedule
