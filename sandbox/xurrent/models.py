"""Records of the simulated Xurrent: accounts, OAuth applications and tokens,
people and teams, services and service instances, requests and notes,
webhooks and webhook policies.

Only the fields the portal (and a person testing by hand) needs are kept;
the JSON the API returns is built in :mod:`sandbox.xurrent.shapes`.
Secrets are never stored in the clear: client secrets and tokens as hashes,
the private keys of webhook policies encrypted (as any service holding them would).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from django.contrib.auth.hashers import check_password, make_password
from django.db import models
from django.utils import timezone

from connections.fields import EncryptedTextField
from connections.xurrent import hosts
from sandbox.xurrent import vocabulary as v

# OAuth client-credentials tokens are valid for one hour (reference §1.2).
ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
UI_PERSON_NAME = "Howard Tanner"

# The instance (region and environment) simulated accounts live in unless told otherwise:
# Global Production, the one the portal's tenant form offers first.
DEFAULT_INSTANCE = "xurrent.com"

# nodeID prefix: Xurrent's global ids are base64 of "<domain>/<Type>/<id>" (§8).
NODE_DOMAIN = "xurrent.sandbox"


def node_id(kind: str, pk: int) -> str:
    """The GraphQL-style ``nodeID`` of a record (base64 without padding).

    The URL-safe alphabet keeps ids routable in paths; both alphabets are read.
    """
    return base64.urlsafe_b64encode(f"{NODE_DOMAIN}/{kind}/{pk}".encode()).decode().rstrip("=")


def pk_from_node_id(kind: str, value: str) -> int | None:
    """The numeric id inside a ``nodeID`` of the given kind, or None."""
    try:
        padded = value.replace("+", "-").replace("/", "_") + "=" * (-len(value) % 4)
        decoded = base64.urlsafe_b64decode(padded).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    domain, _, rest = decoded.partition("/")
    found_kind, _, number = rest.partition("/")
    if domain != NODE_DOMAIN or found_kind != kind or not number.isdigit():
        return None
    return int(number)


def token_digest(raw: str) -> str:
    """SHA-256 of a bearer token: tokens are random, so a plain digest is enough to look them up."""
    return hashlib.sha256(raw.encode()).hexdigest()


class NodeMixin:
    """Adds ``node_id`` (``nodeID`` in JSON) using the class attribute ``NODE_KIND``."""

    NODE_KIND = ""

    @property
    def node_id(self) -> str:
        return node_id(self.NODE_KIND, self.pk)


class Account(NodeMixin, models.Model):
    """A Xurrent account, e.g. ``wdc`` ("Widget Data Center"), named by ``X-Xurrent-Account``."""

    NODE_KIND = "Account"

    account_id = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    # The Xurrent instance (region and environment, by its domain) the account lives in. Each
    # instance is a host of its own under /sandbox/xurrent/<domain>/ and knows only its accounts,
    # applications and tokens, as Xurrent's separate instances do.
    instance = models.CharField(max_length=64, default=DEFAULT_INSTANCE,
                                choices=[(d, d) for d in hosts.DOMAINS])
    # Requests without a service instance (or whose instance has no team) go to this team.
    service_desk_team = models.ForeignKey("Team", null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.account_id})"

    def simulator_settings(self) -> SimulatorSettings:
        """This account's simulator knobs, created with the defaults on first use."""
        row, _ = SimulatorSettings.objects.get_or_create(account=self)
        return row

    def ui_person(self) -> Person:
        """The person who works in the by-hand UI (not the API user)."""
        row = self.simulator_settings()
        if row.ui_person_id is None:
            person = Person.objects.filter(account=self, name=UI_PERSON_NAME).first()
            if person is None:
                person = Person.objects.create(account=self, name=UI_PERSON_NAME,
                                               primary_email=f"howard.tanner@{self.account_id}.example")
            row.ui_person = person
            row.save(update_fields=["ui_person"])
        return row.ui_person


