"""The schedule of the Zenduty poller (syncengine.polling): every minute, django-q2's shortest interval."""
from django.db import migrations

NAME = "syncengine: poll Zenduty notes and priorities"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=NAME, defaults={"func": "syncengine.tasks.poll_zenduty", "schedule_type": "I", "minutes": 1,
                             "repeats": -1})


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("syncengine", "0015_synced_notes_and_polling"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
