"""The simulated Xurrent: OAuth token endpoint, REST API ``/v1/...`` and the
account host's webhook verification callback.

Paths are those of the real hosts under ``/sandbox/xurrent/<domain>``, one per
instance (docs/architecture.md): ``oauth.<domain>/token`` → ``/oauth/token``,
``api.<domain>/v1`` → ``/v1``, ``https://<account>.<domain>`` →
``/sandbox/xurrent/<domain>`` itself. An instance knows only its own accounts,
applications and tokens: credentials of another region or environment get
``invalid_client`` from its token endpoint and 401 from its API.

Behaviour Xurrent does not document, decided here (also in api.py):

* no ``X-Xurrent-Account`` header: 401 when the account's
  ``strict_account_header`` is on (default), else the token's account;
* a header naming another account than the token's: 403;
* ``per_page`` above 100: 400 (below 1: 400 as documented);
* unknown ``?fields=`` or ``?sort=`` names: 400;
* ``jwt_alg`` none/hs*: 422 (documented, but unverifiable by a receiver);
* ``POST /webhooks/:id/test`` of an unverified webhook: 204, nothing sent.
"""
from __future__ import annotations

import base64
import json
import logging
from binascii import Error as BinasciiError
from datetime import timedelta

from django.db.models import Q
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sandbox import faults
from sandbox.xurrent import operations as ops
from sandbox.xurrent import shapes
from sandbox.xurrent import vocabulary as v
from sandbox.xurrent import webhooks as hooks
from sandbox.xurrent.conventions import (SERVICE, ApiError, ApiView, Filter, apply_filters, apply_sort, json_response,
                                 lowercase_headers, select_fields)
from sandbox.xurrent.models import (AccessToken, Note, OAuthApplication, Request, ServiceInstance, Webhook,
                                    WebhookPolicy)

logger = logging.getLogger("sandbox.xurrent")


# -- OAuth (§1.2) --------------------------------------------------------------------------------------
# The path faults match for the token endpoint (the faults page's "path", like /v1/requests for the API).
TOKEN_PATH = "/oauth/token"
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def _oauth_error(status: int, code: str, description: str) -> HttpResponse:
    # RFC 6749 §5.2 shape, not the REST API's {"message"} (§5.4).
    return json_response({"error": code, "error_description": description}, status, headers=_NO_STORE)


def _oauth_fault(request: HttpRequest) -> HttpResponse | None:
    """An armed fault for the token endpoint, answered in the OAuth error shape.

    What the real OAuth host answers when it fails or throttles is not
    documented; the simulator keeps RFC 6749's shape with its codes for
    these cases (``server_error``, ``temporarily_unavailable``), and a
    Retry-After on a 429 as the API sends. A timeout is the gateway's 504.
    """
    response = faults.api_fault_response(
        SERVICE, request.method, TOKEN_PATH,
        error_body={"error": "server_error", "error_description": "Internal Server Error"},
        rate_limited_body={"error": "temporarily_unavailable", "error_description": "Too Many Requests"})
    if response is None:
        return None
    response["content-type"] = "application/json; charset=utf-8"
    for name, value in _NO_STORE.items():
        response[name] = value
    return lowercase_headers(response)


def _oauth_params(request: HttpRequest) -> dict:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return {}
        return {k: str(val) for k, val in data.items() if val is not None} if isinstance(data, dict) else {}
    form = request.POST if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data") \
        else QueryDict(request.body)
    return {k: form.get(k) for k in form}


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    # RFC 6749 §2.3.1 also allows the client to authenticate with HTTP Basic.
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(value.strip()).decode().partition(":")
    except (BinasciiError, UnicodeDecodeError, ValueError):
        return None
    return client_id, secret


