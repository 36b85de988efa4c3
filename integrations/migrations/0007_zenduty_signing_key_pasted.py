import json

from django.db import migrations, models

# How connections.changes records a secret a person changed (its label, never its value).
_CHANGED_KEY = {"field": "Zenduty signing secret", "secret": True}


def _mentions_changed_key(message: str) -> bool:
    try:
        parsed = json.loads(message or "[]")
    except ValueError:
        return False
    stack = [parsed]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if all(item.get(key) == value for key, value in _CHANGED_KEY.items()):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def mark_pasted_keys(apps, schema_editor):
    """Integrations whose key an admin replaced before this field existed (the admin's log says so):
    that key came from Zenduty, so it must not be shown back as the portal's."""
    LogEntry = apps.get_model("admin", "LogEntry")
    ContentType = apps.get_model("contenttypes", "ContentType")
    Integration = apps.get_model("integrations", "OutgoingIntegration")
    kind = ContentType.objects.filter(app_label="integrations", model="outgoingintegration").first()
    if kind is None:
        return
    changed = {entry.object_id for entry in LogEntry.objects.filter(content_type=kind, action_flag=2)
               .only("object_id", "change_message") if _mentions_changed_key(entry.change_message)}
    ids = [int(pk) for pk in changed if str(pk).isdigit()]
    if ids:
        Integration.objects.filter(pk__in=ids).update(zenduty_signing_key_pasted=True)


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0006_team_priorities'),
        ('admin', '0003_logentry_add_action_flag_choices'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AddField(
            model_name='outgoingintegration',
            name='zenduty_signing_key_pasted',
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.RunPython(mark_pasted_keys, migrations.RunPython.noop),
    ]
