"""Provisioning: what Xurrent and Zenduty need for an integration to receive events.

* Xurrent, per tenant (``TenantWebhooks``, created with the tenant's first
  enabled integration and removed with its last): one webhook policy (RS256,
  an audience naming the tenant's set) whose public key is stored at once,
  since Xurrent shows it only in the create answer; and one webhook per event
  of ``XURRENT_EVENTS`` to ``/webhooks/xurrent/tenant/<public_id>/``. Xurrent
  webhooks are account-wide, so one set delivers each request event once; the
  sync engine routes it. Each webhook stays inactive until the sync engine
  answers its ``webhook.verify`` (:func:`mark_tenant_webhook_verified`).
  Integrations provisioned before that owned a set each (same fields on the
  integration, ``/webhooks/xurrent/<integration public_id>/``): provisioning
  removes it once the tenant's set exists (``manage.py move_xurrent_webhooks``
  does that for all).
* Zenduty, per integration: an "Outgoing Webhooks" integration on the service,
  whatever the direction (a pair's acknowledged / resolved come from it).
  Zenduty's public API creates the record, but its URL and signing key are
  set in Zenduty's screens only, so the status stays ACTION_REQUIRED until an
  admin confirms that step (:func:`confirm_zenduty_step`).

Rules:

* Never inside a database transaction. The other side may call back at once
  (``webhook.verify``) and must see committed rows, and a row held locked
  during HTTP would deadlock PostgreSQL. :func:`provision` refuses to run in
  an atomic block; the admin calls it from ``transaction.on_commit``.
* Every ID is stored the moment the API returns it, so a failure half-way
  leaves nothing unrecorded; a second run continues from there and creates
  nothing twice (it also adopts Xurrent webhooks pointing at this integration
  that a lost answer left unrecorded).
* A failure sets FAILED and a plain sentence in ``provisioning_error``.
"""
from __future__ import annotations

import logging
import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from connections import errors
from connections.models import XurrentTenant
from connections.zenduty import constants as zenduty_constants
from integrations import services
from connections.xurrent.webhooks import EVENT_TYPES as XURRENT_EVENTS
from integrations.models import OutgoingIntegration, ProvisioningStatus, TenantWebhooks
from integrations.services import IntegrationError
from connections.attribution import sync_context

logger = logging.getLogger("integrations.provisioning")

JWT_ALG = "rs256"
# Minutes (Xurrent's unit). Short: a captured delivery cannot be replayed later.
JWT_EXPIRES_IN_MINUTES = 10
AUDIENCE_PREFIX = "zenduty-xurrent-portal"
ZENDUTY_APPLICATION_NAME = "Outgoing Webhooks"
# The run lock outlives a run's time budget (PROVISIONING_TIME_BUDGET) with room
# to spare, so it only expires by itself when a process died holding it. A
# second run (a double click) waits briefly, then reports the state it finds.
LOCK_MARGIN_SECONDS = 40
LOCK_WAIT_SECONDS = 5.0


# -- what the other side is told -------------------------------------------------------------
Holder = OutgoingIntegration | TenantWebhooks  # whose Xurrent policy and webhooks (same field names)


def xurrent_webhook_url(holder: Holder) -> str:
    """Where Xurrent delivers the webhooks of a tenant's set (``syncengine:xurrent-tenant-webhook``),
    or of an integration's own set of before (``syncengine:xurrent-webhook``)."""
    if isinstance(holder, TenantWebhooks):
        return settings.PORTAL_BASE_URL + reverse("syncengine:xurrent-tenant-webhook", args=[holder.public_id])
    return settings.PORTAL_BASE_URL + reverse("syncengine:xurrent-webhook", args=[holder.public_id])


def zenduty_webhook_url(integration: OutgoingIntegration) -> str:
    """Where Zenduty's outgoing webhook of this integration's service posts (``syncengine:zenduty-webhook``)."""
    return settings.PORTAL_BASE_URL + reverse("syncengine:zenduty-webhook", args=[integration.public_id])


def audience_for(holder: Holder) -> str:
    """The JWT ``aud`` of a policy: a token for one tenant's set (or integration) fails on another."""
    if isinstance(holder, TenantWebhooks):
        return f"{AUDIENCE_PREFIX}:tenant:{holder.public_id}"
    return f"{AUDIENCE_PREFIX}:{holder.public_id}"


def unreachable_address_warning() -> str:
    """Why Xurrent and Zenduty may be unable to deliver to PORTAL_BASE_URL ('' when it looks fine)."""
    if settings.SANDBOX_API_URL:
        return ""  # the simulators run beside the portal
    parts = urlsplit(settings.PORTAL_BASE_URL)
    if parts.hostname in ("localhost", "127.0.0.1", "::1") or (parts.hostname or "").endswith(".local"):
        return (f"PORTAL_BASE_URL is {settings.PORTAL_BASE_URL}, which Xurrent and Zenduty cannot reach. Set it "
                f"to the portal's public https address and retry provisioning.")
    if parts.scheme != "https":
        return f"PORTAL_BASE_URL ({settings.PORTAL_BASE_URL}) is not https; webhooks should be sent over https."
    return ""


