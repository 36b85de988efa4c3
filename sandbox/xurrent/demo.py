"""Demo data of the simulated Xurrent, and helpers for tests.

``seed()`` creates (idempotently) the account ``wdc`` "Widget Data Center",
in the Global Production instance (``xurrent.com``), with the OAuth application ``demo-client-id`` / ``demo-client-secret``, the API
person the portal acts as, the UI person, a team, and a small service
catalogue including "Website (Production)". ``make_account()`` makes further
accounts and applications for tests.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from sandbox.xurrent.models import DEFAULT_INSTANCE, Account, OAuthApplication, Person, Service, ServiceInstance, Team

DEMO_ACCOUNT_ID = "wdc"
DEMO_ACCOUNT_NAME = "Widget Data Center"
DEMO_CLIENT_ID = "demo-client-id"
DEMO_CLIENT_SECRET = "demo-client-secret"  # a simulated credential of the sandbox, not a real secret
API_PERSON_NAME = "Portal Integration"
DEMO_TEAM_NAME = "Operations"

# (service, service instance, status): the catalogue of the demo account.
DEMO_CATALOG = (
    ("Website", "Website (Production)", "in_production"),
    ("Website", "Website (Staging)", "being_prepared"),
    ("Payments API", "Payments API (Production)", "in_production"),
    ("Email", "Email (Production)", "in_production"),
    ("Intranet", "Intranet (Production)", "in_production"),
)


@dataclass
class SimulatedAccount:
    """What :func:`make_account` returns."""

    account: Account
    application: OAuthApplication
    person: Person
    team: Team


@transaction.atomic
def make_account(account_id: str, client_id: str, client_secret: str, *, name: str | None = None,
                 person_name: str = API_PERSON_NAME, team_name: str = DEMO_TEAM_NAME,
                 instance: str = DEFAULT_INSTANCE) -> SimulatedAccount:
    """An account with an API person, a team and an OAuth application (idempotent).

    The account lives in ``instance`` (the domain of a region and environment,
    Global Production by default): only that instance's hosts know it.
    An existing application keeps its row; its secret is reset to
    ``client_secret`` if it differs, so the caller's credentials always work.
    """
    account, _ = Account.objects.get_or_create(account_id=account_id,
                                               defaults={"name": name or account_id.upper(), "instance": instance})
    if (name and account.name != name) or account.instance != instance:
        account.name, account.instance = name or account.name, instance
        account.save(update_fields=["name", "instance", "updated_at"])
    person = Person.objects.filter(account=account, name=person_name).first() or Person.objects.create(
        account=account, name=person_name, primary_email=f"integration@{account_id}.example")
    team, _ = Team.objects.get_or_create(account=account, name=team_name)
    if account.service_desk_team_id is None:
        account.service_desk_team = team
        account.save(update_fields=["service_desk_team", "updated_at"])
    app = OAuthApplication.objects.filter(client_id=client_id).first()
    if app is None:
        app = OAuthApplication(account=account, client_id=client_id, person=person, name="Zenduty portal")
        app.set_secret(client_secret)
        app.save()
    elif app.account_id != account.pk:
        raise ValueError(f"client_id {client_id!r} already belongs to account {app.account.account_id!r}")
    elif not app.check_secret(client_secret):
        app.set_secret(client_secret)
        app.save(update_fields=["client_secret_hash"])
    account.ui_person()
    return SimulatedAccount(account=account, application=app, person=person, team=team)


def add_service_instance(account: Account, service_name: str, instance_name: str, *, status: str = "in_production",
                         team: Team | None = None) -> ServiceInstance:
    """A service instance (and its service) supported by ``team`` (idempotent by name)."""
    service, _ = Service.objects.get_or_create(account=account, name=service_name,
                                               defaults={"support_team": team, "provider_name": account.name})
    instance, created = ServiceInstance.objects.get_or_create(
        account=account, name=instance_name,
        defaults={"service": service, "status": status, "support_team": team})
    return instance


@transaction.atomic
def seed() -> Account:
    """The demo account ``wdc`` with its application, people, team and catalogue. Safe to run again."""
    demo = make_account(DEMO_ACCOUNT_ID, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, name=DEMO_ACCOUNT_NAME)
    for service_name, instance_name, status in DEMO_CATALOG:
        add_service_instance(demo.account, service_name, instance_name, status=status, team=demo.team)
    return demo.account
