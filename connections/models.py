"""Connections: the Xurrent accounts ("tenants") and the Zenduty account.

A connection holds credentials (encrypted at rest) and the result of the last
live check. Integrations (integrations app) refer to connections.
"""
from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from connections.fields import EncryptedTextField


# Badge colours (text, background) shared by the status choices of all apps.
GREEN = ("#17693a", "#e3f6ea")
BLUE = ("#1f4e8c", "#e4eefb")
AMBER = ("#8a5300", "#fff3d6")
RED = ("#9b1c1c", "#fde8e8")
GREY = ("#5b6475", "#eef1f7")


class ConnectionStatus(models.TextChoices):
    UNTESTED = "untested", "Untested"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed"

    @property
    def colours(self) -> tuple[str, str]:
        """Text and background colour of this status's badge in the admin."""
        return {"active": GREEN, "failed": RED}.get(self.value, GREY)


class XurrentRegion(models.TextChoices):
    GLOBAL = "global", "Global"
    AU = "au", "Australia"
    UK = "uk", "United Kingdom"
    CH = "ch", "Switzerland"
    US = "us", "United States"


class XurrentEnvironment(models.TextChoices):
    PRODUCTION = "production", "Production"
    QA = "qa", "QA"
    DEMO = "demo", "Demo"


account_id_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
    "Xurrent account IDs use lowercase letters, digits and dashes, e.g. 'wdc' or 'widget-it' "
    "(Settings → Account Overview in Xurrent).",
)


class ConnectionStatusMixin(models.Model):
    """Status of the last live check of a connection."""

    status = models.CharField(max_length=16, choices=ConnectionStatus.choices, default=ConnectionStatus.UNTESTED)
    last_error = models.TextField(blank=True, default="")
    last_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def mark_checked(self, error: str = "", *, save: bool = True) -> None:
        """Record the outcome of a live check (empty error means success)."""
        self.status = ConnectionStatus.FAILED if error else ConnectionStatus.ACTIVE
        self.last_error = error[:2000]
        self.last_checked_at = timezone.now()
        if save and self.pk:
            type(self).objects.filter(pk=self.pk).update(
                status=self.status, last_error=self.last_error, last_checked_at=self.last_checked_at)
            from connections.signals import connection_checked

            connection_checked.send(sender=type(self), connection=self)  # alerts: credentials stopped working


class XurrentTenant(ConnectionStatusMixin):
    """A Xurrent account the portal talks to with OAuth client credentials.

    Hosts follow from (region, environment); see connections.xurrent.hosts.
    """

    name = models.CharField(max_length=100, help_text="A label for this connection, e.g. 'Widget Data Center'.")
    account_id = models.CharField(
        "Account ID", max_length=64, validators=[account_id_validator],
        help_text="Settings → Account Overview in Xurrent, e.g. 'wdc'.")
    client_id = models.CharField("Client ID", max_length=255,
                                 help_text="From the OAuth application (Client Credentials Grant).")
    client_secret = EncryptedTextField("Client secret")
    region = models.CharField(max_length=16, choices=XurrentRegion.choices, default=XurrentRegion.GLOBAL)
    environment = models.CharField(max_length=16, choices=XurrentEnvironment.choices,
                                   default=XurrentEnvironment.PRODUCTION)
    # The person the OAuth application acts as (GET /me at the last check): changes it makes come
    # back as webhooks naming this person, which is how the sync recognises its own echoes.
    portal_person_id = models.CharField("Portal acts as (person ID)", max_length=64, blank=True, default="")
    portal_person_name = models.CharField("Portal acts as", max_length=200, blank=True, default="")

    class Meta:
        verbose_name = "Xurrent tenant"
        constraints = [
            models.UniqueConstraint(fields=["account_id", "region", "environment"],
                                    name="unique_tenant_account_region_environment"),
            # Xurrent has a single Demo instance, in the Global region.
            models.CheckConstraint(condition=~models.Q(environment="demo") | models.Q(region="global"),
                                   name="tenant_demo_only_global"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.account_id}, {self.get_region_display()} {self.get_environment_display()})"

    def __repr__(self) -> str:  # never the secret
        return f"<XurrentTenant {self.pk} {self.account_id}>"


class ZendutyAccount(ConnectionStatusMixin):
    """The Zenduty account, reached with an API token (Account → API Keys).

    ``account_unique_id`` is the account as Zenduty identifies it (the ``account`` of the teams the
    token lists), read by each live check: one Zenduty account is connected once, or it would get a
    second rate-limit budget and a second way round one-integration-per-service. Empty for a row
    saved before it was recorded, until its next check.
    """

    name = models.CharField(max_length=100)
    api_token = EncryptedTextField("API token")
    base_url = models.URLField("Base URL", default="https://www.zenduty.com",
                               help_text="Leave as https://www.zenduty.com unless Zenduty told you otherwise.")
    account_unique_id = models.CharField("Zenduty account ID", max_length=64, null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "Zenduty account"
        constraints = [
            # NULLs are distinct: rows not checked since this was added (or whose token lists no team) pass.
            models.UniqueConstraint(fields=["account_unique_id"], name="one_connection_per_zenduty_account"),
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<ZendutyAccount {self.pk} {self.name}>"


class XurrentAccessToken(models.Model):
    """The cached OAuth access token of a tenant, shared by every process.

    One row per tenant. The token is encrypted like any other secret; it is
    reused until shortly before ``expires_at`` (see connections.xurrent.auth).
    """

    tenant = models.OneToOneField(XurrentTenant, on_delete=models.CASCADE, related_name="access_token")
    # Which credentials and host the token was issued for: a changed secret or
    # region must not reuse the old token. An HMAC keyed from SECRET_KEY
    # (connections.xurrent.auth.fingerprint), so it reveals nothing of the secret.
    fingerprint = models.CharField(max_length=64)
    token = EncryptedTextField()
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __repr__(self) -> str:
        return f"<XurrentAccessToken tenant={self.tenant_id} expires_at={self.expires_at}>"


class ApiBudget(models.Model):
    """The recent calls of one rate-limited kind of call, shared by every process (``recent``: when
    each was sent, or answered once it was).

    One row per key (e.g. a Zenduty account's incident reads): the send times
    of the calls made in the longest window, so that every web process and
    worker keeps to the service's limits together, and the turns given to
    rescheduled jobs (connections.budget).
    """

    key = models.CharField(max_length=128, unique=True)
    recent = models.JSONField(default=list, blank=True, help_text="Epoch seconds of the calls in the window.")
    booked = models.JSONField(default=list, blank=True,
                              help_text="Epoch seconds of the turns given to callers that come back later.")
    updated_at = models.DateTimeField(auto_now=True)

    def __repr__(self) -> str:
        return f"<ApiBudget {self.key} {len(self.recent)} recent>"
