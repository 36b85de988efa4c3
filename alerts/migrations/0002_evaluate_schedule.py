"""The schedule of the alerts' evaluation (alerts.tasks.evaluate), every ``ALERTS_CHECK_MINUTES``.

Created once under a fixed name; a later change of the setting is applied by
``alerts.schedule.align_schedule`` after every ``migrate``.
"""
from django.conf import settings
from django.db import migrations

NAME = "alerts: evaluate conditions"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=NAME, defaults={"func": "alerts.tasks.evaluate", "schedule_type": "I",
                             "minutes": settings.ALERTS_CHECK_MINUTES, "repeats": -1})


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_alerts"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