def _marker(holder: Holder) -> str:
    # Written into descriptions so records can be traced (and adopted) later.
    if isinstance(holder, TenantWebhooks):
        return f"portal tenant webhooks {holder.public_id}"
    return f"portal integration {holder.public_id}"


# -- state --------------------------------------------------------------------------------
def all_webhooks_verified(holder: Holder | None) -> bool:
    hooks = (holder.xurrent_webhooks if holder is not None else None) or {}
    return all((hooks.get(event) or {}).get("verified") for event in XURRENT_EVENTS)


def tenant_webhooks_of(integration: OutgoingIntegration) -> TenantWebhooks | None:
    """The integration's tenant's set of Xurrent webhooks, as stored now (None before it exists)."""
    return TenantWebhooks.objects.filter(tenant_id=integration.tenant_id).first()


def zenduty_step_pending(integration: OutgoingIntegration) -> bool:
    """True while Zenduty's webhook URL and signing key still have to be entered by hand."""
    return bool(integration.needs_zenduty_webhook and integration.zenduty_integration_id
                and not integration.zenduty_step_confirmed_at)


def settled_status(holder: Holder) -> str:
    """The status an integration (or a tenant's set) has when nothing is in progress."""
    if holder.provisioning_error:
        return ProvisioningStatus.FAILED
    if isinstance(holder, TenantWebhooks):
        return ProvisioningStatus.PROVISIONED if all_webhooks_verified(holder) else ProvisioningStatus.VERIFYING
    if not holder.enabled:
        return ProvisioningStatus.DISABLED
    if zenduty_step_pending(holder):
        return ProvisioningStatus.ACTION_REQUIRED
    if holder.needs_xurrent_webhooks and not all_webhooks_verified(tenant_webhooks_of(holder)):
        return ProvisioningStatus.VERIFYING
    return ProvisioningStatus.PROVISIONED


def pending_changes(integration: OutgoingIntegration) -> list[str]:
    """What provisioning would change, judged from the stored state alone (no API call).

    Empty when the integration looks fully provisioned for its settings; the
    admin then saves without calling the APIs.
    """
    changes = []
    if integration.provisioning_status in (ProvisioningStatus.PENDING, ProvisioningStatus.FAILED):
        changes.append("not provisioned yet" if integration.provisioning_status == ProvisioningStatus.PENDING
                       else "the last attempt failed")
    tenant_hooks = tenant_webhooks_of(integration)
    if integration.needs_xurrent_webhooks:
        hooks = (tenant_hooks.xurrent_webhooks if tenant_hooks else None) or {}
        if tenant_hooks is None or not tenant_hooks.xurrent_policy_id or set(hooks) != set(XURRENT_EVENTS):
            changes.append("the tenant's Xurrent webhooks to create")
        elif any(h.get("uri") != xurrent_webhook_url(tenant_hooks) for h in hooks.values()):
            changes.append("Xurrent webhook address changed")
        elif tenant_hooks.provisioning_status == ProvisioningStatus.FAILED:
            changes.append("the tenant's Xurrent webhooks failed")
    elif tenant_hooks is not None and not other_enabled(integration):
        changes.append("the tenant's Xurrent webhooks to remove")
    if integration.has_own_xurrent_webhooks:
        changes.append("the integration's own Xurrent webhooks to move to the tenant")
    if integration.needs_zenduty_webhook != bool(integration.zenduty_integration_id):
        changes.append("Zenduty integration to create" if integration.needs_zenduty_webhook
                       else "Zenduty integration to remove")
    if settled_status(integration) != integration.provisioning_status and not changes:
        changes.append("status to update")
    return changes


def other_enabled(integration: OutgoingIntegration) -> bool:
    """Whether another enabled integration of the tenant still needs the tenant's Xurrent webhooks."""
    return OutgoingIntegration.objects.filter(tenant_id=integration.tenant_id, enabled=True) \
        .exclude(pk=integration.pk).exists()


@contextmanager
def _locked_row(pk: int, model: type = OutgoingIntegration) -> Iterator[Any]:
    """The integration (or tenant set) row, locked for a short read-modify-write (no HTTP inside!).

    The leading UPDATE takes SQLite's write lock before reading, so two
    writers queue instead of failing on a stale snapshot; on PostgreSQL the
    row lock serialises concurrent ``mark_webhook_verified`` calls.
    """
    with transaction.atomic():
        if not model.objects.filter(pk=pk).update(updated_at=timezone.now()):
            yield None
            return
        yield model.objects.select_for_update().get(pk=pk)


def _save(holder: Holder, **fields: Any) -> None:
    """Store fields at once, in the database and on the instance in hand."""
    for name, value in fields.items():
        setattr(holder, name, value)
    type(holder).objects.filter(pk=holder.pk).update(updated_at=timezone.now(), **fields)