@csrf_exempt
def oauth_token(request: HttpRequest, instance: str) -> HttpResponse:
    """``POST /oauth/token``, client credentials grant, form-encoded or JSON body.

    200 ``{"access_token", "token_type": "bearer", "expires_in": 3600}``; 400
    ``invalid_request`` / ``unsupported_grant_type`` / ``invalid_client``.
    Parameters in the query string are refused (§1.2: body only). Armed
    faults for the path ``/oauth/token`` come first. An application of an
    account in another instance is unknown here: ``invalid_client``.
    """
    if (fault := _oauth_fault(request)) is not None:
        return fault
    if request.method != "POST":
        return _oauth_error(405, "invalid_request", "Use POST.")
    params = _oauth_params(request)
    if not params and request.GET:
        return _oauth_error(400, "invalid_request", "The parameters must be sent in the request body.")
    grant_type = params.get("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request", "The grant_type parameter is missing.")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type",
                            "This simulator supports only the client_credentials grant.")
    client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
    if not client_id and (basic := _basic_credentials(request)):
        client_id, secret = basic
    if not client_id or not secret:
        return _oauth_error(400, "invalid_request", "client_id and client_secret are required.")
    app = (OAuthApplication.objects.select_related("person")
           .filter(client_id=client_id, account__instance=instance).first())
    if app is None or not app.check_secret(secret) or app.disabled or app.person.disabled:
        logger.info("sandbox.xurrent.token-refused client_id=%s", client_id[:64])
        return _oauth_error(400, "invalid_client", "Client authentication failed: unknown client, wrong secret, "
                                                   "or the application is disabled.")
    # Tidy up tokens that expired more than a day ago.
    AccessToken.objects.filter(application=app, expires_at__lt=timezone.now() - timedelta(days=1)).delete()
    row, raw = AccessToken.issue(app)
    logger.info("sandbox.xurrent.token-issued client_id=%s", client_id[:64])
    return json_response({"access_token": raw, "token_type": "bearer",
                          "expires_in": int((row.expires_at - timezone.now()).total_seconds() + 0.5)},
                         headers=_NO_STORE)


# -- account host: verification callback and canonical links -----------------------------------------------
_VERIFIED_PAGE = ("<!doctype html><html><head><meta charset='utf-8'><title>Webhook verification</title></head>"
                  "<body><h1>{title}</h1><p>{detail}</p></body></html>")


@csrf_exempt
def verify_webhook(request: HttpRequest, instance: str, webhook_id: int) -> HttpResponse:
    """``GET|POST {account_url}/webhooks/<id>/verify?code=…&expires_at=…`` (§6.2).

    200 "Verification successful"; 404 unknown webhook; 403 wrong code;
    410 expired code. No token is needed: the code is the secret.
    """
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405)
    webhook = Webhook.objects.filter(pk=webhook_id, account__instance=instance).first()
    code = request.GET.get("code") or request.POST.get("code") or ""
    if webhook is None:
        outcome, status = "not_found", 404
    else:
        outcome = hooks.verify(webhook, code)
        status = {"ok": 200, "invalid": 403, "expired": 410}[outcome]
    title, detail = {
        "ok": ("Verification successful", "The webhook is now active."),
        "invalid": ("Verification failed", "This verification code is not valid (a newer one may have been sent)."),
        "expired": ("Verification failed", "This verification code has expired; update the webhook to get a new "
                                           "one."),
        "not_found": ("Verification failed", "There is no such webhook."),
    }[outcome]
    response = HttpResponse(_VERIFIED_PAGE.format(title=title, detail=detail), status=status,
                            content_type="text/html; charset=utf-8")
    response["content-type"] = "text/html; charset=utf-8"
    return response


def canonical_request(request: HttpRequest, instance: str, request_id: int) -> HttpResponse:
    """``{account_url}/requests/<id>`` (the ``canonical`` link of deliveries): the by-hand page."""
    return redirect(reverse("sandbox-xurrent-ui-request", args=[request_id]))


def account_home(request: HttpRequest, instance: str) -> HttpResponse:
    """``https://<account>.<domain>/`` leads a person to the by-hand UI."""
    return redirect(reverse("sandbox-xurrent-ui"))


def canonical_webhook(request: HttpRequest, instance: str, webhook_id: int) -> HttpResponse:
    """``{account_url}/webhooks/<id>``: the by-hand webhooks list."""
    return redirect(reverse("sandbox-xurrent-ui") + "#webhooks")


# -- REST API --------------------------------------------------------------------------------------------
class Root(ApiView):
    """``GET /v1`` answers ``{}`` (§2 sanity endpoints)."""

    def get(self, request):
        return json_response({})


class RateLimit(ApiView):
    """``GET /v1/rate_limit``: the caller's budget without spending a hit (§5.3).

    The body repeats the ``x-ratelimit-*`` headers as integers; the reference documents the endpoint
    but not its body, so this shape is inferred.
    """

    counts_against_limit = False

    def get(self, request):
        budget = self._peek(request, self.caller.account, self.caller.person)
        return json_response({name.removeprefix("x-ratelimit-"): int(value) for name, value in budget.items()})


class AccountView(ApiView):
    """``GET /v1/account``: the account named in the header."""

    def get(self, request):
        return json_response(shapes.account_json(self.caller.account))


class Me(ApiView):
    """``GET /v1/me``: the person the token acts as."""

    def get(self, request):
        return json_response(shapes.person_json(self.caller.person))


