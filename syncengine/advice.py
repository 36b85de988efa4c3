"""What to do next about a history row, in plain words (the event and call pages show it).

An event's reason says what happened; this says what, if anything, a person
should do about it. For calls, the error kind (connections.errors) decides.
"""
from __future__ import annotations

from syncengine.models import MAX_BODY_BYTES, EventStatus, InboundEvent, OutboundCall, Source

NOTHING = "Nothing to do."

CALL_ADVICE = {
    "authentication": "The credentials were refused. Check the connection under Connections (its secret may have "
                      "been rotated or revoked) and save it with the current one; then replay the events that failed.",
    "permission": "The credentials work but lack a permission. Give the Xurrent OAuth application the scopes the "
                  "tenant page lists, or use a Zenduty API key of an Account Owner or Admin.",
    "not_found": "The record or address does not exist on that side (deleted, or another service). Usually nothing "
                 "to do; if an event failed because of it, its reason says what the sync expected.",
    "validation": "The API refused the data sent; the error names the field. Check the integration's settings "
                  "(service instance, categories, impacts and priorities), then replay the event.",
    "rate_limited": "The service asked the portal to slow down. Nothing to do: the portal waits and tries again.",
    "server": "The service failed to answer (5xx). The portal tries again; if it lasts, check the service's status.",
    "network": "The service could not be reached. The portal tries again; if it lasts, check the connection's "
               "address and this server's network.",
    "timeout": "The service did not answer in time. The portal tries again; if it lasts, check the service's status.",
    "unexpected_response": "The answer was not the API's (a proxy or login page?). Check the connection's address.",
    "refused_destination": "The portal refused to send the token to that address. Check the Zenduty account's "
                           "base URL (only zenduty.com, or what ZENDUTY_ALLOWED_BASE_URLS lists).",
}
CALL_ADVICE_DEFAULT = "The call failed; the error above says how. If an event failed with it, replay it once fixed."


def for_call(call: OutboundCall) -> str:
    """What to do about a call: nothing when it succeeded, else by its kind of error."""
    if not call.error_kind and (call.status or 0) < 400 and call.status_class != "none":
        return NOTHING
    return CALL_ADVICE.get(call.error_kind, CALL_ADVICE_DEFAULT)


def for_event(event: InboundEvent) -> str:
    """What to do about an event, by its outcome (and, for a rejected one, by where it came from)."""
    status = event.status
    if status == EventStatus.FAILED:
        return ("Fix what the reason names, then replay the event (the Replay button on this page, or the action "
                "on the list; auditors ask an integration admin).")
    if status == EventStatus.RETRY_SCHEDULED:
        return "Nothing to do yet: the portal tries again by itself; if the last attempt fails, the event fails."
    if status == EventStatus.REJECTED:
        return _for_rejected(event)
    if status in (EventStatus.RECEIVED, EventStatus.PROCESSING):
        return "Nothing to do: the worker is on it (an event left waiting is queued again within minutes)."
    return NOTHING


# Why a delivery was refused (the start of its reason, as syncengine.intake and
# connections.xurrent.webhooks word it) → what to do. The first that matches counts.
_SIGNED_BUT_UNREADABLE = ("Signed with the right key, so {sender} sent it, but the portal cannot read it (the reason "
                          "says what is missing). Nothing to replay; keep the body for the portal's maintainers.")
_ZENDUTY_KEY = ("If this came from Zenduty, the signing keys differ: paste the key Zenduty shows for the outgoing "
                "webhook under “Zenduty outgoing webhook” on the integration's page. Otherwise ignore it.")
_XURRENT_KEY = ("If this came from Xurrent, the webhook policy's key does not match: retry provisioning of the "
                "tenant's webhooks (Connections → the tenant). Otherwise ignore it.")
_NOT_FROM_XURRENT = ("Not a genuine delivery: Xurrent always sends a signed token as JSON ({\"jwt\": …}). Ignore it, "
                     "unless every delivery is refused this way (then a proxy in front of the portal may be "
                     "changing the body).")
_XURRENT_CLOCK = "Check this server's clock (NTP): {}. Xurrent retries a refused delivery."
_OTHER_ACCOUNT = ("The token came from another Xurrent account, region or environment than the tenant's: check the "
                  "tenant's account ID, region and environment (Connections → the tenant).")
_REJECTED_ADVICE = {
    Source.ZENDUTY: (
        ("The delivery has no X-SIGNATURE header",
         "Zenduty sent it unsigned: in Zenduty, set the service's outgoing webhook to authenticate with HMAC "
         "signature (SHA-256), then paste the key it shows under “Zenduty outgoing webhook” on the integration's "
         "page. If it did not come from Zenduty, ignore it."),
        ("The X-SIGNATURE header does not match", _ZENDUTY_KEY),
    ),
    Source.XURRENT: (
        ("The tenant's set of Xurrent webhooks has no Xurrent webhook policy key",
         "Provision the tenant's webhooks (Connections → the tenant); deliveries after that are verified."),
        ("This integration has no Xurrent webhook policy key",
         "Retry provisioning of the integration (its page); deliveries after that are verified."),
        ("The body is not JSON", _NOT_FROM_XURRENT),
        ("The delivery body is not JSON", _NOT_FROM_XURRENT),
        ("The delivery has no jwt property", _NOT_FROM_XURRENT),
        ("The token is not a valid JWT", _NOT_FROM_XURRENT),
        ("The token has expired", _XURRENT_CLOCK.format("a Xurrent token is valid for minutes only")),
        ("The token is not valid yet", _XURRENT_CLOCK.format("it is behind Xurrent's")),
        ("The token is meant for another audience", _XURRENT_KEY),
        ("The token was issued by another account", _OTHER_ACCOUNT),
        ("The token has no iss claim", _OTHER_ACCOUNT),
    ),
}
# When no reason matches: the key of whoever would have sent it.
_KEY_ADVICE = {Source.ZENDUTY: _ZENDUTY_KEY, Source.XURRENT: _XURRENT_KEY}
_CHUNKED = ("Send the body with a Content-Length, or serve the portal with gunicorn (README) so a chunked body "
            "can be read; the sender was told it was refused.")


def _for_rejected(event: InboundEvent) -> str:
    """What to do about a refused delivery: by why it was refused, then by who would have sent it."""
    if event.body_size > MAX_BODY_BYTES:
        return "Nothing to do: no genuine delivery is this large; the sender was told it was refused."
    reason = event.reason or ""
    if reason.startswith("The body was sent in chunks"):
        return _CHUNKED
    sender = Source(event.source).label
    if event.signature_ok:
        return _SIGNED_BUT_UNREADABLE.format(sender=sender)
    for start, advice in _REJECTED_ADVICE.get(event.source, ()):
        if reason.startswith(start):
            return advice
    return _KEY_ADVICE.get(event.source, _XURRENT_KEY)