def _set_webhook(integration: Holder, event: str, entry: dict | None) -> None:
    """Record (or, with None, forget) the webhook of one event.

    Under the row lock, so a verification recorded meanwhile is kept. A
    webhook counts as verified when it was verified before at the same
    address, when its verification overtook its creation, or when another
    webhook with exactly the same address is verified: Xurrent then asks for
    no verification at all (https://developer.xurrent.com/v1/webhooks/).
    """
    with _locked_row(integration.pk, type(integration)) as row:
        if row is None:
            return
        hooks = dict(row.xurrent_webhooks or {})
        early = [str(i) for i in row.xurrent_early_verifications or []]
        if entry is None:
            hooks.pop(event, None)
        else:
            entry = {**entry, "verified": bool(entry.get("verified"))}
            previous = hooks.get(event) or {}
            if str(previous.get("id")) == str(entry["id"]) and previous.get("uri") == entry.get("uri") \
                    and previous.get("verified"):
                entry["verified"] = True
            if str(entry["id"]) in early:
                entry["verified"] = True
                early.remove(str(entry["id"]))
            if any(h.get("verified") and h.get("uri") == entry.get("uri") for e, h in hooks.items() if e != event):
                entry["verified"] = True
            hooks[event] = entry
        row.xurrent_webhooks = hooks
        row.xurrent_early_verifications = early
        row.save(update_fields=["xurrent_webhooks", "xurrent_early_verifications"])
    integration.xurrent_webhooks = hooks
    integration.xurrent_early_verifications = early


def _verified_sibling(integration: Holder, event: str, uri: str) -> bool:
    return any(h.get("verified") and h.get("uri") == uri
               for e, h in (integration.xurrent_webhooks or {}).items() if e != event)


def _require_no_transaction(what: str) -> None:
    if connection.in_atomic_block:
        raise RuntimeError(f"{what} calls external APIs and must not run inside a database transaction; "
                           f"use transaction.on_commit().")


@contextmanager
def _exclusive(integration_id: int | str) -> Iterator[bool]:
    """One provisioning run per integration (or ``tenant-<id>``: per tenant set) at a time, across
    processes (shared cache)."""
    key, token = f"integrations:provisioning-lock:{integration_id}", uuid.uuid4().hex
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    lock_seconds = int(settings.PROVISIONING_TIME_BUDGET + LOCK_MARGIN_SECONDS)
    while not (acquired := cache.add(key, token, lock_seconds)) and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        yield acquired
    finally:
        if acquired and cache.get(key) == token:
            cache.delete(key)


class _Steps:
    """What is being done right now (for the error message), and until when it may take.

    A run happens while the admin waits for the page, so all its calls share
    one time budget (``PROVISIONING_TIME_BUDGET`` seconds): a slow API ends the
    run with a recorded, retryable error instead of a request that a web
    server or proxy kills half-way with nothing recorded.
    """

    def __init__(self) -> None:
        self.action = "start provisioning"
        self.deadline = time.monotonic() + settings.PROVISIONING_TIME_BUDGET

    def __call__(self, action: str) -> None:
        self.action = action
        logger.info("provisioning.step %s", action)


@contextmanager
def _client(step: _Steps, connection) -> Iterator[Any]:
    """An API client for ``connection`` (tenant or Zenduty account) bound to the run's deadline."""
    with (services.xurrent_client(connection) if isinstance(connection, XurrentTenant)
          else services.zenduty_client(connection)) as client:
        client.deadline = step.deadline
        yield client


def _fail(integration: Holder, message: str) -> None:
    logger.warning("provisioning.failed %r: %s", integration, message)
    _save(integration, provisioning_status=ProvisioningStatus.FAILED, provisioning_error=message[:2000])


def _explain(exc: BaseException, action: str, connection: object) -> str:
    if isinstance(exc, IntegrationError):
        return exc.message
    if isinstance(exc, errors.ApiError):
        return services.describe_api_error(exc, action, connection)
    return f"Could not {action}: an unexpected error occurred in the portal (details are in the server log)."


# -- provision ----------------------------------------------------------------------------
def provision(integration_id: int, *, resend_verification: bool = False) -> OutgoingIntegration | None:
    """Create or update everything the integration needs on both sides. Idempotent.

    ``resend_verification`` touches unverified Xurrent webhooks, which makes
    Xurrent send a fresh ``webhook.verify`` (codes expire after 24 hours).
    Returns the integration as stored afterwards (None when it was deleted).
    Failures are recorded on the integration, not raised.
    """
    _require_no_transaction("provision()")
    # sync_context: the calls show up in the integration's history.
    with _exclusive(integration_id) as acquired, sync_context(integration_id=integration_id):
        integration = (OutgoingIntegration.objects.select_related("tenant", "zenduty_account")
                       .filter(pk=integration_id).first())
        if integration is None:
            return None
        if not acquired:
            logger.warning("provisioning.busy %r: another run holds the lock", integration)
            return integration
        step = _Steps()
        connection_in_use: object = integration.tenant
        try:
            if integration.needs_xurrent_webhooks:
                ensure_tenant_webhooks(integration.tenant, step, resend_verification=resend_verification)
            else:
                release_tenant_webhooks(integration, step)
            # The tenant's set first, then the integration's own set of before goes.
            _remove_own_xurrent(integration, step)
            connection_in_use = integration.zenduty_account
            if integration.needs_zenduty_webhook:
                _ensure_zenduty(integration, step)
            else:
                _remove_zenduty(integration, step)
        except Exception as exc:  # noqa: BLE001 - recorded for the admin, never half-hidden
            if not isinstance(exc, (errors.ApiError, IntegrationError)):
                logger.exception("provisioning.crashed %r during %s", integration, step.action)
            _fail(integration, f"{_explain(exc, step.action, connection_in_use)} Everything created until then "
                               f"is recorded; “Retry provisioning” continues from there.")
            return OutgoingIntegration.objects.filter(pk=integration_id).first()
        with _locked_row(integration_id) as row:
            if row is not None:
                row.provisioning_error = ""
                row.provisioning_status = settled_status(row)
                row.provisioned_at = timezone.now()
                row.save(update_fields=["provisioning_error", "provisioning_status", "provisioned_at"])
        logger.info("provisioning.done %r", integration)
    return OutgoingIntegration.objects.filter(pk=integration_id).first()


