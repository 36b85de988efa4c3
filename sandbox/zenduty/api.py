"""The simulated Zenduty REST API, Events API and Generic Integration.

Served under ``/sandbox/zenduty`` what https://www.zenduty.com answers
(docs/architecture.md). Zenduty is Django REST Framework underneath, so the
behaviour around the endpoints is DRF's (https://apidocs.zenduty.com):

* ``Authorization: Token <key>``, keyword in any case; 401
  ``{"detail": "Authentication credentials were not provided."}`` /
  ``{"detail": "Invalid token."}`` with ``WWW-Authenticate: Token``;
* order of checks: injected fault, authentication, throttling, method;
* 400 field errors ``{"field": ["This field is required."]}``,
  404 ``{"detail": "Not Found."}``, 405 ``{"detail": "Method \\"X\\" not allowed."}``,
  429 ``{"detail": "Request was throttled."}``;
* pages ``{count, next, previous, results}`` with absolute links (note lists:
  a page or a plain list, as the simulator's settings say).
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, time, timedelta
from typing import Any, Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from sandbox.faults import api_fault_response, hit_rate_limit
from sandbox.zenduty import ids, operations, shapes
from sandbox.zenduty.models import (PRIORITY_COLORS, SLA, Account, ApiKey, Alert, Application, EscalationPolicy,
                                    Incident, IncidentRole, Integration, Note, NoteListShape, Priority, Service,
                                    SimulatorSettings, Team, TeamMember, User, ensure_applications)

SERVICE_PREFIX = "/sandbox/zenduty"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100

NOT_FOUND = {"detail": "Not Found."}  # exact text of Zenduty's 404 (DRF's)
SERVER_ERROR = {"detail": "A server error occurred."}
THROTTLED = {"detail": "Request was throttled."}

# Documented limits (§9.1): bucket → ((limit, window seconds) per minute, per second).
RATE_LIMITS = {
    "incident_get": ((30, 60), (3, 1)),
    "incident_post": ((15, 60), (1, 1)),
    "alert_post": ((30, 60), (5, 1)),
    "alert_get": ((20, 60), (1, 1)),
}


class ApiError(Exception):
    """An error answer: ``body`` sent as JSON with ``status``."""

    def __init__(self, status: int, body: Any, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def not_found() -> ApiError:
    return ApiError(404, NOT_FOUND)


def service_root(request: HttpRequest) -> str:
    """The absolute base of the simulator (what ``https://www.zenduty.com`` is for the real one)."""
    return request.build_absolute_uri(SERVICE_PREFIX)


# -- request body validation (DRF messages) --------------------------------------------------
class Fields:
    """Reads a JSON object the way a DRF serializer validates it, collecting
    errors per field; :meth:`done` raises them as one 400."""

    def __init__(self, data: Any, *, partial: bool = False):
        if not isinstance(data, dict):
            kind = type(data).__name__ if data is not None else "null"
            raise ApiError(400, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]})
        self.data, self.partial, self.errors = data, partial, {}
        self.values: dict[str, Any] = {}

    def _fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def has(self, name: str) -> bool:
        return name in self.data

    def _present(self, name: str, required: bool, allow_null: bool) -> bool:
        if name not in self.data:
            if required and not self.partial:
                self._fail(name, "This field is required.")
            return False
        if self.data[name] is None:
            if not allow_null:
                self._fail(name, "This field may not be null.")
            else:
                self.values[name] = None
            return False
        return True

    def string(self, name: str, *, required: bool = False, allow_blank: bool = True, max_length: int = 0,
               allow_null: bool = False) -> None:
        if not self._present(name, required, allow_null):
            return
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return self._fail(name, "Not a valid string.")
        value = str(value).strip()
        if not value and not allow_blank:
            return self._fail(name, "This field may not be blank.")
        if max_length and len(value) > max_length:
            return self._fail(name, f"Ensure this field has no more than {max_length} characters.")
        self.values[name] = value

    def integer(self, name: str, *, required: bool = False, choices: tuple = (), allow_null: bool = False) -> None:
        if not self._present(name, required, allow_null):
            return
        value = self.data[name]
        if isinstance(value, bool):
            value = int(value)
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            return self._fail(name, "A valid integer is required.")
        if choices and number not in choices:
            return self._fail(name, f'"{value}" is not a valid choice.')
        self.values[name] = number

    def boolean(self, name: str, *, required: bool = False) -> None:
        if not self._present(name, required, False):
            return
        value = self.data[name]
        truthy = {True, 1, "1", "true", "True", "TRUE", "yes", "on"}
        falsy = {False, 0, "0", "false", "False", "FALSE", "no", "off"}
        if isinstance(value, (bool, int, str)) and value in truthy:
            self.values[name] = True
        elif isinstance(value, (bool, int, str)) and value in falsy:
            self.values[name] = False
        else:
            self._fail(name, "Must be a valid boolean.")

    def choice(self, name: str, choices, *, required: bool = False) -> None:
        if not self._present(name, required, False):
            return
        value = self.data[name]
        if not isinstance(value, str) or value not in choices:
            return self._fail(name, f'"{value}" is not a valid choice.')
        self.values[name] = value

    def related(self, name: str, lookup: Callable[[str], Any], *, required: bool = False,
                allow_null: bool = False, slug: str = "unique_id") -> None:
        """A reference by unique_id (or username), as DRF's SlugRelatedField."""
        if not self._present(name, required, allow_null):
            return
        value = self.data[name]
        if value == "" and allow_null:
            self.values[name] = None
            return
        obj = lookup(str(value)) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        if obj is None:
            return self._fail(name, f"Object with {slug}={value} does not exist.")
        self.values[name] = obj

    def string_list(self, name: str) -> None:
        if not self._present(name, False, True):
            return
        value = self.data[name]
        if not isinstance(value, list):
            return self._fail(name, f'Expected a list of items but got type "{type(value).__name__}".')
        self.values[name] = [str(v) for v in value]

    def done(self) -> dict:
        if self.errors:
            raise ApiError(400, self.errors)
        return self.values


