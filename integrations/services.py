"""Live options for the integration forms, and API errors in plain words.

The admin lists Zenduty teams, services and priorities and Xurrent service
instances live from the connected accounts. Each listing is cached for a
minute per connection (in the shared Django cache), so that moving between
the two steps of the add form, or a validation error, does not call the APIs
again. Every ``ApiError`` becomes an :class:`IntegrationError` with a sentence a
person can act on.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from django.core.cache import cache

from connections import errors
from connections.models import XurrentTenant, ZendutyAccount

logger = logging.getLogger("integrations.services")

CACHE_SECONDS = 60
# How many service instances the form lists before the search box is needed.
INSTANCE_LIST_LIMIT = 200
SEARCH_LIMIT = 25
# Xurrent has no substring filter, so a search reads pages until it has its
# matches, and a person typing sends several searches. The first search reads
# the tenant's ids and names once (100 per call) and keeps them for a few
# minutes; the following searches filter them here and cost no API call
# (Xurrent's example limit is 3,600 calls, likely per hour and per API user,
# https://developer.xurrent.com/v1/general/rate_limiting/).
CATALOGUE_LIMIT = 10_000
CATALOGUE_SECONDS = 300

T = TypeVar("T")


class IntegrationError(Exception):
    """Options could not be listed, or provisioning could not finish; ``message``
    says why in a sentence that is safe to show and store."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Option:
    """One choice: the remote ID and its display name."""

    id: str
    name: str


@dataclass
class ZendutyTeam:
    """A team with its services, as listed for the service picker."""

    id: str
    name: str
    services: list[Option] = field(default_factory=list)


@dataclass
class InstanceList:
    """Service instances for the picker; ``complete`` is False when more exist."""

    options: list[Option]
    complete: bool


# -- errors -----------------------------------------------------------------------------
SERVICE_LABELS = {"xurrent": "Xurrent", "zenduty": "Zenduty"}


def describe_api_error(exc: errors.ApiError, action: str, connection: object = None) -> str:
    """One sentence on what failed and what to do, e.g. for a form or a status field.

    ``action`` completes "Could not …" (e.g. "list the services of Zenduty").
    Messages never carry request data, so they are safe to show and to store.
    """
    service = SERVICE_LABELS.get(exc.service, exc.service.capitalize() if exc.service else "The API")
    where = f" (connection '{connection}')" if connection is not None else ""
    if isinstance(exc, errors.DestinationRefusedError):
        why = f"The portal did not call {service}{where}: {exc.message} Check the connection's base URL."
    elif isinstance(exc, errors.AuthenticationError):
        why = (f"{service} did not accept the credentials{where}. Check the connection under "
               f"Connections; its secret may have been revoked or rotated.")
    elif isinstance(exc, errors.PermissionDeniedError):
        if exc.service == "xurrent":
            why = (f"Xurrent refused{where}: the OAuth application lacks a scope. It needs Service Instance – "
                   f"Read, and Webhook and Webhook Policy – Create, Read, Update, Delete.")
        else:
            why = f"{service} refused{where}: the API key lacks the permission. Use a key of an Account Owner or Admin."
    elif isinstance(exc, errors.NotFoundError):
        why = f"{service} says it does not exist (HTTP 404)."
    elif isinstance(exc, errors.RateLimitedError):
        wait = f" in {int(exc.retry_after)} s" if exc.retry_after else " in a minute"
        why = f"{service} is rate limiting the portal; try again{wait}."
    elif isinstance(exc, errors.NetworkError):
        why = f"{service} could not be reached ({exc.message})."
    elif isinstance(exc, errors.ServerError):
        status = f" (HTTP {exc.status})" if exc.status else ""
        why = f"{service} answered with a server error{status}; this is usually temporary."
    elif isinstance(exc, errors.ValidationError):
        details = "; ".join(f"{f}: {', '.join(m)}" for f, m in exc.field_errors.items())
        why = f"{service} rejected the data: {details or exc.message}"
    else:
        why = f"{service} answered with an error: {exc.message}"
    return f"Could not {action}. {why}"


def _cached(key: str, load: Callable[[], T], seconds: int = CACHE_SECONDS) -> T:
    value = cache.get(key)
    if value is None:
        value = load()
        cache.set(key, value, seconds)
    return value


def _connection_key(connection) -> str:
    # created/updated timestamps: an edited connection (new token, new
    # account) never reuses the listing of its previous incarnation.
    stamps = [getattr(connection, name, None) for name in ("created_at", "updated_at")]
    return f"{type(connection).__name__}:{connection.pk}:" + ":".join(
        f"{s.timestamp():.6f}" if s else "-" for s in stamps)


def invalidate(connection) -> None:
    """Forget the cached listings of a connection (all of them expire within a minute anyway)."""
    # Keys include the query for searches; a versioned prefix drops them all.
    cache.delete(f"integrations:options-version:{_connection_key(connection)}")


def _key(connection, *parts: object) -> str:
    base = _connection_key(connection)
    version = cache.get_or_set(f"integrations:options-version:{base}", 1, None)
    # Hashed: parts hold search text, which may contain anything.
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"integrations:options:{base}:{version}:{digest}"


# -- clients ------------------------------------------------------------------------------
def zenduty_client(account: ZendutyAccount):
    from connections.zenduty import ZendutyClient

    return ZendutyClient.for_account(account)


def xurrent_client(tenant: XurrentTenant):
    from connections.xurrent import XurrentClient

    return XurrentClient.for_tenant(tenant)


