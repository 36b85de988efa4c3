"""Xurrent's documented enums and event names, as the simulator enforces them.

Values come from the vendor's REST reference: request fields
(https://developer.xurrent.com/v1/requests/), service instances
(https://developer.xurrent.com/v1/service_instances/), webhook events
(https://developer.xurrent.com/v1/webhooks/) and webhook policies
(https://developer.xurrent.com/v1/webhook_policies/). Labels are the vendor's
display texts.
"""
from __future__ import annotations

# §3.2 — request ``category`` (required).
CATEGORIES = {
    "incident": "Incident - Request for Incident Resolution",
    "rfc": "RFC - Request for Change",
    "rfi": "RFI - Request for Information",
    "reservation": "Reservation - Request for Reservation",
    "order": "Order - Request for Purchase",
    "fulfillment": "Fulfillment - Request for Order Fulfillment",
    "complaint": "Complaint - Request for Support Improvement",
    "compliment": "Compliment - Request for Bestowal of Praise",
    "other": "Other - Request is Out of Scope",
}

# §3.2 — request ``impact`` (required when the category is incident).
IMPACTS = {
    "low": "Low - Service Degraded for One User",
    "medium": "Medium - Service Down for One User",
    "high": "High - Service Degraded for Several Users",
    "top": "Top - Service Down for Several Users",
}

# §3.2 — request ``status`` (default assigned).
STATUSES = {
    "declined": "Declined",
    "on_backlog": "On Backlog",
    "assigned": "Assigned",
    "accepted": "Accepted",
    "in_progress": "In Progress",
    "waiting_for": "Waiting for…",
    "waiting_for_customer": "Waiting for Customer",
    "reservation_pending": "Reservation Pending",
    "workflow_pending": "Workflow Pending",
    "project_pending": "Project Pending",
    "completed": "Completed",
}
OPEN_STATUSES = [s for s in STATUSES if s != "completed"]

# §3.2 — request ``completion_reason`` (sent with status completed).
COMPLETION_REASONS = {
    "solved": "Solved - Root Cause Analysis Not Required",
    "workaround": "Workaround - Root Cause Not Removed",
    "gone": "Gone - Unable to Reproduce",
    "duplicate": "Duplicate - Same as Another Request of Customer",
    "withdrawn": "Withdrawn - Withdrawn by Requester",
    "no_reply": "No Reply - No Reply Received from Customer",
    "rejected": "Rejected - Rejected by Approver",
    "conflict": "Conflict - In Conflict with Internal Standard or Policy",
    "declined": "Declined - Declined by Service Provider",
    "unsolvable": "Unsolvable - Unable to Solve",
}

# §3.3 — note ``medium``.
NOTE_MEDIA = ("default", "email", "outbound_email", "system", "redacted", "automation")

# §4.1 — service instance ``status`` (default being_prepared).
SERVICE_INSTANCE_STATUSES = {
    "being_prepared": "Being Prepared",
    "in_production": "In Production",
    "discontinued": "Discontinued",
}
# The predefined filters /service_instances/active and /inactive (inference:
# "active" = not discontinued).
ACTIVE_SERVICE_INSTANCE_STATUSES = ["being_prepared", "in_production"]

# §6.1 — every webhook event Xurrent documents.
_EVENT_FAMILIES = {
    "app_instance": ("create", "update", "delete", "secrets-update"),
    "broadcast": ("create", "update"),
    "ci": ("create", "update"),
    "contract": ("create", "update"),
    "flsa": ("create", "update"),
    "knowledge_article": ("create", "update"),
    "organization": ("create", "update"),
    "out_of_office_period": ("create", "update", "delete"),
    "person": ("create", "update"),
    "problem": ("create", "manager-changed", "member-changed", "note-added", "status-changed", "team-changed",
                "update"),
    "product": ("create", "update"),
    "project": ("create", "manager-changed", "note-added", "status-changed", "update"),
    "project_task": ("create", "note-added", "status-changed", "update"),
    "release": ("create", "manager-changed", "note-added", "update"),
    "request": ("create", "update", "status-changed", "note-added", "team-changed", "member-changed",
                "major-incident-status-changed", "agile-board-column-changed"),
    "risk": ("create", "update", "note-added", "status-changed", "manager-changed"),
    "service": ("create", "update"),
    "service_instance": ("create", "update"),
    "service_offering": ("create", "update"),
    "sla": ("create", "update"),
    "task": ("create", "member-changed", "note-added", "status-changed", "team-changed", "update"),
    "team": ("create", "update"),
    "time_entry": ("create", "update", "delete"),
    "workflow": ("create", "manager-changed", "note-added", "status-changed", "update"),
}
WEBHOOK_EVENTS = sorted(
    [f"{noun}.{verb}" for noun, verbs in _EVENT_FAMILIES.items() for verb in verbs]
    + ["automation_rule", "webhook.verify"]
)
# The events this simulator actually fires (the rest are accepted but never sent).
FIRED_EVENTS = ("request.create", "request.update", "request.status-changed", "request.note-added",
                "webhook.verify")

# §7.1 — webhook policy ``jwt_alg``: what the REST docs list, and the subset a
# receiver can verify (only the public key is ever exposed, §7.1 "Practical
# algorithm set"). The simulator refuses the others with a 422.
DOCUMENTED_JWT_ALGS = ("none", "hs256", "hs384", "hs512", "rs256", "rs384", "rs512", "es256", "es384", "es512")
SUPPORTED_JWT_ALGS = ("rs256", "rs384", "rs512", "es256", "es384", "es512")

# §6.3 — the user agent of webhook deliveries (the iPaaS fixtures' current form).
WEBHOOK_USER_AGENT = "xurrent/1.0 (https://developer.xurrent.com/v1/webhooks)"
# §5.3 — the body of a 429.
RATE_LIMIT_DOCUMENTATION_URL = "https://developer.xurrent.com/v1/#rate-limiting"
# §3.4 — the source of records created through the API when nothing else names one.
DEFAULT_API_SOURCE = "Xurrent API"


def choices(mapping: dict) -> list[tuple[str, str]]:
    """Django ``choices`` from one of the mappings above."""
    return list(mapping.items())
