"""Demo data and test helpers for the simulated Zenduty.

:func:`seed` (run by ``manage.py seed_demo``) builds the demo account that
the portal connects to with the API token ``demo-zenduty-token``:

* an API user (the token's owner, author of API notes) and a UI user,
  "Dwight Schrute", whose clicks the by-hand UI makes and who is paged first;
* team "Operations" with priorities P1…P5, an escalation policy, an SLA and
  the services "Website", "Payments API" and "Email";
* team "Platform" with only three priorities (for the portal's
  "at least four priorities" rule) and one service, "Internal Tools".

:func:`make_account` builds the same world under another token, for tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from sandbox.zenduty import ids
from sandbox.zenduty.models import (OUTGOING_WEBHOOKS_EXTENSION, SLA, Account, ApiKey, Application,
                                    EscalationPolicy, IncidentRole, Integration, Priority, Service, Team,
                                    TeamMember, User, WebhookAuth, ensure_applications)
from sandbox.zenduty.shapes import INCIDENT_COMMANDER_DESCRIPTION

DEMO_TOKEN = "demo-zenduty-token"  # a credential of the simulator only
DEMO_ACCOUNT_NAME = "Dunder Mifflin (simulated Zenduty)"

OPERATIONS_PRIORITIES = (
    ("P1", "Critical", "red"),
    ("P2", "High", "volcano"),
    ("P3", "Moderate", "orange"),
    ("P4", "Low", "blue"),
    ("P5", "Informational", "green"),
)
PLATFORM_PRIORITIES = (("P1", "Critical", "red"), ("P2", "High", "orange"), ("P3", "Low", "blue"))
OPERATIONS_SERVICES = ("Website", "Payments API", "Email")


@dataclass
class World:
    """One simulated account and the records tests usually need."""

    account: Account
    token: str
    api_user: User
    ui_user: User
    operations: Team
    platform: Team
    priorities: list[Priority] = field(default_factory=list)
    platform_priorities: list[Priority] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    escalation_policy: EscalationPolicy | None = None
    sla: SLA | None = None

    @property
    def website(self) -> Service:
        return self.services["Website"]


def add_api_key(account: Account, user: User, token: str, name: str = "Portal") -> ApiKey:
    """Register ``token`` as an API key of ``user`` (stored as a hash). Idempotent."""
    key, _ = ApiKey.objects.get_or_create(token_hash=ids.hash_token(token), defaults={
        "account": account, "user": user, "name": name, "hint": token[-4:]})
    return key


def _user(account: Account, first: str, last: str, email: str, role: int) -> User:
    user = User.objects.filter(account=account, email=email).first()
    return user or User.objects.create(account=account, first_name=first, last_name=last, email=email, role=role)


def _team(account: Account, name: str, owner: User, members: list[User]) -> Team:
    team = Team.objects.filter(account=account, name=name).first()
    if team is None:
        team = Team.objects.create(account=account, name=name, owner=owner)
        IncidentRole.objects.create(team=team, title="Incident Commander",
                                    description=INCIDENT_COMMANDER_DESCRIPTION, rank=1)
    for i, member in enumerate(members):
        TeamMember.objects.get_or_create(team=team, user=member, defaults={"role": 1 if i == 0 else 2})
    return team


def _priorities(team: Team, spec) -> list[Priority]:
    result = []
    for name, description, color in spec:
        priority = Priority.objects.filter(team=team, name=name).first()
        result.append(priority or Priority.objects.create(team=team, name=name, description=description,
                                                          color=color))
    return result


def _policy_and_sla(team: Team, responder: User) -> tuple[EscalationPolicy, SLA]:
    policy = EscalationPolicy.objects.filter(team=team).first() or EscalationPolicy.objects.create(
        team=team, name=f"{team.name} on-call", first_responder=responder,
        summary="Page the on-call engineer at once.")
    sla = SLA.objects.filter(team=team).first() or SLA.objects.create(
        team=team, name=f"{team.name} SLA", acknowledge_time=15, resolve_time=240)
    return policy, sla


def _service(team: Team, name: str, policy, sla, priority, created_by: User) -> Service:
    service = Service.objects.filter(team=team, name=name).first()
    return service or Service.objects.create(
        team=team, name=name, description=f"The {name} service", escalation_policy=policy, sla=sla,
        team_priority=priority, created_by=created_by)


@transaction.atomic
def make_account(token: str, name: str | None = None) -> World:
    """Build (or complete) a whole simulated account reachable with ``token``. Idempotent per name."""
    ensure_applications()
    name = name or f"Simulated account …{token[-4:]}"
    account = Account.objects.filter(name=name).first() or Account.objects.create(name=name)
    api_user = _user(account, "Michael", "Scott", f"michael.scott+{account.pk}@example.com", User.ROLE_OWNER)
    ui_user = _user(account, "Dwight", "Schrute", f"dwight.schrute+{account.pk}@example.com", User.ROLE_ADMIN)
    if account.ui_user_id != ui_user.pk:
        account.ui_user = ui_user
        account.save(update_fields=["ui_user"])
    add_api_key(account, api_user, token)

    operations = _team(account, "Operations", api_user, [api_user, ui_user])
    priorities = _priorities(operations, OPERATIONS_PRIORITIES)
    policy, sla = _policy_and_sla(operations, ui_user)
    services = {n: _service(operations, n, policy, sla, priorities[2], api_user) for n in OPERATIONS_SERVICES}

    platform = _team(account, "Platform", api_user, [api_user, ui_user])
    platform_priorities = _priorities(platform, PLATFORM_PRIORITIES)
    p_policy, p_sla = _policy_and_sla(platform, ui_user)
    services["Internal Tools"] = _service(platform, "Internal Tools", p_policy, p_sla, platform_priorities[1],
                                         api_user)
    return World(account=account, token=token, api_user=api_user, ui_user=ui_user, operations=operations,
                 platform=platform, priorities=priorities, platform_priorities=platform_priorities,
                 services=services, escalation_policy=policy, sla=sla)


def seed() -> World:
    """The demo account (idempotent; safe on every start)."""
    return make_account(DEMO_TOKEN, DEMO_ACCOUNT_NAME)


def add_integration(service: Service, extension: str, name: str | None = None, **fields) -> Integration:
    """Create an integration of the application ``extension`` ("api", "generic", "outgoing_webhooks"…)."""
    ensure_applications()
    app = Application.objects.get(extension=extension)
    fields.setdefault("integration_type", app.application_type)
    return Integration.objects.create(service=service, application=app, name=name or app.name, **fields)


def configure_outgoing_webhook(service: Service, url: str, secret: str | None = None, *,
                               auth_type: str | None = None, username: str = "", password: str = "",
                               integration: Integration | None = None) -> Integration:
    """What a person does in Zenduty's screens: point the service's Outgoing
    Webhooks integration (created if missing) at ``url``. With a ``secret``
    the deliveries are HMAC-signed; ``auth_type="basic"`` uses Basic auth."""
    if integration is None:
        integration = (Integration.objects.filter(service=service, application__extension=OUTGOING_WEBHOOKS_EXTENSION)
                       .order_by("id").first())
    if integration is None:
        integration = add_integration(service, OUTGOING_WEBHOOKS_EXTENSION)
    integration.outgoing_url = url
    integration.auth_type = auth_type or (WebhookAuth.HMAC if secret else WebhookAuth.NONE)
    integration.signing_secret = secret or ""
    integration.basic_username, integration.basic_password = username, password
    integration.save()
    return integration