# -- Zenduty ------------------------------------------------------------------------------
def zenduty_teams(account: ZendutyAccount) -> list[ZendutyTeam]:
    """The account's teams with their services, sorted by name (cached for a minute).

    :raises IntegrationError: when Zenduty cannot be asked.
    """
    def load() -> list[ZendutyTeam]:
        with zenduty_client(account) as client:
            try:
                teams = []
                for team in client.list_teams():
                    services = [Option(str(s["unique_id"]), s.get("name") or str(s["unique_id"]))
                                for s in client.list_services(team["unique_id"])]
                    teams.append(ZendutyTeam(str(team["unique_id"]), team.get("name") or str(team["unique_id"]),
                                             sorted(services, key=lambda o: o.name.casefold())))
                return sorted(teams, key=lambda t: t.name.casefold())
            except errors.ApiError as exc:
                raise IntegrationError(describe_api_error(exc, f"list the teams and services of Zenduty account "
                                                               f"'{account}'")) from exc

    return _cached(_key(account, "teams"), load)


def zenduty_service(account: ZendutyAccount, team_id: str, service_id: str) -> tuple[ZendutyTeam, Option] | None:
    """The team and service with these IDs, or None when the account has no such service."""
    for team in zenduty_teams(account):
        if team.id == str(team_id):
            for service in team.services:
                if service.id == str(service_id):
                    return team, service
    return None


def priority_options(listed: list[dict]) -> list[Option]:
    """Zenduty's priority records as options, in Zenduty's order."""
    return [Option(str(p["unique_id"]), p.get("name") or str(p["unique_id"])) for p in listed]


def zenduty_priorities(account: ZendutyAccount, team_id: str) -> list[Option]:
    """The priorities of a team, in Zenduty's order (cached for a minute).

    Zenduty has no rank field on priorities, so the list order is kept as is.
    A live read takes a slot of the account's budget and is kept as the team's
    snapshot (``integrations.team_priorities``), which the integration pages show.
    """
    from integrations import team_priorities

    def load() -> list[Option]:
        with zenduty_client(account) as client:
            try:
                team_priorities.take_read(account)
                options = priority_options(client.list_priorities(team_id))
            except errors.ApiError as exc:
                raise IntegrationError(describe_api_error(exc, "list the team's priorities in Zenduty")) from exc
        team_priorities.record(account, team_id, options)
        return options

    return _cached(_key(account, "priorities", team_id), load)


# -- Xurrent ------------------------------------------------------------------------------
def _instance_option(item: dict) -> Option:
    return Option(str(item["id"]), item.get("name") or f"#{item['id']}")


def xurrent_service_instances(tenant: XurrentTenant, query: str = "") -> InstanceList:
    """Service instances of a tenant, by name: the first INSTANCE_LIST_LIMIT, or
    up to SEARCH_LIMIT whose name contains ``query`` (cached for a minute).
    """
    query = (query or "").strip()
    if not query:
        return _cached(_key(tenant, "instances"), lambda: _read_instances(tenant, INSTANCE_LIST_LIMIT))

    catalogue = _instance_catalogue(tenant)
    if catalogue.complete:
        needle = query.casefold()
        found = [o for o in catalogue.options if needle in o.name.casefold()][:SEARCH_LIMIT]
        return InstanceList(found, len(found) < SEARCH_LIMIT)

    def search() -> InstanceList:  # an account too large to keep: search page by page
        with _instance_errors(tenant) as client:
            found = client.search_service_instances(query, limit=SEARCH_LIMIT)
        return InstanceList([_instance_option(i) for i in found], len(found) < SEARCH_LIMIT)

    return _cached(_key(tenant, "instances", query.casefold()), search)


def _instance_catalogue(tenant: XurrentTenant) -> InstanceList:
    """All service instances of a tenant (id and name, in Xurrent's order), kept
    for CATALOGUE_SECONDS; ``complete`` is False (and the list empty) for an
    account with more than CATALOGUE_LIMIT, which is searched page by page."""
    def load() -> InstanceList:
        listing = _read_instances(tenant, CATALOGUE_LIMIT)
        return listing if listing.complete else InstanceList([], False)

    return _cached(_key(tenant, "catalogue"), load, CATALOGUE_SECONDS)


def _read_instances(tenant: XurrentTenant, limit: int) -> InstanceList:
    """Up to ``limit`` service instances in Xurrent's order; ``complete`` when that was all of them."""
    options: list[Option] = []
    with _instance_errors(tenant) as client:
        for item in client.iter_service_instances():
            if len(options) >= limit:
                return InstanceList(options, False)
            options.append(_instance_option(item))
    return InstanceList(options, True)


@contextmanager
def _instance_errors(tenant: XurrentTenant) -> Iterator:
    """A client for ``tenant``, closed afterwards; API errors become an IntegrationError."""
    with xurrent_client(tenant) as client:
        try:
            yield client
        except errors.ApiError as exc:
            raise IntegrationError(describe_api_error(exc, f"list the service instances of Xurrent tenant "
                                                           f"'{tenant}'")) from exc


def xurrent_service_instance(tenant: XurrentTenant, instance_id: str) -> Option:
    """One service instance, read live (used to validate a choice made by search).

    :raises IntegrationError: also when the tenant has no such instance.
    """
    def load() -> Option:
        with xurrent_client(tenant) as client:
            try:
                return _instance_option(client.get_service_instance(instance_id))
            except errors.NotFoundError as exc:
                raise IntegrationError(f"Xurrent tenant '{tenant}' has no service instance with ID "
                                       f"{instance_id}. Pick one from the list.") from exc
            except errors.ApiError as exc:
                raise IntegrationError(describe_api_error(exc, f"read service instance {instance_id} "
                                                               f"in Xurrent")) from exc

    return _cached(_key(tenant, "instance", instance_id), load)
