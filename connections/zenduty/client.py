"""The Zenduty REST API client: teams, services, priorities, integrations,
incidents and incident notes.

Zenduty's API is Django REST Framework underneath: ``Authorization: Token``,
``{"detail": …}`` error bodies, ``{count, next, previous, results}`` pages,
and trailing slashes on every path. Reference: https://apidocs.zenduty.com
(Zenduty's OpenAPI, "OAS" below).

Answers are returned as plain dicts so that a field Zenduty adds tomorrow
cannot break a sync.
"""
from __future__ import annotations

import logging
import re
import time
from typing import Any, Iterator, Mapping
from urllib.parse import quote, urljoin, urlsplit

import requests
from django.conf import settings
from django.utils.crypto import salted_hmac

from connections import attribution, budget, errors, secrets
from connections.http import BaseClient, default_error_for_response, parse_retry_after, safe_json
from connections.zenduty import destinations
from connections.zenduty.constants import ACKNOWLEDGED, FILTER_ALL, INCIDENT_STATUSES, RESOLVED

logger = logging.getLogger("connections.zenduty")

DEFAULT_BASE_URL = "https://www.zenduty.com"
SANDBOX_PREFIX = "/sandbox/zenduty"

# Zenduty documents HTTP 429 but no Retry-After or rate-limit headers; its
# docs tell clients to "retry after some time (1 minute)"
# (https://zenduty.com/docs/rate-limits). A Retry-After that does turn up
# wins; otherwise the job layer reschedules after a minute.
DEFAULT_RETRY_AFTER = 60.0

_ERROR_BY_STATUS = {401: errors.AuthenticationError, 403: errors.PermissionDeniedError, 404: errors.NotFoundError}

# Vendor error text ends up on admin pages; keep it to a readable length.
_MAX_MESSAGE = 500
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9.+-]{1,40}/[A-Za-z0-9.+-]{1,60}")


def effective_base_url(stored: str) -> str:
    """The base URL calls and links use for a stored one.

    When SANDBOX_API_URL is set, the simulator stands in for Zenduty's own
    address (``https://www.zenduty.com``, the one every SDK uses) and for that
    address only: any other base URL is left as it is, so in the demo it is
    unreachable (or refused by the base URL rules) as it would be, instead of
    reaching the simulated account.
    """
    stored = (stored or DEFAULT_BASE_URL).rstrip("/")
    sandbox = (getattr(settings, "SANDBOX_API_URL", "") or "").rstrip("/")
    if sandbox and destinations.same_base_url(stored, DEFAULT_BASE_URL):
        return f"{sandbox}{SANDBOX_PREFIX}"
    return stored


def incident_page_url(stored_base_url: str, incident_number) -> str:
    """The incident's page in Zenduty's web app (``ZENDUTY_INCIDENT_PAGE``, a path with ``{number}``).

    Zenduty's API documentation does not give the web address of an incident; the
    setting holds the one its web app uses, so it can be corrected in one place.
    """
    return effective_base_url(stored_base_url) + settings.ZENDUTY_INCIDENT_PAGE.format(number=incident_number)