class SimulatorSettings(models.Model):
    """Per-account knobs of the simulator itself (not part of Xurrent).

    * ``rate_limit`` calls per ``rate_window_seconds`` per API user (§5.3 shows
      3600 and an hourly window is inferred); ``burst_limit`` per
      ``burst_window_seconds`` adds the short-burst limiter (20 per 2 s per the
      Ruby SDK), off (0) by default so pagination-heavy tests stay fast.
    * ``strict_account_header``: whether a call without ``X-Xurrent-Account``
      is refused (401) or runs in the token's own account — real behaviour is
      unknown (§1.5), so both can be tried.
    """

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="simulator")
    rate_limit = models.PositiveIntegerField(default=3600)
    rate_window_seconds = models.PositiveIntegerField(default=3600)
    burst_limit = models.PositiveIntegerField(default=0, help_text="0 = no short-burst limiter.")
    burst_window_seconds = models.PositiveIntegerField(default=2)
    strict_account_header = models.BooleanField(default=True)
    ui_person = models.ForeignKey("Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"simulator settings of {self.account.account_id}"


class Person(NodeMixin, models.Model):
    """A person of an account. API calls run as one (the application's person, §1.1)."""

    NODE_KIND = "Person"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="people")
    name = models.CharField(max_length=120)
    primary_email = models.EmailField(blank=True, default="")
    sourceID = models.CharField(max_length=128, blank=True, default="")  # noqa: N815 (vendor field name)
    disabled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class OAuthApplication(models.Model):
    """An OAuth application with the client-credentials grant (§1.2).

    Tokens it issues act as ``person``. The client secret is kept only as a
    salted password hash.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="oauth_applications")
    name = models.CharField(max_length=120, default="Integration")
    client_id = models.CharField(max_length=120, unique=True)
    client_secret_hash = models.CharField(max_length=256)
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="oauth_applications")
    disabled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"

    def set_secret(self, raw: str) -> None:
        """Store a (new) client secret, hashed."""
        self.client_secret_hash = make_password(raw)

    def check_secret(self, raw: str) -> bool:
        """Whether ``raw`` is this application's client secret."""
        return bool(raw) and check_password(raw, self.client_secret_hash)