# -- the tenant's set -------------------------------------------------------------------------
def ensure_tenant_webhooks(tenant: XurrentTenant, step: _Steps | None = None, *,
                           resend_verification: bool = False) -> TenantWebhooks:
    """Create or update the tenant's Xurrent policy and webhooks (``TenantWebhooks``). Idempotent.

    Resumable like an integration's run: every ID is stored the moment it
    exists; a lost create answer is adopted (webhooks by address) or replaced
    (a policy, found by audience). A failure is recorded on the set and raised.
    """
    _require_no_transaction("ensure_tenant_webhooks()")
    step = step or _Steps()
    hooks, _ = TenantWebhooks.objects.get_or_create(tenant=tenant)
    with _exclusive(f"tenant-{tenant.pk}") as acquired:
        if not acquired:
            raise IntegrationError(f"Another provisioning run is setting up the Xurrent webhooks of {tenant}; "
                                   f"retry in a moment.")
        hooks = TenantWebhooks.objects.select_related("tenant").get(pk=hooks.pk)
        try:
            _ensure_xurrent(hooks, step, resend_verification)
        except Exception as exc:
            _fail(hooks, f"{_explain(exc, step.action, tenant)} Everything created until then is recorded; "
                         f"“Retry provisioning” continues from there.")
            raise
        with _locked_row(hooks.pk, TenantWebhooks) as row:
            row.provisioning_error = ""
            row.provisioning_status = settled_status(row)
            row.provisioned_at = timezone.now()
            row.save(update_fields=["provisioning_error", "provisioning_status", "provisioned_at"])
            hooks = row
    logger.info("provisioning.tenant-webhooks-done %r", hooks)
    return hooks


def release_tenant_webhooks(integration: OutgoingIntegration, step: _Steps | None = None) -> None:
    """Remove the tenant's Xurrent policy and webhooks unless another enabled integration needs them.

    Called when ``integration`` is disabled or about to be deleted.
    """
    step = step or _Steps()
    with _exclusive(f"tenant-{integration.tenant_id}") as acquired:
        hooks = TenantWebhooks.objects.select_related("tenant").filter(tenant_id=integration.tenant_id).first()
        if hooks is None or other_enabled(integration):
            return
        if not acquired:
            raise IntegrationError(f"Another provisioning run is changing the Xurrent webhooks of "
                                   f"{integration.tenant}; retry in a moment.")
        try:
            _remove_xurrent(hooks, step)
        except Exception as exc:
            _fail(hooks, _explain(exc, step.action, hooks.tenant))
            raise
        hooks.delete()
        logger.info("provisioning.tenant-webhooks-removed tenant=%s", integration.tenant_id)


def _remove_own_xurrent(integration: OutgoingIntegration, step: _Steps) -> None:
    """Remove the integration's own Xurrent policy and webhooks of before the tenant's set."""
    if integration.has_own_xurrent_webhooks:
        step("remove the integration's own Xurrent webhooks (moved to the tenant)")
        _remove_xurrent(integration, step)


def retry_tenant_webhooks(tenant_id: int, *, resend_verification: bool = True) -> TenantWebhooks | None:
    """The tenant page's "Retry provisioning": bring the tenant's set in line, then the integrations'
    statuses (which wait for its verification). Failures are recorded on the set, not raised."""
    tenant = XurrentTenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None
    try:
        ensure_tenant_webhooks(tenant, resend_verification=resend_verification)
    except Exception:  # noqa: BLE001 - recorded on the set by ensure_tenant_webhooks
        logger.warning("provisioning.tenant-webhooks-failed tenant=%s", tenant_id)
    _settle_integrations(tenant_id)
    return TenantWebhooks.objects.filter(tenant_id=tenant_id).first()


def _settle_integrations(tenant_id: int) -> None:
    """Recompute the settled status of the tenant's integrations that wait on nothing else."""
    for integration_id in OutgoingIntegration.objects.filter(
            tenant_id=tenant_id, provisioning_status__in=(ProvisioningStatus.VERIFYING,
                                                          ProvisioningStatus.ACTION_REQUIRED,
                                                          ProvisioningStatus.PROVISIONED)).values_list("pk", flat=True):
        with _locked_row(integration_id) as row:
            if row is not None and row.provisioning_status in (ProvisioningStatus.VERIFYING,
                                                               ProvisioningStatus.ACTION_REQUIRED,
                                                               ProvisioningStatus.PROVISIONED):
                row.provisioning_status = settled_status(row)
                row.save(update_fields=["provisioning_status"])


