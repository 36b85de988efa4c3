"""The conventions every simulated Xurrent REST call shares.

:class:`ApiView` runs each call the way Xurrent does (reference sections in
brackets): bearer-token authentication and the account header (§1, §1.5),
the rate limit and its lowercase ``x-ratelimit-*`` headers (§5.3), injected
faults (sandbox.faults), JSON bodies, ``{"message"}`` errors (§5.4), and for
collections cursor pagination with a lowercase ``link`` header (§5.1),
filters, ``?sort=`` and ``?fields=`` (§5.2).

Choices where Xurrent's behaviour is not documented (see the report in the
module docs of api.py): a call without an account header is refused with
401 when the account's ``strict_account_header`` is on (the default) and
otherwise runs in the token's account; a header naming an account the token
does not belong to is refused with 403.
"""
from __future__ import annotations

import base64
import datetime
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from sandbox import faults
from sandbox.faults import hit_rate_limit
from sandbox.xurrent import vocabulary as v
from sandbox.xurrent.models import (AccessToken, Account, OAuthApplication, Person, PersonalAccessToken,
                                    pk_from_node_id, token_digest)

logger = logging.getLogger("sandbox.xurrent")

PREFIX = "/sandbox/xurrent"
SERVICE = "xurrent"
# Unauthenticated calls count against the caller's IP (§5.3), with this budget per hour.
ANONYMOUS_RATE_LIMIT = 3600
ANONYMOUS_RATE_WINDOW = 3600
# §5.1: default and maximum page sizes.
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
RESERVED_PARAMS = {"per_page", "page", "search_after", "search_before", "sort", "fields"}


# -- URLs -----------------------------------------------------------------------------------
def public_base(request: HttpRequest) -> str:
    """Where this portal is reached: ``SANDBOX_API_URL`` if set, else the request's scheme and host."""
    configured = (getattr(settings, "SANDBOX_API_URL", "") or "").rstrip("/")
    return configured or f"{request.scheme}://{request.get_host()}"


@dataclass(frozen=True)
class Origin:
    """The simulated hosts of one instance as seen by clients: the account URL
    (JWT ``iss``, verify callbacks, ``account`` field) and the REST base (``…/v1``)."""

    account_url: str

    @property
    def api_base(self) -> str:
        return f"{self.account_url}/v1"

    @classmethod
    def of(cls, request: HttpRequest, instance: str) -> Origin:
        """The hosts of ``instance`` (an ``Account.instance``: the domain of a region and environment)."""
        return cls(f"{public_base(request)}{PREFIX}/{instance}")


# -- responses --------------------------------------------------------------------------------
def json_response(data: Any, status: int = 200, headers: dict | None = None) -> HttpResponse:
    """A JSON answer with Xurrent's content type; header names are kept lowercase (§5.1)."""
    if status == 204:
        response = HttpResponse(status=204)
    else:
        response = JsonResponse(data, status=status, safe=False, json_dumps_params={"ensure_ascii": False})
        response["content-type"] = "application/json; charset=utf-8"
    for name, value in (headers or {}).items():
        response[name.lower()] = value
    return response


def lowercase_headers(response: HttpResponse) -> HttpResponse:
    """Re-set every header under its lowercase name, as Xurrent sends them since 2024 (§5.1)."""
    for name, value in list(response.items()):
        response[name.lower()] = value
    return response