class AccessToken(models.Model):
    """A bearer token issued by the token endpoint; valid for one hour. Only its digest is stored."""

    application = models.ForeignKey(OAuthApplication, on_delete=models.CASCADE, related_name="tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    @classmethod
    def issue(cls, application: OAuthApplication) -> tuple[AccessToken, str]:
        """A new token for ``application``: returns the row and the raw token (shown once)."""
        raw = secrets.token_urlsafe(32)
        row = cls.objects.create(application=application, token_hash=token_digest(raw),
                                 expires_at=timezone.now() + ACCESS_TOKEN_LIFETIME)
        return row, raw


class PersonalAccessToken(models.Model):
    """A personal access token (§1.4): a bearer token acting as ``person``, stored as a digest."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="personal_access_tokens")
    name = models.CharField(max_length=120, default="Personal access token")
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    disabled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    @classmethod
    def issue(cls, person: Person, name: str = "Personal access token",
              expires_at=None) -> tuple[PersonalAccessToken, str]:
        """A new token for ``person``: returns the row and the raw token (shown once)."""
        raw = secrets.token_urlsafe(32)
        row = cls.objects.create(person=person, name=name, token_hash=token_digest(raw), expires_at=expires_at)
        return row, raw


class Team(NodeMixin, models.Model):
    """A team; requests are assigned to one."""

    NODE_KIND = "Team"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=120)
    sourceID = models.CharField(max_length=128, blank=True, default="")  # noqa: N815
    disabled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Service(NodeMixin, models.Model):
    """A service (§4.2); its instances are what requests are raised against."""

    NODE_KIND = "Service"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="services")
    name = models.CharField(max_length=80)
    provider_name = models.CharField(max_length=120, blank=True, default="")
    support_team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    disabled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class ServiceInstance(NodeMixin, models.Model):
    """A service instance (§4.1), e.g. "Website (Production)"."""

    NODE_KIND = "ServiceInstance"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="service_instances")
    name = models.CharField(max_length=80)
    status = models.CharField(max_length=20, choices=v.choices(v.SERVICE_INSTANCE_STATUSES),
                              default="being_prepared")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="instances")
    support_team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    first_line_team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=30, blank=True, default="")
    sourceID = models.CharField(max_length=128, blank=True, default="")  # noqa: N815
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Request(NodeMixin, models.Model):
    """A request (§3): incidents, changes, questions…"""

    NODE_KIND = "Req"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="requests")
    subject = models.CharField(max_length=255)
    category = models.CharField(max_length=20, choices=v.choices(v.CATEGORIES))
    impact = models.CharField(max_length=10, choices=v.choices(v.IMPACTS), null=True, blank=True)
    status = models.CharField(max_length=30, choices=v.choices(v.STATUSES), default="assigned")
    completion_reason = models.CharField(max_length=20, choices=v.choices(v.COMPLETION_REASONS), null=True,
                                         blank=True)
    service_instance = models.ForeignKey(ServiceInstance, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="requests")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="requests")
    member = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_for = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=30, blank=True, default="")
    sourceID = models.CharField(max_length=128, blank=True, default="")  # noqa: N815
    urgent = models.BooleanField(default=False)
    completed_at = models.DateTimeField(null=True, blank=True)
    reopen_count = models.PositiveIntegerField(default=0)
    assignment_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["account", "source", "sourceID"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"


class Note(NodeMixin, models.Model):
    """A note on a request (§3.3); public unless ``internal``."""

    NODE_KIND = "Note"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="notes")
    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="notes")
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField()
    internal = models.BooleanField(default=False)
    medium = models.CharField(max_length=20, default="default")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"note {self.pk} on request {self.request_id}"


class AuditLine(NodeMixin, models.Model):
    """An entry of a request's audit trail: one per create or field change (§6.3).

    Only its id matters here: webhook payloads carry ``audit_line_id`` /
    ``audit_line_nodeID`` when the change made an audit entry (a note does not).
    """

    NODE_KIND = "AuditLine"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="audit_lines")
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"audit line {self.pk} of request {self.request_id}"


def new_policy_name() -> str:
    """Xurrent's generated webhook-policy name: 56 hex characters (§7.1)."""
    return secrets.token_hex(28)


class WebhookPolicy(NodeMixin, models.Model):
    """A webhook policy (§7.1): deliveries of its webhooks are JWTs signed with its private key.

    The key pair is generated on create; the public key is shown in the
    create answer only. The private key stays here, encrypted.
    """

    NODE_KIND = "WebhookPolicy"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_policies")
    name = models.CharField(max_length=56, default=new_policy_name, unique=True)
    disabled = models.BooleanField(default=False)
    jwt_alg = models.CharField(max_length=8)
    jwt_audience = models.TextField(blank=True, default="")
    jwt_claim_expires_in = models.PositiveIntegerField(null=True, blank=True, help_text="Minutes.")
    private_key_pem = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"policy {self.pk} ({self.jwt_alg})"


class Webhook(NodeMixin, models.Model):
    """A webhook (§6.1): POSTs ``event`` messages to ``uri`` once verified (§6.2)."""

    NODE_KIND = "Webhook"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhooks")
    event = models.CharField(max_length=64)
    uri = models.CharField(max_length=1000)
    name = models.CharField(max_length=120, blank=True, default="")
    description = models.TextField(blank=True, default="")
    disabled = models.BooleanField(default=False)
    mail_exceptions_to = models.CharField(max_length=500, blank=True, default="")
    # A deleted policy leaves its webhooks unsigned (deviation: the real
    # behaviour is undocumented); receivers expecting a JWT then refuse them.
    webhook_policy = models.ForeignKey(WebhookPolicy, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="webhooks")
    source = models.CharField(max_length=30, blank=True, default="")
    sourceID = models.CharField(max_length=128, blank=True, default="")  # noqa: N815
    created_by = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Verification handshake state (§6.2). Only a digest of the code is kept.
    verified = models.BooleanField(default=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_code_hash = models.CharField(max_length=64, blank=True, default="")
    verification_expires_at = models.DateTimeField(null=True, blank=True)
    # Delivery health (§6.4): Xurrent disables a webhook after 20 consecutive
    # failures over more than a week and keeps its last_error. Every failed
    # attempt (retries included) extends the streak; a 2xx ends it.
    consecutive_failures = models.PositiveIntegerField(default=0)
    first_failure_at = models.DateTimeField(null=True, blank=True, help_text="First failure of the current streak.")
    last_error = models.CharField(max_length=200, blank=True, default="",
                                  help_text='The latest failure as the API shows it, e.g. "404 Not Found".')
    auto_disabled_at = models.DateTimeField(null=True, blank=True,
                                            help_text="When the failure streak disabled it (cleared on re-enable).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} {self.event} → {self.uri}"

    def reset_failures(self) -> list[str]:
        """Forget the failure streak (``last_error`` stays); returns the fields changed, for ``update_fields``."""
        self.consecutive_failures, self.first_failure_at, self.auto_disabled_at = 0, None, None
        return ["consecutive_failures", "first_failure_at", "auto_disabled_at"]

    def check_verification_code(self, code: str) -> bool:
        """Whether ``code`` is the current verification code (constant-time comparison)."""
        return bool(code and self.verification_code_hash) and hmac.compare_digest(
            token_digest(code), self.verification_code_hash)