def _id_of(reference: Any) -> str:
    if isinstance(reference, dict):
        reference = reference.get("id")
    return "" if reference is None else str(reference)


def _api_id(value: str) -> int | str:
    return int(value) if str(value).isdigit() else value


def _ensure_policy(integration: OutgoingIntegration, client, step: _Steps) -> None:
    if integration.xurrent_policy_id:
        if not integration.xurrent_policy_public_key:
            # Created, but its key never reached us: it can verify nothing. Replace it.
            step("delete the Xurrent webhook policy whose public key was not received")
            _delete_quietly(client.delete_webhook_policy, integration.xurrent_policy_id)
            _save(integration, xurrent_policy_id="")
        else:
            step("check the Xurrent webhook policy")
            try:
                policy = client.get_webhook_policy(integration.xurrent_policy_id)
            except errors.NotFoundError:
                logger.warning("provisioning.policy-gone %r %s", integration, integration.xurrent_policy_id)
                _save(integration, xurrent_policy_id="", xurrent_policy_public_key="")
            else:
                if isinstance(policy, dict) and policy.get("disabled"):
                    step("enable the Xurrent webhook policy")
                    client.update_webhook_policy(integration.xurrent_policy_id, disabled=False)
    if integration.xurrent_policy_id:
        return
    if integration.provisioning_status == ProvisioningStatus.FAILED:
        _delete_stray_policies(integration, client, step)
    step("create the Xurrent webhook policy")
    audience = audience_for(integration)
    policy = client.create_webhook_policy(jwt_alg=JWT_ALG, jwt_audience=audience,
                                          jwt_claim_expires_in=JWT_EXPIRES_IN_MINUTES)
    _save(integration, xurrent_policy_id=_id_of(policy), xurrent_policy_alg=policy.get("jwt_alg") or JWT_ALG,
          xurrent_policy_audience=policy.get("jwt_audience") or audience,
          xurrent_policy_public_key=policy.get("public_key_pem") or "")
    if not integration.xurrent_policy_public_key:
        raise IntegrationError(
            f"Xurrent created webhook policy {integration.xurrent_policy_id} but did not return its public key, "
            f"so deliveries could not be checked. 'Retry provisioning' replaces the policy.")


def _delete_stray_policies(integration: OutgoingIntegration, client, step: _Steps) -> None:
    """Delete this integration's policies that the portal has no record of.

    A policy whose create answer was lost (timeout, crash) exists in Xurrent
    but its public key, shown only in that answer, is gone: it can never be
    used. It carries the integration's audience, which no other policy has.
    """
    audience = audience_for(integration)
    step("look for Xurrent webhook policies left by an interrupted attempt")
    for policy in client.list_webhook_policies():
        if policy.get("jwt_audience") == audience and str(policy.get("id")) != integration.xurrent_policy_id:
            step(f"delete the Xurrent webhook policy {policy.get('id')} left by an interrupted attempt")
            _delete_quietly(client.delete_webhook_policy, policy.get("id"))


