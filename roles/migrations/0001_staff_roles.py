"""The "Integration admins" and "Auditors" groups (roles.services)."""
from django.db import migrations


def create_roles(apps, schema_editor):
    from roles import services

    services.apply_roles(apps=apps, using=schema_editor.connection.alias)


def delete_roles(apps, schema_editor):
    from roles import services

    services.remove_roles(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):

    # Every model the roles cover must exist at this point.
    dependencies = [
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("connections", "0004_api_budget"),
        ("integrations", "0004_tenant_webhooks"),
        ("syncengine", "0011_inboundevent_tenant"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
