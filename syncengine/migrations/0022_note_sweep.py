"""The Xurrent note sweep (syncengine.note_sweep): each pair's last read of its request's notes, and the
schedule, every ``SYNC_NOTE_SWEEP_MINUTES``.

The schedule is created once under a fixed name (django-q2 schedule names are
unique); a later change of the setting is applied by
``syncengine.note_sweep.align_schedule`` (``utilities.schedules``) after every ``migrate``.
"""
from django.conf import settings
from django.db import migrations, models

NAME = "syncengine: sweep Xurrent notes"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=NAME, defaults={"func": "syncengine.tasks.sweep_xurrent_notes", "schedule_type": "I",
                             "minutes": settings.SYNC_NOTE_SWEEP_MINUTES, "repeats": -1})


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("syncengine", "0021_history_search_indexes"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="linkedpair",
            name="xurrent_notes_read_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="Xurrent notes last read"),
        ),
        migrations.AddIndex(
            model_name="linkedpair",
            index=models.Index(fields=["state", "xurrent_notes_read_at"], name="pair_note_sweep_order"),
        ),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
