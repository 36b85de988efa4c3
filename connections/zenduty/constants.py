"""Zenduty's coded values, named once.

Source: Zenduty's OpenAPI (apidocs.zenduty.com) and the outgoing-webhook docs
(https://www.zenduty.com/docs/outgoingwebhooks-integration/).
"""

# Incident ``status``. Acknowledge and resolve are PATCHes of this field.
TRIGGERED = 1
ACKNOWLEDGED = 2
RESOLVED = 3
INCIDENT_STATUSES = (TRIGGERED, ACKNOWLEDGED, RESOLVED)

# ``status`` in the body of POST /api/incidents/filter/: two extra values
# that exist only there.
FILTER_OPEN = -1  # triggered or acknowledged
FILTER_ALL = 0

# Incident ``urgency``.
URGENCY_LOW = 0
URGENCY_HIGH = 1

# Integration ``integration_type``: the "Outgoing Webhooks" application is an
# outbound integration.
INTEGRATION_ALERT = 0
INTEGRATION_OUTBOUND = 1

# The only events the per-service Outgoing Webhooks integration sends. There
# is no note-added or priority-changed event: those changes must be polled.
EVENT_TRIGGERED = "triggered"
EVENT_ACKNOWLEDGED = "acknowledged"
EVENT_RESOLVED = "resolved"
EVENT_TYPES = (EVENT_TRIGGERED, EVENT_ACKNOWLEDGED, EVENT_RESOLVED)
