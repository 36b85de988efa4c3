"""The sync engine's durable inbox and the audit trail of outbound calls.

* :class:`InboundEvent`: every webhook delivery that reached a known
  integration, accepted or not, with what became of it. The receiving view
  stores it before answering; the job (``syncengine.tasks``) works from the
  row, never from the HTTP request.
* :class:`OutboundCall`: one row per call the API clients made
  (``connections.http.CallRecord``), tied to the integration and the event in
  whose context it happened.
* :class:`LinkedPair`: one Xurrent request and the Zenduty incident the sync
  linked it to, with what the portal last saw and wrote on each side.
* :class:`PairNote`: a line in a pair's timeline that is neither a received
  event nor a call, e.g. what the reconciliation sweep repaired.
* :class:`SyncedNote`: a note copied between a pair's request and incident, with both ids.
* :class:`ReconcileCursor`: per integration, up to when the reconciliation
  sweep has read Xurrent's changed requests.

django-q2's own tables only move work and are pruned (``save_limit``); these
two tables are the history people read in the admin.
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone

# Bodies larger than this are refused with 413 (and recorded without the body).
# Xurrent and Zenduty deliveries are a few KB; a JWT-wrapped one is about 4/3 of that.
MAX_BODY_BYTES = 256 * 1024


class Source(models.TextChoices):
    XURRENT = "xurrent", "Xurrent"
    ZENDUTY = "zenduty", "Zenduty"


NEUTRAL = "#6c757d"  # badge background of a status with no colour of its own


class EventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSING = "processing", "Processing"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"
    RETRY_SCHEDULED = "retry_scheduled", "Retry scheduled"

    @property
    def colour(self) -> str:
        """Background of this status's badge (white text) and its colour in the charts."""
        return {"processing": "#0d6efd", "processed": "#198754", "ignored": "#adb5bd", "rejected": "#d63384",
                "failed": "#dc3545", "retry_scheduled": "#fd7e14"}.get(self.value, NEUTRAL)

# Statuses a job may claim, and those an admin may replay.
CLAIMABLE = (EventStatus.RECEIVED, EventStatus.RETRY_SCHEDULED)
REPLAYABLE = (EventStatus.FAILED, EventStatus.IGNORED, EventStatus.PROCESSED)


class InboundEvent(models.Model):
    """One webhook delivery from Xurrent or Zenduty (the durable inbox).

    ``dedupe_key`` and ``replay_key`` make a repeated delivery of the same
    message land on the existing row (a delivery matching either is a
    duplicate). ``dedupe_key``: for Xurrent the ``x-xurrent-delivery`` id (or,
    on a retry, the ``x-xurrent-delivery-origin`` it names); for Zenduty,
    which sends no id, a hash of the incident, the event type and the
    incident's status and dates. ``replay_key`` (Xurrent only): the signed
    token's ``jti``, or a hash of the token without one. The delivery headers
    are not signed, so without it a captured body posted again with a fresh
    header would be a new event. Rejected attempts have neither key, so a
    forged or broken delivery can never block the genuine one.

    ``payload`` is the trusted message: the verified ``data`` claim of a
    Xurrent JWT (kept because the token expires before a retry might run), or
    the parsed Zenduty body. ``body`` is the raw text as received; of a
    rejected delivery only the first 4 KB (``body_size`` and the reason give
    its size and sha256).
    """

    source = models.CharField(max_length=16, choices=Source.choices)
    integration = models.ForeignKey("integrations.OutgoingIntegration", on_delete=models.SET_NULL, null=True,
                                    blank=True, related_name="inbound_events")
    # Deliveries to the tenant's webhook address (integrations.TenantWebhooks) name the tenant; the
    # job routes them to an integration (syncengine.routing), which is then set too.
    tenant = models.ForeignKey("connections.XurrentTenant", on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="inbound_events", verbose_name="Xurrent tenant")
    delivery_id = models.CharField(max_length=128, blank=True, default="",
                                   help_text="x-xurrent-delivery, or for Zenduty a hash of the event.")
    dedupe_key = models.CharField(max_length=255, null=True, blank=True, unique=True, editable=False)
    replay_key = models.CharField(max_length=255, null=True, blank=True, unique=True, editable=False)
    event_type = models.CharField(max_length=100, blank=True, default="")
    object_id = models.CharField("object", max_length=100, blank=True, default="",
                                 help_text="Xurrent request id, or Zenduty incident unique_id.")
    headers = models.JSONField(default=dict, blank=True, help_text="Received headers, without credentials.")
    body = models.TextField(blank=True, default="")
    body_size = models.PositiveIntegerField(default=0)
    payload = models.JSONField(null=True, blank=True)
    signature_ok = models.BooleanField(null=True)
    status = models.CharField(max_length=16, choices=EventStatus.choices, default=EventStatus.RECEIVED)
    reason = models.TextField(blank=True, default="", help_text="Why the event has its status.")
    last_error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0, help_text="Repeated deliveries acknowledged since.")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When the last attempt started.")
    processed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The linked pair the event was about, once the sync knew it (its timeline).
    pair = models.ForeignKey("syncengine.LinkedPair", on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="inbound_events")

    class Meta:
        verbose_name = "inbound event"
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["status", "received_at"], name="inbound_status_received"),
            # The dashboard's aggregates (syncengine.dashboard) read only these: overall, one
            # integration, and the backlog by integration. Covering, so a month of a busy portal is
            # counted without touching the rows (bench/dashboard.py).
            models.Index(fields=["integration", "received_at", "status", "processed_at"],
                         name="inbound_integration_received"),
            models.Index(fields=["received_at", "integration", "status", "processed_at"],
                         name="inbound_received_dashboard"),
            models.Index(fields=["status", "integration", "received_at"], name="inbound_status_integration"),
            # History search by a Xurrent request ID or Zenduty incident unique_id (syncengine.history_filters).
            models.Index(fields=["object_id"], name="inbound_object_id"),
        ]

    def __str__(self) -> str:
        what = self.event_type or "delivery"
        return f"{self.get_source_display()} {what} {self.object_id}".strip() + f" (#{self.pk})"

    def __repr__(self) -> str:
        return f"<InboundEvent {self.pk} {self.source} {self.event_type} {self.status}>"


