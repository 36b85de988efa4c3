"""The admin's log, seen as the history of configuration changes (roles.admin).

The roles themselves are ``auth`` groups (roles.services).
"""
from django.contrib.admin.models import LogEntry


class ConfigChange(LogEntry):
    """A change a person made in the admin: who, when, which object, and for connections and
    integrations each field's old and new value (connections.changes). Read-only."""

    class Meta:
        proxy = True
        verbose_name = "configuration change"
        ordering = ["-action_time", "-id"]
