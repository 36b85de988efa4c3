"""The schedule of the reconciliation sweep (syncengine.reconcile), every ``SYNC_RECONCILE_MINUTES``.

Created once under a fixed name (django-q2 schedule names are unique). A later
change of the setting is applied by ``syncengine.reconcile.align_schedule``
after every ``migrate`` (a post_migrate receiver).
"""
from django.conf import settings
from django.db import migrations

NAME = "syncengine: reconcile linked pairs"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=NAME, defaults={"func": "syncengine.tasks.reconcile", "schedule_type": "I",
                             "minutes": settings.SYNC_RECONCILE_MINUTES, "repeats": -1})


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("syncengine", "0009_reconcile"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
