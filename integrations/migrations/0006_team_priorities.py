"""Snapshots of Zenduty team priorities (integrations.team_priorities) and the schedule that refreshes them.

The schedule is created once under a fixed name, every ``ZENDUTY_PRIORITY_REFRESH_MINUTES``; a later
change of the setting is applied by ``integrations.team_priorities.align_schedule`` after every ``migrate``.
"""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

SCHEDULE_NAME = "integrations: refresh team priorities"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=SCHEDULE_NAME, defaults={"func": "integrations.tasks.refresh_team_priorities", "schedule_type": "I",
                                      "minutes": settings.ZENDUTY_PRIORITY_REFRESH_MINUTES, "repeats": -1})


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('connections', '0004_api_budget'),
        ('integrations', '0005_note_settings'),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name='TeamPriorities',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('team_id', models.CharField(max_length=64, verbose_name='Zenduty team ID')),
                ('priorities', models.JSONField(blank=True, default=list)),
                ('read_at', models.DateTimeField(blank=True, null=True)),
                ('error', models.TextField(blank=True, default='')),
                ('error_at', models.DateTimeField(blank=True, null=True)),
                ('zenduty_account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='team_priorities', to='connections.zendutyaccount')),
            ],
            options={
                'verbose_name': 'team priorities',
                'verbose_name_plural': 'team priorities',
                'constraints': [models.UniqueConstraint(fields=('zenduty_account', 'team_id'), name='one_priority_snapshot_per_team')],
            },
        ),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