def _lookup(model, **scope) -> Callable[[str], Any]:
    """A unique_id lookup within ``scope`` that answers None for bad or unknown ids."""
    def find(value: str):
        uid = ids.parse_uuid(value)
        return model.objects.filter(unique_id=uid, **scope).first() if uid else None
    return find


# -- the endpoint base class ---------------------------------------------------------------
@method_decorator(csrf_exempt, name="dispatch")
class Endpoint(View):
    """DRF-like dispatch: fault → authentication → throttle → method → handler.

    Handlers take ``(request, **url_kwargs)`` and return ``(data, status)``
    or an ``HttpResponse``; they raise :class:`ApiError` for error answers.
    """

    authenticated = True
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        path = request.path[len(SERVICE_PREFIX):] if request.path.startswith(SERVICE_PREFIX) else request.path
        # An injected 429 is the throttle's (§9.1): no Retry-After.
        fault = api_fault_response("zenduty", request.method, path, error_body=SERVER_ERROR,
                                   rate_limited_body=THROTTLED, retry_after_header=False)
        if fault is not None:
            return fault
        try:
            self.user, self.account = (self.authenticate(request) if self.authenticated else (None, None))
            bucket = self.rate_limit_bucket(request, **kwargs)
            if bucket:
                self.throttle(bucket, self.rate_limit_scope(request, **kwargs))
            method = request.method.lower()
            if method == "head":
                method = "get"
            handler = getattr(self, method, None) if method in self.http_method_names else None
            if handler is None:
                raise ApiError(405, {"detail": f'Method "{request.method}" not allowed.'})
            self.data = self.parse_body(request)
            result = handler(request, **kwargs)
        except ApiError as exc:
            response = JsonResponse(exc.body, status=exc.status, safe=False)
            for name, value in exc.headers.items():
                response[name] = value
            return response
        if isinstance(result, HttpResponse):
            return result
        data, status = result
        if status == 204:
            return HttpResponse(status=204)
        return JsonResponse(data, status=status, safe=False, json_dumps_params={"ensure_ascii": False})

    # -- authentication (DRF TokenAuthentication) --
    @staticmethod
    def authenticate(request: HttpRequest) -> tuple[User, Account]:
        unauthenticated = {"WWW-Authenticate": "Token"}
        parts = request.META.get("HTTP_AUTHORIZATION", "").split()
        if not parts or parts[0].lower() != "token":
            raise ApiError(401, {"detail": "Authentication credentials were not provided."}, unauthenticated)
        if len(parts) == 1:
            raise ApiError(401, {"detail": "Invalid token header. No credentials provided."}, unauthenticated)
        if len(parts) > 2:
            raise ApiError(401, {"detail": "Invalid token header. Token string should not contain spaces."},
                           unauthenticated)
        key = ApiKey.objects.select_related("user", "account").filter(token_hash=ids.hash_token(parts[1])).first()
        if key is None:
            raise ApiError(401, {"detail": "Invalid token."}, unauthenticated)
        return key.user, key.account

    # -- throttling (§9.1) --
    def rate_limit_bucket(self, request: HttpRequest, **kwargs) -> str | None:
        """Which documented limit this call counts against (None: unlimited)."""
        return None

    def rate_limit_scope(self, request: HttpRequest, **kwargs) -> str:
        """Limits are per account (§9.1)."""
        return str(self.account.pk) if self.account else "anonymous"

    @staticmethod
    def throttle(bucket: str, scope: str) -> None:
        switches = SimulatorSettings.load()
        if not switches.rate_limits:
            return
        per_minute, per_second = RATE_LIMITS[bucket]
        windows = [per_minute] + ([per_second] if switches.per_second_limits else [])
        for limit, seconds in windows:
            allowed, _, _ = hit_rate_limit(f"zenduty:{scope}:{bucket}:{seconds}", limit, seconds)
            if not allowed:
                # No rate-limit or Retry-After headers are documented (§9.1); clients retry after a minute.
                raise ApiError(429, THROTTLED)

    # -- body --
    @staticmethod
    def parse_body(request: HttpRequest) -> Any:
        if request.method in ("GET", "HEAD", "DELETE", "OPTIONS") or not request.body:
            return {}
        try:
            return json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(400, {"detail": f"JSON parse error - {exc}"}) from exc

    # -- helpers for handlers --
    def team_or_404(self, team_id: str) -> Team:
        uid = ids.parse_uuid(team_id)
        team = Team.objects.filter(unique_id=uid, account=self.account).first() if uid else None
        if team is None:
            raise not_found()
        return team

    def service_or_404(self, team_id: str, service_id: str) -> Service:
        team = self.team_or_404(team_id)
        uid = ids.parse_uuid(service_id)
        service = Service.objects.filter(unique_id=uid, team=team).first() if uid else None
        if service is None:
            raise not_found()
        return service

    def incident_or_404(self, ref: str) -> Incident:
        """By ``incident_number`` or ``unique_id``: both work (§3.1)."""
        qs = Incident.objects.filter(account=self.account).select_related(
            "service__team", "service__created_by", "service__team_priority", "service__escalation_policy",
            "service__sla", "team_priority", "escalation_policy", "sla", "assigned_to")
        incident = qs.filter(incident_number=int(ref)).first() if ref.isdigit() else qs.filter(unique_id=ref).first()
        if incident is None:
            raise not_found()
        return incident


