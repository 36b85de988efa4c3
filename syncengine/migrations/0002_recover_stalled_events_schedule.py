"""The schedule that queues events left behind (lost enqueue or schedule, dead worker).

Every 5 minutes; created once under a fixed name (django-q2 schedule names are unique).
"""
from django.db import migrations

NAME = "syncengine: recover stalled inbound events"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=NAME,
        defaults={"func": "syncengine.tasks.recover_stalled_events", "schedule_type": "I", "minutes": 5,
                  "repeats": -1})


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("syncengine", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