def _ensure_xurrent(integration: OutgoingIntegration, step: _Steps, resend_verification: bool) -> None:
    with _client(step, integration.tenant) as client:
        _ensure_policy(integration, client, step)
        policy_id = integration.xurrent_policy_id
        uri = xurrent_webhook_url(integration)
        disabled = not integration.enabled
        hooks = dict(integration.xurrent_webhooks or {})

        for event, entry in list(hooks.items()):
            if event not in XURRENT_EVENTS:  # no longer subscribed
                step(f"delete the Xurrent webhook for {event}")
                _delete_quietly(client.delete_webhook, entry.get("id"))
                _set_webhook(integration, event, None)
                continue
            step(f"check the Xurrent webhook for {event}")
            try:
                remote = client.get_webhook(entry["id"])
            except errors.NotFoundError:
                logger.warning("provisioning.webhook-gone %r %s %s", integration, event, entry.get("id"))
                _set_webhook(integration, event, None)
                continue
            changes: dict[str, Any] = {}
            if entry.get("uri") != uri or remote.get("uri", uri) != uri:
                changes["uri"] = uri
            if bool(entry.get("disabled")) != disabled or bool(remote.get("disabled", disabled)) != disabled:
                changes["disabled"] = disabled
            remote_policy = _id_of(remote.get("webhook_policy", remote.get("webhook_policy_id", policy_id)))
            if remote_policy != str(policy_id):
                changes["webhook_policy_id"] = _api_id(policy_id)
            if resend_verification and not entry.get("verified") and "uri" not in changes:
                if _verified_sibling(integration, event, uri):
                    # Xurrent sends no verification to an address it already
                    # trusts, so this one may be verified there unbeknown to us:
                    # a fresh webhook is recorded as verified (see _set_webhook).
                    step(f"replace the unverified Xurrent webhook for {event}")
                    _delete_quietly(client.delete_webhook, entry["id"])
                    _set_webhook(integration, event, None)
                    continue
                changes["uri"] = uri  # any update of an unverified webhook sends a fresh webhook.verify
            if changes:
                if "uri" in changes:
                    # Recorded before the update, so that a verification of the
                    # (new) address arriving meanwhile is kept.
                    _set_webhook(integration, event, {**entry, "uri": uri, "verified": False})
                step(f"update the Xurrent webhook for {event}")
                client.update_webhook(entry["id"], **changes)
                _set_webhook(integration, event, {**integration.xurrent_webhooks[event], "uri": uri,
                                                  "disabled": disabled})

        missing = [e for e in XURRENT_EVENTS if e not in integration.xurrent_webhooks]
        if missing:
            # A create whose answer was lost left a webhook we do not know:
            # adopt those that point at this integration's address.
            step("list the Xurrent webhooks")
            strays = {w.get("event"): w for w in client.list_webhooks()
                      if w.get("uri") == uri and w.get("event") in missing}
            for event in missing:
                stray = strays.get(event)
                if stray:
                    step(f"adopt the Xurrent webhook for {event}")
                    if bool(stray.get("disabled")) != disabled or \
                            _id_of(stray.get("webhook_policy", policy_id)) != str(policy_id):
                        client.update_webhook(stray["id"], disabled=disabled, webhook_policy_id=_api_id(policy_id))
                    _set_webhook(integration, event, {"id": stray["id"], "verified": False, "uri": uri,
                                                      "disabled": disabled})
                    continue
                step(f"create the Xurrent webhook for {event}")
                created = client.create_webhook(
                    event, uri, webhook_policy_id=_api_id(policy_id), disabled=disabled,
                    name=f"Zenduty portal: {event}"[:80],
                    description=f"{integration} — sends '{event}' to the Zenduty ⇄ Xurrent portal "
                                f"({_marker(integration)}). Managed by the portal: delete the integration "
                                f"there rather than this webhook.")
                _set_webhook(integration, event, {"id": created["id"], "verified": False, "uri": uri,
                                                  "disabled": disabled})


def _remove_xurrent(integration: OutgoingIntegration, step: _Steps) -> None:
    # After a failed attempt a policy may exist that was never recorded.
    interrupted = integration.provisioning_status == ProvisioningStatus.FAILED
    if not (integration.xurrent_webhooks or integration.xurrent_policy_id or interrupted):
        return
    with _client(step, integration.tenant) as client:
        for event, entry in list((integration.xurrent_webhooks or {}).items()):
            step(f"delete the Xurrent webhook for {event}")
            _delete_quietly(client.delete_webhook, entry.get("id"))
            _set_webhook(integration, event, None)
        if interrupted:
            _delete_stray_webhooks(integration, client, step)
        if integration.xurrent_policy_id:
            step("delete the Xurrent webhook policy")
            _delete_quietly(client.delete_webhook_policy, integration.xurrent_policy_id)
            _save(integration, xurrent_policy_id="", xurrent_policy_public_key="", xurrent_policy_audience="")
        if interrupted:
            _delete_stray_policies(integration, client, step)


def _delete_stray_webhooks(integration: OutgoingIntegration, client, step: _Steps) -> None:
    """Delete webhooks to this integration's address that the portal has no record of.

    A create whose answer was lost leaves one behind; while provisioning,
    :func:`_ensure_xurrent` adopts it instead. The address holds the
    integration's public_id, so no other integration's webhook matches.
    """
    uri = xurrent_webhook_url(integration)
    step("look for Xurrent webhooks left by an interrupted attempt")
    for webhook in client.list_webhooks():
        if webhook.get("uri") == uri:
            step(f"delete the Xurrent webhook {webhook.get('id')} left by an interrupted attempt")
            _delete_quietly(client.delete_webhook, webhook.get("id"))


def _delete_quietly(delete, record_id) -> None:
    """Delete a remote record; one that is already gone is fine."""
    if record_id in (None, ""):
        return
    try:
        delete(record_id)
    except errors.NotFoundError:
        logger.info("provisioning.already-gone %s", record_id)


# -- Zenduty ---------------------------------------------------------------------------------
def _find_application(client) -> str:
    for app in client.list_applications():
        if str(app.get("name", "")).strip().casefold() == ZENDUTY_APPLICATION_NAME.casefold():
            return str(app["unique_id"])
    raise IntegrationError(
        f"Zenduty does not offer the '{ZENDUTY_APPLICATION_NAME}' application to this account, so the "
        f"integration cannot receive incidents from Zenduty. Choose the direction Xurrent → Zenduty, or ask "
        f"Zenduty support.")


