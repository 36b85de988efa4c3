"""Outgoing integrations: one per Zenduty service, linked to a Xurrent service instance.

Mirrors Zenduty's "Add Outgoing Integration → Xurrent" screen: tenant, service
instance, direction, sync notes, default impact and an optional custom mapping
of the team's priorities to Xurrent impacts. Saving provisions what the other
side needs (integrations.provisioning); the state of that is kept here.
"""
from __future__ import annotations

import secrets as pysecrets
import uuid

from django.db import models

from connections.fields import EncryptedTextField
from connections.models import AMBER, BLUE, GREEN, GREY, RED, XurrentTenant, ZendutyAccount


class Direction(models.TextChoices):
    XURRENT_TO_ZENDUTY = "xurrent_to_zenduty", "Xurrent → Zenduty (requests create incidents)"
    ZENDUTY_TO_XURRENT = "zenduty_to_xurrent", "Zenduty → Xurrent (incidents create requests)"
    BIDIRECTIONAL = "bidirectional", "Both ways"


class Impact(models.TextChoices):
    """Xurrent's impact levels, with Xurrent's own labels."""

    LOW = "low", "Low – Service Degraded for One User"
    MEDIUM = "medium", "Medium – Service Down for One User"
    HIGH = "high", "High – Service Degraded for Several Users"
    TOP = "top", "Top – Service Down for Several Users"


class ProvisioningStatus(models.TextChoices):
    PENDING = "pending", "Not provisioned yet"
    PROVISIONED = "provisioned", "Provisioned"
    ACTION_REQUIRED = "action_required", "Provisioned; a manual step is left"
    # Webhooks created; Xurrent has not yet had its webhook.verify answered for all of them.
    VERIFYING = "verifying", "Waiting for Xurrent to verify the webhooks"
    FAILED = "failed", "Failed"
    DISABLED = "disabled", "Disabled"

    @property
    def colours(self) -> tuple[str, str]:
        """Text and background colour of this status's badge in the admin."""
        return {"provisioned": GREEN, "verifying": BLUE, "action_required": AMBER, "failed": RED}.get(self.value, GREY)


MIN_PRIORITIES_FOR_CUSTOM_MAPPING = 4
# Xurrent's request categories (https://developer.xurrent.com/v1/requests/), and those that
# create incidents unless the integration says otherwise.
REQUEST_CATEGORIES = (
    ("incident", "Incident – Request for Incident Resolution"),
    ("rfc", "RFC – Request for Change"),
    ("rfi", "RFI – Request for Information"),
    ("reservation", "Reservation – Request for Reservation"),
    ("order", "Order – Request for Purchase"),
    ("fulfillment", "Fulfillment – Request for Order Fulfillment"),
    ("complaint", "Complaint – Request for Support Improvement"),
    ("compliment", "Compliment – Request for Bestowal of Praise"),
    ("other", "Other – Request is Out of Scope"),
)
DEFAULT_CATEGORIES = ("incident",)


def default_categories() -> list[str]:
    return list(DEFAULT_CATEGORIES)


def new_signing_secret() -> str:
    return pysecrets.token_urlsafe(32)


def priority_mapping_entries(mapping: dict) -> dict[str, tuple[str, str]]:
    """The custom mapping as the configuration history shows it: ``{priority id: (name, impact)}``,
    in the team's order (connections.changes). The names were stored with the mapping when it was saved."""
    def rank(item):
        entry = item[1] if isinstance(item[1], dict) else {}
        return (entry.get("rank") if isinstance(entry.get("rank"), int) else 1_000_000, str(entry.get("name", "")))
    return {str(pid): (str(entry.get("name") or pid), str(entry.get("impact") or "—")) if isinstance(entry, dict)
            else (str(pid), str(entry)) for pid, entry in sorted((mapping or {}).items(), key=rank)}