class StatusClass(models.TextChoices):
    SUCCESS = "2xx", "2xx"
    REDIRECT = "3xx", "3xx"
    CLIENT_ERROR = "4xx", "4xx"
    SERVER_ERROR = "5xx", "5xx"
    NONE = "none", "No response"

    @property
    def colour(self) -> str:
        """Background of this class's badge (white text) and its colour in the charts."""
        return {"2xx": "#198754", "3xx": "#6f42c1", "4xx": "#fd7e14", "5xx": "#dc3545"}.get(self.value, NEUTRAL)


def status_class_of(status: int | None) -> str:
    """``"2xx"`` … ``"5xx"`` for an HTTP status, ``"none"`` when no response arrived."""
    if not status:
        return StatusClass.NONE
    return f"{status // 100}xx" if 2 <= status // 100 <= 5 else StatusClass.NONE


class OutboundCall(models.Model):
    """One HTTP call the portal made to Xurrent or Zenduty.

    Written by the observer registered in ``SyncEngineConfig.ready()`` from a
    ``CallRecord``: never headers or bodies, and the URL without its query
    string. ``integration`` and ``inbound_event`` come from the job context
    (``connections.attribution``); calls made elsewhere (admin, provisioning) have
    them empty unless the caller set a context.
    """

    service = models.CharField(max_length=16, choices=Source.choices)
    method = models.CharField(max_length=8)
    url = models.CharField("URL", max_length=500)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    status_class = models.CharField(max_length=4, choices=StatusClass.choices, default=StatusClass.NONE)
    duration_ms = models.PositiveIntegerField(default=0)
    attempt = models.PositiveSmallIntegerField(default=1)
    error = models.TextField(blank=True, default="")
    error_kind = models.CharField(max_length=32, blank=True, default="")
    # The answer's rate-limit headers (x-ratelimit-limit/-remaining/-reset, retry-after), when it sent any.
    rate_limit = models.JSONField(default=dict, blank=True)
    integration = models.ForeignKey("integrations.OutgoingIntegration", on_delete=models.SET_NULL, null=True,
                                    blank=True, related_name="outbound_calls")
    inbound_event = models.ForeignKey(InboundEvent, on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="outbound_calls")
    pair = models.ForeignKey("syncengine.LinkedPair", on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="outbound_calls")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "outbound call"
        ordering = ["-created_at", "-id"]
        indexes = [
            # Covering for the dashboard's calls and 429s per service (syncengine.dashboard).
            models.Index(fields=["integration", "created_at", "service", "status"],
                         name="outbound_integration_created"),
            models.Index(fields=["created_at", "integration", "service", "status"], name="outbound_created_dashboard"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.url} → {self.status or 'no response'}"


class PairState(models.TextChoices):
    # Claimed in the database; the counterpart is being created (or its answer was lost).
    CREATING = "creating", "Creating the counterpart"
    LINKED = "linked", "Linked"
    CLOSED = "closed", "Closed"
    FAILED = "failed", "Failed"
    # An integration admin unlinked it: kept for its timeline, no longer synced, and neither
    # record counts as linked any more (it may be linked again, by hand).
    UNLINKED = "unlinked", "Unlinked by hand"

    @property
    def colour(self) -> str:
        """Background of this state's badge (white text)."""
        return {"creating": "#0d6efd", "linked": "#198754", "failed": "#dc3545"}.get(self.value, NEUTRAL)


class PairOrigin(models.TextChoices):
    """Where a pair started: a record on one side (the sync created its counterpart), or by hand."""

    XURRENT = "xurrent", "Xurrent"
    ZENDUTY = "zenduty", "Zenduty"
    BY_HAND = "by_hand", "Linked by hand"


class LinkedPair(models.Model):
    """One Xurrent request and the Zenduty incident the sync linked it to.

    The row is claimed (inserted, state ``creating``) *before* the
    counterpart is created remotely, so the unique constraints on each
    side's id make a second create impossible: a concurrent or repeated event
    finds the claim. ``lease_until`` / ``lease_owner`` serialise the work on
    one pair (taken by a conditional UPDATE, never a lock held across HTTP);
    a ``creating`` claim whose lease ran out was left by a worker that died
    or lost the create's answer, and the next event looks the counterpart up
    before creating it again (``syncengine.pairs``).

    ``tenant`` and ``zenduty_account`` repeat the integration's so that the
    uniqueness holds across integrations. The ``xurrent_*`` / ``zenduty_*``
    "seen" fields are the newest state the portal saw on each side (Zenduty
    statuses only move forward: 1 triggered, 2 acknowledged, 3 resolved);
    ``last_written`` is what the portal itself wrote to each side
    (``{"xurrent": {"status": …}, "zenduty": {"status": …}}``), so that a
    write that changes nothing is skipped and the portal's own changes are
    recognised when they come back.
    """

    integration = models.ForeignKey("integrations.OutgoingIntegration", on_delete=models.CASCADE,
                                    related_name="pairs")
    tenant = models.ForeignKey("connections.XurrentTenant", on_delete=models.CASCADE, related_name="pairs")
    zenduty_account = models.ForeignKey("connections.ZendutyAccount", on_delete=models.CASCADE,
                                        related_name="pairs")
    origin = models.CharField(max_length=16, choices=PairOrigin.choices, help_text="The side the pair started on.")
    state = models.CharField(max_length=16, choices=PairState.choices, default=PairState.CREATING)
    xurrent_request_id = models.CharField("Xurrent request", max_length=64, blank=True, default="")
    zenduty_incident_unique_id = models.CharField("Zenduty incident", max_length=64, blank=True, default="")
    zenduty_incident_number = models.PositiveIntegerField("Zenduty incident number", null=True, blank=True)

    xurrent_status = models.CharField(max_length=32, blank=True, default="")
    xurrent_updated_at = models.DateTimeField(null=True, blank=True)
    zenduty_status = models.PositiveSmallIntegerField(null=True, blank=True,
                                                      help_text="1 triggered, 2 acknowledged, 3 resolved.")
    zenduty_seen_at = models.DateTimeField(null=True, blank=True)
    last_written = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True, default="")

    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # When the reconciliation sweep last compared both sides with what the pair saw (syncengine.reconcile).
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # Priority ⇄ impact: the newest seen on each side (the Zenduty priority's unique_id, the Xurrent impact).
    zenduty_priority = models.CharField(max_length=64, blank=True, default="")
    xurrent_impact = models.CharField(max_length=16, blank=True, default="")
    # The Zenduty poller (syncengine.polling): when it last read the incident's notes, and when people
    # last worked on the pair (an event, a synced note, a changed priority or impact): recent pairs first.
    polled_at = models.DateTimeField("notes last polled", null=True, blank=True)
    active_at = models.DateTimeField("last activity", null=True, blank=True)
    # The Xurrent note sweep (syncengine.note_sweep): when it last read the request's notes.
    xurrent_notes_read_at = models.DateTimeField("Xurrent notes last read", null=True, blank=True)

    class Meta:
        verbose_name = "linked pair"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["integration", "state", "last_checked_at"], name="pair_sweep_order"),
                   models.Index(fields=["state", "polled_at"], name="pair_poll_order"),
                   models.Index(fields=["state", "xurrent_notes_read_at"], name="pair_note_sweep_order"),
                   # History and pair search by incident number or request ID, across tenants.
                   models.Index(fields=["zenduty_incident_number"], name="pair_incident_number"),
                   models.Index(fields=["xurrent_request_id"], name="pair_request_id")]
        constraints = [
            # An unlinked pair no longer holds its records: they may be linked again.
            models.UniqueConstraint(fields=["tenant", "xurrent_request_id"],
                                    condition=~models.Q(xurrent_request_id="") & ~models.Q(state="unlinked"),
                                    name="one_pair_per_xurrent_request"),
            models.UniqueConstraint(fields=["zenduty_account", "zenduty_incident_unique_id"],
                                    condition=~models.Q(zenduty_incident_unique_id="") & ~models.Q(state="unlinked"),
                                    name="one_pair_per_zenduty_incident"),
        ]

    def __str__(self) -> str:
        request = f"request #{self.xurrent_request_id}" if self.xurrent_request_id else "request (pending)"
        incident = f"incident #{self.zenduty_incident_number}" if self.zenduty_incident_number else \
            (f"incident {self.zenduty_incident_unique_id}" if self.zenduty_incident_unique_id else "incident (pending)")
        return f"{request} ⇄ {incident}"

    def __repr__(self) -> str:
        return f"<LinkedPair {self.pk} {self.state} {self.xurrent_request_id or '-'}/{self.zenduty_incident_unique_id or '-'}>"