def paginate(request: HttpRequest, items, render: Callable[[Any], dict]) -> tuple[dict, int]:
    """A DRF ``PageNumberPagination`` page (``?page=&page_size=``) with absolute links."""
    try:
        size = int(request.GET.get("page_size", DEFAULT_PAGE_SIZE))
        size = min(max(size, 1), MAX_PAGE_SIZE)
    except ValueError:
        size = DEFAULT_PAGE_SIZE
    raw_page = request.GET.get("page", "1")
    count = items.count() if hasattr(items, "count") and not isinstance(items, list) else len(items)
    pages = max(1, -(-count // size))
    try:
        page = int(raw_page) if raw_page != "last" else pages
    except ValueError:
        page = 0
    if page < 1 or page > pages:
        raise ApiError(404, {"detail": "Invalid page."})
    chunk = items[(page - 1) * size: page * size]

    def link(number: int | None) -> str | None:
        if number is None:
            return None
        query = request.GET.copy()
        query["page"] = str(number)
        if number == 1 and "page" in request.GET:
            query.pop("page")  # DRF drops page=1 from the previous link
        base = request.build_absolute_uri(request.path)
        encoded = query.urlencode()
        return f"{base}?{encoded}" if encoded else base

    return {"count": count, "next": link(page + 1 if page < pages else None),
            "previous": link(page - 1 if page > 1 else None),
            "results": [render(item) for item in chunk]}, 200


# -- teams -----------------------------------------------------------------------------------
class TeamList(Endpoint):
    """``/api/account/teams/``: plain list (OAS), create with ``name``."""

    def get(self, request):
        teams = Team.objects.filter(account=self.account).select_related("account", "owner").order_by("id")
        return [shapes.team(t) for t in teams], 200

    def post(self, request):
        f = Fields(self.data)
        f.string("name", required=True, allow_blank=False, max_length=200)
        values = f.done()
        with transaction.atomic():
            team = Team.objects.create(account=self.account, name=values["name"], owner=self.user)
            TeamMember.objects.create(team=team, user=self.user, role=1)
            IncidentRole.objects.create(team=team, title="Incident Commander",
                                        description=shapes.INCIDENT_COMMANDER_DESCRIPTION, rank=1)
        return shapes.team(team), 201


class TeamDetail(Endpoint):
    """``/api/account/teams/<team>/``: GET, PUT/PATCH ``name``, DELETE."""

    def get(self, request, team_id):
        return shapes.team(self.team_or_404(team_id)), 200

    def put(self, request, team_id):
        team = self.team_or_404(team_id)
        f = Fields(self.data, partial=request.method == "PATCH")
        f.string("name", required=True, allow_blank=False, max_length=200)
        values = f.done()
        if "name" in values:
            team.name = values["name"]
            team.save(update_fields=["name"])
        return shapes.team(team), 200

    patch = put

    def delete(self, request, team_id):
        self.team_or_404(team_id).delete()
        return None, 204


class TeamRoles(Endpoint):
    """``/api/account/teams/<team>/roles/`` (list only)."""

    def get(self, request, team_id):
        team = self.team_or_404(team_id)
        return [{"unique_id": str(r.unique_id), "team": str(team.unique_id), "title": r.title,
                 "description": r.description, "creation_date": shapes.iso(r.creation_date), "rank": r.rank}
                for r in team.roles.all()], 200


class EscalationPolicyList(Endpoint):
    """``/api/account/teams/<team>/escalation_policies/`` (list only; enough to create services)."""

    def get(self, request, team_id):
        team = self.team_or_404(team_id)
        return [shapes.escalation_policy(ep) for ep in team.escalation_policies.select_related("first_responder")], 200


class SlaList(Endpoint):
    """``/api/account/teams/<team>/sla/`` (list only)."""

    def get(self, request, team_id):
        team = self.team_or_404(team_id)
        return [shapes.sla_object(s) for s in team.slas.all()], 200


# -- priorities (§5.1) ------------------------------------------------------------------------
class PriorityList(Endpoint):
    """``/api/account/teams/<team>/priority/`` (singular). Create answers ``"team": <int>``."""

    def get(self, request, team_id):
        team = self.team_or_404(team_id)
        return [shapes.priority_read(p) for p in team.priorities.select_related("team")], 200

    def post(self, request, team_id):
        team = self.team_or_404(team_id)
        values = _priority_fields(self.data, partial=False)
        priority = Priority.objects.create(team=team, **values)
        return shapes.priority_written(priority), 201


def _priority_fields(data, *, partial: bool) -> dict:
    f = Fields(data, partial=partial)
    f.string("name", required=True, allow_blank=False, max_length=200)
    f.string("description")
    if f.has("color") and f.data["color"] in ("", None):
        f.values["color"] = ""
    else:
        f.choice("color", PRIORITY_COLORS)
    return f.done()


class PriorityDetail(Endpoint):
    """``/api/account/teams/<team>/priority/<priority>/``: GET (team UUID), PUT/PATCH (team int), DELETE."""

    def _priority(self, team_id, priority_id) -> Priority:
        team = self.team_or_404(team_id)
        priority = _lookup(Priority, team=team)(priority_id)
        if priority is None:
            raise not_found()
        return priority

    def get(self, request, team_id, priority_id):
        return shapes.priority_read(self._priority(team_id, priority_id)), 200

    def put(self, request, team_id, priority_id):
        priority = self._priority(team_id, priority_id)
        values = _priority_fields(self.data, partial=True)  # "Any parameters not provided will be left unchanged."
        for name, value in values.items():
            setattr(priority, name, value)
        priority.save()
        return shapes.priority_written(priority), 200

    patch = put

    def delete(self, request, team_id, priority_id):
        self._priority(team_id, priority_id).delete()
        return None, 204


# -- services (§5.2) --------------------------------------------------------------------------
def _service_fields(data, team: Team, *, partial: bool) -> dict:
    f = Fields(data, partial=partial)
    f.string("name", required=True, allow_blank=False, max_length=200)
    f.string("summary")
    f.string("description")
    f.related("escalation_policy", _lookup(EscalationPolicy, team=team), required=True)
    f.related("sla", _lookup(SLA, team=team), required=True)
    f.related("team_priority", _lookup(Priority, team=team), required=True)
    f.integer("auto_resolve_timeout")
    f.boolean("acknowledgement_timeout_enabled")
    f.integer("acknowledgement_timeout")
    f.integer("status", choices=(0, 1, 2, 3, 4))
    f.boolean("under_maintenance")
    f.integer("collation", choices=(0, 1, 2))
    f.integer("collation_time")
    if f.has("task_template") and f.data["task_template"] not in (None, ""):
        uid = ids.parse_uuid(f.data["task_template"])
        if uid is None:
            f._fail("task_template", "Must be a valid UUID.")
        else:
            f.values["task_template"] = uid
    values = f.done()
    if values.get("acknowledgement_timeout_enabled") and values.get("acknowledgement_timeout", 601) <= 600:
        raise ApiError(400, {"acknowledgement_timeout": ["Acknowledgement timeout must be above 600 seconds."]})
    return values


class ServiceList(Endpoint):
    """``/api/account/teams/<team>/services/``: plain list, create (policy, SLA and priority required)."""

    def get(self, request, team_id):
        team = self.team_or_404(team_id)
        services = team.services.select_related("team", "created_by", "team_priority", "escalation_policy", "sla")
        return [shapes.service(s) for s in services], 200

    def post(self, request, team_id):
        team = self.team_or_404(team_id)
        values = _service_fields(self.data, team, partial=False)
        service = Service.objects.create(team=team, created_by=self.user, **values)
        return shapes.service(service), 201


class ServiceDetail(Endpoint):
    """``/api/account/teams/<team>/services/<service>/``: GET, PUT/PATCH (partial), DELETE."""

    def get(self, request, team_id, service_id):
        return shapes.service(self.service_or_404(team_id, service_id)), 200

    def put(self, request, team_id, service_id):
        service = self.service_or_404(team_id, service_id)
        values = _service_fields(self.data, service.team, partial=True)
        for name, value in values.items():
            setattr(service, name, value)
        service.save()
        return shapes.service(service), 200

    patch = put

    def delete(self, request, team_id, service_id):
        self.service_or_404(team_id, service_id).delete()
        return None, 204


# -- applications and integrations (§5.4) ---------------------------------------------------------
class ApplicationList(Endpoint):
    """``/api/account/applications/``."""

    def get(self, request):
        ensure_applications()
        return [shapes.application(a) for a in Application.objects.all()], 200


def _application_lookup(value: str):
    ensure_applications()
    uid = ids.parse_uuid(value)
    return Application.objects.filter(unique_id=uid).first() if uid else None


def _integration_fields(data, *, partial: bool) -> dict:
    f = Fields(data, partial=partial)
    f.string("name", max_length=200)
    f.string("summary")
    f.related("application", _application_lookup, required=True)
    f.boolean("is_enabled")
    f.integer("create_incidents_for", choices=(0, 1, 2, 3))
    f.integer("integration_type", choices=(0, 1))
    f.integer("default_urgency", choices=(0, 1))
    return f.done()


class IntegrationList(Endpoint):
    """``…/services/<service>/integrations/``: plain list, create (``application`` required)."""

    def get(self, request, team_id, service_id):
        service = self.service_or_404(team_id, service_id)
        items = service.integrations.select_related("application", "service__team__account", "created_by")
        root = service_root(request)
        return [shapes.integration(i, root) for i in items], 200

    def post(self, request, team_id, service_id):
        service = self.service_or_404(team_id, service_id)
        values = _integration_fields(self.data, partial=False)
        app = values["application"]
        values.setdefault("name", app.name)
        # Left out, the type follows the application: outbound for Outgoing Webhooks [inferred].
        values.setdefault("integration_type", app.application_type)
        integration = Integration.objects.create(service=service, created_by=self.user, **values)
        return shapes.integration(integration, service_root(request)), 201


class IntegrationDetail(Endpoint):
    """``…/integrations/<integration>/``: GET, PUT/PATCH (partial; the OAS still requires
    ``application`` on PUT), DELETE. Outgoing-webhook URL and signing key are not API fields."""

    def _integration(self, team_id, service_id, integration_id) -> Integration:
        service = self.service_or_404(team_id, service_id)
        integration = _lookup(Integration, service=service)(integration_id)
        if integration is None:
            raise not_found()
        return integration

    def get(self, request, team_id, service_id, integration_id):
        return shapes.integration(self._integration(team_id, service_id, integration_id), service_root(request)), 200

    def put(self, request, team_id, service_id, integration_id):
        integration = self._integration(team_id, service_id, integration_id)
        values = _integration_fields(self.data, partial=True)
        for name, value in values.items():
            setattr(integration, name, value)
        integration.save()
        return shapes.integration(integration, service_root(request)), 200

    patch = put

    def delete(self, request, team_id, service_id, integration_id):
        self._integration(team_id, service_id, integration_id).delete()
        return None, 204


class IntegrationMetadata(Endpoint):
    """``/api/account/integration-metadata/<integration_key>/``."""

    def get(self, request, integration_key):
        uid = ids.parse_uuid(integration_key)
        integration = (Integration.objects.select_related("service__team", "application")
                       .filter(integration_key=uid, service__team__account=self.account).first() if uid else None)
        if integration is None:
            raise not_found()
        service, team = integration.service, integration.service.team
        return {"team": {"name": team.name, "unique_id": str(team.unique_id)},
                "service": {"name": service.name, "unique_id": str(service.unique_id)},
                "integration": {"unique_id": str(integration.unique_id), "name": integration.name,
                                "extension": integration.application.extension}}, 200


class RegenerateIntegrationKey(Endpoint):
    """``POST /api/account/regenerate_integration_key/ {"integration_unique_id"}``."""

    def post(self, request):
        f = Fields(self.data)
        f.related("integration_unique_id",
                  _lookup(Integration, service__team__account=self.account), required=True)
        integration = f.done()["integration_unique_id"]
        integration.integration_key = uuid.uuid4()
        integration.save(update_fields=["integration_key"])
        return shapes.integration(integration, service_root(request)), 200


# -- incidents (§3) -----------------------------------------------------------------------------
class IncidentCreate(Endpoint):
    """``POST /api/incidents/`` → 201 with the full incident. Required: ``title``, ``service``."""

    def rate_limit_bucket(self, request, **kwargs):
        return "incident_post" if request.method == "POST" else "incident_get"

    def get(self, request):
        """The legacy list (GOSDK ``GetIncidents``): a DRF page, newest first."""
        qs = Incident.objects.filter(account=self.account).select_related(
            "service__team", "sla", "team_priority", "assigned_to").order_by("-creation_date", "-id")
        return paginate(request, qs, shapes.incident_filtered)

    def post(self, request):
        f = Fields(self.data)
        f.string("title", required=True, allow_blank=False, max_length=500)
        f.string("summary")
        f.related("service", _lookup(Service, team__account=self.account), required=True)
        f.integer("status", choices=(1, 2, 3))
        f.integer("urgency", choices=(0, 1))
        values = f.done()
        team = values["service"].team
        g = Fields(self.data)
        g.related("team_priority", _lookup(Priority, team=team), allow_null=True)
        g.related("escalation_policy", _lookup(EscalationPolicy, team=team), allow_null=True)
        g.related("sla", _lookup(SLA, team=team), allow_null=True)
        g.related("assigned_to", _user_lookup(self.account), allow_null=True, slug="username")
        refs = g.done()
        incident = operations.create_incident(
            service=values["service"], title=values["title"], summary=values.get("summary", ""),
            urgency=values.get("urgency", 1), status=values.get("status", Incident.TRIGGERED),
            created_by=self.user, **refs)
        return shapes.incident(self._reload(incident)), 201

    def _reload(self, incident: Incident) -> Incident:
        return self.incident_or_404(str(incident.incident_number))


def _user_lookup(account: Account):
    def find(username: str):
        return User.objects.filter(account=account, username=username).first()
    return find


class IncidentDetail(Endpoint):
    """``/api/incidents/<number or unique_id>/``: GET, PATCH (partial; status 1/2/3
    stamps dates and sends webhooks), PUT accepted the same way (PYSDK v2)."""

    def rate_limit_bucket(self, request, **kwargs):
        return "incident_get" if request.method == "GET" else None

    def get(self, request, ref):
        return shapes.incident(self.incident_or_404(ref)), 200

    def patch(self, request, ref):
        incident = self.incident_or_404(ref)
        team = incident.service.team
        f = Fields(self.data, partial=True)
        f.string("title", allow_blank=False, max_length=500)
        f.string("summary")
        f.integer("status", choices=(1, 2, 3))
        f.integer("urgency", choices=(0, 1))
        f.related("team_priority", _lookup(Priority, team=team), allow_null=True)
        f.related("escalation_policy", _lookup(EscalationPolicy, team=team), allow_null=True)
        f.related("sla", _lookup(SLA, team=team), allow_null=True)
        f.related("assigned_to", _user_lookup(self.account), allow_null=True, slug="username")
        values = f.done()
        status = values.pop("status", None)
        if status is not None:
            try:
                operations.check_transition(incident, status)
            except operations.TransitionError as exc:
                raise ApiError(400, {"status": [str(exc)]}) from exc
        with transaction.atomic():
            if values:
                for name, value in values.items():
                    setattr(incident, name, value)
                incident.save(update_fields=list(values))
            if status is not None:
                operations.set_status(incident, status)
        return shapes.incident(self.incident_or_404(str(incident.incident_number))), 200

    put = patch


class IncidentFilter(Endpoint):
    """``POST /api/incidents/filter/?page=&page_size=``: DRF page of slim incidents, newest first."""

    def rate_limit_bucket(self, request, **kwargs):
        return "incident_get"

    def post(self, request):
        f = Fields(self.data)
        f.integer("status", choices=(-1, 0, 1, 2, 3))
        f.integer("all_teams", choices=(0, 1))
        for name in ("team_ids", "service_ids", "user_ids", "escalation_policy_ids", "priority_ids", "tag_ids",
                     "sla_ids"):
            f.string_list(name)
        f.string("priority_name")
        values = f.done()
        errors: dict[str, list[str]] = {}
        from_date = _filter_date(self.data.get("from_date"), "from_date", errors)
        to_date = _filter_date(self.data.get("to_date"), "to_date", errors)
        if errors:
            raise ApiError(400, errors)
        qs = Incident.objects.filter(account=self.account).select_related(
            "service__team", "sla", "team_priority", "assigned_to")
        status = values.get("status", 1)  # OAS: status defaults to 1 (triggered)
        if status == -1:
            qs = qs.filter(status__in=[Incident.TRIGGERED, Incident.ACKNOWLEDGED])
        elif status in (1, 2, 3):
            qs = qs.filter(status=status)
        if values.get("all_teams", 1) == 0:
            qs = qs.filter(service__team__memberships__user=self.user)
        for name, field in (("team_ids", "service__team__unique_id"), ("service_ids", "service__unique_id"),
                            ("escalation_policy_ids", "escalation_policy__unique_id"),
                            ("priority_ids", "team_priority__unique_id"), ("sla_ids", "sla__unique_id")):
            if values.get(name):
                qs = qs.filter(**{f"{field}__in": [u for u in map(ids.parse_uuid, values[name]) if u]})
        if values.get("user_ids"):
            qs = qs.filter(assigned_to__username__in=values["user_ids"])
        if values.get("tag_ids"):
            qs = qs.none()  # the simulator has no tags
        if values.get("priority_name"):
            qs = qs.filter(team_priority__name=values["priority_name"])
        if from_date:
            qs = qs.filter(creation_date__gte=from_date)
        if to_date:
            qs = qs.filter(creation_date__lt=to_date)
        return paginate(request, qs.order_by("-creation_date", "-id"), shapes.incident_filtered)


def _filter_date(value, name: str, errors: dict) -> datetime | None:
    """``from_date``/``to_date``: ``"2023-02-01"`` (or ``[]``, the documented default).
    Whole days: ``to_date`` includes its day [inferred]."""
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        moment = parse_datetime(value)
        if moment is not None:
            return moment if timezone.is_aware(moment) else timezone.make_aware(moment)
        day = parse_date(value) if len(value) == 10 else None
        if day is not None:
            start = timezone.make_aware(datetime.combine(day, time.min))
            return start + timedelta(days=1) if name == "to_date" else start
    errors[name] = ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]
    return None


# -- notes (§4) -----------------------------------------------------------------------------------
class NoteList(Endpoint):
    """``/api/incidents/<n>/note/``: oldest first; POST ``{"note"}`` → 201 as the token's user.

    The list comes in either documented form (§4), as the simulator's
    settings say: a DRF page (what the Go and Python SDKs read), or a plain
    list of every note (Zenduty's OpenAPI example), which ignores ``page``.
    """

    def rate_limit_bucket(self, request, **kwargs):
        return "incident_get" if request.method == "GET" else None

    def get(self, request, ref):
        incident = self.incident_or_404(ref)
        notes = Note.objects.filter(incident=incident).select_related("user", "incident").order_by("creation_date",
                                                                                                   "id")
        if SimulatorSettings.load().note_list_shape == NoteListShape.LIST:
            return [shapes.note(note) for note in notes], 200
        return paginate(request, notes, shapes.note)

    def post(self, request, ref):
        incident = self.incident_or_404(ref)
        f = Fields(self.data)
        f.string("note", required=True, allow_blank=False)
        text = f.done()["note"]
        return shapes.note(operations.add_note(incident, self.user, text)), 201


class NoteDetail(Endpoint):
    """``/api/incidents/<n>/note/<note unique_id>/``: GET, PUT/PATCH ``{"note"}``, DELETE 204."""

    def rate_limit_bucket(self, request, **kwargs):
        return "incident_get" if request.method == "GET" else None

    def _note(self, ref, note_id) -> Note:
        incident = self.incident_or_404(ref)
        note = Note.objects.select_related("user", "incident").filter(incident=incident, unique_id=note_id).first()
        if note is None:
            raise not_found()
        return note

    def get(self, request, ref, note_id):
        return shapes.note(self._note(ref, note_id)), 200

    def put(self, request, ref, note_id):
        note = self._note(ref, note_id)
        f = Fields(self.data, partial=True)
        f.string("note", allow_blank=False)
        values = f.done()
        if "note" in values:
            note.note = values["note"]
            note.save(update_fields=["note"])
        return shapes.note(note), 200

    patch = put

    def delete(self, request, ref, note_id):
        self._note(ref, note_id).delete()
        return None, 204


class IncidentAlerts(Endpoint):
    """``/api/incidents/<n>/alerts/``: DRF page of the incident's alerts, oldest first."""

    def rate_limit_bucket(self, request, **kwargs):
        return "alert_get"

    def get(self, request, ref):
        incident = self.incident_or_404(ref)
        alerts = (Alert.objects.filter(incident=incident)
                  .select_related("integration__service__team", "incident").order_by("creation_date", "id"))
        return paginate(request, alerts, shapes.alert)


# -- Events API and Generic Integration (§7) --------------------------------------------------------
def _event_fields(data) -> dict:
    f = Fields(data)
    f.string("message", required=True, allow_blank=False)
    f.choice("alert_type", tuple(Alert.ALERT_TYPES), required=True)
    f.string("summary")
    f.string("entity_id", allow_null=True)
    f.boolean("suppressed")
    if f.has("payload") and f.data["payload"] is not None and not isinstance(f.data["payload"], dict):
        f._fail("payload", "Value must be valid JSON.")
    if f.has("urls") and f.data["urls"] is not None and not isinstance(f.data["urls"], list):
        f._fail("urls", f'Expected a list of items but got type "{type(f.data["urls"]).__name__}".')
    values = f.done()
    values["payload"] = data.get("payload")
    values["urls"] = data.get("urls")
    return values


class _AlertIngest(Endpoint):
    """Shared by the Events API and the Generic Integration: the integration key
    in the path is the credential; unknown or disabled keys answer 404 (§9.1)."""

    authenticated = False

    def integration_or_404(self, integration_key: str) -> Integration:
        uid = ids.parse_uuid(integration_key)
        integration = (Integration.objects.select_related("service__team__account", "application")
                       .filter(integration_key=uid, is_enabled=True).first() if uid else None)
        if integration is None:
            raise not_found()
        return integration

    def rate_limit_bucket(self, request, **kwargs):
        return "alert_post"

    def rate_limit_scope(self, request, **kwargs):
        integration = self.integration_or_404(kwargs["integration_key"])
        return str(integration.service.team.account_id)


class EventCreate(_AlertIngest):
    """``POST /api/events/<integration_key>/`` → 201 with the alert and ``incident_created``."""

    def post(self, request, integration_key):
        integration = self.integration_or_404(integration_key)
        values = _event_fields(self.data)
        alert = operations.receive_alert(integration, **values)
        alert = Alert.objects.select_related("integration__service__team", "incident").get(pk=alert.pk)
        return shapes.alert(alert, with_payload=True, with_created=True), 201


class GenericIntegrationCreate(_AlertIngest):
    """``POST /integration/<account_id>/generic/<integration_key>/`` → 200 ``{message, trace_id}``.

    Real Zenduty processes these asynchronously; the simulator processes at
    once and keeps the trace id for ``GET /api/alert/status/<trace_id>/``.
    Bad input answers ``{"error": "This request can not be processed."}`` (§7.2).
    """

    def post(self, request, account_id, integration_key):
        integration = self.integration_or_404(integration_key)
        if str(integration.service.team.account.unique_id) != str(ids.parse_uuid(account_id)):
            raise not_found()
        try:
            values = _event_fields(self.data)
        except ApiError as exc:
            raise ApiError(400, {"error": "This request can not be processed."}) from exc
        priority = _lookup(Priority, team=integration.service.team)(str(self.data.get("priority") or ""))
        trace_id = uuid.uuid4()
        operations.receive_alert(integration, trace_id=trace_id, priority=priority, **values)
        return {"message": "success", "trace_id": str(trace_id)}, 200


class AlertStatus(Endpoint):
    """``GET /api/alert/status/<trace_id>/`` for Generic Integration alerts."""

    def get(self, request, trace_id):
        uid = ids.parse_uuid(trace_id)
        alert = (Alert.objects.select_related("integration", "incident")
                 .filter(trace_id=uid, integration__service__team__account=self.account).first() if uid else None)
        if alert is None:
            raise not_found()
        incident = alert.incident
        return {"status": "completed", "alert": alert.unique_id, "integration": {"name": alert.integration.name},
                "incident": ({"incident_number": incident.incident_number, "unique_id": incident.unique_id}
                             if incident else None),
                "suppressed": alert.suppressed, "is_incident_created": alert.incident_created}, 200


def not_found_view(request: HttpRequest, unmatched: str = "") -> JsonResponse:
    """Unknown paths under ``/api/``: DRF-style 404 rather than Django's HTML page."""
    return JsonResponse(NOT_FOUND, status=404)