class OutgoingIntegration(models.Model):
    """A Zenduty service wired to a Xurrent service instance."""

    zenduty_account = models.ForeignKey(ZendutyAccount, on_delete=models.PROTECT, related_name="integrations")
    zenduty_team_id = models.CharField("Zenduty team ID", max_length=64)
    zenduty_team_name = models.CharField("Zenduty team", max_length=200, blank=True, default="")
    zenduty_service_id = models.CharField("Zenduty service ID", max_length=64)
    zenduty_service_name = models.CharField("Zenduty service", max_length=200, blank=True, default="")

    tenant = models.ForeignKey(XurrentTenant, on_delete=models.PROTECT, related_name="integrations",
                               verbose_name="Xurrent tenant")
    service_instance_id = models.CharField("Xurrent service instance ID", max_length=64)
    service_instance_name = models.CharField("Xurrent service instance", max_length=200, blank=True, default="")

    direction = models.CharField(max_length=32, choices=Direction.choices, default=Direction.BIDIRECTIONAL)
    sync_notes = models.BooleanField("Sync notes", default=True)
    # Xurrent → Zenduty: internal notes may hold what the on-call audience should not see.
    sync_internal_xurrent_notes = models.BooleanField(
        "Copy internal Xurrent notes", default=False,
        help_text="Also copy Xurrent notes marked internal to the Zenduty incident. Off: only public notes are "
                  "copied; internal ones may hold what the on-call audience should not see.")
    # Zenduty → Xurrent: internal unless this says otherwise.
    public_zenduty_notes = models.BooleanField(
        "Zenduty notes are public in Xurrent", default=False,
        help_text="Add Zenduty notes to the Xurrent request as public notes: the requester (and everyone who "
                  "can see the request) reads them. Off: internal notes, seen by Xurrent specialists only.")
    default_impact = models.CharField(max_length=16, choices=Impact.choices, default=Impact.MEDIUM)
    use_custom_mapping = models.BooleanField("Custom impact mapping", default=False)
    # {"<zenduty priority unique_id>": {"name": "P1", "impact": "top"}, ...}
    priority_mapping = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    # Xurrent request categories whose requests create incidents (Xurrent → Zenduty).
    categories = models.JSONField("Request categories", default=default_categories, blank=True,
                                  help_text="Requests of these categories create incidents.")
    # The last permanent sync failure (401/403/422 …), shown on the page; cleared by the next success.
    sync_error = models.TextField(blank=True, default="")
    sync_error_at = models.DateTimeField(null=True, blank=True)

    # Webhook URLs carry this instead of the primary key.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Zenduty signs its outgoing webhooks with this (X-SIGNATURE HMAC).
    zenduty_signing_secret = EncryptedTextField(default=new_signing_secret)
    # The key above is one Zenduty generated and an admin pasted, not the portal's own: the portal
    # offers its own key for Zenduty to use, and must never show a pasted one back.
    zenduty_signing_key_pasted = models.BooleanField(default=False, editable=False)

    # Provisioning state (integrations.provisioning).
    provisioning_status = models.CharField(max_length=24, choices=ProvisioningStatus.choices,
                                           default=ProvisioningStatus.PENDING)
    provisioning_error = models.TextField(blank=True, default="")
    provisioned_at = models.DateTimeField(null=True, blank=True)
    xurrent_policy_id = models.CharField(max_length=64, blank=True, default="")
    xurrent_policy_alg = models.CharField(max_length=8, blank=True, default="rs256")
    xurrent_policy_audience = models.CharField(max_length=255, blank=True, default="")
    # Public, not secret: Xurrent shows it only once, so we must keep it.
    xurrent_policy_public_key = models.TextField(blank=True, default="")
    # {"request.create": {"id": 12, "verified": true}, ...}
    xurrent_webhooks = models.JSONField(default=dict, blank=True)
    zenduty_integration_id = models.CharField(max_length=64, blank=True, default="")
    # Its name as Zenduty last listed it: the admin looks for it by name on Zenduty's screens, and the
    # portal does not rename it when the service instance (part of the name it was given) changes.
    zenduty_integration_name = models.CharField(max_length=100, blank=True, default="", editable=False)
    # Zenduty's webhook URL and signing key are entered in Zenduty's screens
    # (not in its public API); set when an admin confirms that step.
    zenduty_step_confirmed_at = models.DateTimeField(null=True, blank=True)
    # webhook.verify answers for webhook IDs not recorded yet (the verification
    # overtook the create answer); applied when the ID is recorded.
    xurrent_early_verifications = models.JSONField(default=list, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # How the configuration history reads a dict field (connections.changes): "P5 → medium", not UUIDs.
    history_entries = {"priority_mapping": priority_mapping_entries}

    class Meta:
        verbose_name = "outgoing integration"
        constraints = [
            models.UniqueConstraint(fields=["zenduty_account", "zenduty_service_id"],
                                    name="one_integration_per_zenduty_service"),
            models.UniqueConstraint(fields=["tenant", "service_instance_id"],
                                    name="one_integration_per_service_instance"),
        ]

    def __str__(self) -> str:
        return f"{self.zenduty_service_name or self.zenduty_service_id} ⇄ " \
               f"{self.service_instance_name or self.service_instance_id}"

    def __repr__(self) -> str:
        return f"<OutgoingIntegration {self.pk} {self.public_id}>"

    # -- direction helpers (one place decides what flows where) ---------------
    @property
    def receives_from_xurrent(self) -> bool:
        """Xurrent requests create/update Zenduty incidents."""
        return self.direction in (Direction.XURRENT_TO_ZENDUTY, Direction.BIDIRECTIONAL)

    @property
    def receives_from_zenduty(self) -> bool:
        """Zenduty incidents create/update Xurrent requests."""
        return self.direction in (Direction.ZENDUTY_TO_XURRENT, Direction.BIDIRECTIONAL)

    @property
    def needs_xurrent_webhooks(self) -> bool:
        """Every enabled integration needs the tenant's Xurrent webhooks: once a pair exists its
        status syncs both ways, whichever side created it (``TenantWebhooks``)."""
        return self.enabled

    @property
    def needs_zenduty_webhook(self) -> bool:
        """Every integration needs Zenduty's outgoing webhook on its service: a pair's
        acknowledged / resolved come from there, whichever side created it."""
        return True

    @property
    def has_own_xurrent_webhooks(self) -> bool:
        """Whether per-integration Xurrent webhooks of before ``TenantWebhooks`` are still recorded
        (``manage.py move_xurrent_webhooks`` removes them)."""
        return bool(self.xurrent_webhooks or self.xurrent_policy_id)

    def impact_for_priority(self, priority_id: str | None) -> str:
        """The Xurrent impact for a Zenduty priority (custom mapping, else the default)."""
        if self.use_custom_mapping and priority_id:
            entry = self.priority_mapping.get(priority_id)
            if entry and entry.get("impact") in Impact.values:
                return entry["impact"]
        return self.default_impact

    def priority_for_impact(self, impact: str | None) -> str | None:
        """The Zenduty priority for a Xurrent impact, when the custom mapping names one."""
        if not (self.use_custom_mapping and impact):
            return None
        for priority_id, entry in self.priority_mapping.items():
            if entry.get("impact") == impact:
                return priority_id
        return None


class TenantWebhooks(models.Model):
    """The Xurrent webhook policy and webhooks of one tenant, shared by all its integrations.

    Xurrent webhooks are account-wide (no filter by service instance), so one
    set per tenant delivers each request event once, to
    ``/webhooks/xurrent/tenant/<public_id>/``; the sync engine routes it to the
    integration of the request's pair or service instance. Created with the
    tenant's first enabled integration, removed with its last
    (``integrations.provisioning``). Field names are those the integration
    used for its own set before, so one provisioning code serves both.
    """

    tenant = models.OneToOneField(XurrentTenant, on_delete=models.PROTECT, related_name="webhooks",
                                  verbose_name="Xurrent tenant")
    # The webhook URL carries this instead of the primary key.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    provisioning_status = models.CharField(max_length=24, choices=ProvisioningStatus.choices,
                                           default=ProvisioningStatus.PENDING)
    provisioning_error = models.TextField(blank=True, default="")
    provisioned_at = models.DateTimeField(null=True, blank=True)
    xurrent_policy_id = models.CharField(max_length=64, blank=True, default="")
    xurrent_policy_alg = models.CharField(max_length=8, blank=True, default="rs256")
    xurrent_policy_audience = models.CharField(max_length=255, blank=True, default="")
    # Public, not secret: Xurrent shows it only once, so we must keep it.
    xurrent_policy_public_key = models.TextField(blank=True, default="")
    # {"request.create": {"id": 12, "verified": true, "uri": ..., "disabled": false}, ...}
    xurrent_webhooks = models.JSONField(default=dict, blank=True)
    # webhook.verify answers for webhook IDs not recorded yet (the verification overtook the create answer).
    xurrent_early_verifications = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "tenant webhooks"
        verbose_name_plural = "tenant webhooks"

    def __str__(self) -> str:
        return f"Xurrent webhooks of {self.tenant}"

    def __repr__(self) -> str:
        return f"<TenantWebhooks {self.pk} tenant={self.tenant_id} {self.public_id}>"

    # Provisioning reads these like an integration's; the set is never disabled, only removed.
    enabled = True