class ApiError(Exception):
    """An error answer: ``{"message": …}`` plus optional extra keys, status and headers."""

    def __init__(self, status: int, message: str, *, headers: dict | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.body = {"message": message, **extra}
        self.headers = headers or {}

    def response(self) -> HttpResponse:
        return json_response(self.body, self.status, self.headers)


class Invalid(Exception):
    """A 422: ``errors`` is Xurrent's list of ``[field, message]`` pairs (§5.4)."""

    def __init__(self, errors: list[list[str]]):
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors

    def api_error(self) -> ApiError:
        return ApiError(422, "Validation Failed", errors=self.errors)


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


# -- the caller ---------------------------------------------------------------------------------
@dataclass
class Caller:
    """Who is calling (the person a token acts as) and in which account."""

    person: Person
    account: Account
    via: str  # "oauth" or "pat"


def _bearer(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    # Only bearer tokens work: Basic auth and query-string tokens were removed in 2021 (§1.1).
    return value.strip() if scheme.lower() == "bearer" else ""


def token_person(raw: str, instance: str) -> tuple[Person | None, str]:
    """The person an OAuth access token (``"oauth"``) or personal access token (``"pat"``)
    acts as, if it is valid now on this instance; else ``(None, "")``.

    Each instance has tokens of its own: one issued by another region or
    environment is unknown here (401), as on Xurrent's separate instances.
    """
    if not raw:
        return None, ""
    digest = token_digest(raw)
    now = timezone.now()
    token = (AccessToken.objects.select_related("application__person__account")
             .filter(token_hash=digest, application__account__instance=instance).first())
    if token is not None:
        app: OAuthApplication = token.application
        if token.expires_at > now and not app.disabled and not app.person.disabled:
            return app.person, "oauth"
        return None, ""
    pat = (PersonalAccessToken.objects.select_related("person__account")
           .filter(token_hash=digest, person__account__instance=instance).first())
    if pat is not None and not pat.disabled and not pat.person.disabled and \
            (pat.expires_at is None or pat.expires_at > now):
        return pat.person, "pat"
    return None, ""


def account_header(request: HttpRequest) -> str:
    """``X-Xurrent-Account``, or the legacy ``X-4me-Account`` (§1.5); header names are case-insensitive."""
    return (request.META.get("HTTP_X_XURRENT_ACCOUNT") or request.META.get("HTTP_X_4ME_ACCOUNT") or "").strip()


# -- pagination, filters, sorting, fields ---------------------------------------------------------
def _encode_cursor(offset: int, last_id: int | None) -> str:
    # Opaque to clients; shaped like the live capture in §5.1 ({"offset": 19, "cursor": [365949]}).
    raw = json.dumps({"offset": offset, "cursor": [last_id] if last_id is not None else []},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(value: str, name: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        offset = int(data["offset"])
    except (ValueError, TypeError, KeyError):
        raise ApiError(400, f"Parameter '{name}' is not a valid cursor") from None
    if offset < 0:
        raise ApiError(400, f"Parameter '{name}' is not a valid cursor")
    return offset


@dataclass(frozen=True)
class Filter:
    """One filterable field: its ORM path and how its values are read (§5.2)."""

    path: str
    kind: str = "text"  # text | itext (case-insensitive) | int | enum | bool | datetime | ref


_COMPARISON = re.compile(r"(<=|>=|<|>)([^<>]+)")


def _convert(kind: str, name: str, raw: str) -> Any:
    if kind in ("int", "ref"):
        if not re.fullmatch(r"-?\d+", raw):
            raise ApiError(400, f"Invalid value for filter '{name}': {raw!r} is not an integer")
        return int(raw)
    if kind == "bool":
        return raw.strip().lower() in ("1", "t", "y", "true", "yes", "on")
    if kind == "datetime":
        parsed = parse_datetime(raw)
        if parsed is None and (day := parse_date(raw)) is not None:
            parsed = datetime.datetime(day.year, day.month, day.day)
        if parsed is None:
            raise ApiError(400, f"Invalid value for filter '{name}': {raw!r} is not a date and time")
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, timezone.get_current_timezone())
        return parsed
    return raw


def _filter_q(name: str, spec: Filter, raw: str, negate_key: bool) -> Q:
    """The condition for ``?name=raw`` with Xurrent's operators: ``!``, empty, ``,`` lists, ``<``/``>`` ranges."""
    kind, path = spec.kind, spec.path
    negate = negate_key
    if raw == "!":  # present
        return ~_empty_q(spec) if not negate else _empty_q(spec)
    if raw.startswith("!"):
        negate, raw = not negate, raw[1:]
    if raw == "":
        q = _empty_q(spec)
    elif kind in ("int", "ref", "datetime") and raw[0] in "<>":
        parts = _COMPARISON.findall(raw)
        if not parts or "".join(op + val for op, val in parts) != raw:
            raise ApiError(400, f"Invalid value for filter '{name}': {raw!r}")
        lookups = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
        q = Q(**{f"{path}__{lookups[op]}": _convert(kind, name, val) for op, val in parts})
    elif kind in ("int", "ref", "enum") and "," in raw:
        q = Q(**{f"{path}__in": [_convert(kind, name, part) for part in raw.split(",") if part != ""]})
    elif kind == "itext":
        q = Q(**{f"{path}__iexact": raw})
    else:
        q = Q(**{path: _convert(kind, name, raw)})
    return ~q if negate else q


def _empty_q(spec: Filter) -> Q:
    if spec.kind in ("text", "itext", "enum"):
        return Q(**{spec.path: ""}) | Q(**{f"{spec.path}__isnull": True})
    return Q(**{f"{spec.path}__isnull": True})


def apply_filters(request: HttpRequest, queryset: QuerySet, filters: dict[str, Filter]) -> QuerySet:
    """Narrow ``queryset`` by every filterable parameter in the query string (joined with AND).

    Parameters that are not filterable are ignored, as are the paging ones.
    """
    for key in request.GET:
        if key in RESERVED_PARAMS:
            continue
        negate_key = key.endswith("!")  # ?status!=assigned,accepted
        name = key[:-1] if negate_key else key
        spec = filters.get(name)
        if spec is None:
            continue
        for raw in request.GET.getlist(key):
            queryset = queryset.filter(_filter_q(name, spec, raw, negate_key))
    return queryset


def apply_sort(request: HttpRequest, queryset: QuerySet, sortable: dict[str, str], default: list[str]) -> QuerySet:
    """Order by ``?sort=a,-b`` (§5.2) or the resource's default order; ``id`` breaks ties."""
    raw = request.GET.get("sort", "")
    order: list[str] = []
    for item in [s.strip() for s in raw.split(",") if s.strip()] if raw else []:
        descending = item.startswith("-")
        name = item.lstrip("-+")
        if name not in sortable:
            raise ApiError(400, f"Sorting on '{name}' is not supported")
        order.append(("-" if descending else "") + sortable[name])
    order = order or list(default)
    if not any(o.lstrip("-") == "id" for o in order):
        order.append("id")
    return queryset.order_by(*order)


def select_fields(request: HttpRequest, record: dict, default: Iterable[str] | None,
                  write_only: Iterable[str] = ()) -> dict:
    """Keep the fields a caller asked for with ``?fields=`` (plus ``id``/``nodeID``), else ``default``.

    ``default`` None keeps every field (single-record answers).
    """
    raw = request.GET.get("fields")
    if raw:
        wanted = [f.strip() for f in raw.split(",") if f.strip()]
        for name in wanted:
            if name in write_only:
                raise ApiError(400, f"Field '{name}' is write-only and cannot be selected")
            if name not in record:
                raise ApiError(400, f"Unknown field '{name}'")
    elif default is None:
        return record
    else:
        wanted = list(default)
    keep = ["id", "nodeID", *wanted]
    return {k: record[k] for k in record if k in keep}


def parse_id(value: str, kind: str) -> int | None:
    """A path ``:id``: the numeric id or the record's ``nodeID`` (§3.1)."""
    if value.isdigit():
        return int(value)
    return pk_from_node_id(kind, value)


def parse_bool(value: Any) -> bool | None:
    """Xurrent's boolean input: true/false, or ``1/T/Y/TRUE/YES/ON`` (any case) as true (§3.2 data types)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "t", "y", "true", "yes", "on")
    return None


# -- the view base ---------------------------------------------------------------------------------
@method_decorator(csrf_exempt, name="dispatch")
class ApiView(View):
    """Base of every simulated ``/v1`` endpoint. Subclasses implement get/post/patch/delete.

    ``self.caller`` and ``self.origin`` are set before the handler runs.
    Handlers return a response or raise :class:`ApiError` / :class:`Invalid`.
    """

    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]
    counts_against_limit = True

    caller: Caller
    origin: Origin
    instance: str
    # The request's path after its instance's prefix, e.g. ``/v1/requests`` (faults and links use it).
    path: str

    def dispatch(self, request: HttpRequest, *args, instance: str, **kwargs) -> HttpResponse:
        self.instance = instance
        self.origin = Origin.of(request, instance)
        prefix = f"{PREFIX}/{instance}"
        self.path = request.path[len(prefix):] if request.path.startswith(prefix) else request.path
        limit_headers: dict[str, str] = {}
        try:
            person, via = token_person(_bearer(request), instance)
            if person is None:
                limit_headers = self._count(request, None)
                raise ApiError(401, "Unauthorized")
            # Counted against the user (§5.3), in the token's account: one token, one account.
            limit_headers = self._count(request, person.account, person)
            account = self._account(request, person)
            self.caller = Caller(person=person, account=account, via=via)
            response = self._fault(request)
            if response is None:
                response = self._handle(request, *args, **kwargs)
        except Invalid as exc:
            response = exc.api_error().response()
        except ApiError as exc:
            response = exc.response()
        for name, value in limit_headers.items():
            if name not in response:
                response[name] = value
        return lowercase_headers(response)

    # -- steps ------------------------------------------------------------------------------
    def _account(self, request: HttpRequest, person: Person) -> Account:
        home = person.account
        named = account_header(request)
        if not named:
            if home.simulator_settings().strict_account_header:
                # The reference gives the bare word (§ error table); the reason is not spelled out.
                raise ApiError(401, "Unauthorized")
            return home
        if named != home.account_id:
            # One token, one account: the simulator has no "trusted accounts" (§1.5 multiple accounts).
            raise ApiError(403, "Forbidden")
        return home

    def _count(self, request: HttpRequest, account: Account | None, person: Person | None = None) -> dict:
        """Count the call against its budget (§5.3); raise the 429 when it is spent."""
        if not self.counts_against_limit:
            return self._peek(request, account, person)
        if account is None or person is None:
            key = f"xurrent:ip:{request.META.get('REMOTE_ADDR', '?')}"
            allowed, remaining, reset = hit_rate_limit(key, ANONYMOUS_RATE_LIMIT, ANONYMOUS_RATE_WINDOW)
            limit = ANONYMOUS_RATE_LIMIT
        else:
            knobs = account.simulator_settings()
            limit = knobs.rate_limit
            allowed, remaining, reset = hit_rate_limit(f"xurrent:{account.account_id}:person:{person.pk}",
                                                       limit, knobs.rate_window_seconds)
            if allowed and knobs.burst_limit:
                burst_ok, _, burst_reset = hit_rate_limit(
                    f"xurrent:{account.account_id}:person:{person.pk}:burst", knobs.burst_limit,
                    knobs.burst_window_seconds)
                if not burst_ok:
                    allowed, reset = False, burst_reset
        headers = {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(remaining),
                   "x-ratelimit-reset": str(reset)}
        if not allowed:
            retry_after = max(1, reset - int(timezone.now().timestamp()))
            raise ApiError(429, "Too Many Requests", documentation_url=v.RATE_LIMIT_DOCUMENTATION_URL,
                           headers={**headers, "x-ratelimit-remaining": "0", "retry-after": str(retry_after)})
        return headers

    def _peek(self, request: HttpRequest, account: Account | None, person: Person | None) -> dict:
        from sandbox.models import RateCounter

        if account is None or person is None:
            return {}
        knobs = account.simulator_settings()
        counter = RateCounter.objects.filter(key=f"xurrent:{account.account_id}:person:{person.pk}").first()
        now = timezone.now()
        if counter is None or (now - counter.window_start).total_seconds() >= knobs.rate_window_seconds:
            used, reset = 0, int(now.timestamp()) + knobs.rate_window_seconds
        else:
            used = counter.count
            reset = int(counter.window_start.timestamp()) + knobs.rate_window_seconds
        return {"x-ratelimit-limit": str(knobs.rate_limit),
                "x-ratelimit-remaining": str(max(0, knobs.rate_limit - used)), "x-ratelimit-reset": str(reset)}

    def _fault(self, request: HttpRequest) -> HttpResponse | None:
        response = faults.api_fault_response(
            SERVICE, request.method, self.path, error_body={"message": "Internal Server Error"},
            rate_limited_body={"message": "Too Many Requests", "documentation_url": v.RATE_LIMIT_DOCUMENTATION_URL})
        if response is not None:
            response["content-type"] = "application/json; charset=utf-8"
            if response.status_code == 429:
                response["x-ratelimit-remaining"] = "0"
        return response

    def _handle(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        method = request.method.lower()
        if method == "put":  # PUT is accepted as PATCH (§2 "Verbs")
            method = "patch"
        if method == "head":
            method = "get"
        handler: Callable | None = getattr(self, method, None) if method in self.http_method_names else None
        if handler is None or method == "options":
            raise ApiError(405, "Method Not Allowed")
        return handler(request, *args, **kwargs)

    # -- helpers for handlers --------------------------------------------------------------
    def body(self, request: HttpRequest) -> dict:
        """The request's JSON object (form-encoded bodies are read too)."""
        content_type = request.content_type or ""
        if content_type == "application/x-www-form-urlencoded":
            data = QueryDict(request.body, encoding="utf-8")
            return {k: data.get(k) for k in data}
        if not request.body.strip():
            return {}
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"Syntax error in JSON: {str(exc)[:100]}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Syntax error in JSON: expected an object")
        return data

    def get_record(self, queryset: QuerySet, raw_id: str, kind: str):
        """The record of this account with id (or nodeID) ``raw_id``, else 404."""
        pk = parse_id(str(raw_id), kind)
        record = queryset.filter(account=self.caller.account, pk=pk).first() if pk is not None else None
        if record is None:
            raise not_found()
        return record

    def paginate(self, request: HttpRequest, queryset: QuerySet, serialize: Callable[[Any], dict],
                 default_fields: Iterable[str] | None = None, write_only: Iterable[str] = ()) -> HttpResponse:
        """One page of a collection with Xurrent's cursor links and pagination headers (§5.1)."""
        raw = request.GET.get("per_page", "")
        if raw == "":
            per_page = DEFAULT_PER_PAGE
        else:
            try:
                per_page = int(raw)
            except ValueError:
                raise ApiError(400, "Parameter 'per_page' must be an integer") from None
            if per_page < 1:
                raise ApiError(400, "Parameter 'per_page' cannot be less than 1")
            if per_page > MAX_PER_PAGE:
                raise ApiError(400, f"Parameter 'per_page' cannot be greater than {MAX_PER_PAGE}")
        if request.GET.get("search_after"):
            offset = _decode_cursor(request.GET["search_after"], "search_after") + 1
        elif request.GET.get("search_before"):
            offset = max(0, _decode_cursor(request.GET["search_before"], "search_before") - per_page)
        elif request.GET.get("page"):  # deprecated manual paging, still answered (§5.1)
            try:
                page = int(request.GET["page"])
            except ValueError:
                raise ApiError(400, "Parameter 'page' must be an integer") from None
            if page < 1:
                raise ApiError(400, "Parameter 'page' cannot be less than 1")
            offset = (page - 1) * per_page
        else:
            offset = 0
        total = queryset.count()
        items = list(queryset[offset:offset + per_page])
        records = [select_fields(request, serialize(item), default_fields, write_only) for item in items]

        links = []
        if offset > 0:
            links.append((self._page_url(request, per_page, None), "first"))
            links.append((self._page_url(request, per_page, ("search_before", _encode_cursor(
                offset, items[0].pk if items else None))), "prev"))
        if offset + len(items) < total and items:
            links.append((self._page_url(request, per_page, ("search_after", _encode_cursor(
                offset + len(items) - 1, items[-1].pk))), "next"))
        headers = {
            "x-pagination-per-page": str(per_page),
            "x-pagination-current-page": str(offset // per_page + 1),
            "x-pagination-total-pages": str(max(1, math.ceil(total / per_page))),
            "x-pagination-total-entries": str(total),
        }
        if links:
            headers["link"] = ", ".join(f'<{url}>; rel="{rel}"' for url, rel in links)
        return json_response(records, headers=headers)

    def _page_url(self, request: HttpRequest, per_page: int, cursor: tuple[str, str] | None) -> str:
        params = [(k, val) for k in request.GET if k not in ("search_after", "search_before", "page", "per_page")
                  for val in request.GET.getlist(k)]
        params.append(("per_page", str(per_page)))
        if cursor:
            params.append(cursor)
        return f"{self.origin.account_url}{self.path}?{urlencode(params)}"