def _ensure_zenduty(integration: OutgoingIntegration, step: _Steps) -> None:
    team, service = integration.zenduty_team_id, integration.zenduty_service_id
    with _client(step, integration.zenduty_account) as client:
        step("list the integrations of the Zenduty service")
        existing = list(client.list_integrations(team, service))
        if integration.zenduty_integration_id:
            found = next((i for i in existing if str(i.get("unique_id")) == integration.zenduty_integration_id),
                         None)
            if found is None:
                logger.warning("provisioning.zenduty-integration-gone %r", integration)
                _save(integration, zenduty_integration_id="", zenduty_integration_name="",
                      zenduty_step_confirmed_at=None)
            else:
                name = str(found.get("name") or "")[:100]
                if name and name != integration.zenduty_integration_name:
                    _save(integration, zenduty_integration_name=name)
                _set_zenduty_enabled(client, integration, found, step)
                return
        marker = _marker(integration)
        stray = next((i for i in existing if marker in str(i.get("summary", ""))), None)
        if stray is None:
            step(f"find Zenduty's '{ZENDUTY_APPLICATION_NAME}' application")
            application = _find_application(client)
            step("create the Zenduty outgoing integration")
            stray = client.create_integration(team, service, {
                "application": application,
                "name": f"Xurrent: {integration.service_instance_name or integration.service_instance_id}"[:100],
                "summary": f"Sends this service's incidents to the Zenduty ⇄ Xurrent portal ({marker}).",
                "integration_type": zenduty_constants.INTEGRATION_OUTBOUND,
                "is_enabled": integration.enabled,
            })
        _save(integration, zenduty_integration_id=str(stray["unique_id"]),
              zenduty_integration_name=str(stray.get("name") or "")[:100], zenduty_step_confirmed_at=None)
        _set_zenduty_enabled(client, integration, stray, step)


def _set_zenduty_enabled(client, integration: OutgoingIntegration, record: dict, step: _Steps) -> None:
    if "is_enabled" in record and bool(record["is_enabled"]) != integration.enabled:
        step("enable the Zenduty integration" if integration.enabled else "disable the Zenduty integration")
        client.update_integration(integration.zenduty_team_id, integration.zenduty_service_id,
                                  integration.zenduty_integration_id, {"is_enabled": integration.enabled})


def _remove_zenduty(integration: OutgoingIntegration, step: _Steps) -> None:
    if not integration.zenduty_integration_id:
        return
    with _client(step, integration.zenduty_account) as client:
        step("delete the Zenduty outgoing integration")
        try:
            client.delete_integration(integration.zenduty_team_id, integration.zenduty_service_id,
                                      integration.zenduty_integration_id)
        except errors.NotFoundError:
            logger.info("provisioning.already-gone zenduty integration %s", integration.zenduty_integration_id)
        _save(integration, zenduty_integration_id="", zenduty_step_confirmed_at=None)


# -- deprovision ------------------------------------------------------------------------------
def deprovision(integration: OutgoingIntegration | int) -> None:
    """Remove the webhooks, the policy and the Zenduty integration (before deleting the integration).

    Records already gone are fine. Progress is stored as it goes, so a second
    call after a failure continues where the first stopped.

    :raises IntegrationError: with a plain sentence when something could not be removed
        (also recorded as FAILED on the integration).
    """
    _require_no_transaction("deprovision()")
    integration_id = integration if isinstance(integration, int) else integration.pk
    with _exclusive(integration_id), sync_context(integration_id=integration_id):
        integration = (OutgoingIntegration.objects.select_related("tenant", "zenduty_account")
                       .filter(pk=integration_id).first())
        if integration is None:
            return
        step = _Steps()
        problems = []
        # Both sides, even when the first fails: what can be removed is removed.
        for remove, connection_in_use in ((_remove_own_xurrent, integration.tenant),
                                          (_release_for_delete, integration.tenant),
                                          (_remove_zenduty, integration.zenduty_account)):
            try:
                remove(integration, step)
            except Exception as exc:  # noqa: BLE001 - explained to the admin below
                if not isinstance(exc, (errors.ApiError, IntegrationError)):
                    logger.exception("deprovisioning.crashed %r during %s", integration, step.action)
                problems.append(_explain(exc, step.action, connection_in_use))
        if problems:
            left = remaining_records(integration)
            message = " ".join(problems) + (f" Still there: {left}." if left else "")
            _fail(integration, message)
            raise IntegrationError(message)
        _save(integration, provisioning_status=ProvisioningStatus.PENDING, provisioning_error="")
        logger.info("deprovisioning.done %r", integration)


def _release_for_delete(integration: OutgoingIntegration, step: _Steps) -> None:
    release_tenant_webhooks(integration, step)


def remaining_records(integration: OutgoingIntegration) -> str:
    """What the portal knows to exist in Xurrent and Zenduty for the integration, in words ('' if nothing)."""
    parts = []
    hooks = sorted(str(h.get("id")) for h in (integration.xurrent_webhooks or {}).values() if h.get("id"))
    xurrent = []
    if hooks:
        xurrent.append(("webhook " if len(hooks) == 1 else "webhooks ") + ", ".join(f"#{i}" for i in hooks))
    if integration.xurrent_policy_id:
        xurrent.append(f"webhook policy {integration.xurrent_policy_id}")
    if xurrent:
        parts.append(f"in Xurrent ({integration.tenant}) " + " and ".join(xurrent))
    tenant_hooks = tenant_webhooks_of(integration)
    if tenant_hooks is not None and not other_enabled(integration) and \
            (tenant_hooks.xurrent_webhooks or tenant_hooks.xurrent_policy_id):
        ids = sorted(str(h.get("id")) for h in tenant_hooks.xurrent_webhooks.values() if h.get("id"))
        what = [("webhook " if len(ids) == 1 else "webhooks ") + ", ".join(f"#{i}" for i in ids)] if ids else []
        if tenant_hooks.xurrent_policy_id:
            what.append(f"webhook policy {tenant_hooks.xurrent_policy_id}")
        parts.append(f"the tenant's Xurrent webhooks in Xurrent ({integration.tenant}) " + " and ".join(what))
    if integration.zenduty_integration_id:
        parts.append(f"in Zenduty the outgoing integration {integration.zenduty_integration_id} of the service "
                     f"'{integration.zenduty_service_name or integration.zenduty_service_id}'")
    return "; ".join(parts)


