"""Alerts by email: integration admins hear once when a condition starts and once when it clears.

Conditions (each keyed, :class:`alerts.models.Alert`):

* ``connection:<model>:<pk>:credentials`` — a connection's last check failed
  (its status is "failed": credentials refused, or the service unreachable);
* ``integration:<pk>:failing`` — an enabled integration has a sync error
  (a permanent API failure, ``sync_error``) or its latest finished event failed;
* ``webhook:tenant:<pk>:<event>`` — Xurrent disabled one of the tenant's
  webhooks. Xurrent does so by itself after repeated failed deliveries
  (https://developer.xurrent.com/v1/webhooks/) and says nothing to the
  receiver, so the scheduled check lists the account's webhooks (one call
  per tenant).

:func:`evaluate_all` (django-q2 schedule, every ``ALERTS_CHECK_MINUTES``)
re-checks every connection live, lists each tenant's webhooks and compares
all conditions with the alerts raised; :mod:`alerts.hooks` evaluates one
connection's or integration's condition at once when its state is written.
Raising and clearing are conditional UPDATEs (or the INSERT of the unique
key), so two processes evaluating at once send one mail, not two.

Recipients: the active users of the "Integration admins" group with an email
address; when there is no such group or nobody in it has an address, the
active superusers with one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert
from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount
from integrations.models import OutgoingIntegration, TenantWebhooks

logger = logging.getLogger(__name__)

ADMIN_GROUP = "Integration admins"
SUBJECT_PREFIX = "[Integration portal] "


@dataclass(frozen=True)
class Condition:
    """A condition that holds now: its key, the mail's subject and text, and the page to look at."""

    key: str
    subject: str
    detail: str
    path: str = ""


# -- recipients and mail ---------------------------------------------------------------------------
def recipients() -> list[str]:
    """Email addresses of the integration admins (else of the superusers), sorted, without duplicates."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    admins = set(users.filter(groups__name=ADMIN_GROUP).values_list("email", flat=True))
    return sorted(admins or set(users.filter(is_superuser=True).values_list("email", flat=True)))


def _send(subject: str, body: str) -> None:
    to = recipients()
    if not to:
        logger.warning("alerts.no-recipients %s", subject)
        return
    try:
        send_mail(SUBJECT_PREFIX + subject, body, None, to)
    except Exception:  # noqa: BLE001 - a mail server down must not break the sync; the alert stays recorded
        logger.exception("alerts.mail-failed %s", subject)


def _link(path: str) -> str:
    return f"\n\nOpen: {settings.PORTAL_BASE_URL}{path}" if path else ""


# -- raise and clear -------------------------------------------------------------------------------
def raise_alert(condition: Condition) -> bool:
    """Record ``condition`` as holding; mail once when it was not already. Returns whether it was raised now."""
    now = timezone.now()
    fields = {"subject": condition.subject[:255], "detail": condition.detail}
    raised = Alert.objects.filter(key=condition.key).exclude(cleared_at=None).update(
        raised_at=now, cleared_at=None, **fields) == 1
    if not raised and not Alert.objects.filter(key=condition.key).exists():
        try:
            with transaction.atomic():
                Alert.objects.create(key=condition.key, raised_at=now, **fields)
            raised = True
        except IntegrityError:  # another process raised it meanwhile: it mails
            raised = False
    if raised:
        logger.warning("alerts.raised %s", condition.key)
        body = (f"{condition.detail}{_link(condition.path)}\n\nYou get this mail once; another one when it clears.")
        transaction.on_commit(lambda: _send(condition.subject, body))
    return raised


def clear_alert(key: str) -> bool:
    """Record the alert ``key`` as cleared; mail once. Returns whether it was cleared now."""
    alert = Alert.objects.filter(key=key, cleared_at=None).first()
    if alert is None or Alert.objects.filter(pk=alert.pk, cleared_at=None).update(cleared_at=timezone.now()) != 1:
        return False
    logger.info("alerts.cleared %s", key)
    body = f"Cleared: {alert.subject}\n\nIt was raised at {alert.raised_at:%Y-%m-%d %H:%M:%S %Z}."
    transaction.on_commit(lambda: _send(f"Cleared: {alert.subject}", body))
    return True


def apply(holding: list[Condition], *, prefixes: tuple[str, ...] = (), keys: tuple[str, ...] = ()) -> dict:
    """Raise what holds; clear the open alerts in scope (a key in ``keys`` or starting with one of
    ``prefixes``) that no longer hold. Returns ``{"raised": n, "cleared": n}``."""
    held = {c.key for c in holding}
    raised = sum(raise_alert(c) for c in holding)
    cleared = 0
    for key in Alert.objects.filter(cleared_at=None).values_list("key", flat=True):
        in_scope = key in keys or (bool(prefixes) and key.startswith(prefixes))
        if in_scope and key not in held:
            cleared += clear_alert(key)
    return {"raised": raised, "cleared": cleared}


# -- the conditions --------------------------------------------------------------------------------
def connection_key(connection: XurrentTenant | ZendutyAccount) -> str:
    return f"connection:{connection._meta.model_name}:{connection.pk}:credentials"


def connection_conditions(connections) -> list[Condition]:
    """A condition per connection whose last check failed."""
    found = []
    for connection in connections:
        if connection.status != ConnectionStatus.FAILED:
            continue
        kind = "Xurrent tenant" if isinstance(connection, XurrentTenant) else "Zenduty account"
        opts = connection._meta
        found.append(Condition(
            connection_key(connection), f"{kind} {connection.name}: the connection stopped working",
            f"The last check of the {kind} \"{connection.name}\" failed: {connection.last_error or 'no reason given'}"
            f"\n\nThe sync cannot call it until this is fixed: correct the credentials on its page and save "
            f"(saving checks them).",
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[connection.pk])))
    return found


def integration_key(integration_id: int) -> str:
    return f"integration:{integration_id}:failing"


def integration_conditions(integrations) -> list[Condition]:
    """A condition per enabled integration with a sync error or whose latest finished event failed."""
    from syncengine.models import EventStatus, InboundEvent

    latest = (InboundEvent.objects.filter(integration=OuterRef("pk"),
                                          status__in=(EventStatus.PROCESSED, EventStatus.FAILED))
              .order_by("-received_at", "-pk"))
    found = []
    for integration in integrations.filter(enabled=True).annotate(
            last_outcome=Subquery(latest.values("status")[:1]), last_reason=Subquery(latest.values("reason")[:1])):
        if integration.sync_error:
            why = f"A call to the other side failed and will not succeed by retrying: {integration.sync_error}"
        elif integration.last_outcome == EventStatus.FAILED:
            why = f"Its latest event failed: {integration.last_reason or 'no reason given'}"
        else:
            continue
        found.append(Condition(
            integration_key(integration.pk), f"{integration}: the sync is failing",
            f"{why}\n\nFix the cause, then replay the failed events (Sync → Inbound events, status Failed).",
            reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])))
    return found


def webhook_prefix(tenant_id: int) -> str:
    return f"webhook:tenant:{tenant_id}:"


def webhook_conditions(hooks: TenantWebhooks, remote: list[dict]) -> list[Condition]:
    """A condition per webhook of the tenant's set that Xurrent lists as disabled."""
    by_id = {str(w.get("id")): w for w in remote}
    found = []
    for event, entry in sorted((hooks.xurrent_webhooks or {}).items()):
        webhook = by_id.get(str(entry.get("id")))
        if not webhook or not webhook.get("disabled"):
            continue
        last_error = str(webhook.get("last_error") or "")[:200]
        found.append(Condition(
            f"{webhook_prefix(hooks.tenant_id)}{event}",
            f"{hooks.tenant.name}: Xurrent disabled the webhook for {event}",
            f"Xurrent disabled the portal's webhook for '{event}' of the tenant \"{hooks.tenant.name}\" "
            f"(webhook {entry.get('id')}){f', last error: {last_error}' if last_error else ''}. Xurrent does so "
            f"after repeated failed deliveries; until it is enabled again these events do not arrive (the "
            f"reconciliation sweep still catches up every few minutes).\n\nMake sure the portal is reachable at "
            f"its webhook address, then use “Retry provisioning” on the tenant's page, which enables it again.",
            reverse("admin:connections_xurrenttenant_change", args=[hooks.tenant_id])))
    return found


