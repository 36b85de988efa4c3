"""Records of the simulated Zenduty (Xurrent IMR).

Shapes and coded values follow Zenduty's API documentation and its published
OpenAPI examples (https://apidocs.zenduty.com). Only what the portal and
its tests need is modelled; the rest of Zenduty (schedules, tags, tasks,
postmortems…) is left out.
"""
from __future__ import annotations

import uuid

from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from sandbox.zenduty import ids


class Account(models.Model):
    """A Zenduty account. Incident numbers count up per account (§2.4)."""

    unique_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    last_incident_number = models.PositiveIntegerField(default=0)
    # The person whose clicks the by-hand UI makes (not the API token's user).
    ui_user = models.ForeignKey("User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    def next_incident_number(self) -> int:
        """Reserve the next incident number atomically."""
        with transaction.atomic():
            Account.objects.filter(pk=self.pk).update(last_incident_number=F("last_incident_number") + 1)
            self.last_incident_number = Account.objects.values_list(
                "last_incident_number", flat=True).get(pk=self.pk)
        return self.last_incident_number


class User(models.Model):
    """An account member. ``username`` is a UUID4 cut to 25 characters (§2.4)."""

    ROLE_OWNER, ROLE_ADMIN, ROLE_USER = 1, 2, 3

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="users")
    username = models.CharField(max_length=ids.USERNAME_LENGTH, unique=True, default=ids.new_username)
    first_name = models.CharField(max_length=100, blank=True, default="")
    last_name = models.CharField(max_length=100, blank=True, default="")
    email = models.EmailField()
    role = models.PositiveSmallIntegerField(default=ROLE_USER)
    joining_date = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.full_name or self.username

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ApiKey(models.Model):
    """An API key (Account → API Keys). Only its SHA-256 is stored; the key acts as ``user``."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="API key")
    token_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=8, blank=True, default="", help_text="Last characters, for recognition.")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} (…{self.hint})"


class Team(models.Model):
    """A team: owns priorities, escalation policies, SLAs and services."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="teams")
    unique_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    owner = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    members = models.ManyToManyField(User, through="TeamMember", related_name="teams")
    creation_date = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class TeamMember(models.Model):
    """Membership of a user in a team; role 1 manager, 2 user (§5.3)."""

    unique_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.PositiveSmallIntegerField(default=2)
    joining_date = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="zd_team_member_once")]


class IncidentRole(models.Model):
    """An incident role; every new team gets "Incident Commander" (§5.5)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="roles")
    unique_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    rank = models.PositiveSmallIntegerField(default=1)
    creation_date = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]


# Ant Design preset colours, the values Terraform allows for priorities (§5.1); "" is accepted too.
PRIORITY_COLORS = ("magenta", "red", "volcano", "orange", "gold", "lime", "green", "cyan", "blue", "geekblue",
                   "purple")


class Priority(models.Model):
    """A team's incident priority (P1…, L0…). No rank field exists (§5.1)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="priorities")
    unique_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    color = models.CharField(max_length=20, blank=True, default="")
    creation_date = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["creation_date", "id"]

    def __str__(self) -> str:
        return self.name


