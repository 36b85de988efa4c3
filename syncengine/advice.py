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
        if event.body_size > MAX_BODY_BYTES:
            return "Nothing to do: no genuine delivery is this large; the sender was told it was refused."
        if event.source == Source.ZENDUTY:
            return ("If this came from Zenduty, the signing keys differ: paste the key Zenduty shows for the outgoing "
                    "webhook under “Zenduty outgoing webhook” on the integration's page. Otherwise ignore it.")
        return ("If this came from Xurrent, the webhook policy's key does not match: retry provisioning of the "
                "tenant's webhooks (Connections → the tenant). Otherwise ignore it.")
    if status in (EventStatus.RECEIVED, EventStatus.PROCESSING):
        return "Nothing to do: the worker is on it (an event left waiting is queued again within minutes)."
    return NOTHING