def list_tenant_webhooks(hooks: TenantWebhooks) -> list[dict] | None:
    """The account's webhooks as Xurrent lists them, or None when they could not be read (logged)."""
    from connections.xurrent import XurrentClient

    try:
        with XurrentClient.for_tenant(hooks.tenant) as client:
            return client.list_webhooks()
    except Exception as exc:  # noqa: BLE001 - the connection check says what is wrong; try again next time
        logger.warning("alerts.webhooks-unreadable tenant=%s %s", hooks.tenant_id, type(exc).__name__)
        return None


# -- evaluation ------------------------------------------------------------------------------------
def evaluate_connection(connection: XurrentTenant | ZendutyAccount) -> dict:
    """The hook after a connection was checked or saved: its one condition."""
    return apply(connection_conditions([connection]), keys=(connection_key(connection),))


def evaluate_integration(integration_id: int) -> dict:
    """The hook after an integration's sync error was set or cleared: its one condition."""
    return apply(integration_conditions(OutgoingIntegration.objects.filter(pk=integration_id)),
                 keys=(integration_key(integration_id),))


def evaluate_all(*, check_connections: bool = True) -> dict:
    """Every condition: re-check each connection live (unless told not to), list each tenant's
    webhooks, then raise and clear. Returns the counts."""
    from connections.services import test_connection

    tenants, accounts = list(XurrentTenant.objects.all()), list(ZendutyAccount.objects.all())
    if check_connections:
        for connection in [*tenants, *accounts]:
            test_connection(connection)  # records the status; hooks.py evaluates it at once
    holding = connection_conditions([*tenants, *accounts]) + integration_conditions(OutgoingIntegration.objects.all())
    prefixes = ["connection:", "integration:"]
    for hooks in TenantWebhooks.objects.select_related("tenant").exclude(xurrent_webhooks={}):
        if hooks.tenant.status == ConnectionStatus.FAILED:
            continue  # unreadable now; its webhook alerts stay as they are
        remote = list_tenant_webhooks(hooks)
        if remote is not None:
            holding += webhook_conditions(hooks, remote)
            prefixes.append(webhook_prefix(hooks.tenant_id))
    # A tenant whose webhooks were removed: its webhook alerts clear.
    live = set(TenantWebhooks.objects.exclude(xurrent_webhooks={}).values_list("tenant_id", flat=True))
    stale = tuple(k for k in Alert.objects.filter(cleared_at=None, key__startswith="webhook:tenant:")
                  .values_list("key", flat=True) if int(k.split(":")[2]) not in live)
    return apply(holding, prefixes=tuple(prefixes), keys=stale)