class NotFound(ApiView):
    """Any other ``/v1`` path: 404 ``{"message": "Not Found"}``."""

    def get(self, request, *args, **kwargs):
        raise ApiError(404, "Not Found")

    post = patch = delete = get


# Service instances (§4.1)
SERVICE_INSTANCE_FILTERS = {
    "id": Filter("id", "int"), "name": Filter("name"), "status": Filter("status", "enum"),
    "source": Filter("source"), "sourceID": Filter("sourceID"),
    "service": Filter("service_id", "ref"), "service_id": Filter("service_id", "ref"),
    "support_team": Filter("support_team_id", "ref"), "support_team_id": Filter("support_team_id", "ref"),
    "created_at": Filter("created_at", "datetime"), "updated_at": Filter("updated_at", "datetime"),
}
SERVICE_INSTANCE_SORTS = {"id": "id", "sourceID": "sourceID", "name": "name", "status": "status",
                          "service": "service__name", "support_team": "support_team__name",
                          "created_at": "created_at", "updated_at": "updated_at"}
SERVICE_INSTANCE_PREDEFINED = {
    "": Q(), "active": Q(status__in=v.ACTIVE_SERVICE_INSTANCE_STATUSES), "inactive": Q(status="discontinued"),
}


class ServiceInstances(ApiView):
    """``GET /v1/service_instances`` (+ ``/active``, ``/inactive``), sorted by name (§4.1)."""

    def get(self, request, predefined: str = ""):
        qs = (ServiceInstance.objects.filter(account=self.caller.account)
              .filter(SERVICE_INSTANCE_PREDEFINED[predefined])
              .select_related("service", "support_team", "first_line_team"))
        qs = apply_sort(request, apply_filters(request, qs, SERVICE_INSTANCE_FILTERS), SERVICE_INSTANCE_SORTS,
                        ["name"])
        return self.paginate(request, qs, shapes.service_instance_json, shapes.SERVICE_INSTANCE_COLLECTION_FIELDS)


class ServiceInstanceDetail(ApiView):
    """``GET /v1/service_instances/:id``."""

    def get(self, request, record_id: str):
        instance = self.get_record(ServiceInstance.objects.select_related("service"), record_id, "ServiceInstance")
        return json_response(select_fields(request, shapes.service_instance_json(instance), None))


# Requests (§3)
REQUEST_FILTERS = {
    "id": Filter("id", "int"), "source": Filter("source"), "sourceID": Filter("sourceID"),
    "subject": Filter("subject"), "category": Filter("category", "enum"), "impact": Filter("impact", "enum"),
    "status": Filter("status", "enum"), "completed_at": Filter("completed_at", "datetime"),
    "created_at": Filter("created_at", "datetime"), "updated_at": Filter("updated_at", "datetime"),
    "service_instance": Filter("service_instance_id", "ref"),
    "service_instance_id": Filter("service_instance_id", "ref"),
    "team": Filter("team_id", "ref"), "team_id": Filter("team_id", "ref"),
    "member": Filter("member_id", "ref"), "member_id": Filter("member_id", "ref"),
    "requested_by": Filter("requested_by_id", "ref"), "requested_for": Filter("requested_for_id", "ref"),
    "created_by": Filter("created_by_id", "ref"),
}
REQUEST_SORTS = {"id": "id", "sourceID": "sourceID", "subject": "subject", "category": "category",
                 "impact": "impact", "status": "status", "completed_at": "completed_at", "team": "team__name",
                 "member": "member__name", "service_instance": "service_instance__name",
                 "created_at": "created_at", "updated_at": "updated_at"}


def _request_predefined(name: str, caller) -> Q | None:
    person = caller.person
    return {
        "": Q(),
        "open": ~Q(status="completed"),
        "completed": Q(status="completed"),
        "requested_by_or_for_me": Q(requested_by=person) | Q(requested_for=person),
        "assigned_to_me": Q(member=person) & ~Q(status="completed"),
        "waiting_for_me": Q(status="waiting_for_customer") & (Q(requested_by=person) | Q(requested_for=person)),
        # The simulator models no team membership, problem management or SLAs: these documented
        # filters (reference §3.1) exist and answer an empty list rather than a 404.
        "assigned_to_my_team": Q(pk__in=[]),
        "problem_management_review": Q(pk__in=[]),
        "sla_accountability": Q(pk__in=[]),
    }.get(name)


def _requests_queryset():
    return Request.objects.select_related("service_instance", "team", "member", "requested_by", "requested_for",
                                          "created_by", "account")


