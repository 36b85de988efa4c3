"""The stalled-event sweep runs every minute (it ran every 5).

With ``SYNC_EVENT_LEASE_SECONDS`` (default: job timeout 120 s + 30 s), an event
whose worker died is queued again within the lease plus about 90 s (this
interval, plus django-q2's scheduler, which looks every 30 s). One minute is the
shortest interval a django-q2 schedule has; a sweep is two queries on the
indexed status column.
"""
from django.db import migrations

NAME = "syncengine: recover stalled inbound events"


def every_minute(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).update(minutes=1)


def every_five_minutes(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).update(minutes=5)


class Migration(migrations.Migration):
    dependencies = [
        ("syncengine", "0006_inboundevent_replay_key"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(every_minute, every_five_minutes)]