class PairNote(models.Model):
    """A line in a pair's timeline written by the portal itself, not a received event or a call.

    The reconciliation sweep writes one for each change it repaired (a change
    whose webhook never arrived), so the pair's page says so.
    """

    pair = models.ForeignKey(LinkedPair, on_delete=models.CASCADE, related_name="notes")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    text = models.TextField()

    class Meta:
        verbose_name = "pair note"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return self.text[:80]


class NoteState(models.TextChoices):
    # Claimed before the create: the outcome of the create is unknown until its id is recorded.
    SENDING = "sending", "Sending (outcome unknown until recorded)"
    SYNCED = "synced", "Synced"
    # The portal's own note (e.g. "reopened"), recorded so that the poller never copies it back.
    OWN = "own", "Written by the portal"


class SyncedNote(models.Model):
    """One note copied between a pair's request and incident, with both sides' ids.

    ``direction`` is the side the note was written on (``xurrent``: copied to
    Zenduty). The row is claimed (state ``sending``, the source note's id
    set) *before* the copy is created, like :class:`LinkedPair`: the unique
    constraints make a second copy of one note impossible, and a row left in
    ``sending`` (a lost answer, a killed worker) makes the next attempt look
    for the copy on the other side before it creates one. A note whose id is
    recorded on its target side is the portal's own: never copied back.
    """

    pair = models.ForeignKey(LinkedPair, on_delete=models.CASCADE, related_name="synced_notes")
    direction = models.CharField(max_length=16, choices=Source.choices, help_text="Where the note was written.")
    xurrent_note_id = models.CharField("Xurrent note", max_length=64, blank=True, default="")
    zenduty_note_id = models.CharField("Zenduty note", max_length=64, blank=True, default="")
    state = models.CharField(max_length=16, choices=NoteState.choices, default=NoteState.SENDING)
    at = models.DateTimeField(default=timezone.now, db_index=True, help_text="When the copy was claimed.")
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "synced note"
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["pair", "xurrent_note_id"], condition=~models.Q(xurrent_note_id=""),
                                    name="one_synced_note_per_xurrent_note"),
            models.UniqueConstraint(fields=["pair", "zenduty_note_id"], condition=~models.Q(zenduty_note_id=""),
                                    name="one_synced_note_per_zenduty_note"),
        ]

    def __str__(self) -> str:
        return f"Xurrent note {self.xurrent_note_id or '?'} ⇄ Zenduty note {self.zenduty_note_id or '?'}"


