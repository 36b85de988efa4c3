"""The cheap hooks: evaluate one condition as soon as the state it reads is written.

The scheduled ``alerts.tasks.evaluate`` would notice within minutes anyway;
these make a failed connection check or a sync error mail at once. Each costs
a query or two (and a mail when the condition changes).
"""
from __future__ import annotations

import logging

from django.db.models.signals import post_save

logger = logging.getLogger(__name__)


def _connection_checked(sender, connection, **kwargs) -> None:
    from alerts import services

    _safely(services.evaluate_connection, connection)


def _connection_saved(sender, instance, created, raw=False, **kwargs) -> None:
    # A connection saved in its form was checked just before (a failed check is not saved),
    # so a stored "failed" status is cleared here.
    if raw:
        return
    from alerts import services

    _safely(services.evaluate_connection, instance)


def _sync_error_changed(sender, integration_id, **kwargs) -> None:
    from alerts import services

    _safely(services.evaluate_integration, integration_id)


def _safely(evaluate, *args) -> None:
    """An alert must never break the work that wrote the state (a job, a save)."""
    try:
        evaluate(*args)
    except Exception:  # noqa: BLE001 - logged; the scheduled evaluation tries again
        logger.exception("alerts.hook-failed %s", getattr(evaluate, "__name__", evaluate))


def connect() -> None:
    from connections.models import XurrentTenant, ZendutyAccount
    from connections.signals import connection_checked
    from integrations.signals import sync_error_changed

    connection_checked.connect(_connection_checked, dispatch_uid="alerts-connection-checked")
    for model in (XurrentTenant, ZendutyAccount):
        post_save.connect(_connection_saved, sender=model, dispatch_uid=f"alerts-saved-{model.__name__}")
    sync_error_changed.connect(_sync_error_changed, dispatch_uid="alerts-sync-error")