class Requests(ApiView):
    """``GET /v1/requests`` (+ predefined filters), newest first; ``POST /v1/requests`` → 201 (§3.1)."""

    def get(self, request, predefined: str = ""):
        condition = _request_predefined(predefined, self.caller)
        if condition is None:
            raise ApiError(404, "Not Found")
        qs = _requests_queryset().filter(account=self.caller.account).filter(condition)
        qs = apply_sort(request, apply_filters(request, qs, REQUEST_FILTERS), REQUEST_SORTS, ["-id"])
        return self.paginate(request, qs, shapes.request_json, shapes.REQUEST_COLLECTION_FIELDS,
                             shapes.REQUEST_WRITE_ONLY_FIELDS)

    def post(self, request, predefined: str = ""):
        if predefined:
            raise ApiError(405, "Method Not Allowed")
        # §3.4: source = body, else X-Xurrent-Source (legacy X-4me-Source), else User-Agent, else "Xurrent API".
        default_source = (request.META.get("HTTP_X_XURRENT_SOURCE") or request.META.get("HTTP_X_4ME_SOURCE")
                          or request.META.get("HTTP_USER_AGENT") or v.DEFAULT_API_SOURCE).strip()
        created = ops.create_request(self.caller.account, self.caller.person, self.body(request), self.origin,
                                     default_source=default_source)
        return json_response(shapes.request_json(_requests_queryset().get(pk=created.pk)), 201)


class RequestDetail(ApiView):
    """``GET`` / ``PATCH`` (``PUT``) ``/v1/requests/:id``."""

    def get(self, request, record_id: str):
        record = self.get_record(_requests_queryset(), record_id, "Req")
        return json_response(select_fields(request, shapes.request_json(record), None, shapes.REQUEST_WRITE_ONLY_FIELDS))

    def patch(self, request, record_id: str):
        record = self.get_record(_requests_queryset(), record_id, "Req")
        data = self.body(request)
        ops.update_request(record, self.caller.person, data, self.origin)
        return json_response(shapes.request_json(_requests_queryset().get(pk=record.pk)))


NOTE_FILTERS = {"created_at": Filter("created_at", "datetime"), "medium": Filter("medium", "enum"),
                "person": Filter("person_id", "ref"), "person_id": Filter("person_id", "ref"),
                "id": Filter("id", "int")}
NOTE_SORTS = {"id": "id", "person_id": "person_id", "created_at": "created_at"}


class RequestNotes(ApiView):
    """``GET /v1/requests/:id/notes`` (+ ``/public``, ``/internal``), ascending by id;
    ``POST`` → 201 ``{"id"}`` with a ``location`` header (§3.1, §3.3)."""

    def get(self, request, record_id: str, predefined: str = ""):
        record = self.get_record(Request.objects, record_id, "Req")
        qs = Note.objects.filter(request=record).select_related("person", "account")
        if predefined:
            qs = qs.filter(internal=predefined == "internal")
        qs = apply_sort(request, apply_filters(request, qs, NOTE_FILTERS), NOTE_SORTS, ["id"])
        return self.paginate(request, qs, shapes.note_json)

    def post(self, request, record_id: str, predefined: str = ""):
        if predefined:
            raise ApiError(405, "Method Not Allowed")
        record = self.get_record(Request.objects.select_related("team", "member", "account"), record_id, "Req")
        data = self.body(request)
        note = ops.add_note(record, self.caller.person, data.get("text"), self.origin,
                            internal=data.get("internal", False))
        return json_response({"id": note.pk}, 201, headers={"location": f"{self.origin.api_base}/notes/{note.pk}"})


class NoteDetail(ApiView):
    """``GET /v1/notes/:id`` and ``GET /v1/requests/:id/notes/:note_id`` (§3.3 Notes API)."""

    def get(self, request, note_id: str, record_id: str | None = None):
        qs = Note.objects.select_related("person", "account")
        if record_id is not None:
            qs = qs.filter(request=self.get_record(Request.objects, record_id, "Req"))
        note = self.get_record(qs, note_id, "Note")
        return json_response(select_fields(request, shapes.note_json(note), None))


# Webhooks (§6.1)
WEBHOOK_FILTERS = {"id": Filter("id", "int"), "event": Filter("event"), "uri": Filter("uri"),
                   "name": Filter("name"), "disabled": Filter("disabled", "bool"),
                   "webhook_policy": Filter("webhook_policy_id", "ref"),
                   "source": Filter("source"), "sourceID": Filter("sourceID"),
                   "created_at": Filter("created_at", "datetime"), "updated_at": Filter("updated_at", "datetime")}
