"""Changes to simulated Xurrent records, shared by the REST API and the by-hand UI.

Each function validates like Xurrent (422 ``errors`` pairs, §5.4), writes the
records and queues the webhook messages the change causes (§6.1), naming
``actor`` — the API user or the UI person — as the person who made it.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from sandbox.xurrent import vocabulary as v
from sandbox.xurrent import webhooks as hooks
from sandbox.xurrent.conventions import Invalid, Origin, parse_bool, parse_id
from sandbox.xurrent.models import (Account, AuditLine, Note, Person, Request, ServiceInstance, Team, Webhook,
                                    WebhookPolicy)

NOTE_MAX_LENGTH = 65536  # 64KB (§3.3)

# Request fields whose change is a request.update (§6.1).
TRACKED_REQUEST_FIELDS = ("subject", "category", "impact", "status", "completion_reason", "service_instance_id",
                          "team_id", "member_id", "requested_by_id", "requested_for_id", "source", "sourceID",
                          "urgent")

_LABELS = {"sourceID": "Source ID", "jwt_alg": "Jwt alg", "jwt_audience": "Jwt audience",
           "jwt_claim_expires_in": "Jwt claim expires in", "uri": "Uri"}


def _label(field: str) -> str:
    # Rails-style messages as Xurrent writes them: "Subject can't be blank".
    return _LABELS.get(field) or field.replace("_", " ").capitalize()


class _Checker:
    """Collects Xurrent-style ``[field, message]`` errors while reading an input object."""

    def __init__(self, data: dict):
        self.data = data
        self.errors: list[list[str]] = []
        self.values: dict[str, Any] = {}

    def error(self, field: str, message: str) -> None:
        self.errors.append([field, f"{_label(field)} {message}"])

    def text(self, field: str, max_length: int) -> None:
        if field not in self.data:
            return
        raw = self.data[field]
        if raw is None:
            self.values[field] = ""
        elif isinstance(raw, (dict, list, bool)):
            self.error(field, "is invalid")
        elif len(str(raw)) > max_length:
            self.error(field, f"is too long (maximum is {max_length} characters)")
        else:
            self.values[field] = str(raw).strip()

    def enum(self, field: str, allowed) -> None:
        if field not in self.data:
            return
        raw = self.data[field]
        if raw in (None, ""):
            self.values[field] = None
        elif not isinstance(raw, str) or raw not in allowed:
            self.error(field, "is not included in the list")
        else:
            self.values[field] = raw

    def boolean(self, field: str) -> None:
        if field in self.data:
            value = parse_bool(self.data[field])
            if value is None and self.data[field] is not None:
                self.error(field, "is invalid")
            else:
                self.values[field] = bool(value)

    def reference(self, field: str, queryset, kind: str) -> None:
        """``<field>_id`` (or ``<field>`` as an id or ``{"id": …}``) naming a record of ``queryset``."""
        key = f"{field}_id" if f"{field}_id" in self.data else field if field in self.data else None
        if key is None:
            return
        raw = self.data[key]
        if isinstance(raw, dict):
            raw = raw.get("id")
        if raw in (None, ""):
            self.values[field] = None
            return
        pk = parse_id(str(raw), kind) if isinstance(raw, (int, str)) and not isinstance(raw, bool) else None
        record = queryset.filter(pk=pk).first() if pk is not None else None
        if record is None:
            self.error(field, "is invalid")
        else:
            self.values[field] = record

    def raise_if_invalid(self) -> None:
        if self.errors:
            raise Invalid(self.errors)


# -- requests -----------------------------------------------------------------------------------------------
def _check_request(account: Account, data: Any, existing: Request | None) -> tuple[dict, list[tuple[str, bool]]]:
    """Validate a create (``existing`` None) or update body. Returns (values to set, notes to add)."""
    if not isinstance(data, dict):
        raise Invalid([["base", "Request data must be an object"]])
    check = _Checker(data)
    check.text("subject", 255)
    check.enum("category", v.CATEGORIES)
    check.enum("impact", v.IMPACTS)
    check.enum("status", v.STATUSES)
    check.enum("completion_reason", v.COMPLETION_REASONS)
    check.text("source", 30)
    check.text("sourceID", 128)
    check.boolean("urgent")
    people = Person.objects.filter(account=account)
    check.reference("service_instance", ServiceInstance.objects.filter(account=account), "ServiceInstance")
    check.reference("team", Team.objects.filter(account=account), "Team")
    check.reference("member", people, "Person")
    check.reference("requested_by", people, "Person")
    check.reference("requested_for", people, "Person")
    notes: list[tuple[str, bool]] = []
    for field, internal in (("note", False), ("internal_note", True)):
        raw = data.get(field)
        if raw in (None, ""):
            continue
        if not isinstance(raw, str):
            check.error(field, "is invalid")
        elif len(raw) > NOTE_MAX_LENGTH:
            check.error(field, f"is too long (maximum is {NOTE_MAX_LENGTH} characters)")
        elif raw.strip():
            notes.append((raw, internal))
    values = check.values

    def state(field, default=None):
        if field in values:
            return values[field]
        return getattr(existing, field) if existing is not None else default

    # Rules on the resulting record (§3.2).
    if not state("subject"):
        check.error("subject", "can't be blank")
    category = state("category")
    if not category and not any(e[0] == "category" for e in check.errors):
        check.error("category", "can't be blank")
    if category == "incident" and not state("impact") and not any(e[0] == "impact" for e in check.errors):
        check.error("impact", "can't be blank")
    if existing is not None and "status" in values and values["status"] is None:
        check.error("status", "can't be blank")
    if state("status", "assigned") == "completed" and not state("completion_reason") \
            and not any(e[0] == "completion_reason" for e in check.errors):
        # Clients send the reason with status completed; the simulator requires it (§3.2, inference).
        check.error("completion_reason", "can't be blank")
    if existing is None and values.get("team") is None and "team" not in [e[0] for e in check.errors]:
        instance = values.get("service_instance")
        # The team defaults to the service instance's first-line team, else its support team (§3.2);
        # without either, to the account's service desk team (inference: the docs' 422 example
        # for an empty request names only subject and category).
        default_team = (instance and (instance.first_line_team or instance.support_team)) \
            or account.service_desk_team
        if default_team is None:
            check.error("team", "can't be blank")
        else:
            values["team"] = default_team
    elif existing is not None and "team" in values and values["team"] is None:
        check.error("team", "can't be blank")
    check.raise_if_invalid()
    return values, notes


@transaction.atomic
def create_request(account: Account, actor: Person, data: Any, origin: Origin, *, default_source: str) -> Request:
    """Create a request as ``actor`` (``POST /requests``). ``default_source`` fills ``source`` when the
    body names none (§3.4: X-Xurrent-Source → User-Agent → "Xurrent API").

    :raises Invalid: with Xurrent's error pairs.
    """
    values, notes = _check_request(account, data, None)
    values.setdefault("requested_by", actor)
    values.setdefault("requested_for", values["requested_by"])
    values["source"] = values.get("source") or default_source[:30]
    values["status"] = values.get("status") or "assigned"
    if values["status"] != "completed":
        values["completion_reason"] = None
    request = Request(account=account, created_by=actor, **{k: val for k, val in values.items()})
    if request.status == "completed":
        request.completed_at = timezone.now()
    request.assignment_count = 1 if request.team_id else 0
    request.save()
    for text, internal in notes:
        Note.objects.create(account=account, request=request, person=actor, text=text, internal=internal)
    audit = AuditLine.objects.create(account=account, request=request, person=actor)
    hooks.emit_request_event(request, "request.create", actor, origin, audit_line=audit)
    return request


@transaction.atomic
def update_request(request: Request, actor: Person, data: Any, origin: Origin) -> Request:
    """Change a request as ``actor`` (``PATCH /requests/:id``); ``note``/``internal_note`` add notes.

    Fires request.update when a field changed, plus request.status-changed
    (with previous_status), request.team-changed and request.member-changed
    as they apply, and request.note-added per note (§6.1, §6.3).

    :raises Invalid: with Xurrent's error pairs.
    """
    request = Request.objects.select_for_update().get(pk=request.pk)
    values, notes = _check_request(request.account, data, request)
    before = {f: getattr(request, f) for f in TRACKED_REQUEST_FIELDS}
    for field, value in values.items():
        setattr(request, field, value)
    if request.status != before["status"]:
        if request.status == "completed":
            request.completed_at = timezone.now()
        elif before["status"] == "completed":  # reopened
            request.completed_at = None
            request.completion_reason = None
            request.reopen_count += 1
    if request.status != "completed":
        request.completion_reason = None
    if request.team_id != before["team_id"]:
        request.assignment_count += 1
    changed = any(getattr(request, f) != before[f] for f in TRACKED_REQUEST_FIELDS)
    if changed or notes:
        request.save()  # a note alone still touches updated_at
    created = [Note.objects.create(account=request.account, request=request, person=actor, text=text,
                                   internal=internal) for text, internal in notes]
    # A field change makes one audit entry, which every event of the change names (§6.3); a note makes
    # none. That the events of one change share it is this simulator's reading: Xurrent does not say.
    audit = AuditLine.objects.create(account=request.account, request=request, person=actor) if changed else None
    if changed:
        hooks.emit_request_event(request, "request.update", actor, origin, audit_line=audit)
    if request.status != before["status"]:
        hooks.emit_request_event(request, "request.status-changed", actor, origin, previous_status=before["status"],
                                 audit_line=audit)
    if request.team_id != before["team_id"]:
        hooks.emit_request_event(request, "request.team-changed", actor, origin, audit_line=audit)
    if request.member_id != before["member_id"]:
        hooks.emit_request_event(request, "request.member-changed", actor, origin, audit_line=audit)
    for note in created:
        hooks.emit_request_event(request, "request.note-added", actor, origin, note=note)
    return request


@transaction.atomic
def add_note(request: Request, actor: Person, text: Any, origin: Origin, *, internal: Any = False,
             medium: str = "default") -> Note:
    """Add a note as ``actor`` (``POST /requests/:id/notes``) and fire request.note-added.

    :raises Invalid: when the text is blank or longer than 64KB.
    """
    if not isinstance(text, str) or not text.strip():
        raise Invalid([["text", "Text can't be blank"]])
    if len(text) > NOTE_MAX_LENGTH:
        raise Invalid([["text", f"Text is too long (maximum is {NOTE_MAX_LENGTH} characters)"]])
    flag = parse_bool(internal)
    note = Note.objects.create(account=request.account, request=request, person=actor, text=text,
                               internal=bool(flag), medium=medium)
    request.save(update_fields=["updated_at"])
    hooks.emit_request_event(request, "request.note-added", actor, origin, note=note)
    return note


# -- webhooks ------------------------------------------------------------------------------------------------
_url_validator = URLValidator(schemes=["http", "https"])


def _check_webhook(account: Account, data: Any, existing: Webhook | None) -> dict:
    if not isinstance(data, dict):
        raise Invalid([["base", "Webhook data must be an object"]])
    check = _Checker(data)
    check.enum("event", v.WEBHOOK_EVENTS)
    check.text("uri", 1000)
    check.text("name", 120)
    check.text("description", NOTE_MAX_LENGTH)
    check.text("mail_exceptions_to", 500)
    check.text("source", 30)
    check.text("sourceID", 128)
    check.boolean("disabled")
    check.reference("webhook_policy", WebhookPolicy.objects.filter(account=account), "WebhookPolicy")
    values = check.values
    event = values.get("event", existing.event if existing else None)
    if not event and not any(e[0] == "event" for e in check.errors):
        check.error("event", "can't be blank")
    uri = values.get("uri", existing.uri if existing else "")
    if not uri and not any(e[0] == "uri" for e in check.errors):
        check.error("uri", "can't be blank")
    elif "uri" in values and uri:
        # Real Xurrent wants a public https address (§6.1); the sandbox also takes local http ones.
        try:
            _url_validator(uri)
        except DjangoValidationError:
            check.error("uri", "is invalid")
    check.raise_if_invalid()
    return values


@transaction.atomic
def create_webhook(account: Account, actor: Person, data: Any, origin: Origin) -> Webhook:
    """Create a webhook (``POST /webhooks``) and start its verification (§6.2).

    :raises Invalid: with Xurrent's error pairs.
    """
    values = _check_webhook(account, data, None)
    webhook = Webhook.objects.create(account=account, created_by=actor, **values)
    hooks.require_verification(webhook, actor, origin)
    return webhook


@transaction.atomic
def update_webhook(webhook: Webhook, actor: Person, data: Any, origin: Origin) -> Webhook:
    """Change a webhook (``PATCH /webhooks/:id``). A new URI, or any update of a
    still unverified webhook, sends a fresh ``webhook.verify`` (§6.2).

    A new URI or a re-enable starts a fresh failure streak (§6.4), so a
    webhook re-enabled after being disabled is not disabled again at once.
    """
    values = _check_webhook(webhook.account, data, webhook)
    uri_changed = "uri" in values and values["uri"] != webhook.uri
    reenabled = webhook.disabled and values.get("disabled") is False
    for field, value in values.items():
        setattr(webhook, field, value)
    fields = [*values, "updated_at"]
    if uri_changed or reenabled:
        fields += webhook.reset_failures()
    # Only the changed fields: the outbox updates the failure streak concurrently.
    webhook.save(update_fields=fields)
    if uri_changed or not webhook.verified:
        hooks.require_verification(webhook, actor, origin)
    return webhook


# -- webhook policies ----------------------------------------------------------------------------------------
def _check_policy(data: Any, existing: WebhookPolicy | None) -> dict:
    if not isinstance(data, dict):
        raise Invalid([["base", "Webhook policy data must be an object"]])
    check = _Checker(data)
    if "jwt_alg" in data or existing is None:
        raw = data.get("jwt_alg")
        alg = raw.strip().lower() if isinstance(raw, str) else raw
        if alg in (None, ""):
            check.error("jwt_alg", "can't be blank")
        elif alg not in v.DOCUMENTED_JWT_ALGS:
            check.error("jwt_alg", "is not included in the list")
        elif alg not in v.SUPPORTED_JWT_ALGS:
            # Documented (§7.1) but refused here: receivers only ever get the public key.
            check.error("jwt_alg", f"'{alg}' is not supported: a receiver only ever gets the policy's public key, "
                                   f"so it cannot check unsigned (none) or HMAC (hs*) tokens. Use one of "
                                   f"{', '.join(v.SUPPORTED_JWT_ALGS)}")
        elif existing is not None and hooks.key_family(alg) != hooks.key_family(existing.jwt_alg):
            check.error("jwt_alg", f"cannot change from {existing.jwt_alg} to {alg}: the key pair is made for the "
                                   f"algorithm when the policy is created; create a new policy instead")
        else:
            check.values["jwt_alg"] = alg
    check.text("jwt_audience", 2048)
    if "jwt_claim_expires_in" in data:
        raw = data["jwt_claim_expires_in"]
        if raw in (None, ""):
            check.values["jwt_claim_expires_in"] = None
        elif isinstance(raw, bool) or not (isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit())):
            check.error("jwt_claim_expires_in", "is not a number of minutes")
        elif int(raw) < 1:
            check.error("jwt_claim_expires_in", "must be greater than 0")
        else:
            check.values["jwt_claim_expires_in"] = int(raw)
    check.boolean("disabled")
    check.raise_if_invalid()
    return check.values


def create_webhook_policy(account: Account, data: Any) -> tuple[WebhookPolicy, str]:
    """Create a policy with a new key pair (``POST /webhook_policies``). Returns it and its public key PEM.

    :raises Invalid: with Xurrent's error pairs.
    """
    values = _check_policy(data, None)
    private_pem, public_pem = hooks.generate_key_pair(values["jwt_alg"])
    policy = WebhookPolicy.objects.create(account=account, private_key_pem=private_pem, **values)
    return policy, public_pem


def update_webhook_policy(policy: WebhookPolicy, data: Any) -> WebhookPolicy:
    """Change a policy (``PATCH /webhook_policies/:id``); its key pair stays."""
    values = _check_policy(data, policy)
    for field, value in values.items():
        setattr(policy, field, value)
    policy.save()
    return policy