class ZendutyClient(BaseClient):
    """One Zenduty account, reached with an API token (Account → API Keys).

    ``base_url`` is the host without ``/api``. The token goes only where
    connections.zenduty.destinations allows (https on zenduty.com, public
    addresses, unless the operator allows more): checked before every call
    and for every connection opened. When ``settings.SANDBOX_API_URL`` is
    set, calls for ``https://www.zenduty.com`` go to the portal's Zenduty
    simulator instead (:func:`effective_base_url`); the setting is read per call.
    """

    service = "zenduty"
    # Safety bound for pagination; an endless ``next`` chain must end somewhere.
    max_pages = 200

    def __init__(self, api_token: str, base_url: str = DEFAULT_BASE_URL, **base_kwargs):
        super().__init__(**base_kwargs)
        # Every Zenduty client sends it, on GETs too (the SDKs, Postman).
        self.session.headers["Content-Type"] = "application/json"
        self._api_token = api_token
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        secrets.remember(api_token)  # logs mask it even if it was never saved
        # Calls share the account's rate limits with every other process (connections.budget);
        # for_account() keys them by the account, a client made for a bare token by its HMAC.
        self.budget_key = "zenduty:token:" + salted_hmac("connections.zenduty.budget", api_token).hexdigest()[:32]
        self._slot: tuple[str, float] | None = None  # the budget slot of the call under way (before_send)
        checking = destinations.AddressCheckingAdapter()
        self.session.mount("https://", checking)
        self.session.mount("http://", checking)

    @classmethod
    def for_account(cls, account, **base_kwargs) -> ZendutyClient:
        """A client for a ``connections.models.ZendutyAccount``."""
        client = cls(account.api_token, base_url=account.base_url or DEFAULT_BASE_URL, **base_kwargs)
        client.budget_key = f"zenduty:account:{account.pk}" if account.pk else client.budget_key
        return client

    # -- the account's rate limits, kept before each call ---------------------------------------
    def budget_for(self, method: str, url: str) -> tuple[str, tuple[budget.Limit, ...]] | None:
        """Which of Zenduty's documented limits a call counts against, or None.

        "Incident GET" (3/s, 30/min): reads under /api/incidents/ (an
        incident, its notes) and the filter, a read sent as POST. "Incident
        POST" (1/s, 15/min): creating an incident, ``POST /api/incidents/``.
        Status changes (PATCH) and notes are not incident POSTs and have no
        documented limit (https://zenduty.com/docs/rate-limits); holding them
        to 15 a minute would slow every resolve behind the creates.
        """
        path = urlsplit(url).path
        incidents = path.find("/api/incidents/")
        if incidents < 0:
            return None
        rest = path[incidents + len("/api/incidents/"):]
        if method == "GET" or (method == "POST" and rest == "filter/"):
            return "incident-reads", (budget.Limit(settings.ZENDUTY_INCIDENT_READS_PER_SECOND, 1),
                                      budget.Limit(settings.ZENDUTY_INCIDENT_READS_PER_MINUTE, 60))
        if method == "POST" and rest == "":
            return "incident-creates", (budget.Limit(settings.ZENDUTY_INCIDENT_CREATES_PER_SECOND, 1),
                                        budget.Limit(settings.ZENDUTY_INCIDENT_CREATES_PER_MINUTE, 60))
        return None

    def before_send(self, method: str, url: str) -> None:
        self._slot = None
        kind = self.budget_for(method, url)
        if kind is None:
            return
        name, limits = kind
        max_wait = self.max_inline_wait
        if self.deadline is not None:
            max_wait = min(max_wait, max(0.0, self.deadline - time.monotonic() - 0.1))
        # A job on an inbound event is rescheduled when refused, and comes back: it gets a turn.
        # Work that can wait (the poller, the sweeps) leaves the slots those turns count on.
        context = attribution.current()
        book = context is not None and context.inbound_event_id is not None
        key = f"{self.budget_key}:{name}"
        sent_at = budget.take(key, limits, max_wait=max_wait, service=self.service, sleep=self._sleep,
                              what=f"{method} {urlsplit(url).path}", book=book,
                              yield_to_turns=not book and context is not None and context.background)
        self._slot = (key, sent_at)

    def after_send(self, method: str, url: str) -> None:
        # The call counts in the budget from its answer on (connections.budget.answered).
        slot, self._slot = self._slot, None
        if slot is None:
            return
        try:
            budget.answered(*slot, time.time())
        except Exception:  # noqa: BLE001 - the call was made: its answer must not be lost to the bookkeeping
            # The slot then counts from its send time, as a call still under way does.
            logger.warning("zenduty.budget-answer-not-recorded %s", slot[0], exc_info=True)

    def __repr__(self) -> str:  # never the token
        return f"<ZendutyClient {self._base_url}>"

    @property
    def base_url(self) -> str:
        """Where calls go now: the simulator when SANDBOX_API_URL is set."""
        return effective_base_url(self._base_url)

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        """BaseClient.request, refused without a call when the stored base URL
        is not an allowed one (it may predate the rules or have been changed in the
        database). The stored URL is judged even while the sandbox stands in
        for it, so a demo finds out what production would refuse."""
        problem = destinations.url_problem(self._base_url)
        if problem:
            error = errors.DestinationRefusedError(problem, service=self.service)
            self._record(method.upper(), url, None, 0, 1, error)
            raise error
        return super().request(method, url, **kwargs)

    # -- hooks ---------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        # "Token", not "Bearer", whatever the OAS security scheme is called.
        # The keyword is case-insensitive (the Go SDK sends "token").
        return {"Authorization": f"Token {self._api_token}"}

    def error_for_response(self, response: requests.Response) -> errors.ApiError:
        """Map Zenduty's (DRF) error answers onto connections.errors.

        Bodies seen: ``{"detail": …}`` (OAS, every endpoint), ``{"error": …}``
        (generic integration, invites), and DRF serializer errors
        ``{"field": ["message", …]}``.
        """
        status = response.status_code
        body = safe_json(response)
        message, field_errors = self._describe(body)
        kw: dict[str, Any] = {"status": status, "service": self.service, "body": body}
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return errors.RateLimitedError(
                message, retry_after=DEFAULT_RETRY_AFTER if retry_after is None else retry_after, **kw)
        if status in (400, 409, 422):
            return errors.ValidationError(message, field_errors=field_errors, **kw)
        if status in _ERROR_BY_STATUS:
            return _ERROR_BY_STATUS[status](message, **kw)
        if status >= 500:
            return errors.ServerError(message, **kw)
        if 300 <= status < 400:  # redirects are never followed; a wrong base URL shows up here
            return default_error_for_response(self.service, response)
        return errors.PermanentError(message or f"unexpected HTTP {status}", **kw)

    def _describe(self, body: Any) -> tuple[str | None, dict[str, list[str]]]:
        """(message, field_errors) from a DRF error body."""
        if isinstance(body, list):  # serializers.ValidationError("…") answers a bare list
            return self._scrub("; ".join(str(m) for m in body)) or None, {}
        if not isinstance(body, dict):
            return None, {}
        message = None
        for key in ("detail", "error", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                message = value
                break
            if isinstance(value, list) and value:
                message = "; ".join(str(m) for m in value)
                break
        field_errors: dict[str, list[str]] = {}
        for key, value in body.items():
            if key in ("detail", "error", "message", "code"):
                continue
            if isinstance(value, list) and value and all(isinstance(m, (str, int, float)) for m in value):
                field_errors[str(key)] = [self._scrub(str(m)) for m in value]
            elif isinstance(value, str):
                field_errors[str(key)] = [self._scrub(value)]
        if message is None and list(field_errors) == ["non_field_errors"]:
            message = "; ".join(field_errors.pop("non_field_errors"))
        return (self._scrub(message) if message else None), field_errors

    def _scrub(self, text: str) -> str:
        # A server that echoes the token back must not put it on an admin page.
        if self._api_token and len(self._api_token) >= 4:
            text = text.replace(self._api_token, secrets.MASK)
        return text[:_MAX_MESSAGE]

    # -- plumbing ------------------------------------------------------------
    def _url(self, *parts: Any) -> str:
        # Every Zenduty path ends in a slash (OAS); Django would answer a
        # redirect without it, and redirects are not followed.
        quoted = "/".join(quote(str(p), safe="") for p in parts)
        return f"{self.base_url}/api/{quoted}/"

    def _call(self, method: str, *path: Any, params: dict | None = None, json: Any = None) -> Any:
        return safe_json(self.request(method, self._url(*path), params=params, json=json))

    def _paginate(self, method: str, *path: Any, params: dict | None = None,
                  json: Any = None) -> Iterator[dict]:
        """Yield the records of a collection, page by page, lazily.

        Accepts both a DRF page ``{count, next, previous, results}`` and a
        plain list (what the OAS examples show for teams, priorities and
        notes). ``next`` is absolute and carries the query; a POST (the
        incident filter) sends the same body with every page.
        """
        url, query = self._url(*path), params
        for _ in range(self.max_pages):
            # Listing is a read even when sent as POST (the filter): safe to retry.
            response = self.request(method, url, params=query, json=json, idempotent=True)
            page = safe_json(response)
            if isinstance(page, list):
                yield from page
                return
            if page is None and response.content:
                # A web site or a proxy, not the API: typically a wrong base URL.
                kind = response.headers.get("content-type", "").split(";")[0].strip()
                # Named only when it looks like a media type: it is the remote server's text all the same.
                what = (f"a {kind} page" if _MEDIA_TYPE.fullmatch(kind)
                        else "a page of another content type" if kind else "a page without a content type")
                raise errors.UnexpectedResponseError(
                    f"{urlsplit(url).path} answered with {what}, not JSON.",
                    status=response.status_code, service=self.service)
            if not isinstance(page, dict) or not isinstance(page.get("results"), list):
                raise errors.UnexpectedResponseError(
                    f"Zenduty answered {urlsplit(url).path} with neither a list nor a page of results.",
                    status=response.status_code, service=self.service)
            yield from page["results"]
            if not page.get("next"):
                return
            url, query = self._next_url(url, str(page["next"])), None
        logger.warning("zenduty.pagination-capped %s after %d pages", urlsplit(url).path, self.max_pages)

    def _next_url(self, current: str, next_url: str) -> str:
        """The next page on our own host, or PermanentError.

        The token goes with every page, so a link to another host is never
        followed. The link's scheme and port are replaced by ours: a DRF app
        behind a TLS proxy builds ``http://`` links when it does not trust the
        proxy header, and the token must not travel in clear text.
        """
        target, home = urlsplit(urljoin(current, next_url)), urlsplit(self.base_url)
        if target.hostname != home.hostname or not (target.path + "/").startswith(home.path.rstrip("/") + "/"):
            raise errors.PermanentError("Zenduty's next-page link points outside its API; not following it.",
                                        service=self.service)
        query = f"?{target.query}" if target.query else ""
        return f"{home.scheme}://{home.netloc}{target.path}{query}"

    # -- teams, services, priorities --------------------------------------------
    def list_teams(self) -> list[dict]:
        """The teams the token can see (``GET /api/account/teams/``)."""
        return list(self._paginate("GET", "account", "teams"))

    def get_team(self, team_id: str) -> dict:
        return self._call("GET", "account", "teams", team_id)

    def list_services(self, team_id: str) -> list[dict]:
        """The services of a team."""
        return list(self._paginate("GET", "account", "teams", team_id, "services"))

    def get_service(self, team_id: str, service_id: str) -> dict:
        return self._call("GET", "account", "teams", team_id, "services", service_id)

    def list_priorities(self, team_id: str) -> list[dict]:
        """The incident priorities a team defined (P0…P3, L0…, whatever it chose).

        The path is ``/priority/``, singular (OAS, both SDKs, Postman). List
        and get answers carry ``team`` as the team's UUID, whereas create and
        update answers carry an internal integer there: never compare the
        two. Priorities have no rank field, so their order means nothing.
        """
        return list(self._paginate("GET", "account", "teams", team_id, "priority"))

    # -- integrations ---------------------------------------------------------
    def list_applications(self) -> list[dict]:
        """The applications integrations can be made of (e.g. "Outgoing Webhooks")."""
        return list(self._paginate("GET", "account", "applications"))

    def list_integrations(self, team_id: str, service_id: str) -> list[dict]:
        """The integrations of a service, alert and outbound alike."""
        return list(self._paginate("GET", "account", "teams", team_id, "services", service_id, "integrations"))

    def get_integration(self, team_id: str, service_id: str, integration_id: str) -> dict:
        return self._call("GET", "account", "teams", team_id, "services", service_id, "integrations",
                          integration_id)

    def create_integration(self, team_id: str, service_id: str, data: Mapping[str, Any] | None = None, *,
                           application: str | None = None, name: str | None = None, summary: str = "",
                           integration_type: int | None = None, is_enabled: bool = True, **extra: Any) -> dict:
        """Create an integration on a service (201); returns it with its ``integration_key``.

        Fields go as keywords, or as one ``data`` dict (the form
        integrations.provisioning uses), whose values win. ``application`` is
        an application's ``unique_id`` from :meth:`list_applications`;
        ``integration_type`` left out means Zenduty's default, 0 (alert).
        Never retried after a 5xx: a retry could make a second integration.
        """
        body: dict[str, Any] = {"application": application, "name": name, "summary": summary,
                                "integration_type": integration_type, "is_enabled": is_enabled, **extra}
        body = {k: v for k, v in body.items() if v is not None}
        body.update(data or {})
        if not body.get("application") or not body.get("name"):
            raise ValueError("create_integration needs an application (its unique_id) and a name.")
        return self._call("POST", "account", "teams", team_id, "services", service_id, "integrations", json=body)

    def update_integration(self, team_id: str, service_id: str, integration_id: str,
                           data: Mapping[str, Any] | None = None, **fields: Any) -> dict:
        """Change an integration (PUT; fields left out stay as they are).

        The OAS requires ``application`` even on this partial update, so when
        the caller leaves it out the integration is read first and its own
        application is sent back.
        """
        body = {**fields, **(data or {})}
        if not body:
            raise ValueError("update_integration needs at least one field to change.")
        if "application" not in body:
            current = self.get_integration(team_id, service_id, integration_id)
            body["application"] = current.get("application")
        return self._call("PUT", "account", "teams", team_id, "services", service_id, "integrations",
                          integration_id, json=body)

    def delete_integration(self, team_id: str, service_id: str, integration_id: str) -> None:
        """Delete an integration (204)."""
        self._call("DELETE", "account", "teams", team_id, "services", service_id, "integrations", integration_id)

    # -- incidents --------------------------------------------------------------
    def create_incident(self, *, title: str, service: str, summary: str = "", team_priority: str | None = None,
                        escalation_policy: str | None = None, assigned_to: str | None = None,
                        urgency: int | None = None, sla: str | None = None) -> dict:
        """Open an incident on a service (201); returns the full incident.

        ``service``, ``team_priority``, ``escalation_policy`` and ``sla`` are
        unique_ids; ``assigned_to`` is a username (a UUID cut to 25
        characters). Fields left as None are not sent, so the service's
        defaults apply. Never retried after a 5xx: it could page twice.
        """
        optional = {"team_priority": team_priority, "escalation_policy": escalation_policy,
                    "assigned_to": assigned_to, "urgency": urgency, "sla": sla}
        body = {"title": title, "service": service, "summary": summary,
                **{k: v for k, v in optional.items() if v is not None}}
        return self._call("POST", "incidents", json=body)

    def get_incident(self, number_or_unique_id: int | str) -> dict:
        """One incident by its ``incident_number`` or its ``unique_id`` (both work)."""
        return self._call("GET", "incidents", number_or_unique_id)

    def update_incident(self, number_or_unique_id: int | str, **fields: Any) -> dict:
        """Change an incident (PATCH): ``status`` 1/2/3, ``team_priority``,
        ``title``, ``summary``, ``urgency``, ``assigned_to``…; fields left
        out stay as they are. Returns the updated incident."""
        if not fields:
            raise ValueError("update_incident needs at least one field to change.")
        if "status" in fields and fields["status"] not in INCIDENT_STATUSES:
            raise ValueError(f"status must be one of {INCIDENT_STATUSES}, not {fields['status']!r}.")
        return self._call("PATCH", "incidents", number_or_unique_id, json=fields)

    def acknowledge_incident(self, number_or_unique_id: int | str) -> dict:
        return self.update_incident(number_or_unique_id, status=ACKNOWLEDGED)

    def resolve_incident(self, number_or_unique_id: int | str) -> dict:
        return self.update_incident(number_or_unique_id, status=RESOLVED)

    def iter_incidents(self, *, status: int = FILTER_ALL, service_ids: list[str] | None = None,
                       team_ids: list[str] | None = None, page_size: int = 50, **filters: Any) -> Iterator[dict]:
        """Incidents matching a filter, lazily, page by page.

        ``POST /api/incidents/filter/?page=N&page_size=M``; ``status`` -1 is
        open (triggered or acknowledged), 0 all, 1/2/3 one status. Other
        filters (``priority_ids``, ``from_date``, ``all_teams``…) go into the
        body as given. The results are slimmer than :meth:`get_incident`
        (no ``summary``, ``urgency`` or ``team_priority`` UUID).
        Mind the rate limit (incident GETs 30/min): one filter per poll.
        """
        body: dict[str, Any] = {"status": status, **filters}
        if service_ids is not None:
            body["service_ids"] = list(service_ids)
        if team_ids is not None:
            body["team_ids"] = list(team_ids)
        return self._paginate("POST", "incidents", "filter", params={"page": 1, "page_size": page_size},
                              json=body)

    def first_incidents_page(self, *, status: int = FILTER_ALL, service_ids: list[str] | None = None,
                             page_size: int = 100, **filters: Any) -> tuple[list[dict], bool]:
        """The first page of the incident filter, newest first, and whether more pages follow.

        One call, whatever the number of matches: for callers on a budget
        (the reconciliation sweep). Same body as :meth:`iter_incidents`; 100 is
        the largest page Zenduty's DRF pagination is known to serve.
        """
        body: dict[str, Any] = {"status": status, **filters}
        if service_ids is not None:
            body["service_ids"] = list(service_ids)
        response = self.request("POST", self._url("incidents", "filter"), params={"page": 1, "page_size": page_size},
                                json=body, idempotent=True)
        page = safe_json(response)
        if isinstance(page, list):
            return page, False
        if not isinstance(page, dict) or not isinstance(page.get("results"), list):
            raise errors.UnexpectedResponseError("Zenduty answered /api/incidents/filter/ with neither a list nor a "
                                                 "page of results.", status=response.status_code,
                                                 service=self.service)
        return page["results"], bool(page.get("next"))

    # -- notes --------------------------------------------------------------------
    def list_notes(self, incident_number: int | str, page_size: int | None = None) -> list[dict]:
        """The notes of an incident, oldest first.

        Path ``…/note/``, singular. Zenduty documents two answers: a plain
        list (the OAS example) and a DRF page (what its Go and Python SDKs
        read); :meth:`_paginate` takes either. Zenduty sends no webhook for a
        new note, so the sync polls this and compares note ``unique_id``s.
        Every page is an incident read (30 a minute): the poller asks for
        pages of 100 (``page_size``, as the filter takes it; a server that
        ignores it serves its own size).
        """
        params = {"page_size": page_size} if page_size else None
        return list(self._paginate("GET", "incidents", incident_number, "note", params=params))

    def add_note(self, incident_number: int | str, text: str) -> dict:
        """Add a note (201). Its author is always the token's user; there is
        no field for another one, so callers put the original author in the text."""
        return self._call("POST", "incidents", incident_number, "note", json={"note": text})
