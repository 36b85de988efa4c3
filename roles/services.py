"""The portal's two staff roles, as Django groups.

* **Integration admins** add, change and delete connections (Xurrent tenants,
  the Zenduty account) and outgoing integrations, so they may test
  connections, retry provisioning and enable or disable integrations; they
  replay inbound events (the event's change permission, the history itself
  stays read-only); and they view everything.
* **Auditors** view every page and change nothing: view permissions only, so
  the admin shows them no action, button or link that would be refused.

Neither role manages users or groups (superusers do). A member must also be
marked "staff" to log in to the admin. :func:`apply_roles` runs in the
migration that creates the groups and after every ``migrate``, so models
added later join the roles; permissions given to a group by hand are kept.
"""
from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import DEFAULT_DB_ALIAS

INTEGRATION_ADMINS = "Integration admins"
AUDITORS = "Auditors"

# (app label, model) whose rows integration admins manage: add, change, delete.
MANAGED_MODELS = (
    ("connections", "xurrenttenant"),
    ("connections", "zendutyaccount"),
    ("integrations", "outgoingintegration"),
)
# Extra (app label, codename) for integration admins: replaying an event is its change permission.
EXTRA_PERMISSIONS = (("syncengine", "change_inboundevent"),)


def role_permissions(Permission) -> dict[str, object]:
    """The permission querysets of each role (``Permission`` may be a migration's historical model)."""
    from django.db.models import Q

    view = Q(codename__startswith="view_")
    managed = Q()
    for app_label, model in MANAGED_MODELS:
        managed |= Q(content_type__app_label=app_label, codename__in=[f"{action}_{model}" for action in
                                                                      ("add", "change", "delete")])
    for app_label, codename in EXTRA_PERMISSIONS:
        managed |= Q(content_type__app_label=app_label, codename=codename)
    return {AUDITORS: Permission.objects.filter(view), INTEGRATION_ADMINS: Permission.objects.filter(view | managed)}


def apply_roles(*, apps=None, using: str = DEFAULT_DB_ALIAS) -> None:
    """Create both groups if missing and give them every permission of their role. Idempotent."""
    apps = apps or global_apps
    # On a fresh database the permissions are created after all migrations; make them now.
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, permissions in role_permissions(Permission).items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(*permissions.using(using))


def remove_roles(*, apps=None, using: str = DEFAULT_DB_ALIAS) -> None:
    """Delete both groups (the migration's reverse)."""
    apps = apps or global_apps
    apps.get_model("auth", "Group").objects.using(using).filter(name__in=(AUDITORS, INTEGRATION_ADMINS)).delete()