class EscalationPolicy(models.Model):
    """A (very) minimal escalation policy: who a new incident is assigned to."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="escalation_policies")
    unique_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    summary = models.TextField(blank=True, default="")
    description = models.TextField(blank=True, default="")
    # The target of rule 1 (target_type 2, a user); new incidents are assigned to them.
    first_responder = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class SLA(models.Model):
    """A minimal SLA (acknowledge/resolve minutes), for the ``sla_object`` shape."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="slas")
    unique_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    acknowledge_time = models.PositiveIntegerField(null=True, blank=True)
    resolve_time = models.PositiveIntegerField(null=True, blank=True)
    creation_date = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Service(models.Model):
    """A service of a team, with its defaults for new incidents (§5.2)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="services")
    unique_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    summary = models.TextField(blank=True, default="")
    description = models.TextField(blank=True, default="")
    escalation_policy = models.ForeignKey(EscalationPolicy, null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="services")
    sla = models.ForeignKey(SLA, null=True, blank=True, on_delete=models.SET_NULL, related_name="services")
    team_priority = models.ForeignKey(Priority, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="default_for_services",
                                      help_text="Default incident priority.")
    task_template = models.UUIDField(null=True, blank=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    auto_resolve_timeout = models.PositiveIntegerField(default=0)
    acknowledgement_timeout_enabled = models.BooleanField(default=False)
    acknowledgement_timeout = models.PositiveIntegerField(default=0)
    # 0 disabled, 1 active, 2 warning, 3 critical, 4 under maintenance.
    status = models.PositiveSmallIntegerField(default=1)
    under_maintenance = models.BooleanField(default=False)
    collation = models.PositiveSmallIntegerField(default=0)
    collation_time = models.PositiveIntegerField(default=0)
    creation_date = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["creation_date", "id"]

    def __str__(self) -> str:
        return self.name


class Application(models.Model):
    """What an integration is made of (``GET /api/account/applications/``); global, not per account."""

    TYPE_ALERT, TYPE_OUTBOUND = 0, 1

    unique_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    extension = models.CharField(max_length=50, unique=True)
    application_type = models.PositiveSmallIntegerField(default=TYPE_ALERT)
    summary = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    categories = models.CharField(max_length=200, blank=True, default="")
    availability_plan_id = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# The applications the simulator offers: name, extension, application_type, categories.
OUTGOING_WEBHOOKS_EXTENSION = "outgoing_webhooks"
API_EXTENSION = "api"
GENERIC_EXTENSION = "generic"
DEFAULT_APPLICATIONS = (
    ("Outgoing Webhooks", OUTGOING_WEBHOOKS_EXTENSION, Application.TYPE_OUTBOUND, "Outgoing"),
    ("API", API_EXTENSION, Application.TYPE_ALERT, "API"),
    ("Generic Integration", GENERIC_EXTENSION, Application.TYPE_ALERT, "API"),
    ("Cloudwatch V2", "cloudwatch_v2", Application.TYPE_ALERT, "API,Analytics"),
)


def ensure_applications() -> None:
    """Create the default applications if missing (idempotent; tests flush tables)."""
    if Application.objects.count() >= len(DEFAULT_APPLICATIONS):
        return
    for name, extension, app_type, categories in DEFAULT_APPLICATIONS:
        Application.objects.get_or_create(extension=extension, defaults={
            "name": name, "application_type": app_type, "categories": categories,
            "summary": f"{name} integration", "description": f"{name} integration"})


class WebhookAuth(models.TextChoices):
    """How an Outgoing Webhooks integration authenticates its POSTs (§6.1)."""

    NONE = "none", "None"
    BASIC = "basic", "Basic authentication"
    HMAC = "hmac", "HMAC signature (X-SIGNATURE, SHA-256)"


class Integration(models.Model):
    """An integration of a service: alert sources (0) or outbound ones (1) (§5.4).

    The ``outgoing_*`` fields, ``signing_secret`` and the Basic credentials
    belong to "Outgoing Webhooks" integrations; real Zenduty sets them in
    its screens only, so the simulated API neither shows nor changes them.
    """

    TYPE_ALERT, TYPE_OUTBOUND = 0, 1

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="integrations")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="integrations")
    unique_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    summary = models.TextField(blank=True, default="")
    integration_key = models.UUIDField(default=uuid.uuid4, unique=True)
    is_enabled = models.BooleanField(default=True)
    integration_type = models.PositiveSmallIntegerField(default=TYPE_ALERT)
    # 0 none, 1 critical, 2 critical+error, 3 critical+error+warning.
    create_incidents_for = models.PositiveSmallIntegerField(default=1)
    default_urgency = models.PositiveSmallIntegerField(default=1)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    creation_date = models.DateTimeField(default=timezone.now)
    # Outgoing Webhooks configuration (UI only).
    outgoing_url = models.URLField(max_length=1000, blank=True, default="")
    auth_type = models.CharField(max_length=8, choices=WebhookAuth.choices, default=WebhookAuth.NONE)
    signing_secret = models.CharField(max_length=200, blank=True, default="")
    basic_username = models.CharField(max_length=200, blank=True, default="")
    basic_password = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["creation_date", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_outgoing_webhook(self) -> bool:
        return self.application.extension == OUTGOING_WEBHOOKS_EXTENSION


class Incident(models.Model):
    """An incident. ``status`` 1 triggered, 2 acknowledged, 3 resolved; ``urgency`` 0 low, 1 high (§3.2)."""

    TRIGGERED, ACKNOWLEDGED, RESOLVED = 1, 2, 3
    STATUS_NAMES = {TRIGGERED: "triggered", ACKNOWLEDGED: "acknowledged", RESOLVED: "resolved"}

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="incidents")
    incident_number = models.PositiveIntegerField()
    unique_id = models.CharField(max_length=ids.SHORT_ID_LENGTH, unique=True, default=ids.short_id)
    incident_key = models.CharField(max_length=ids.SHORT_ID_LENGTH, default=ids.short_id)
    title = models.CharField(max_length=500)
    summary = models.TextField(blank=True, default="")
    status = models.PositiveSmallIntegerField(default=TRIGGERED)
    urgency = models.PositiveSmallIntegerField(default=1)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="incidents")
    team_priority = models.ForeignKey(Priority, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="incidents")
    escalation_policy = models.ForeignKey(EscalationPolicy, null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="incidents")
    sla = models.ForeignKey(SLA, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents")
    assigned_to = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    creation_date = models.DateTimeField(default=timezone.now)
    acknowledged_date = models.DateTimeField(null=True, blank=True)
    resolved_date = models.DateTimeField(null=True, blank=True)
    context_window_start = models.DateTimeField(null=True, blank=True)
    context_window_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-creation_date", "-id"]
        constraints = [models.UniqueConstraint(fields=["account", "incident_number"],
                                               name="zd_incident_number_per_account")]

    def __str__(self) -> str:
        return f"#{self.incident_number} {self.title}"

    @property
    def status_name(self) -> str:
        return self.STATUS_NAMES.get(self.status, str(self.status))


class Note(models.Model):
    """An incident note. Its author is always the acting user (API: the token's user) (§4)."""

    unique_id = models.CharField(max_length=ids.SHORT_ID_LENGTH, unique=True, default=ids.short_id)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notes")
    user = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    note = models.TextField()
    creation_date = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["creation_date", "id"]


class Alert(models.Model):
    """An alert received by an alert integration (Events API, §7).

    ``alert_type`` is stored as Zenduty codes it: 0 info, 1 warning,
    2 error, 3 critical, 4 acknowledged, 5 resolved.
    """

    ALERT_TYPES = {"info": 0, "warning": 1, "error": 2, "critical": 3, "acknowledged": 4, "resolved": 5}

    unique_id = models.CharField(max_length=ids.SHORT_ID_LENGTH, unique=True, default=ids.short_id)
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="alerts")
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    message = models.TextField()
    summary = models.TextField(blank=True, default="")
    alert_type = models.PositiveSmallIntegerField()
    entity_id = models.CharField(max_length=500, db_index=True)
    payload = models.JSONField(default=dict, blank=True)
    urls = models.JSONField(default=list, blank=True)
    suppressed = models.BooleanField(default=False)
    incident_created = models.BooleanField(default=False)
    # Generic Integration: the id its asynchronous answer hands out (§7.2).
    trace_id = models.UUIDField(null=True, blank=True, unique=True)
    creation_date = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["creation_date", "id"]