class TeamPriorities(models.Model):
    """The priorities of one Zenduty team as the portal last read them: ids, names, in Zenduty's order.

    Integration pages compare a custom mapping with this snapshot (``integrations.drift``)
    instead of asking Zenduty on every page view. Refreshed by a scheduled job within the
    account's shared call budget (``integrations.team_priorities``) and whenever the
    integration form reads the team's priorities live.
    """

    zenduty_account = models.ForeignKey(ZendutyAccount, on_delete=models.CASCADE, related_name="team_priorities")
    team_id = models.CharField("Zenduty team ID", max_length=64)
    # [{"id": "<priority unique_id>", "name": "P1"}, ...] in the order Zenduty lists them.
    priorities = models.JSONField(default=list, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # The last refresh that failed (kept until a read succeeds); the snapshot stays as it was.
    error = models.TextField(blank=True, default="")
    error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "team priorities"
        verbose_name_plural = "team priorities"
        constraints = [models.UniqueConstraint(fields=["zenduty_account", "team_id"],
                                               name="one_priority_snapshot_per_team")]

    def __str__(self) -> str:
        return f"Priorities of Zenduty team {self.team_id}"

    def __repr__(self) -> str:
        return f"<TeamPriorities {self.pk} account={self.zenduty_account_id} team={self.team_id}>"