# -- called by others -------------------------------------------------------------------------
def mark_webhook_verified(integration_id: int, webhook_id) -> None:
    """Record that Xurrent's ``webhook.verify`` for ``webhook_id`` was answered.

    Called by the sync engine's receiver after it called the callback. Safe
    against concurrent calls (row lock) and against a verification that
    arrives before the webhook's creation was recorded (kept until it is).
    Flips the status to PROVISIONED when this completes the set.
    """
    _mark_verified(OutgoingIntegration, integration_id, webhook_id)


def mark_tenant_webhook_verified(tenant_id: int, webhook_id) -> bool:
    """Record the answered ``webhook.verify`` of one of the tenant's webhooks, then settle the
    statuses of the tenant's integrations (they wait for the set). False when the tenant has no set."""
    hooks_id = TenantWebhooks.objects.filter(tenant_id=tenant_id).values_list("pk", flat=True).first()
    if hooks_id is None:
        logger.warning("provisioning.verify-no-tenant-webhooks tenant=%s", tenant_id)
        return False
    _mark_verified(TenantWebhooks, hooks_id, webhook_id)
    _settle_integrations(tenant_id)
    return True


def _mark_verified(model: type, pk: int, webhook_id) -> None:
    with _locked_row(pk, model) as row:
        if row is None:
            logger.warning("provisioning.verify-unknown %s %s", model.__name__, pk)
            return
        hooks = dict(row.xurrent_webhooks or {})
        matched = False
        for event, entry in hooks.items():
            if str(entry.get("id")) == str(webhook_id):
                hooks[event] = {**entry, "verified": True}
                matched = True
        fields = ["xurrent_webhooks"]
        if matched:
            row.xurrent_webhooks = hooks
        else:
            logger.info("provisioning.verify-early %r webhook %s", row, webhook_id)
            row.xurrent_early_verifications = [*(row.xurrent_early_verifications or []), str(webhook_id)]
            fields = ["xurrent_early_verifications"]
        # A run in progress (or a failed one) settles the status itself.
        if row.provisioning_status in (ProvisioningStatus.VERIFYING, ProvisioningStatus.ACTION_REQUIRED,
                                       ProvisioningStatus.PROVISIONED):
            row.provisioning_status = settled_status(row)
            fields.append("provisioning_status")
        row.save(update_fields=fields)


def confirm_zenduty_step(integration_id: int) -> OutgoingIntegration | None:
    """The admin (or the first signed Zenduty delivery) says Zenduty's webhook is configured."""
    with _locked_row(integration_id) as row:
        if row is None:
            return None
        row.zenduty_step_confirmed_at = timezone.now()
        fields = ["zenduty_step_confirmed_at"]
        if row.provisioning_status in (ProvisioningStatus.VERIFYING, ProvisioningStatus.ACTION_REQUIRED,
                                       ProvisioningStatus.PROVISIONED):
            row.provisioning_status = settled_status(row)
            fields.append("provisioning_status")
        row.save(update_fields=fields)
    return row


def set_enabled(integration_id: int, enabled: bool) -> OutgoingIntegration | None:
    """Enable or disable an integration and bring the webhooks in line (outside transactions)."""
    _require_no_transaction("set_enabled()")
    OutgoingIntegration.objects.filter(pk=integration_id).update(enabled=enabled, updated_at=timezone.now())
    return provision(integration_id)


# -- moving integrations' own webhooks to the tenant's set ---------------------------------------
def move_to_tenant_webhooks() -> list[tuple[OutgoingIntegration, bool, str]]:
    """Move every integration's own Xurrent policy and webhooks (from before ``TenantWebhooks``) to its
    tenant's set: :func:`provision` creates (or adopts) the tenant's set first, then deletes the
    integration's own; a failure leaves the old set in place, recorded, for the next run.

    Safe to run twice and after an interruption (lost answers are adopted or swept as in any run).
    Returns ``(integration, moved, message)`` for each integration that had a set of its own.
    """
    results = []
    for integration_id in OutgoingIntegration.objects.filter(
            ~Q(xurrent_policy_id="") | ~Q(xurrent_webhooks={})).order_by("pk").values_list("pk", flat=True):
        after = provision(integration_id)
        if after is None:
            continue
        moved = not after.has_own_xurrent_webhooks and after.provisioning_status != ProvisioningStatus.FAILED
        results.append((after, moved, after.provisioning_error or after.get_provisioning_status_display()))
    return results