class NoteListShape(models.TextChoices):
    """How ``GET /api/incidents/<n>/note/`` answers: Zenduty documents two forms (§4)."""

    PAGE = "page", "DRF page {count, next, previous, results}, as the Go and Python SDKs read it"
    LIST = "list", "Plain JSON list of every note, as Zenduty's OpenAPI example shows"


class SimulatorSettings(models.Model):
    """Switches of the simulator itself (one row). Rate limits as documented (§9.1):
    both windows are on by default, as on the real service."""

    rate_limits = models.BooleanField(
        default=True, help_text="Per-minute limits: incident GET 30/min, incident POST 15/min, alert POST 30/min, "
                                "alert GET 20/min.")
    per_second_limits = models.BooleanField(
        default=True, help_text="Also the per-second limits: incident GET 3/s, incident POST 1/s, alert POST "
                                "5/s, alert GET 1/s (only while the per-minute ones are on).")
    note_list_shape = models.CharField(
        max_length=4, choices=NoteListShape.choices, default=NoteListShape.PAGE,
        help_text="The form of an incident's note list. Zenduty's OpenAPI example shows a plain list, its SDKs "
                  "read a page: the portal's client has to take either.")

    class Meta:
        verbose_name_plural = "simulator settings"

    @classmethod
    def load(cls) -> SimulatorSettings:
        row, _ = cls.objects.get_or_create(pk=1)
        return row