class ReconcileCursor(models.Model):
    """Up to when the reconciliation sweep has read an integration's changed Xurrent requests
    and its service's new Zenduty incidents.

    The next sweep lists the requests of the service instance updated since
    ``xurrent_listed_until`` (less an overlap), and the service's incidents
    created since the day before ``zenduty_listed_until``, so a change is seen
    even when sweeps were missed; each only moves on once a listing was read
    completely.
    """

    integration = models.OneToOneField("integrations.OutgoingIntegration", on_delete=models.CASCADE,
                                       primary_key=True, related_name="reconcile_cursor")
    xurrent_listed_until = models.DateTimeField()
    # Only for integrations that create requests from Zenduty incidents.
    zenduty_listed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "reconciliation cursor"

    def __str__(self) -> str:
        return f"{self.integration_id}: {self.xurrent_listed_until:%Y-%m-%d %H:%M:%S}"


class BackfillStatus(models.TextChoices):
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting to try again"  # a 429, a 5xx, no answer: it goes on where it stopped
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Backfill(models.Model):
    """An opt-in backfill of one integration: what its preview planned, and how far it got.

    ``items`` is the plan an integration admin saw and started (one dict per
    record: ``side``, ``record``, ``label``, ``action``, ``reason``, and once
    done ``result``); ``position`` is the next item to do. The job
    (``syncengine.backfill.run``) does items in order, stops on a rate limit
    and comes back when the API allows; every create goes through the flows'
    claim, so an item done twice (a retried job, a webhook meanwhile) makes
    one counterpart.
    """

    integration = models.ForeignKey("integrations.OutgoingIntegration", on_delete=models.CASCADE,
                                    related_name="backfills")
    requested_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=BackfillStatus.choices, default=BackfillStatus.RUNNING)
    items = models.JSONField(default=list)
    position = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One at a time per integration: a second (a double click, two admins) would plan the
            # same records again and report the first one's work as "linked meanwhile".
            models.UniqueConstraint(fields=["integration"], name="one_unfinished_backfill_per_integration",
                                    condition=models.Q(status__in=["running", "waiting"])),
        ]

    def __str__(self) -> str:
        return f"Backfill of {self.integration} by {self.requested_by} ({self.get_status_display()})"


