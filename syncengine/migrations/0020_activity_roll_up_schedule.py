"""The schedule of the dashboard's hourly roll-up (syncengine.dashboard.roll_up), every 10 minutes."""
from django.db import migrations

NAME = "syncengine: roll up activity per hour"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=NAME, defaults={"func": "syncengine.tasks.roll_up_activity", "schedule_type": "I", "minutes": 10,
                             "repeats": -1})


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("syncengine", "0019_activity_hours"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