WEBHOOK_SORTS = {"id": "id", "event": "event", "name": "name", "created_at": "created_at",
                 "updated_at": "updated_at"}
ENABLED_FILTERS = {"": Q(), "enabled": Q(disabled=False), "disabled": Q(disabled=True)}


class Webhooks(ApiView):
    """``GET /v1/webhooks`` (+ ``/enabled``, ``/disabled``); ``POST`` → 201 and a ``webhook.verify``."""

    def get(self, request, predefined: str = ""):
        qs = (Webhook.objects.filter(account=self.caller.account).filter(ENABLED_FILTERS[predefined])
              .select_related("webhook_policy"))
        qs = apply_sort(request, apply_filters(request, qs, WEBHOOK_FILTERS), WEBHOOK_SORTS, ["id"])
        return self.paginate(request, qs, shapes.webhook_json)

    def post(self, request, predefined: str = ""):
        if predefined:
            raise ApiError(405, "Method Not Allowed")
        webhook = ops.create_webhook(self.caller.account, self.caller.person, self.body(request), self.origin)
        # 201 with the account-host location, as in the worked example (§6.1).
        return json_response(shapes.webhook_json(webhook), 201,
                             headers={"location": f"{self.origin.account_url}/webhooks/{webhook.pk}"})


class WebhookDetail(ApiView):
    """``GET`` / ``PATCH`` / ``DELETE`` (204) ``/v1/webhooks/:id``."""

    def _webhook(self, record_id):
        return self.get_record(Webhook.objects.select_related("webhook_policy", "account"), record_id, "Webhook")

    def get(self, request, record_id: str):
        return json_response(select_fields(request, shapes.webhook_json(self._webhook(record_id)), None))

    def patch(self, request, record_id: str):
        webhook = ops.update_webhook(self._webhook(record_id), self.caller.person, self.body(request), self.origin)
        return json_response(shapes.webhook_json(webhook))

    def delete(self, request, record_id: str):
        self._webhook(record_id).delete()
        return json_response(None, 204)


class WebhookTest(ApiView):
    """``POST /v1/webhooks/:id/test`` → 204; a sample message about object 12345 (§6.1)."""

    def post(self, request, record_id: str):
        webhook = self.get_record(Webhook.objects.select_related("webhook_policy", "account"), record_id, "Webhook")
        hooks.send_test(webhook, self.caller.person, self.origin)
        return json_response(None, 204)


# Webhook policies (§7.1)
POLICY_FILTERS = {"id": Filter("id", "int"), "name": Filter("name", "itext"), "disabled": Filter("disabled", "bool"),
                  "created_at": Filter("created_at", "datetime"), "updated_at": Filter("updated_at", "datetime")}
POLICY_SORTS = {"id": "id", "name": "name", "created_at": "created_at", "updated_at": "updated_at"}


class WebhookPolicies(ApiView):
    """``GET /v1/webhook_policies`` (+ ``/enabled``, ``/disabled``), by creation;
    ``POST`` → 201 with ``public_key_pem``, the only time it is shown."""

    def get(self, request, predefined: str = ""):
        qs = WebhookPolicy.objects.filter(account=self.caller.account).filter(ENABLED_FILTERS[predefined])
        qs = apply_sort(request, apply_filters(request, qs, POLICY_FILTERS), POLICY_SORTS, ["created_at"])
        return self.paginate(request, qs, shapes.webhook_policy_json, shapes.WEBHOOK_POLICY_COLLECTION_FIELDS)

    def post(self, request, predefined: str = ""):
        if predefined:
            raise ApiError(405, "Method Not Allowed")
        policy, public_pem = ops.create_webhook_policy(self.caller.account, self.body(request))
        return json_response(shapes.webhook_policy_json(policy, public_key_pem=public_pem), 201)


class WebhookPolicyDetail(ApiView):
    """``GET`` / ``PATCH`` / ``DELETE`` (204) ``/v1/webhook_policies/:id``; never the public key."""

    def _policy(self, record_id):
        return self.get_record(WebhookPolicy.objects, record_id, "WebhookPolicy")

    def get(self, request, record_id: str):
        return json_response(select_fields(request, shapes.webhook_policy_json(self._policy(record_id)), None))

    def patch(self, request, record_id: str):
        policy = ops.update_webhook_policy(self._policy(record_id), self.body(request))
        return json_response(shapes.webhook_policy_json(policy))

    def delete(self, request, record_id: str):
        self._policy(record_id).delete()
        return json_response(None, 204)