class PrunedTally(models.Model):
    """What the daily prune deleted, as totals per metric and labels (``syncengine.metrics``).

    The Prometheus counters are computed from the history tables at scrape
    time; without these totals a prune would make them go down, which
    Prometheus reads as a restart of the count.
    """

    metric = models.CharField(max_length=100)
    labels = models.CharField(max_length=200, blank=True, default="",
                              help_text="Label values, comma-separated in the metric's label order.")
    value = models.FloatField(default=0)

    class Meta:
        verbose_name = "pruned tally"
        constraints = [models.UniqueConstraint(fields=["metric", "labels"], name="pruned_tally_metric_labels")]

    def __str__(self) -> str:
        return f"{self.metric}{{{self.labels}}} {self.value:g}"


class ActivityHour(models.Model):
    """Inbound events of one hour (by arrival), one integration and one status: the dashboard's roll-up.

    Written only by ``syncengine.dashboard.roll_up`` (scheduled), which
    recomputes whole hours from the events; the 7- and 30-day dashboards read
    these for the hours it has rolled up and the events themselves for the
    rest, so a month is a few thousand rows instead of a quarter of a million
    events. ``lag_*``: seconds from arrival to processing of the processed events.
    """

    hour = models.DateTimeField()
    # SET_NULL as on the events: a deleted integration's history counts as "no integration" in both.
    integration = models.ForeignKey("integrations.OutgoingIntegration", on_delete=models.SET_NULL, null=True,
                                    blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=EventStatus.choices)
    events = models.PositiveIntegerField(default=0)
    lag_count = models.PositiveIntegerField(default=0)
    lag_sum = models.FloatField(default=0)
    lag_max = models.FloatField(null=True, blank=True)

    class Meta:
        verbose_name = "activity hour"
        ordering = ["-hour"]
        # Covering: the dashboard sums a month of hours from the index alone.
        indexes = [models.Index(fields=["hour", "integration", "status", "events", "lag_count", "lag_sum", "lag_max"],
                                name="activity_hour_dashboard")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.integration_id or '-'} {self.status}: {self.events}"
